"""The job journal: the coordinator's append-only, checksummed log of what has been committed.

The byte layout, the record types and their payloads, the durability rules and every check a
reader makes are specified in ``docs/journal-format.md``; the constants below are the only
place the code spells them.

A journal is a 16-byte file header followed by framed records, each a ``(type, payload)``
pair whose payload is a JSON object.  The first record is always a HEADER record.  Each
``append`` is one ``os.write`` on an ``O_APPEND`` descriptor followed by ``os.fsync``, so
after a crash the file is every record appended so far plus, at most, a *torn tail* (part of
one record), which readers ignore and :meth:`Journal.resume` truncates away.  Damage with
intact records after it is corruption and raises :class:`~mapreduce.errors.CorruptDataError`.

Writing::

    with Journal.create(path, {"fingerprint": fp, "job": ..., "config": ...}) as j:
        j.append(RUN_START, {"run": 1, "pid": os.getpid(), "time": time.time()})
        j.append(TASK_COMMITTED, {...})    # only after the task's output is durable

Resuming::

    journal, records, torn = Journal.resume(path)   # records[0].type == HEADER

This module imports only the standard library and :mod:`mapreduce.errors`.
"""
from __future__ import annotations

import errno
import json
import os
import struct
import zlib
from dataclasses import dataclass

from mapreduce.errors import CorruptDataError

__all__ = [
    "HEADER",
    "RUN_START",
    "TASK_COMMITTED",
    "TASK_FAILED",
    "JOB_COMMITTED",
    "RECORD_TYPE_NAMES",
    "JournalRecord",
    "Journal",
    "read_journal",
]

# --- Format constants (docs/journal-format.md) -------------------------------------------

MAGIC = b"\x89MRJNL\r\n"
FORMAT_VERSION = 1
FLAGS = 0

# File header: magic, version u16, flags u16, header_crc u32.
FILE_HEADER = struct.Struct("<8sHHI")
FILE_HEADER_SIZE = FILE_HEADER.size  # 16
FILE_HEADER_CRC_SPAN = FILE_HEADER_SIZE - 4  # the CRC covers everything before it

# Frame header: payload length u32, record type u8, crc u32.  The CRC covers the frame
# header bytes before it (length and type) followed by the payload.
FRAME_HEADER = struct.Struct("<IBI")
FRAME_HEADER_SIZE = FRAME_HEADER.size  # 9
FRAME_CRC_SPAN = 5  # frame header bytes [0, 5) are covered by the CRC
_LENGTH_TYPE = struct.Struct("<IB")  # the covered part of the frame header

MAX_PAYLOAD = 64 * 1024 * 1024  # 2**26 bytes

# Record types.
HEADER, RUN_START, TASK_COMMITTED, TASK_FAILED, JOB_COMMITTED = 1, 2, 3, 4, 5
RECORD_TYPE_NAMES = {
    HEADER: "HEADER",
    RUN_START: "RUN_START",
    TASK_COMMITTED: "TASK_COMMITTED",
    TASK_FAILED: "TASK_FAILED",
    JOB_COMMITTED: "JOB_COMMITTED",
}

_crc32 = zlib.crc32


@dataclass
class JournalRecord:
    """One record read back from a journal; ``offset`` is that of its frame header."""

    type: int
    payload: dict
    offset: int


# --- Encoding ----------------------------------------------------------------------------


def _file_header() -> bytes:
    head = FILE_HEADER.pack(MAGIC, FORMAT_VERSION, FLAGS, 0)[:FILE_HEADER_CRC_SPAN]
    return head + struct.pack("<I", _crc32(head))


def _encode_record(type: int, payload: dict) -> bytes:
    """The complete frame (header and payload) of one record."""
    if type not in RECORD_TYPE_NAMES:
        raise ValueError(f"unknown journal record type {type!r}")
    if not isinstance(payload, dict):
        raise TypeError(f"journal payload must be a dict, not {payload.__class__.__name__}")
    data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_PAYLOAD:
        raise ValueError(
            f"journal record payload of {len(data)} bytes exceeds the maximum {MAX_PAYLOAD}"
        )
    covered = _LENGTH_TYPE.pack(len(data), type)
    return covered + struct.pack("<I", _crc32(data, _crc32(covered))) + data


