"""Input files: finding them, cutting them into splits, and reading a split's lines.

Three steps, each used by the engine:

``expand_inputs(patterns)``
    Turns the command line's input arguments (files, directories, glob patterns) into a
    deduplicated, deterministically ordered list of files.  Inside directories and glob
    matches, names starting with ``_`` or ``.`` are skipped, as Hadoop does, so that the
    output directory of one job (``part-*`` plus ``_SUCCESS``, ``_job.json``, ``_temporary/``)
    can be the input of the next.

``plan_splits(files, split_size)`` / ``choose_split_size(total_bytes, workers)``
    Cut plain files into byte ranges; a compressed file (``.gz``, ``.bz2``, ``.xz``, ``.lz4``,
    ``.zst``: by suffix, case-insensitive) is a single split because a compressed stream
    cannot be entered in the middle.  Any other suffix is plain text.  ``.zst`` needs the
    optional ``zstandard`` package; without it planning fails, before any task runs.

    Small files are packed (Hadoop's ``CombineFileInputFormat``): consecutive files no
    larger than the split size -- plain, compressed or empty -- share one
    :class:`CombinedSplit` while their sizes on disk add up to at most the split size, so
    2,400 files of 17 KB are a handful of map tasks, not 2,400 (each costing a process
    hand-off, a spill file and a merge input).  Packs keep file order, so a map-only job's
    part files still concatenate to the inputs' order; a pack of one file is a plain split.
    The task reads the parts one after the other and the job's ``input_path`` (and mrjob's
    ``mapreduce.map.input.file``) follows the part being read; a step's ``mapper_init`` /
    ``mapper_final`` run around each part (``kernel.run_map``), so job code sees what it saw
    when each file was a task of its own.

``read_lines(split)``
    Yields the lines of one split.  A line belongs to the split that holds its *first byte*,
    so splits can be cut at arbitrary byte offsets and every line of a file is still read
    exactly once, whatever the split size.

Lines are separated by ``b"\\n"`` only; a ``"\\r"`` right before the ``"\\n"`` is removed too,
any other ``"\\r"`` is data.  Text is UTF-8; by default a byte that is not valid UTF-8 is an
:class:`~mapreduce.errors.InputError` naming the file and the byte offset.

Files are listed, sized and opened through the filesystem seam (:mod:`mapreduce.storage`);
everything else here imports only the standard library, :mod:`mapreduce.errors`, the option
table (to spell the ``--decode-errors`` hint as the user spells options) and, when such a file
is read, ``lz4.frame`` and ``zstandard``.
"""
from __future__ import annotations

import bz2
import codecs
import fnmatch
import glob
import gzip
import lzma
import os
import stat
import zlib
from dataclasses import dataclass
from itertools import chain
from typing import BinaryIO, Iterator, Optional, Sequence

from mapreduce.errors import InputError
from mapreduce.options import BY_NAME, Spelling
from mapreduce.storage import RemoteFileSystem, describe_failure, filesystem_for, is_remote

__all__ = [
    "TextSplit",
    "CombinedSplit",
    "expand_inputs",
    "input_roots",
    "plan_splits",
    "choose_split_size",
    "read_lines",
    "line_number_at",
    "compression_of",
    "file_size",
]

KiB = 1024
MiB = 1024 * KiB

#: Bytes read (and decoded) at a time by ``read_lines``.  Module-level so tests can shrink it.
_CHUNK_SIZE = 1 * MiB
#: Read size once a split has reached its end and is only finishing its last line.
_TAIL_CHUNK_SIZE = 64 * KiB

MIN_SPLIT_SIZE = 1 * MiB
MAX_SPLIT_SIZE = 128 * MiB
SPLITS_PER_WORKER = 4

#: Compressed inputs, by suffix: each is read whole (one split) through its decompressor.
_COMPRESSION_SUFFIXES = {".gz": "gz", ".bz2": "bz2", ".xz": "xz", ".lz4": "lz4", ".zst": "zst"}
ZSTD_MISSING = ".zst input needs the zstandard package: pip install 'mapreduce[zstd]'"
_GLOB_MAGIC = ("*", "?", "[")


# --------------------------------------------------------------------------------------------
# expand_inputs
# --------------------------------------------------------------------------------------------

