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

Two implementations, chosen by :func:`filesystem_for` from the URL's scheme:

* :class:`LocalFileSystem`: plain paths and ``file://`` URLs.
* :class:`RemoteFileSystem`: any other scheme fsspec knows (``s3://``, ``gs://``,
  ``abfs://``, ``hdfs://``, ``http(s)://``, ``memory://``), through fsspec and the store's
  own package (s3fs, gcsfs, adlfs, pyarrow, aiohttp), which comes with an extra
  (``pip install 'mapreduce[s3]'``).  A URL whose package is missing, or whose scheme fsspec
  does not know, is refused at the start with one line naming the extra, never taken for a
  local path (``-o s3://bucket/out`` once created a directory named ``s3:``).

Paths of a remote store stay full URLs everywhere (in splits, the fingerprint,
``_job.json``), so whoever holds one can open it again with :func:`filesystem_for`.

Remote stores differ from a local disk in what the commit may assume (docs/storage.md):
an object appears whole or not at all when its upload completes, but there is no atomic
rename (a rename is a copy and a delete) and no directory to fsync.  :attr:`FileSystem.local`
tells the session which protocol to use.

**Storage options** (``--storage-option key=value``, ``storage_options={...}``: an endpoint,
keys, a profile) are handed to the fsspec back end and to nothing else: they are set once
per process with :func:`configure` (worker processes are forked and inherit them) and are
never part of a path, a split, the journal or ``_job.json``.  Credentials otherwise come the
back end's standard way (environment variables, ``~/.aws``, instance roles).
"""
from __future__ import annotations

import errno
import io
import os
import re
import shutil
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, BinaryIO, Optional

from mapreduce.errors import UsageError

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int


class FileSystem(ABC):
    """One storage back end (see the module docstring)."""

    #: A local disk: atomic rename, directories to fsync, POSIX locks.  A remote store has
    #: none of these: the session commits to it without renames (docs/storage.md).
    local = True

    def read_bytes(self, path: str) -> bytes:
        """The whole of small file ``path`` (``_job.json``)."""
        with self.open_range(path) as f:
            chunks = []
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

    def exists(self, path: str) -> bool:
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    def join(self, path: str, name: str) -> str:
        """``name`` inside directory ``path``."""
        return os.path.join(path, name)

    def refresh(self) -> None:
        """Forget what was cached of listings and sizes (before checking inputs again)."""

    @abstractmethod
    def list(self, path: str) -> list[Entry]:
        """The entries of directory ``path``, sorted by name."""

    @abstractmethod
    def info(self, path: str) -> Entry:
        """What ``path`` is (FileNotFoundError if nothing)."""

    @abstractmethod
    def open_range(self, path: str, start: int = 0, end: Optional[int] = None) -> BinaryIO:
        """``path`` opened for reading (unbuffered), positioned at byte ``start``; ``end``
        (when known) is where the reader means to stop, but for the tail of a line: a remote
        store fetches up to it in large requests and little by little after it."""

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

    def open_range(self, path: str, start: int = 0, end: Optional[int] = None) -> BinaryIO:
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


class RemoteFileSystem(FileSystem):
    """A store reached through fsspec (see the module docstring); paths are full URLs."""

    local = False

    def __init__(self, fs: Any, scheme: str) -> None:
        self.fs = fs
        self.scheme = scheme

    def _url(self, path: str) -> str:
        """A path as fsspec returns it (``bucket/key``) turned back into this store's URL."""
        return path if scheme_of(path) else f"{self.scheme}://{path}"

    def join(self, path: str, name: str) -> str:
        return f"{path.rstrip('/')}/{name}"

    def refresh(self) -> None:
        self.fs.invalidate_cache()  # s3fs and gcsfs answer info() from cached listings

    def list(self, path: str) -> list[Entry]:
        entries = [Entry(e["name"].rstrip("/").rsplit("/", 1)[-1], e["type"] == "directory",
                         int(e.get("size") or 0))
                   for e in self.fs.ls(path, detail=True)]
        return sorted({e.name: e for e in entries if e.name}.values(), key=lambda e: e.name)

    def info(self, path: str) -> Entry:
        info = self.fs.info(path)
        return Entry(path.rstrip("/").rsplit("/", 1)[-1], info.get("type") == "directory",
                     int(info.get("size") or 0))

    def find(self, path: str) -> list[tuple[str, int]]:
        """Every file below directory ``path``: (URL, size), sorted by URL."""
        found = self.fs.find(path, detail=True)
        return sorted((self._url(name), int(e.get("size") or 0)) for name, e in found.items()
                      if e.get("type") != "directory")

    def glob(self, pattern: str) -> list[str]:
        return sorted(self._url(p) for p in self.fs.glob(pattern))

    def open_range(self, path: str, start: int = 0, end: Optional[int] = None) -> BinaryIO:
        return _RangeReader(self.fs, path, start, end)  # type: ignore[return-value]

    def identity(self, path: str) -> list:
        # Size and the store's own version of the bytes (S3's ETag, a generation, an mtime):
        # an object rewritten under the same name changes it.
        info = self.fs.info(path)
        version = [str(info.get(k)) for k in ("ETag", "etag", "generation", "VersionId",
                                             "LastModified", "mtime", "last_modified")
                   if info.get(k) is not None]
        return [path, int(info.get("size") or 0), *version]

    def makedirs(self, path: str) -> None:
        self.fs.makedirs(path, exist_ok=True)

    def write_atomically(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(path, data)  # one PUT: the object appears whole or not at all

    def put(self, local_path: str, path: str, staging: str) -> None:
        # One upload (multipart for a big file): the object appears at ``path`` only when the
        # upload completes, so a reader never sees part of it.  The local file stays (the
        # session's work directory goes when the job has committed), so a commit killed
        # midway uploads it again on --resume.
        self.fs.put_file(local_path, path)

    def rename(self, src: str, dst: str) -> None:
        self.fs.mv(src, dst, recursive=True)

    def remove(self, path: str) -> None:
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

    def remove_tree(self, path: str) -> None:
        self.remove(path)

    def sync_dir(self, path: str) -> None:
        pass  # an object store has no directory to make durable: each PUT is


#: The package each scheme needs, and the extra that installs it.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure",
          "abfss": "azure", "az": "azure", "hdfs": "hdfs", "http": "http", "https": "http"}
class _RangeReader(io.RawIOBase):
    """A remote file read forward from ``start`` by ranged requests (``Range: bytes=A-B``
    on S3, GCS, HTTP): never a download of the whole file, never a read-ahead past ``end``
    into the next split's bytes.

    Requests are :data:`REQUEST_SIZE` (8 MiB) up to ``end``, then :data:`TAIL_REQUEST_SIZE`
    (64 KiB) for the tail of the split's last line; with no ``end`` (a compressed file, read
    whole) 8 MiB to the end of the file.  Large requests matter: each costs a round trip
    and the store's per-request work (1 MiB requests read a loopback S3 server ~5x slower
    than 8 MiB ones here).  ``read(n)`` serves the line reader's chunks from the last
    response."""

    REQUEST_SIZE = 8 << 20
    TAIL_REQUEST_SIZE = 64 << 10

    def __init__(self, fs: Any, path: str, start: int, end: Optional[int]) -> None:
        super().__init__()
        self._fs = fs
        self._path = path
        self._size = int(fs.info(path).get("size") or 0)
        self._pos = start          # file offset of the next request
        self._end = end
        self._buf = b""
        self._off = 0

    def _fetch(self) -> bytes:
        if self._pos >= self._size:
            return b""
        if self._end is not None and self._pos >= self._end:
            stop = self._pos + self.TAIL_REQUEST_SIZE
        else:
            stop = self._pos + self.REQUEST_SIZE
            if self._end is not None:
                stop = min(stop, self._end)
        stop = min(stop, self._size)
        data = self._fs.cat_file(self._path, start=self._pos, end=stop)
        self._pos += len(data)
        return data

    def read(self, n: Optional[int] = -1) -> bytes:  # type: ignore[override]
        have = len(self._buf) - self._off
        if n is None or n < 0:
            pieces = [self._buf[self._off:]]
            while True:
                data = self._fetch()
                if not data:
                    break
                pieces.append(data)
            self._buf, self._off = b"", 0
            return b"".join(pieces)
        if have == 0:
            self._buf, self._off = self._fetch(), 0
            have = len(self._buf)
        out = self._buf[self._off:self._off + n]
        self._off += len(out)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:  # forward reads from here
        if whence != 0:
            raise OSError("a remote range is read forward only")
        self._pos, self._buf, self._off = offset, b"", 0
        return offset

    def tell(self) -> int:
        return self._pos - (len(self._buf) - self._off)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._buf = b""
        super().close()


#: Schemes that can be read but not written.
READ_ONLY = ("http", "https")
#: Options handed to every remote store's fsspec constructor (see :func:`configure`).
_OPTIONS: dict[str, Any] = {}
_CACHE: dict[tuple[int, str], RemoteFileSystem] = {}


def configure(options: Optional[dict[str, Any]]) -> None:
    """Set the storage options (``--storage-option``) of this process's remote stores."""
    global _OPTIONS
    new = dict(options or {})
    if new != _OPTIONS:
        _OPTIONS = new
        _CACHE.clear()


def storage_options() -> dict[str, Any]:
    """The options :func:`configure` set (to hand to another process, e.g. Spark's)."""
    return dict(_OPTIONS)


def _remote(scheme: str, path: str, what: str) -> RemoteFileSystem:
    key = (os.getpid(), scheme)  # fsspec's async clients do not survive a fork
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    extra = EXTRAS.get(scheme)
    install = f"pip install 'mapreduce[{extra}]'" if extra else ""
    try:
        import fsspec
        cls = fsspec.get_filesystem_class(scheme)
    except ImportError:
        if install:
            raise UsageError(f"{what} {path}: {scheme}:// needs an extra package: "
                             f"{install}") from None
        raise UsageError(f"{what} {path}: {scheme}:// needs a package that is not "
                         "installed") from None
    except ValueError:
        raise UsageError(f"{what} {path}: URL scheme {scheme}:// is not supported (not a "
                         "store fsspec knows); use a local path, file://, s3://, gs://, "
                         "abfs://, hdfs:// or http(s)://") from None
    try:
        fs = cls(**_OPTIONS)
    except ImportError:
        raise UsageError(f"{what} {path}: {scheme}:// needs an extra package: "
                         f"{install or 'see its fsspec implementation'}") from None
    except TypeError as exc:
        # A --storage-option the back end does not take: named, never its value.
        raise UsageError(f"--storage-option: not accepted by the {scheme}:// store "
                         f"({str(exc).splitlines()[0]})") from None
    remote = RemoteFileSystem(fs, scheme)
    _CACHE[key] = remote
    return remote


def describe_failure(exc: BaseException) -> str:
    """One line saying why a remote store refused (missing, denied, unreachable, ...)."""
    cause = exc.__cause__
    if isinstance(exc, FileNotFoundError) and cause is not None and getattr(
            cause, "status", None) in (401, 403):
        return "access denied"  # fsspec's HTTP reader calls every failure "not found"
    if isinstance(exc, FileNotFoundError):
        detail = str(exc.args[-1] if exc.args else exc)
        if "bucket" in detail.lower():
            return "no such bucket"
        return "no such file or object"
    status = getattr(exc, "status", None) or getattr(exc, "code", None)  # HTTP's answer
    if isinstance(exc, PermissionError) or status in (401, 403):
        return "access denied"
    if status == 404:
        return "no such file or object"
    name = type(exc).__name__
    text = (str(exc).strip().splitlines() or [name])[0]
    if "connect" in name.lower() or "connect" in text.lower() or isinstance(
            exc, (ConnectionError, TimeoutError)):
        return f"cannot reach the store's endpoint ({text})"
    return f"{name}: {text}" if text != name else name


def scheme_of(path: str) -> Optional[str]:
    """The URL scheme of ``path`` (``"s3"`` for ``s3://b/k``), or None for a plain path."""
    m = _SCHEME_RE.match(path)
    return m.group(1).lower() if m else None


def filesystem_for(path: str, what: str = "path") -> tuple[FileSystem, str]:
    """The file system ``path`` lives on, and the path as that file system names it.

    A plain path or ``file://`` URL is local; another scheme is a :class:`RemoteFileSystem`
    (the path stays the URL, without a trailing ``/``), or a UsageError naming ``what`` and
    the URL when fsspec does not know the scheme or its extra is not installed."""
    scheme = scheme_of(path)
    if scheme is None:
        return LOCAL, path
    if scheme == "file":
        return LOCAL, path[len("file://"):] or "/"
    url = path.rstrip("/") if path.rstrip("/") != f"{scheme}:/" else path
    if what == "output" and scheme in READ_ONLY:
        raise UsageError(f"output {path}: {scheme}:// is read-only; write the output to a "
                         "local path or a store (s3://, gs://, ...)")
    return _remote(scheme, path, what), url


def is_remote(path: str) -> bool:
    scheme = scheme_of(path)
    return scheme is not None and scheme != "file"


__all__ = ["FileSystem", "LocalFileSystem", "RemoteFileSystem", "LOCAL", "Entry",
           "filesystem_for", "scheme_of", "is_remote", "configure", "storage_options",
           "describe_failure", "EXTRAS"]