# --- Decoding ----------------------------------------------------------------------------


def _frame_damage(data: bytes, offset: int) -> str | None:
    """Why the frame at ``offset`` is not intact, or None if it is (see the doc's checks)."""
    end = len(data)
    if end - offset < FRAME_HEADER_SIZE:
        return "file ends inside a record's frame header"
    length, _type, crc = FRAME_HEADER.unpack_from(data, offset)
    if length > MAX_PAYLOAD:
        return f"record length {length} exceeds maximum {MAX_PAYLOAD}"
    start = offset + FRAME_HEADER_SIZE
    if start + length > end:
        return "record extends past end of file"
    view = memoryview(data)
    if _crc32(view[start:start + length], _crc32(view[offset:offset + FRAME_CRC_SPAN])) != crc:
        return "record checksum mismatch"
    return None


def _next_intact_frame(data: bytes, after: int) -> int | None:
    """The smallest offset ``p > after`` at which an intact frame starts, or None."""
    unpack_from = FRAME_HEADER.unpack_from
    last = len(data) - FRAME_HEADER_SIZE
    for p in range(after + 1, last + 1):
        length = unpack_from(data, p)[0]
        # Cheap rejections first: ASCII JSON never reads as a length this small.
        if length <= MAX_PAYLOAD and p + FRAME_HEADER_SIZE + length <= len(data):
            if _frame_damage(data, p) is None:
                return p
    return None


def _check_file_header(path: str, data: bytes) -> None:
    if len(data) < FILE_HEADER_SIZE:
        raise CorruptDataError(path, 0, "file truncated: file header incomplete")
    magic, version, flags, crc = FILE_HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptDataError(path, 0, "bad magic")
    if _crc32(data[:FILE_HEADER_CRC_SPAN]) != crc:
        raise CorruptDataError(path, 0, "header checksum mismatch")
    if version != FORMAT_VERSION:
        raise CorruptDataError(path, 0, f"unsupported format version {version}")
    if flags != FLAGS:
        raise CorruptDataError(path, 0, f"unsupported flags {flags}")


def _parse(path: str, data: bytes) -> tuple[list[JournalRecord], int]:
    """Check and decode a whole journal image.

    Returns the records and the offset where good data ends (``len(data)`` unless there is a
    torn tail).  Raises CorruptDataError on any damage that is not a torn tail.
    """
    _check_file_header(path, data)
    records: list[JournalRecord] = []
    offset = FILE_HEADER_SIZE
    end = len(data)
    while offset < end:
        damage = _frame_damage(data, offset)
        if damage is not None:
            following = _next_intact_frame(data, offset)
            if following is None:
                break  # the torn tail: ignore everything from here on
            raise CorruptDataError(
                path, offset, f"{damage} (an intact record follows at offset {following})"
            )
        length, type, _crc = FRAME_HEADER.unpack_from(data, offset)
        if type not in RECORD_TYPE_NAMES:
            raise CorruptDataError(path, offset, f"unknown record type {type}")
        start = offset + FRAME_HEADER_SIZE
        try:
            payload = json.loads(data[start:start + length])
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError
            raise CorruptDataError(path, offset, "record payload is not valid JSON") from None
        if not isinstance(payload, dict):
            raise CorruptDataError(path, offset, "record payload is not a JSON object")
        if records and type == HEADER:
            raise CorruptDataError(path, offset, "HEADER record after the first record")
        if not records and type != HEADER:
            raise CorruptDataError(path, offset, "first record is not a HEADER record")
        records.append(JournalRecord(type, payload, offset))
        offset = start + length
    if not records:
        raise CorruptDataError(path, FILE_HEADER_SIZE, "no HEADER record")
    return records, offset


def _read_fd(fd: int) -> bytes:
    chunks = []
    pos = 0
    while True:
        chunk = os.pread(fd, 1 << 20, pos)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        pos += len(chunk)