def _is_hidden(name: str) -> bool:
    """Hadoop's rule: ``_SUCCESS``, ``_temporary``, ``.crc`` files ... are not input."""
    return name.startswith(("_", "."))


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in _GLOB_MAGIC)


def _check_readable(path: str) -> None:
    """Raise InputError unless ``path`` is a regular file we can open for reading.

    Splits are planned from the size ``stat`` reports, so a file that reports size 0 but has
    content (``/proc/cpuinfo`` and the other pseudo-files of /proc and /sys) would be read
    as empty: it is refused instead, naming the file.
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"cannot read input file {path}: not a regular file")
        with open(path, "rb") as f:
            if st.st_size == 0 and f.read(1):
                raise InputError(f"cannot read input file {path}: it reports size 0 but is "
                                 "not empty (a /proc or /sys pseudo-file?); copy it to a "
                                 "regular file first")
    except OSError as exc:
        raise InputError(f"cannot read input file {path}: {exc.strerror or exc}") from None


def _walk(top: str, seen_dirs: set[str], hidden: list[str] | None = None) -> Iterator[str]:
    """Files under directory ``top``, depth first, entries sorted by name, hidden names skipped
    (and appended to ``hidden``, when given, to explain an empty result).

    Symlinks are followed; ``seen_dirs`` (real paths) stops symlink loops and double walks,
    and holds the directories the caller excludes (the job's own output and work directory).
    """
    real = os.path.realpath(top)
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"cannot read input directory {top}: {exc.strerror or exc}") from None
    for entry in entries:
        if _is_hidden(entry.name):
            if hidden is not None:
                hidden.append(entry.name)
            continue
        path = os.path.join(top, entry.name)
        try:
            if entry.is_dir():  # follows symlinks
                yield from _walk(path, seen_dirs, hidden)
            elif entry.is_file():
                yield path
            # sockets, FIFOs, devices and dangling symlinks inside a directory are ignored
        except OSError as exc:
            raise InputError(f"cannot read input file {path}: {exc.strerror or exc}") from None


def _hidden_note(hidden: list[str]) -> str:
    """Why a directory gave no input: what the ``_``/``.`` rule skipped in it, if anything."""
    if not hidden:
        return " (it holds no files)"
    names = ", ".join(hidden[:3]) + (f" and {len(hidden) - 3} more" if len(hidden) > 3 else "")
    return (f" ({len(hidden)} name{'s' if len(hidden) != 1 else ''} skipped: {names}; names "
            "starting with _ or . inside a directory are not input (Hadoop's rule): name a "
            "file on the command line to read it anyway)")


def _glob_match_allowed(match: str, pattern: str) -> bool:
    """Whether a glob match survives the hidden-name rule.

    Like the shell's rule for dot files, extended to ``_``: a name starting with ``_`` or
    ``.`` is only matched by a pattern component that itself starts with that character
    (``out/_*`` matches ``out/_SUCCESS``; ``out/*`` and ``out/**`` do not).  Only the part of
    the match produced by the wildcard components is checked; the literal leading directories
    of the pattern (``./_build/*.txt``) are the user's explicit choice.
    """
    pat_parts = os.path.normpath(pattern).split(os.sep)
    prefix = 0
    while prefix < len(pat_parts) and not _has_magic(pat_parts[prefix]):
        prefix += 1
    wild_parts = pat_parts[prefix:]
    match_parts = os.path.normpath(match).split(os.sep)[prefix:]
    for name in match_parts:
        if not _is_hidden(name):
            continue
        if not any(p.startswith(name[0]) and fnmatch.fnmatchcase(name, p)
                   for p in wild_parts if p != "**"):
            return False
    return True


def input_roots(patterns: Sequence[str]) -> list[str]:
    """The directories :func:`expand_inputs` walks for ``patterns`` (literal directories
    and directories a glob matches), to keep a job's work directory out of them."""
    roots = []
    for arg in [os.fspath(p) for p in patterns]:
        if is_remote(arg):
            continue  # a store's directories never hold a local work directory
        if os.path.lexists(arg) or not _has_magic(arg):
            if os.path.isdir(arg):
                roots.append(arg)
        else:
            roots.extend(m for m in glob.glob(arg, recursive=True) if os.path.isdir(m))
    return roots


def expand_inputs(patterns: Sequence[str], exclude: Sequence[str] = ()) -> list[str]:
    """Expand input arguments (files, directories, glob patterns) into a list of files.

    * A file named explicitly is used as is, even if its name starts with ``_`` or ``.``.
    * A directory is walked recursively; files *and* directories whose names start with
      ``_`` or ``.`` are skipped.
    * An argument containing ``*``, ``?`` or ``[`` (and not naming an existing path
      literally) is a glob pattern (``**`` matches any depth).  Matches that are directories
      are walked; matched names starting with ``_``/``.`` are skipped unless the pattern
      component spelled that character (see :func:`_glob_match_allowed`).

    The result is deduplicated by real path (first occurrence wins, under the spelling it was
    first found with) and ordered deterministically: argument order, and sorted within a
    directory walk or a glob expansion.

    Directory walks never enter the directories in ``exclude`` (the job's own output and
    work directory: with ``-o`` inside an input directory, the previous run's part files
    must not become this run's input).

    Raises InputError (one line) for: no arguments, a missing path, a glob matching nothing,
    a directory holding no input files, a file that cannot be opened for reading.
    """
    if isinstance(patterns, (str, bytes, os.PathLike)):
        patterns = [patterns]  # type: ignore[list-item]
    patterns = [os.fspath(p) for p in patterns]
    if not patterns:
        raise InputError("no input paths given")

    result: list[str] = []
    seen_files: set[str] = set()
    excluded = {os.path.realpath(d) for d in exclude}

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if real in seen_files:
            return
        _check_readable(path)
        seen_files.add(real)
        result.append(path)

    # Each argument through the filesystem seam: a file:// URL is a local path, a URL of a
    # store the engine does not read is refused here, never taken for a local name.
    resolved = [filesystem_for(arg, "input") for arg in patterns]
    for fs, arg in resolved:
        if isinstance(fs, RemoteFileSystem):
            for url in _expand_remote(fs, arg):
                if url not in seen_files:
                    seen_files.add(url)
                    result.append(url)
            continue
        if os.path.lexists(arg) or not _has_magic(arg):
            # A literal path (even one containing glob characters, if it exists).
            if not os.path.exists(arg):
                raise InputError(f"input path does not exist: {arg}")
            if os.path.isdir(arg):
                hidden: list[str] = []
                found = list(_walk(arg, set(excluded), hidden))
                if not found:
                    raise InputError(f"input directory contains no input files: {arg}"
                                     + _hidden_note(hidden))
                for path in found:
                    add(path)
            else:
                add(arg)
            continue

        matches = sorted(m for m in glob.glob(arg, recursive=True)
                         if _glob_match_allowed(m, arg))
        found = []
        for match in matches:
            if os.path.isdir(match):
                found.extend(_walk(match, set(excluded)))
            elif os.path.isfile(match):
                found.append(match)
        if not found:
            raise InputError(f"no files match input pattern: {arg}")
        for path in found:
            add(path)
    return result


def _expand_remote(fs: RemoteFileSystem, arg: str) -> list[str]:
    """The files input URL ``arg`` names in a remote store: the object itself, the objects
    below a "directory" (a key prefix), or a glob's matches, with the hidden-name rule
    applied to the part of each name below the argument (or spelled by the pattern)."""
    try:
        if _has_magic(arg.split("://", 1)[1]):
            found = []
            for match in fs.glob(arg):
                if not _glob_match_allowed(match.split("://", 1)[1],
                                           arg.split("://", 1)[1]):
                    continue
                if fs.info(match).is_dir:
                    found.extend(_visible_below(fs, match))
                else:
                    found.append(match)
            if not found:
                raise InputError(f"no files match input pattern: {arg}")
            return found
        entry = fs.info(arg)
        if not entry.is_dir:
            return [arg]
        found = _visible_below(fs, arg)
        if not found:
            raise InputError(f"input directory contains no input files: {arg}")
        return found
    except InputError:
        raise
    except FileNotFoundError as exc:
        why = describe_failure(exc)
        if why == "access denied":
            raise InputError(f"cannot read input {arg}: {why}") from None
        raise InputError(f"input path does not exist: {arg}"
                         + (f" ({why})" if "bucket" in why else "")) from None
    except Exception as exc:  # the store's own errors: denied, unreachable, ...
        raise InputError(f"cannot read input {arg}: {describe_failure(exc)}") from None


def _visible_below(fs: RemoteFileSystem, top: str) -> list[str]:
    """Files below ``top`` whose path below it has no ``_``/``.`` name (Hadoop's rule)."""
    prefix = top.rstrip("/") + "/"
    return [url for url, _size in fs.find(top)
            if url.startswith(prefix)
            and not any(_is_hidden(part) for part in url[len(prefix):].split("/"))]


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------

def compression_of(path: str) -> str | None:
    """``"gz"``, ``"bz2"``, ``"xz"``, ``"lz4"``, ``"zst"`` or None (plain text), from the file
    name's suffix (case-insensitive).  Called when splits are planned, so a ``.zst`` file
    without the zstandard package is an InputError before any task runs."""
    comp = _COMPRESSION_SUFFIXES.get(os.path.splitext(path)[1].lower())
    if comp == "zst" and _zstandard() is None:
        raise InputError(f"{path}: {ZSTD_MISSING}")
    return comp


def _zstandard():
    """The zstandard module, or None when it is not installed (it is an optional extra)."""
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


@dataclass(frozen=True)
class TextSplit:
    """A piece of one input file that one map task reads.

    ``start``/``end`` are byte offsets in the file (``end`` exclusive).  A compressed file is
    always one split with ``start=0`` and ``end`` = its size on disk; its lines are read from
    the decompressed stream.
    """

    path: str
    start: int
    end: int
    compression: str | None = None

    def describe(self) -> str:
        """Human-readable location, for progress lines and error messages."""
        if self.compression:
            return f"{self.path} (whole file, {self.compression})"
        return f"{self.path} bytes {self.start}-{self.end}"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class CombinedSplit:
    """Several small files read by one map task, one after the other (Hadoop's
    ``CombineFileSplit``).  ``parts`` are whole-file :class:`TextSplit` s, in file order."""

    parts: tuple[TextSplit, ...]

    @property
    def size(self) -> int:
        """Bytes on disk the parts cover (compressed files count as stored)."""
        return sum(p.end - p.start for p in self.parts)

    def describe(self) -> str:
        """Human-readable, and what a journal holds for the task: count, first and last file
        and bytes identify the pack among the plan's (the job's fingerprint fixes the input
        list and the split size), and ``--resume`` compares it with the plan it makes."""
        return (f"{len(self.parts)} files {self.parts[0].path} .. {self.parts[-1].path} "
                f"({self.size} bytes)")

    def __str__(self) -> str:
        return self.describe()


def plan_splits(files: Sequence[str], split_size: int) -> list[TextSplit | CombinedSplit]:
    """Cut ``files`` into splits, in file order then offset order.

    A plain file larger than ``split_size`` becomes ``ceil(size / split_size)`` byte ranges
    (the last one shorter); a compressed file (see :func:`compression_of`) is always read
    whole.  Files no larger than ``split_size`` (plain, compressed or empty) are packed:
    consecutive ones share a :class:`CombinedSplit` while their sizes add up to at most
    ``split_size`` (a pack of one is a plain :class:`TextSplit`), so an empty file still has
    a map task reading it, shared with its neighbours.
    """
    if split_size < 1:
        raise ValueError(f"split_size must be >= 1, got {split_size}")
    splits: list[TextSplit | CombinedSplit] = []
    pack: list[TextSplit] = []
    pack_bytes = 0

    def close_pack() -> None:
        nonlocal pack_bytes
        if len(pack) == 1:
            splits.append(pack[0])
        elif pack:
            splits.append(CombinedSplit(tuple(pack)))
        pack.clear()
        pack_bytes = 0

    for path in files:
        size = file_size(path)
        comp = compression_of(path)
        if size <= split_size:
            if pack and pack_bytes + size > split_size:
                close_pack()
            pack.append(TextSplit(path, 0, size, comp))
            pack_bytes += size
            continue
        close_pack()  # a large file keeps its own splits, in file order
        if comp is not None:
            splits.append(TextSplit(path, 0, size, comp))
            continue
        for start in range(0, size, split_size):
            splits.append(TextSplit(path, start, min(start + split_size, size), None))
    close_pack()
    return splits


def file_size(path: str) -> int:
    """The size of input file ``path`` (local or remote); InputError (one line) if it cannot
    be known."""
    fs, name = filesystem_for(path, "input")
    try:
        return fs.info(name).size
    except Exception as exc:
        raise _unreadable(fs, path, exc) from None


def choose_split_size(total_bytes: int, workers: int) -> int:
    """Split size for ``total_bytes`` of input run by ``workers`` parallel map workers.

    Rule: ``ceil(total_bytes / (4 * workers))``, clamped to [1 MiB, 128 MiB].

    About four splits per worker keeps every worker busy to the end even when splits run at
    different speeds (the last wave is short), while the 1 MiB floor keeps per-task overhead
    (process hand-off, spill files, bookkeeping) small next to the work, and the 128 MiB
    ceiling (Hadoop's block size) bounds a single task's duration and a retry's cost.
    """
    workers = max(1, int(workers))
    target = -(-max(0, int(total_bytes)) // (SPLITS_PER_WORKER * workers))
    return max(MIN_SPLIT_SIZE, min(MAX_SPLIT_SIZE, target))


# --------------------------------------------------------------------------------------------
# Reading lines
# --------------------------------------------------------------------------------------------

def _open_raw(path: str, end: Optional[int] = None) -> BinaryIO:
    fs, name = filesystem_for(path, "input")
    try:
        return fs.open_range(name, 0, end)
    except Exception as exc:
        raise _unreadable(fs, path, exc) from None


def _unreadable(fs, path: str, exc: Exception) -> Exception:
    """The one-line InputError for an input file that cannot be read: the OS's reason for a
    local file, the store's (denied, unreachable, ...) for a remote one.  A local failure
    that is not an OSError is a bug, and is re-raised as it is."""
    if fs.local and not isinstance(exc, OSError):
        return exc
    reason = (exc.strerror or exc) if fs.local else describe_failure(exc)
    return InputError(f"cannot read input file {path}: {reason}")


def _open_stream(split: TextSplit) -> BinaryIO:
    """The split's file, decompressed if needed (the caller closes it)."""
    raw = _open_raw(split.path, None if split.compression else split.end)
    if split.compression == "gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if split.compression == "bz2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if split.compression == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if split.compression == "lz4":
        import lz4.frame  # a dependency (run files use it); imported when such a file is read
        return lz4.frame.LZ4FrameFile(raw, mode="rb")  # type: ignore[return-value]
    if split.compression == "zst":
        zstandard = _zstandard()
        if zstandard is not None:
            return _ZstdStream(raw, zstandard)  # type: ignore[return-value]
        raw.close()
        raise InputError(f"{split.path}: {ZSTD_MISSING}")
    if split.compression is not None:
        raw.close()
        raise InputError(f"{split.path}: unsupported compression {split.compression!r}")
    return raw


class _ZstdStream:
    """A ``.zst`` file's decompressed bytes, frame after frame (``zstd`` and ``cat a.zst
    b.zst`` make several), with ``read(n)``/``close()`` as the line reader needs.

    Not zstandard's ``stream_reader``: it returns a truncated file's bytes without complaint,
    while here a file that ends inside a frame raises EOFError, as gzip, bz2 and lzma do.
    Compressed bytes are fed ``_FEED`` at a time, which bounds the decompressed bytes held.
    """

    _FEED = 128 * KiB

    def __init__(self, raw: BinaryIO, zstandard) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = self._dctx.decompressobj()
        self._in_frame = False  # the current frame has had input and has not ended
        self._buf = b""
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        while len(self._buf) - self._pos < n or n < 0:
            data = self._raw.read(self._FEED)
            if not data:
                if self._in_frame:
                    raise EOFError("Compressed file ended before the end-of-stream marker was "
                                   "reached")
                break
            self._feed(data)
        end = len(self._buf) if n < 0 else self._pos + n
        out = self._buf[self._pos:end]
        self._pos = min(end, len(self._buf))
        return out

    def _feed(self, data: bytes) -> None:
        pieces = [self._buf[self._pos:]]
        while data:
            self._in_frame = True
            pieces.append(self._frame.decompress(data))
            data = b""
            if self._frame.eof:  # a frame ended: whatever follows is the next one's
                data = self._frame.unused_data
                self._frame = self._dctx.decompressobj()
                self._in_frame = False
        self._buf, self._pos = b"".join(pieces), 0

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "_ZstdStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _codec_errors(compression: str | None) -> tuple[type[BaseException], ...]:
    """What a decompressor raises for truncated or corrupt data (besides OSError)."""
    if compression == "lz4":
        return (EOFError, RuntimeError)  # lz4.frame: "LZ4F_decompress failed with code: ..."
    if compression == "zst":
        zstandard = _zstandard()
        return (EOFError,) + ((zstandard.ZstdError,) if zstandard is not None else ())
    return (EOFError, zlib.error, lzma.LZMAError)


def _read(f: BinaryIO, n: int, split: TextSplit) -> bytes:
    """``f.read(n)`` with I/O and decompression failures turned into InputError."""
    try:
        return f.read(n)
    except _codec_errors(split.compression) as exc:
        detail = str(exc) or type(exc).__name__
        raise InputError(f"{split.path}: truncated or corrupt {split.compression} file ({detail})"
                         ) from None
    except OSError as exc:
        # BadGzipFile and bz2's "Invalid data stream" are OSErrors without an errno.
        if split.compression is not None and exc.errno is None:
            detail = str(exc) or type(exc).__name__
            raise InputError(
                f"{split.path}: truncated or corrupt {split.compression} file ({detail})"
            ) from None
        raise InputError(f"cannot read input file {split.path}: {exc.strerror or exc}") from None


def _iter_blocks(f: BinaryIO, split: TextSplit,
                 spelling: str = Spelling.CLI) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, block)``: runs of whole lines of the split, with their stream offset.

    Every block but possibly the last ends with ``b"\\n"``; the last block may be the file's
    final line without a newline.  Lines whose first byte is before ``split.start`` or at/after
    ``split.end`` are excluded (no end limit for a compressed split: it is the whole stream).
    """
    chunk = max(1, _CHUNK_SIZE)
    tail = max(1, min(chunk, _TAIL_CHUNK_SIZE))
    compressed = split.compression is not None
    start = 0 if compressed else split.start
    end = None if compressed else split.end
    if end is not None and start >= end:
        return

    # A line starts at offset 0 or right after a b"\n".  When start > 0 we read from start-1
    # and drop everything up to and including the first b"\n": if the byte at start-1 is that
    # newline, the split's first line begins exactly at start; otherwise the partial line
    # belongs to the previous split.
    pos = start - 1 if start > 0 else 0  # stream offset of the next read
    if pos:
        f.seek(pos)
    skipping = start > 0
    line_start = pos  # stream offset of pending[0] (the start of the current line)
    pending: list[bytes] = []
    while True:
        if end is None:
            n = chunk
        else:
            if not skipping and line_start >= end:
                return
            n = min(chunk, end - pos) if pos < end else tail
        data = _read(f, n, split)
        if not data:
            if end is not None and pos < end:
                # The file is shorter than when the job planned its splits: it was truncated
                # or replaced under the job, and this split's lines are gone.
                raise InputError(f"input file {split.path} changed while the job ran: it is "
                                 f"now shorter ({pos} bytes) than the {end} bytes planned; "
                                 "run the job again with "
                                 f"{BY_NAME['overwrite'].spelled_on(spelling)}")
            if pending and not skipping:
                yield line_start, b"".join(pending)
            return
        data_pos = pos
        pos += len(data)
        if skipping:
            i = data.find(b"\n")
            if i < 0:
                continue
            skipping = False
            line_start = data_pos + i + 1
            if end is not None and line_start >= end:
                return
            data = data[i + 1:]
            if not data:
                continue
        j = data.rfind(b"\n")
        if j < 0:
            pending.append(data)
            continue
        head = data if j + 1 == len(data) else data[: j + 1]
        if pending:
            pending.append(head)
            block = b"".join(pending)
        else:
            block = head
        if end is not None:
            lim = end - line_start  # >= 1 here: lines starting before end are ours
            if lim < len(block):
                k = block.find(b"\n", lim - 1)  # ends the last line starting before end
                yield line_start, block[: k + 1]
                return
        yield line_start, block
        line_start += len(block)
        rest = data[j + 1:]
        pending = [rest] if rest else []


def _read_line_batches(split: TextSplit, errors: str = "strict",
                       spelling: str = Spelling.CLI) -> Iterator[list[str]]:
    """Yield the lines of ``split`` as ``str``, without their line endings, a list per chunk.

    A line belongs to the split holding its first byte: if ``start > 0`` and the byte before
    ``start`` is not a newline, the split's first line starts after the first ``b"\\n"`` at
    or after ``start``; and the split reads past ``end`` to finish the last line that began
    before ``end``.  Over all splits of a file every line comes out exactly once, in order.

    Lines end at ``b"\\n"``; a ``"\\r"`` right before it is removed too; any other ``"\\r"``
    (and ``\\x0b``, ``\\x1c``, ``\\u2028`` ...) is kept as data.  A last line without a newline
    is a line; an empty file yields nothing.

    Decoding is UTF-8 with the given ``errors`` handler.  With ``"strict"``, invalid UTF-8
    raises InputError naming the file and the byte offset (in the decompressed stream for a
    compressed file) and how to decode leniently, spelled as the user spells options
    (``spelling``: ``--decode-errors replace`` or ``decode_errors="replace"``).  ``"replace"``
    substitutes U+FFFD.

    The file is read and decoded in large chunks cut at newline boundaries; memory is bounded
    by the chunk size plus the longest line.
    """
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise ValueError(f"unknown decode error handler: {errors!r}") from None
    f = _open_stream(split)
    with f:
        for offset, block in _iter_blocks(f, split, spelling):
            try:
                text = block.decode("utf-8", errors)
            except UnicodeDecodeError as exc:
                hint = BY_NAME["decode_errors"].spelled_with("replace", spelling)
                raise InputError(
                    f"{split.path}: invalid UTF-8 at byte offset {offset + exc.start} "
                    f"(use {hint} to decode leniently)"
                ) from None
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            lines = text.split("\n")
            if text.endswith("\n"):
                lines.pop()
            yield lines


def read_lines(split: TextSplit, errors: str = "strict",
               spelling: str = Spelling.CLI) -> Iterator[str]:
    """Yield the lines of ``split`` as ``str``, without their line endings: the lines of
    :func:`_read_line_batches`, one by one (flattened in C, no Python frame per line)."""
    return chain.from_iterable(_read_line_batches(split, errors, spelling))


def line_number_at(split: TextSplit, index_in_split: int) -> int:
    """1-based line number in the file of the ``index_in_split``-th line of ``read_lines(split)``.

    Counts the newlines before the split's first line (a scan of the file up to ``start``,
    meant for error reports only).  A compressed split starts at line 1.
    """
    if index_in_split < 0:
        raise ValueError(f"index_in_split must be >= 0, got {index_in_split}")
    if split.compression is not None or split.start <= 0:
        return index_in_split + 1
    newlines = 0
    with _open_raw(split.path) as f:
        remaining = split.start
        last = b""
        while remaining > 0:
            data = _read(f, min(max(1, _CHUNK_SIZE), remaining), split)
            if not data:
                break
            newlines += data.count(b"\n")
            remaining -= len(data)
            last = data[-1:]
    # If the byte before start is not a newline, the split skips the partial line that
    # begins before start; its terminating newline (at or after start) precedes our first line.
    if last != b"\n":
        newlines += 1
    return newlines + index_in_split + 1


@dataclass(frozen=True)
class WholeFileSplit:
    """One whole input file as one record (``INPUT_FORMAT = "whole_file"``, Hadoop's
    WholeFileInputFormat): the mapper gets ``(path, contents)`` with the contents as bytes,
    decompressed for a compressed file (see :func:`compression_of`)."""

    path: str
    compression: str | None = None

    def describe(self) -> str:
        return f"{self.path} (whole file)"

    def __str__(self) -> str:
        return self.describe()


def plan_whole_files(files: Sequence[str]) -> list[WholeFileSplit]:
    """One split per file, in file order."""
    return [WholeFileSplit(path, compression_of(path)) for path in files]


def read_whole_file(split: WholeFileSplit) -> bytes:
    """The file's bytes (decompressed), with failures turned into one-line InputErrors."""
    text_split = TextSplit(split.path, 0, 0, split.compression)
    f = _open_stream(text_split)
    try:
        chunks = []
        while True:
            chunk = _read(f, 1 << 24, text_split)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        f.close()
