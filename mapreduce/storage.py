"""The filesystem seam: every byte the engine reads from inputs or writes to the output
directory goes through one small interface, :class:`FileSystem`.  Work files (spills, map
outputs, the journal) stay on local disk and do not.

The interface is what a MapReduce engine needs of storage, and no more:

* **list** a directory (names, kinds, sizes) and **info** about one path;
* **open a byte range** of a file for reading (a split is a range: a remote store serves it
  with a ranged read, never a whole download);
* **identity** of an input (what the fingerprint records to notice a change);
* **write** a small file atomically (``_job.json``, ``_SUCCESS``), **put** a finished local
  file at its final name (a part file), **rename** within the store, **remove**, and make a
  directory's changes **durable**.

:class:`LocalFileSystem` is the one implementation today; remote stores (``s3://``,
``gs://``, ``hdfs://``, ...) plug in as another, chosen by :func:`filesystem_for` from the
URL's scheme.  Until they do, a URL with a scheme the engine does not know is refused at the
start with one line, never taken for a local path (``-o s3://bucket/out`` used to create a
directory named ``s3:``).  ``file://`` URLs are local paths.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import BinaryIO, Optional

from mapreduce.errors import UsageError

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int


class FileSystem(ABC):
    """One storage back end (see the module docstring)."""

    @abstractmethod
    def list(self, path: str) -> list[Entry]:
        """The entries of directory ``path``, sorted by name."""

    @abstractmethod
    def info(self, path: str) -> Entry:
        """What ``path`` is (FileNotFoundError if nothing)."""

    @abstractmethod
    def open_range(self, path: str, start: int = 0) -> BinaryIO:
        """``path`` opened for reading (unbuffered), positioned at byte ``start``."""

    @abstractmethod
    def identity(self, path: str) -> list:
        """What identifies the bytes of input ``path`` now: a change of content changes it."""

    @abstractmethod
    def makedirs(self, path: str) -> None:
        ...

    @abstractmethod
    def write_atomically(self, path: str, data: bytes) -> None:
        """Make ``path`` hold ``data``: all of it or (after a crash) what was there before."""

    @abstractmethod
    def put(self, local_path: str, path: str, staging: str) -> None:
        """Move the finished local file ``local_path`` to ``path`` atomically (``staging``: a
        directory of this store next to ``path`` for a copy on its way)."""

    @abstractmethod
    def rename(self, src: str, dst: str) -> None:
        ...

    @abstractmethod
    def remove_tree(self, path: str) -> None:
        ...

    @abstractmethod
    def sync_dir(self, path: str) -> None:
        """Make the creations, renames and removals in directory ``path`` durable."""


class LocalFileSystem(FileSystem):
    """Local files (and ``file://`` URLs)."""

    def list(self, path: str) -> list[Entry]:
        with os.scandir(path) as it:
            entries = []
            for e in it:
                try:
                    is_dir = e.is_dir()
                    size = 0 if is_dir else e.stat().st_size
                except OSError:
                    is_dir, size = False, 0
                entries.append(Entry(e.name, is_dir, size))
        return sorted(entries, key=lambda e: e.name)

    def info(self, path: str) -> Entry:
        st = os.stat(path)
        return Entry(os.path.basename(path), stat.S_ISDIR(st.st_mode), st.st_size)

    def open_range(self, path: str, start: int = 0) -> BinaryIO:
        f = open(path, "rb", buffering=0)
        if start:
            f.seek(start)
        return f  # type: ignore[return-value]

    def identity(self, path: str) -> list:
        # A rewrite that keeps size and mtime (cp -p, rsync -t, an in-place edit with the
        # mtime put back) still changes the inode or the ctime.
        st = os.stat(path)
        return [os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def write_atomically(self, path: str, data: bytes) -> None:
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.sync_dir(os.path.dirname(path))

    def put(self, local_path: str, path: str, staging: str) -> None:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        try:
            os.replace(local_path, path)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        # Another file system (the work directory on a scratch disk): copy into staging on
        # the final name's file system, fsync, rename; only then remove the source, so a
        # crash at any point leaves the source or the complete file.
        os.makedirs(staging, exist_ok=True)
        tmp = os.path.join(staging, f"{os.path.basename(path)}.copy")
        with open(local_path, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, path)
        self.sync_dir(directory)
        os.remove(local_path)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


LOCAL = LocalFileSystem()


def scheme_of(path: str) -> Optional[str]:
    """The URL scheme of ``path`` (``"s3"`` for ``s3://b/k``), or None for a plain path."""
    m = _SCHEME_RE.match(path)
    return m.group(1).lower() if m else None


def filesystem_for(path: str, what: str = "path") -> tuple[FileSystem, str]:
    """The file system ``path`` lives on, and the path as that file system names it.

    A plain path or ``file://`` URL is local; any other scheme is refused with one line
    naming the URL (remote stores plug in here)."""
    scheme = scheme_of(path)
    if scheme is None:
        return LOCAL, path
    if scheme == "file":
        return LOCAL, path[len("file://"):] or "/"
    raise UsageError(f"{what} {path}: URL scheme {scheme}:// is not supported; use a local "
                     "path (or file://)")


__all__ = ["FileSystem", "LocalFileSystem", "LOCAL", "Entry", "filesystem_for", "scheme_of"]