def _open_existing(path: str, flags: int) -> int:
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        raise CorruptDataError(path, 0, "file missing") from None


def read_journal(path: str) -> tuple[list[JournalRecord], bool]:
    """Read and check a journal without modifying it: ``(records, torn_tail_found)``.

    ``records`` starts with the HEADER record.  Raises CorruptDataError (``"file missing"``
    at offset 0 if there is no file).
    """
    fd = _open_existing(path, os.O_RDONLY)
    try:
        data = _read_fd(fd)
    finally:
        os.close(fd)
    records, good_end = _parse(path, data)
    return records, good_end < len(data)


# --- Writing -----------------------------------------------------------------------------


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exists(path: str) -> FileExistsError:
    return FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Journal:
    """An open journal, appending records durably.  Use :meth:`create` or :meth:`resume`."""

    def __init__(self, path: str, fd: int, size: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self._size = size  # end of the last good record
        self._broken: str | None = None

    @classmethod
    def create(cls, path: str, header: dict) -> "Journal":
        """Create a new journal holding the file header and a HEADER record, durably.

        Raises FileExistsError if ``path`` exists (an existing journal is never clobbered).
        The file appears atomically: either it does not exist or it is complete.
        """
        image = _file_header() + _encode_record(HEADER, header)
        if os.path.lexists(path):
            raise _exists(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                _write_all(fd, image)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # raises FileExistsError if path exists: never clobbers
            except FileExistsError:
                raise
            except OSError:  # no hard links on this file system
                if os.path.lexists(path):
                    raise _exists(path) from None
                os.rename(tmp, path)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        _fsync_dir(path)
        return cls(path, os.open(path, os.O_WRONLY | os.O_APPEND), len(image))

    @classmethod
    def resume(cls, path: str) -> tuple["Journal", list[JournalRecord], bool]:
        """Read and check an existing journal, truncate a torn tail, and open it for appending.

        Returns ``(journal, records, torn_tail_found)``; ``records`` starts with the HEADER
        record.  Raises CorruptDataError like :func:`read_journal`.
        """
        fd = _open_existing(path, os.O_RDWR | os.O_APPEND)
        try:
            data = _read_fd(fd)
            records, good_end = _parse(path, data)
            torn = good_end < len(data)
            if torn:
                os.ftruncate(fd, good_end)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, good_end), records, torn

    def append(self, type: int, payload: dict) -> None:
        """Append one record durably: one ``os.write`` of the whole frame, then ``os.fsync``.

        If the write or the fsync fails, the file is truncated back to the last good record
        (best effort), the error is raised, and the journal refuses further appends.
        """
        self.append_many([(type, payload)])

    def append_many(self, records: list[tuple[int, dict]]) -> None:
        """Append several records with one ``os.write`` and one ``os.fsync`` (group commit).

        A crash may leave any prefix of them (the last one possibly torn); replay keeps the
        intact prefix, which is all the coordinator relies on.
        """
        if self._fd is None:
            raise ValueError(f"{self.path}: journal is closed")
        if self._broken is not None:
            raise OSError(f"{self.path}: journal unusable after a failed append: {self._broken}")
        if not records:
            return
        if any(type == HEADER for type, _ in records):
            raise ValueError("only Journal.create writes the HEADER record")
        frame = b"".join(_encode_record(type, payload) for type, payload in records)
        fd = self._fd
        try:
            written = os.write(fd, frame)
            if written != len(frame):  # what a full disk does to a write that fits partly
                raise OSError(errno.ENOSPC, f"short write to journal ({written} of "
                                            f"{len(frame)} bytes)", self.path)
            os.fsync(fd)
        except BaseException as exc:
            self._broken = str(exc) or exc.__class__.__name__
            try:
                os.ftruncate(fd, self._size)
                os.fsync(fd)
            except OSError:
                pass
            raise
        self._size += len(frame)

    @property
    def size(self) -> int:
        """The journal's size in bytes: the end of the last record appended or read."""
        return self._size

    def close(self) -> None:
        """Close the file (idempotent).  Every appended record is already durable."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
