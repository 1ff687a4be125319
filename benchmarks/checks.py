"""Agreement checks: every program of a workload must produce the same answer.

* Word counts are compared as dicts word -> count, whatever the format they were written in:
  our part files (``json(word) TAB count``, also mrjob's), the baselines' ``word TAB count``,
  or ``uniq -c``'s ``   count word``.
* Sorted outputs are compared byte for byte: the concatenation of our part files (in name
  order) against GNU sort's output file, reporting the first differing byte offset.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Optional


def part_files(directory: str) -> list[str]:
    return [os.path.join(directory, f) for f in sorted(os.listdir(directory))
            if f.startswith("part-")]


def read_counts(path: str, fmt: str) -> dict[str, int]:
    """Word counts from ``path`` (a file, or a job output directory for ``fmt="json"``).

    ``fmt``: ``"json"`` (``json(word) TAB count`` lines), ``"tsv"`` (``word TAB count``) or
    ``"uniq"`` (``uniq -c`` output: blanks, count, one blank, word).
    """
    files = part_files(path) if os.path.isdir(path) else [path]
    counts: dict[str, int] = {}
    for name in files:
        with open(name, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if fmt == "json":
                    key, value = line.split("\t", 1)
                    word, n = json.loads(key), json.loads(value)
                elif fmt == "tsv":
                    word, value = line.split("\t", 1)
                    n = int(value)
                elif fmt == "uniq":
                    stripped = line.lstrip(" ")
                    value, _, word = stripped.partition(" ")
                    n = int(value)
                else:
                    raise ValueError(f"unknown format {fmt!r}")
                if word in counts:
                    raise ValueError(f"{name}: word {word!r} appears twice")
                counts[word] = n
    return counts


def compare_counts(reference: dict[str, int], other: dict[str, int]) -> Optional[str]:
    """None when equal, else a one-line description of the first difference."""
    if reference == other:
        return None
    missing = sorted(set(reference) - set(other))
    extra = sorted(set(other) - set(reference))
    if missing:
        return f"{len(missing)} words missing, e.g. {missing[0]!r}"
    if extra:
        return f"{len(extra)} unexpected words, e.g. {extra[0]!r}"
    wrong = sorted(w for w in reference if reference[w] != other[w])
    w = wrong[0]
    return f"{len(wrong)} counts differ, e.g. {w!r}: {other[w]} instead of {reference[w]}"


def _chunks(paths: Iterable[str], size: int = 4 << 20) -> Iterable[bytes]:
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(size), b""):
                yield chunk


def first_difference(a: list[str], b: list[str]) -> Optional[int]:
    """Byte offset of the first difference between the concatenations of files ``a`` and
    ``b`` (a shorter stream differs at its end); None when they are identical."""
    ia, ib = iter(_chunks(a)), iter(_chunks(b))
    buf_a = buf_b = b""
    offset = 0
    while True:
        if not buf_a:
            buf_a = next(ia, b"")
        if not buf_b:
            buf_b = next(ib, b"")
        if not buf_a or not buf_b:
            return None if not buf_a and not buf_b else offset
        n = min(len(buf_a), len(buf_b))
        if buf_a[:n] != buf_b[:n]:
            i = next(i for i in range(n) if buf_a[i] != buf_b[i])
            return offset + i
        offset += n
        buf_a, buf_b = buf_a[n:], buf_b[n:]
