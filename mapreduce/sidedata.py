"""Side data: values every task of a job can read (Hadoop's distributed cache, Spark's
broadcast variables, mrjob's file options), stored once per job and shared, not copied.

``Job.prepare(inputs)`` returns a dict; the coordinator stores it once in the work directory
and tasks receive only a small :class:`SideDataRef`:

* NumPy arrays are written as ``.npy`` files and opened in every worker with
  ``numpy.load(mmap_mode="r")`` (joblib's trick): all workers map the same page-cache pages,
  so N workers reading a 200 MB array use about 200 MB between them, not N x 200 MB, and a
  task never has to unpickle the array.  Arrays are read-only in tasks.
* Everything else is pickled into one ``side.pickle`` file, loaded once per worker process.

A worker loads a given store once and caches it (workers are reused across tasks).  The
store is named by a digest of its files, kept in the journal, so ``--resume`` reuses the very
same side data instead of calling ``prepare`` again.

Files: ``WORK/side/side.pickle`` (the dict, with each array replaced by a placeholder) and
``WORK/side/NAME.npy`` (NumPy's own format: a magic string, a header with dtype, shape and
order, then the raw array bytes).
"""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from typing import Any, Optional

from mapreduce.errors import CorruptDataError

PICKLE_FILE = "side.pickle"


@dataclass(frozen=True)
class SideDataRef:
    """Where a job's side data is stored, and the digest of its files."""

    directory: str
    digest: str


@dataclass(frozen=True)
class _ArrayPlaceholder:
    filename: str


def _is_ndarray(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _digest(directory: str) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        h.update(name.encode("utf-8"))
        with open(os.path.join(directory, name), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def store_side_data(data: dict, directory: str) -> Optional[SideDataRef]:
    """Write ``data`` under ``directory`` (arrays as .npy, the rest pickled); fsynced."""
    if not data:
        return None
    os.makedirs(directory, exist_ok=True)
    shallow: dict = {}
    for i, (name, value) in enumerate(data.items()):
        if _is_ndarray(value):
            import numpy  # only jobs that put arrays in side data need numpy

            filename = f"array-{i:04d}.npy"
            path = os.path.join(directory, filename)
            with open(path, "wb") as f:
                numpy.save(f, numpy.ascontiguousarray(value), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            shallow[name] = _ArrayPlaceholder(filename)
        else:
            shallow[name] = value
    with open(os.path.join(directory, PICKLE_FILE), "wb") as f:
        pickle.dump(shallow, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    return SideDataRef(directory, _digest(directory))


def verify_side_data(ref: Optional[SideDataRef]) -> None:
    """Raise CorruptDataError if the stored side data changed since it was written."""
    if ref is None:
        return
    if not os.path.isdir(ref.directory) or _digest(ref.directory) != ref.digest:
        raise CorruptDataError(ref.directory, 0, "side data missing or changed since the job "
                                                 "started")


_CACHE: dict[SideDataRef, dict] = {}


def load_side_data(ref: Optional[SideDataRef]) -> dict:
    """The side data dict, arrays memory-mapped read-only; cached per process."""
    if ref is None:
        return {}
    cached = _CACHE.get(ref)
    if cached is not None:
        return cached
    try:
        with open(os.path.join(ref.directory, PICKLE_FILE), "rb") as f:
            shallow = pickle.load(f)
    except FileNotFoundError:
        raise CorruptDataError(os.path.join(ref.directory, PICKLE_FILE), 0,
                               "file missing") from None
    data = {}
    for name, value in shallow.items():
        if isinstance(value, _ArrayPlaceholder):
            import numpy

            data[name] = numpy.load(os.path.join(ref.directory, value.filename),
                                    mmap_mode="r", allow_pickle=False)
        else:
            data[name] = value
    _CACHE[ref] = data
    return data
