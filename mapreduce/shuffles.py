"""The shuffle back ends by ``--mode``: ``disk`` (run files, :mod:`mapreduce.diskshuffle`) and
``memory`` (:class:`~mapreduce.shuffle.MemoryShuffle`).  Same engine, different part plugged
in: the runners take one of these and never branch on the mode."""
from __future__ import annotations

from mapreduce.diskshuffle import DiskShuffle
from mapreduce.errors import UsageError
from mapreduce.shuffle import MemoryShuffle, Shuffle

SHUFFLES: dict[str, type[Shuffle]] = {"disk": DiskShuffle, "memory": MemoryShuffle}


def make_shuffle(mode: str) -> Shuffle:
    try:
        return SHUFFLES[mode]()
    except KeyError:
        raise UsageError(f"--mode must be one of {', '.join(SHUFFLES)} (got {mode!r})") from None


__all__ = ["SHUFFLES", "make_shuffle"]
