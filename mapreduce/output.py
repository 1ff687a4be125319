"""The final output format: one ``json(key) TAB json(value)`` line per pair, UTF-8.

This is mrjob's and Hadoop streaming's text convention, so part files can be read back by
either, by ``cut``/``sort``, or by this framework as the next job's text input.  Rules:

* JSON is written with ``ensure_ascii=False`` (non-ASCII text stays readable UTF-8) and the
  default separators (``", "``, ``": "``), as ``json.dumps`` does.
* Tuples become JSON arrays.  ``bytes`` become a JSON string holding the bytes decoded as
  Latin-1 (one code point U+0000..U+00FF per byte, lossless: ``s.encode("latin-1")``
  gives the bytes back).  NaN and infinities are written as ``NaN``/``Infinity``/``-Infinity``
  as Python's json module does.
* Lines end with ``\\n``.
* A job may set ``OUTPUT_PROTOCOL = "raw_value"`` (mrjob's RawValueProtocol): each line is
  then just the value -- a ``str`` written as UTF-8 or ``bytes`` written as they are -- and
  the key is dropped.  This is how TeraGen/TeraSort write records GNU ``sort`` can read.  A task writes its part file under a temporary name and fsyncs it;
  the coordinator renames it into place (see :mod:`mapreduce.layout`).
"""
from __future__ import annotations

import io
import json
import os
import zlib
from typing import Any, Iterable, Optional

from mapreduce.errors import SerializationError


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("latin-1")
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


_encode = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode
# The commonest keys and values, encoded as _encode would without its Python-level call:
# JSONEncoder.encode hands a str to this same C function, and for an int it builds a C
# encoder per call only to write int.__repr__ (which raises the ValueError of an int too
# long to convert, as the encoder does).  A word count's output line: 3.4 -> 0.5 us.
_encode_str = json.encoder.encode_basestring
_int_repr = int.__repr__


def _json_line(key: Any, value: Any) -> bytes:
    return format_line(key, value).encode("utf-8", "backslashreplace")


def format_line(key: Any, value: Any) -> str:
    """The output line (with its newline) for one pair."""
    try:
        return (f"{_encode_str(key) if key.__class__ is str else _encode(key)}\t"
                f"{_int_repr(value) if value.__class__ is int else _encode(value)}\n")
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"output pair cannot be written as JSON: {exc}") from None


def format_raw_value(key: Any, value: Any) -> bytes:
    """The ``raw_value`` protocol's line for one pair: the value alone."""
    if value.__class__ is str or isinstance(value, str):
        return value.encode("utf-8", "surrogateescape") + b"\n"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) + b"\n"
    raise SerializationError(f"OUTPUT_PROTOCOL raw_value needs str or bytes values, got "
                             f"{type(value).__name__}")


PROTOCOLS = ("json", "raw_value")
#: raw_value text (in characters) buffered before it is encoded and written together.
RAW_BATCH_CHARS = 1 << 20


def parse_line(line: bytes, protocol: str = "json") -> tuple[Any, Any]:
    """One output line back to a ``(key, value)`` pair: the inverse of the writers above,
    up to JSON's lossiness (tuples come back as lists, bytes as Latin-1 strings).  Under
    ``raw_value`` the key was dropped, so it comes back as ``None``.  JSON escapes tabs
    inside strings, so the first raw tab is always the separator."""
    text = line.decode("utf-8", "surrogateescape").rstrip("\n")
    if protocol == "raw_value":
        return None, text
    key, tab, value = text.partition("\t")
    if not tab:
        raise ValueError(f"not a key<TAB>value output line: {text[:80]!r}")
    return json.loads(key), json.loads(value)


def _check_raw_line(line: str) -> None:
    """Raise SerializationError if UTF-8 (with surrogateescape) cannot encode ``line``."""
    try:
        line.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        shown = line if len(line) <= 80 else line[:77] + "..."
        raise SerializationError(f"OUTPUT_PROTOCOL raw_value cannot write the line "
                                 f"{shown!r}: {exc.reason}") from None


class _Checksummed(io.RawIOBase):
    """A raw file that keeps the CRC-32 of every byte written through it.  Under a 1 MiB
    ``BufferedWriter`` it is called once per megabyte, not per line."""

    def __init__(self, path: str) -> None:
        self._raw = open(path, "wb", buffering=0)
        self.crc32 = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        n = self._raw.write(data)
        self.crc32 = zlib.crc32(memoryview(data)[:n], self.crc32)
        return n

    def fileno(self) -> int:
        return self._raw.fileno()

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()


#: ``--output-compression``: codec -> the part files' suffix (Hadoop's
#: ``mapreduce.output.fileoutputformat.compress``); inputs read them back by that suffix.
OUTPUT_COMPRESSION_SUFFIXES = {"gz": ".gz", "bz2": ".bz2", "zst": ".zst"}
ZSTD_OUTPUT_MISSING = ("--output-compression zst needs the zstandard package: "
                       "pip install 'mapreduce[zstd]'")


