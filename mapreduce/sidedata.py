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
same side data instead of calling ``prepare`` again.  The ref also carries each file's
SHA-256, and every load checks the bytes it is about to use against it (the pickle is read,
hashed and only then unpickled; an array file is hashed through the descriptor it is mapped
from): a file changed or swapped after the coordinator stored it is never unpickled, which
would run whatever code it holds, nor used.

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
    """Where a job's side data is stored, the digest of its files, and each file's SHA-256
    (``(name, hex digest)`` pairs)."""

    directory: str
    digest: str
    files: tuple = ()

    def __post_init__(self) -> None:  # from the journal's JSON, lists come back as lists
        object.__setattr__(self, "files", tuple(tuple(f) for f in self.files))

    def expected(self, name: str) -> str:
        for filename, sha in self.files:
            if filename == name:
                return sha
        raise CorruptDataError(os.path.join(self.directory, name), 0,
                               "side data file not recorded when it was stored")


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
    files = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            files.append((name, _sha256_of(f)))
    return SideDataRef(directory, _digest(directory), tuple(files))


def _sha256_of(f) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def _check(ref: SideDataRef, name: str, actual: str) -> None:
    if ref.files and actual != ref.expected(name):
        raise CorruptDataError(os.path.join(ref.directory, name), 0,
                               "side data file changed since the job stored it (SHA-256 "
                               "digest mismatch): not loaded")


def verify_side_data(ref: Optional[SideDataRef]) -> None:
    """Raise CorruptDataError if the stored side data changed since it was written."""
    if ref is None:
        return
    if not os.path.isdir(ref.directory) or _digest(ref.directory) != ref.digest:
        raise CorruptDataError(ref.directory, 0, "side data missing or changed since the job "
                                                 "started")


def _map_array(numpy: Any, f) -> Any:
    """Memory-map the .npy file open as ``f`` read-only: through the very descriptor whose
    bytes were just hashed (``numpy.load(mmap_mode=...)`` would open the path again)."""
    version = numpy.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = numpy.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = numpy.lib.format.read_array_header_2_0(f)
    if dtype.hasobject:
        raise CorruptDataError(f.name, 0, "side data array holds Python objects")
    return numpy.memmap(f, dtype=dtype, mode="r", shape=shape,
                        order="F" if fortran else "C", offset=f.tell())


_CACHE: dict[SideDataRef, dict] = {}


def load_side_data(ref: Optional[SideDataRef]) -> dict:
    """The side data dict, arrays memory-mapped read-only; cached per process."""
    if ref is None:
        return {}
    cached = _CACHE.get(ref)
    if cached is not None:
        return cached
    if not ref.files:  # a ref from an older journal: check the whole store at once
        verify_side_data(ref)
    try:
        with open(os.path.join(ref.directory, PICKLE_FILE), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise CorruptDataError(os.path.join(ref.directory, PICKLE_FILE), 0,
                               "file missing") from None
    _check(ref, PICKLE_FILE, hashlib.sha256(raw).hexdigest())
    shallow = pickle.loads(raw)  # only bytes that match the digest the coordinator took
    data = {}
    for name, value in shallow.items():
        if isinstance(value, _ArrayPlaceholder):
            import numpy

            path = os.path.join(ref.directory, value.filename)
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                raise CorruptDataError(path, 0, "file missing") from None
            with f:
                _check(ref, value.filename, _sha256_of(f))
                f.seek(0)
                data[name] = _map_array(numpy, f)
        else:
            data[name] = value
    _CACHE[ref] = data
    return data