def _compressor(compression: str, raw: io.RawIOBase) -> Any:
    """A writable stream compressing into ``raw`` (which it leaves open when closed).
    Deterministic: the same lines give the same bytes (gzip's header holds no name or
    time), so a re-run task's part file is byte-identical."""
    if compression == "gz":
        import gzip
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
    if compression == "bz2":
        import bz2
        return bz2.BZ2File(raw, mode="wb")
    if compression == "zst":
        try:
            import zstandard
        except ImportError:
            raise SerializationError(ZSTD_OUTPUT_MISSING) from None
        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False,
                                                               write_return_read=True)
    raise SerializationError(f"unknown output compression {compression!r}")


class TextPartWriter:
    """Writes one part file; ``close()`` fsyncs it and returns its size in bytes.

    ``crc32`` is then the CRC-32 of the whole file: the coordinator journals it with the
    size, and ``--resume`` checks a committed part file against both before trusting it.
    """

    def __init__(self, path: str, protocol: str = "json",
                 compression: Optional[str] = None) -> None:
        if protocol not in PROTOCOLS:
            raise SerializationError(f"unknown OUTPUT_PROTOCOL {protocol!r} "
                                     f"(use one of {', '.join(PROTOCOLS)})")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self._raw = _Checksummed(path)
        # --output-compression: the lines go through the compressor, whose output is what
        # the file (and its CRC-32 and size) holds.
        self._codec = _compressor(compression, self._raw) if compression else None
        self._file = io.BufferedWriter(self._codec or self._raw, 1 << 20)
        self.crc32 = 0
        file_write = self._file.write
        # raw_value str lines (TeraSort's whole output) are joined and encoded about
        # RAW_BATCH_CHARS at a time: one encode and one write per batch instead of per line.
        # A line that is not ASCII is checked as it arrives, so that an unencodable one fails
        # while the job method and record that produced it are still the current ones.
        pending: list[str] = []
        pending_chars = 0

        def flush_pending() -> None:
            nonlocal pending_chars
            if pending:
                pending.append("")  # the last line's newline
                file_write("\n".join(pending).encode("utf-8", "surrogateescape"))
                pending.clear()
                pending_chars = 0

        def write_json(key: Any, value: Any) -> None:  # a closure: the per-record path
            file_write(_json_line(key, value))

        def write_raw(key: Any, value: Any) -> None:
            nonlocal pending_chars
            if value.__class__ is str:
                if not value.isascii():
                    _check_raw_line(value)
                pending.append(value)
                pending_chars += len(value)
                if pending_chars >= RAW_BATCH_CHARS:
                    flush_pending()
            else:
                line = format_raw_value(key, value)  # raises for a non-str/bytes value
                flush_pending()
                file_write(line)

        def write_json_values(key: Any, values: Iterable[Any]) -> int:
            # The identity reducer's path: the key's JSON is made once per group.
            try:
                head = (_encode_str(key) if key.__class__ is str else _encode(key)) + "\t"
            except (TypeError, ValueError) as exc:
                raise SerializationError(f"output pair cannot be written as JSON: "
                                         f"{exc}") from None
            n = 0
            for value in values:
                try:
                    line = (f"{head}"
                            f"{_int_repr(value) if value.__class__ is int else _encode(value)}\n")
                except (TypeError, ValueError) as exc:
                    raise SerializationError(f"output pair cannot be written as JSON: "
                                             f"{exc}") from None
                file_write(line.encode("utf-8", "backslashreplace"))
                n += 1
            return n

        def write_raw_values(key: Any, values: Iterable[Any]) -> int:
            # The identity reducer's path: ASCII str values are queued with no call each.
            nonlocal pending_chars
            n = 0
            for value in values:
                n += 1
                if value.__class__ is str and value.isascii():
                    pending.append(value)
                    pending_chars += len(value)
                    if pending_chars >= RAW_BATCH_CHARS:
                        flush_pending()
                else:
                    write_raw(key, value)
            return n

        def write_raw_lines(data: bytes) -> None:
            # Lines already made (the C core's raw_value_lines): after the queued ones.
            flush_pending()
            file_write(data)

        self._flush_pending = flush_pending
        #: ``raw_value`` only: ``write_raw_lines(data)`` appends finished lines (bytes, each
        #: ending in a newline), in order with what ``write`` queued; None for ``json``.
        self.write_raw_lines = write_raw_lines if protocol == "raw_value" else None
        self.write = write_raw if protocol == "raw_value" else write_json
        #: ``write_values(key, values) -> count``: every value under one key, the same
        #: bytes as ``write(key, value)`` for each (the kernel's identity reducer uses it).
        self.write_values = write_raw_values if protocol == "raw_value" else write_json_values

    def close(self) -> int:
        """Flush, fsync and close; returns the file's size in bytes."""
        self._flush_pending()
        self._file.flush()
        if self._codec is not None:
            self._file.close()  # ends the compressed stream; the file itself stays open
            os.fsync(self._raw.fileno())
            size = self._raw.tell()
            self._raw.close()
        else:
            os.fsync(self._file.fileno())
            size = self._file.tell()
            self._file.close()
        self.crc32 = self._raw.crc32
        return size

    def abort(self) -> None:
        self._file.close()


def file_crc32(path: str) -> tuple[int, int]:
    """``(size, CRC-32)`` of a file as it is on disk now, read a megabyte at a time."""
    crc, size = 0, 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, crc
