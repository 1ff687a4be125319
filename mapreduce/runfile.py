"""Run files: sorted, partitioned, checksummed intermediate records of the shuffle.

The byte layout, the meaning of every field and every check a reader makes are specified
in ``docs/run-format.md``; the constants below are the only place the code spells them.

A run file is a header, LZ4-compressed msgpack blocks of ``(key, value)`` byte-string pairs
grouped by partition (partitions in increasing order, each one's blocks contiguous), a
per-partition index and a fixed-size footer.  Every read verifies every checksum and length
and raises :class:`~mapreduce.errors.CorruptDataError` on the first failed check.

Writing::

    with RunWriter(tmp_path, num_partitions) as w:
        w.write_partition(0, sorted_pairs_of_partition_0)
        w.write_flat(2, [k0, v0, k1, v1])       # partitions in increasing order
    os.replace(tmp_path, final_path)            # the caller renames

Reading (streams: one block in memory at a time)::

    for key, value in read_partition(path, 2):
        ...

The C core (:mod:`mapreduce.core`) takes over the per-record work when it is active:
``_core.BlockPacker`` turns records into block payloads (the msgpack bytes before LZ4) with
the same block boundaries, and ``_core.unpack_pairs`` / ``unpack_flat`` turn a payload back
into records.  Everything per block stays here in both cores: the file layout, LZ4 (through
python-lz4), every CRC and every check, which runs *before* a payload is parsed.  A payload
C does not recognise as exactly ``2 * record_count`` bin objects goes through msgpack as
before, so errors are the same.
"""
from __future__ import annotations

import os
import struct
import zlib
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate, chain, islice, repeat
from operator import add
from typing import Iterable, Iterator, NamedTuple

import lz4.block
import msgpack

from mapreduce.core import native
from mapreduce.errors import CorruptDataError

__all__ = [
    "RunWriter",
    "RunReader",
    "RunStats",
    "PartitionInfo",
    "read_partition",
    "pack_flat",
    "unpack_flat",
    "DEFAULT_BLOCK_BYTES",
]

# --- Format constants (docs/run-format.md) -----------------------------------------------

MAGIC = b"\x89MRRUN\r\n"
FORMAT_VERSION = 1
FLAGS = 0

# File header: magic, version u16, flags u16, num_partitions u32, block_bytes u32, header_crc u32.
HEADER = struct.Struct("<8sHHIII")
HEADER_SIZE = HEADER.size  # 24
HEADER_CRC_SPAN = HEADER_SIZE - 4  # the CRC covers everything before it

# Block header: compressed_len, uncompressed_len, record_count, payload_crc, header_crc (u32 each).
BLOCK_HEADER = struct.Struct("<IIIII")
BLOCK_HEADER_SIZE = BLOCK_HEADER.size  # 20
BLOCK_HEADER_CRC_SPAN = BLOCK_HEADER_SIZE - 4

# Index entry: first_block_offset, num_blocks, num_records, raw_bytes, uncompressed_bytes,
# compressed_bytes (u64 each).
INDEX_ENTRY = struct.Struct("<QQQQQQ")
INDEX_ENTRY_SIZE = INDEX_ENTRY.size  # 48

# Footer: index_offset u64, index_length u64, total_records u64, num_partitions u32,
# index_crc u32, version u16, flags u16, footer_crc u32, magic.
FOOTER = struct.Struct("<QQQIIHHI8s")
FOOTER_SIZE = FOOTER.size  # 48
FOOTER_CRC_SPAN = 36  # footer_crc covers footer bytes [0, 36)

MIN_FILE_SIZE = HEADER_SIZE + FOOTER_SIZE

DEFAULT_BLOCK_BYTES = 256 * 1024
# Accounted per-record overhead when sizing blocks: about the msgpack ``bin`` header of the
# key and of the value.  Keeps blocks of empty keys/values bounded.
RECORD_OVERHEAD = 4
_ELEMENT_OVERHEAD = RECORD_OVERHEAD // 2
# Largest input lz4.block accepts (LZ4_MAX_INPUT_SIZE); also below the u32 limit.
MAX_BLOCK_UNCOMPRESSED = 0x7E000000
# write_partition pulls records from its iterable in batches of this many pairs.
_BATCH_RECORDS = 4096
# Block splitting sums record sizes over slices of this many list elements (even).
_SCAN_ELEMENTS = 1024

_U32_MAX = 0xFFFFFFFF

_crc32 = zlib.crc32
_packb = msgpack.packb
_unpackb = msgpack.unpackb
_compress = lz4.block.compress
_decompress = lz4.block.decompress


def pack_flat(flat: list[bytes]) -> bytes:
    """Encode a flat ``[k0, v0, k1, v1, ...]`` list of byte strings with msgpack (uncompressed)."""
    return _packb(flat, use_bin_type=True)


def unpack_flat(data: bytes) -> list[bytes]:
    """Decode what :func:`pack_flat` produced back into a flat list."""
    return _unpackb(data, use_list=True)


@dataclass
class RunStats:
    """What a :class:`RunWriter` wrote."""

    records: int = 0
    raw_bytes: int = 0  # sum of len(key) + len(value)
    file_bytes: int = 0  # size of the finished file
    partition_records: list[int] = field(default_factory=list)


class PartitionInfo(NamedTuple):
    """One index entry (see docs/run-format.md, "Index")."""

    offset: int  # offset of the first block
    blocks: int
    records: int
    raw_bytes: int
    uncompressed_bytes: int
    compressed_bytes: int

    @property
    def end(self) -> int:
        """Offset just past the partition's last block."""
        return self.offset + self.blocks * BLOCK_HEADER_SIZE + self.compressed_bytes


# --- Writer ------------------------------------------------------------------------------


class RunWriter:
    """Writes one run file.  Partitions go in increasing order; unwritten ones are empty."""

    def __init__(
        self, path: str, num_partitions: int, block_bytes: int = DEFAULT_BLOCK_BYTES
    ) -> None:
        if not 1 <= num_partitions <= _U32_MAX:
            raise ValueError(
                f"num_partitions must be between 1 and {_U32_MAX}, got {num_partitions}"
            )
        if not 1 <= block_bytes <= MAX_BLOCK_UNCOMPRESSED:
            raise ValueError(
                f"block_bytes must be between 1 and {MAX_BLOCK_UNCOMPRESSED}, got {block_bytes}"
            )
        self.path = path
        self.num_partitions = num_partitions
        self.block_bytes = block_bytes
        self._file = open(path, "wb")
        self._stats: RunStats | None = None
        try:
            body = HEADER.pack(MAGIC, FORMAT_VERSION, FLAGS, num_partitions, block_bytes, 0)
            body = body[:HEADER_CRC_SPAN]
            self._file.write(body + struct.pack("<I", _crc32(body)))
        except BaseException:
            self._file.close()
            raise
        self._pos = HEADER_SIZE
        self._index: list[PartitionInfo] = []
        # The partition being written (-1: none yet) and its running totals.
        self._part = -1
        self._p_start = HEADER_SIZE
        self._p_blocks = self._p_records = self._p_raw = self._p_ulen = self._p_clen = 0
        # The pending (not yet written) block of the current partition: in C, a packer
        # holding its msgpack bytes; in Python, a flat list and its accounted size.
        self._packer = native.BlockPacker(block_bytes, str(path)) if native is not None else None
        self._buf: list[bytes] = []
        self._buf_size = 0  # accounted size: sum(len) + _ELEMENT_OVERHEAD per element

    # -- public API --

    def write_partition(self, partition: int, records: Iterable[tuple[bytes, bytes]]) -> None:
        """Write all records of ``partition`` (already sorted).  Partitions strictly increase."""
        self._enter_partition(partition, again=False)
        if self._packer is not None:
            self._append_pairs(records)
            return
        it = iter(records)
        from_iterable = chain.from_iterable
        while True:
            batch = list(islice(it, _BATCH_RECORDS))
            if not batch:
                break
            flat = list(from_iterable(batch))
            if len(flat) != 2 * len(batch):
                raise ValueError(f"{self.path}: records must be (key, value) pairs")
            self._add_flat(flat)

    def write_flat(self, partition: int, flat: list[bytes]) -> None:
        """Append ``flat`` = ``[k0, v0, k1, v1, ...]`` (sorted) to ``partition``.

        May be called repeatedly for the same partition; partitions must not decrease.
        """
        n = len(flat)
        if n % 2:
            self._check_open()
            raise ValueError(f"{self.path}: flat record list has odd length {n}")
        self._enter_partition(partition, again=True)
        if not n:
            return
        if self._packer is not None:
            self._emit_blocks(self._packer.add_flat(flat if type(flat) is list else list(flat)))
        else:
            self._add_flat(flat)

    def append_records(self, partition: int, records: list[tuple[bytes, bytes]]) -> None:
        """Append ``records`` (sorted ``(key, value)`` pairs) to ``partition``: like
        :meth:`write_flat`, without flattening (what a merge produces)."""
        if self._packer is None:
            self.write_flat(partition, list(chain.from_iterable(records)))
            return
        self._enter_partition(partition, again=True)
        self._append_pairs(records)

    def write_sorted(self, partition: int, buf: "object") -> None:
        """Write all records of ``partition`` of a C sort buffer (``_core.SortBuffer``):
        sorted there and packed from its arena straight into blocks (no tuple per record),
        the same bytes as :meth:`write_partition` of the sorted records.  C core only."""
        if self._packer is None:
            raise ValueError(f"{self.path}: write_sorted needs the C core")
        self._enter_partition(partition, again=False)
        start, count = 0, buf.count(partition)
        while start < count:  # a bounded number of blocks at a time
            blocks, start = buf.pack_partition(partition, self._packer, start)
            self._emit_blocks(blocks)

    def close(self, fsync: bool = True) -> RunStats:
        """Finish the file (last block, empty partitions, index, footer), flush, fsync, close.

        Calling it again returns the same stats.
        """
        if self._stats is not None:
            return self._stats
        if self._file.closed:
            raise ValueError(f"{self.path}: writer was aborted")
        f = self._file
        try:
            self._finish_partition()
            for _ in range(len(self._index), self.num_partitions):
                self._index.append(PartitionInfo(self._pos, 0, 0, 0, 0, 0))
            index = b"".join(INDEX_ENTRY.pack(*e) for e in self._index)
            index_offset = self._pos
            total_records = sum(e.records for e in self._index)
            body = FOOTER.pack(
                index_offset, len(index), total_records, self.num_partitions,
                _crc32(index), FORMAT_VERSION, FLAGS, 0, MAGIC,
            )[:FOOTER_CRC_SPAN]
            footer = body + struct.pack("<I", _crc32(body)) + MAGIC
            f.write(index)
            f.write(footer)
            self._pos += len(index) + len(footer)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        finally:
            f.close()
        self._stats = RunStats(
            records=total_records,
            raw_bytes=sum(e.raw_bytes for e in self._index),
            file_bytes=self._pos,
            partition_records=[e.records for e in self._index],
        )
        return self._stats

    def abort(self) -> None:
        """Close the file descriptor without finishing the file (the partial file stays)."""
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- internals --

    def _check_open(self) -> None:
        if self._stats is not None or self._file.closed:
            raise ValueError(f"{self.path}: writer is closed")

    def _enter_partition(self, partition: int, again: bool) -> None:
        """Check the writer is open and ``partition`` comes in order, and start it unless it
        is the current one.  ``again``: the current partition may be written again
        (non-decreasing order); else each partition is written once (strictly increasing)."""
        self._check_open()
        if partition < self._part or (partition == self._part and not again):
            order = "non-decreasing" if again else "strictly increasing"
            raise ValueError(
                f"{self.path}: partition {partition} written after partition {self._part}; "
                f"partitions must be written in {order} order"
            )
        if partition != self._part:
            self._start_partition(partition)

    def _start_partition(self, partition: int) -> None:
        if not 0 <= partition < self.num_partitions:
            raise ValueError(
                f"{self.path}: partition {partition} out of range 0..{self.num_partitions - 1}"
            )
        self._finish_partition()
        # Partitions skipped over are empty.
        for _ in range(len(self._index), partition):
            self._index.append(PartitionInfo(self._pos, 0, 0, 0, 0, 0))
        self._part = partition
        self._p_start = self._pos
        self._p_blocks = self._p_records = self._p_raw = self._p_ulen = self._p_clen = 0

    def _append_pairs(self, records: Iterable[tuple[bytes, bytes]]) -> None:
        """The C core's write path: records go to the packer (a list at once, any other
        iterable a batch at a time), and every block it closes is written."""
        add = self._packer.add_pairs
        if type(records) is list:
            self._emit_blocks(add(records))
            return
        it = iter(records)
        while True:
            batch = list(islice(it, _BATCH_RECORDS))
            if not batch:
                break
            self._emit_blocks(add(batch))

    def _emit_blocks(self, blocks: list[tuple[bytes, int, int]]) -> None:
        for data, records, accounted in blocks:
            self._emit_block(data, records, accounted)

    def _finish_partition(self) -> None:
        if self._part < 0:
            return
        if self._packer is not None:
            pending = self._packer.flush()
            if pending is not None:
                self._emit_block(*pending)
        if self._buf:
            self._write_block(self._buf, self._buf_size)
        self._buf = []
        self._buf_size = 0
        self._index.append(
            PartitionInfo(self._p_start, self._p_blocks, self._p_records,
                          self._p_raw, self._p_ulen, self._p_clen)
        )
        self._part = -1  # guard: the index entry is written; see _start_partition / close

    def _add_flat(self, flat: list[bytes]) -> None:
        """Append an even-length flat list to the pending block, writing each block that fills.

        Sizes are summed a slice of ``_SCAN_ELEMENTS`` at a time (C-level ``sum(map(len))``);
        only the slice in which the block reaches its target gets a running sum to find the
        exact record that closes the block (the first one whose addition reaches the target).
        """
        n = len(flat)
        limit = self.block_bytes
        buf = self._buf
        size = self._buf_size
        taken = 0  # flat[:taken] already went into written blocks
        pos = 0  # flat[taken:pos] is counted in ``size`` but still pending
        while pos < n:
            nxt = pos + _SCAN_ELEMENTS
            piece = flat if (pos == 0 and nxt >= n) else flat[pos:nxt]
            grown = size + sum(map(len, piece)) + _ELEMENT_OVERHEAD * len(piece)
            if grown < limit:
                size = grown
                pos += len(piece)
                continue
            sizes = map(add, map(len, piece), repeat(_ELEMENT_OVERHEAD))
            cum = list(accumulate(sizes, initial=size))
            j = bisect_left(cum, limit, 1)
            end = j + (j & 1)  # never split a pair: a key reaching the limit takes its value along
            stop = pos + end
            if buf:
                buf += flat[taken:stop]
                block = buf
                buf = []
            else:
                block = flat[taken:stop]
            self._write_block(block, cum[end])
            size = 0
            taken = pos = stop
        if taken == 0:
            buf.extend(flat)
        elif taken < n:
            buf += flat[taken:]
        self._buf = buf
        self._buf_size = size

    def _write_block(self, flat: list[bytes], accounted: int) -> None:
        self._emit_block(_packb(flat, use_bin_type=True), len(flat) >> 1, accounted)

    def _emit_block(self, data: bytes, records: int, accounted: int) -> None:
        """Compress and write one block whose msgpack payload is ``data``."""
        ulen = len(data)
        if ulen > MAX_BLOCK_UNCOMPRESSED:
            raise ValueError(
                f"{self.path}: a block of {records} record(s) encodes to {ulen} bytes, more "
                f"than the {MAX_BLOCK_UNCOMPRESSED} bytes a block can hold "
                "(a key or value is too large)"
            )
        payload = _compress(data, store_size=False)
        clen = len(payload)
        head = struct.pack("<IIII", clen, ulen, records, _crc32(payload))
        f = self._file
        f.write(head + struct.pack("<I", _crc32(head)))
        f.write(payload)
        self._pos += BLOCK_HEADER_SIZE + clen
        self._p_blocks += 1
        self._p_records += records
        self._p_raw += accounted - RECORD_OVERHEAD * records
        self._p_ulen += ulen
        self._p_clen += clen


# --- Reader ------------------------------------------------------------------------------


class RunReader:
    """Opens a run file, verifying header, footer and index; iterates partitions lazily."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        try:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise CorruptDataError(path, 0, "file missing") from None
        except OSError as exc:
            raise CorruptDataError(path, 0, f"cannot open: {exc.strerror or exc}") from None
        try:
            self._open()
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    def _fail(self, offset: int, reason: str) -> CorruptDataError:
        return CorruptDataError(self.path, offset, reason)

    def _pread(self, length: int, offset: int) -> bytes:
        if self._fd < 0:
            raise ValueError(f"{self.path}: reader is closed")
        try:
            data = os.pread(self._fd, length, offset)
        except OSError as exc:
            raise self._fail(offset, f"read error: {exc.strerror or exc}") from None
        if len(data) < length:
            # Short reads from a regular file happen only at end of file.
            parts = [data]
            got = len(data)
            while got < length:
                more = os.pread(self._fd, length - got, offset + got)
                if not more:
                    raise self._fail(offset, f"file truncated: wanted {length} bytes, found {got}")
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return data

    def _open(self) -> None:
        size = os.fstat(self._fd).st_size
        self.file_bytes = size
        if size < MIN_FILE_SIZE:
            raise self._fail(
                size,
                f"file truncated: {size} bytes, shorter than header and footer "
                f"({MIN_FILE_SIZE} bytes)",
            )
        # Header.
        head = self._pread(HEADER_SIZE, 0)
        magic, version, flags, nparts, block_bytes, head_crc = HEADER.unpack(head)
        if magic != MAGIC:
            raise self._fail(0, "bad magic (not a run file)")
        if _crc32(head[:HEADER_CRC_SPAN]) != head_crc:
            raise self._fail(0, "header checksum mismatch")
        if version != FORMAT_VERSION:
            raise self._fail(0, f"unsupported format version {version} (expected {FORMAT_VERSION})")
        if flags != FLAGS:
            raise self._fail(0, f"unsupported header flags {flags:#x}")
        if nparts < 1:
            raise self._fail(0, "header says 0 partitions")
        # Footer.
        foot_off = size - FOOTER_SIZE
        foot = self._pread(FOOTER_SIZE, foot_off)
        (index_off, index_len, total_records, f_nparts, index_crc,
         f_version, f_flags, foot_crc, f_magic) = FOOTER.unpack(foot)
        if f_magic != MAGIC:
            raise self._fail(
                foot_off, "file truncated: footer missing (no run-file magic at the end)"
            )
        if _crc32(foot[:FOOTER_CRC_SPAN]) != foot_crc:
            raise self._fail(foot_off, "footer checksum mismatch")
        if f_version != version or f_flags != flags or f_nparts != nparts:
            raise self._fail(
                foot_off, "footer disagrees with header (version, flags or partition count)"
            )
        if index_len != nparts * INDEX_ENTRY_SIZE:
            raise self._fail(
                foot_off, f"footer index length {index_len} wrong for {nparts} partitions"
            )
        if index_off < HEADER_SIZE or index_off + index_len != foot_off:
            raise self._fail(
                foot_off,
                f"file size mismatch: footer puts the index at {index_off}+{index_len}, "
                f"file is {size} bytes (truncated or extended)",
            )
        # Index.
        index = self._pread(index_len, index_off)
        if _crc32(index) != index_crc:
            raise self._fail(index_off, "index checksum mismatch")
        entries = [PartitionInfo(*e) for e in INDEX_ENTRY.iter_unpack(index)]
        expect = HEADER_SIZE
        for p, e in enumerate(entries):
            if e.offset != expect or e.blocks > e.records or (e.records > 0) != (e.blocks > 0):
                raise self._fail(index_off, f"index inconsistent: bad entry for partition {p}")
            expect = e.end
        if expect != index_off:
            raise self._fail(index_off, "index inconsistent: partitions do not end at the index")
        if sum(e.records for e in entries) != total_records:
            raise self._fail(
                index_off, "index inconsistent: record counts do not add up to the footer's"
            )
        self.num_partitions = nparts
        self.total_records = total_records
        self.block_bytes = block_bytes
        self._index = entries

    # -- public API --

    def partition_info(self, partition: int) -> PartitionInfo:
        if not 0 <= partition < self.num_partitions:
            raise IndexError(
                f"{self.path}: partition {partition} out of range 0..{self.num_partitions - 1}"
            )
        return self._index[partition]

    def partition_records(self, partition: int) -> int:
        return self.partition_info(partition).records

    def iter_partition_flat(self, partition: int) -> Iterator[list[bytes]]:
        """Yield one verified flat ``[k0, v0, ...]`` list per block of ``partition``."""
        info = self.partition_info(partition)
        return self._iter_flat(partition, info)

    def iter_partition_blocks(self, partition: int) -> Iterator[list[tuple[bytes, bytes]]]:
        """Yield one verified list of ``(key, value)`` pairs per block of ``partition``
        (what the merges take)."""
        info = self.partition_info(partition)
        return self._iter_pair_blocks(partition, info)

    def iter_partition(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Yield the ``(key, value)`` pairs of ``partition`` in file order, verifying each block."""
        info = self.partition_info(partition)
        return self._iter_pairs(partition, info)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "RunReader":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- internals --

    def _iter_pairs(self, partition: int, info: PartitionInfo) -> Iterator[tuple[bytes, bytes]]:
        for block in self._iter_pair_blocks(partition, info):
            yield from block

    def _iter_flat(self, partition: int, info: PartitionInfo) -> Iterator[list[bytes]]:
        unpack = native.unpack_flat if native is not None else None
        for off, data, count in self._iter_payloads(partition, info):
            flat = unpack(data, count) if unpack is not None else None
            yield flat if flat is not None else self._unpack_block(off, data, count)

    def _iter_pair_blocks(self, partition: int,
                          info: PartitionInfo) -> Iterator[list[tuple[bytes, bytes]]]:
        unpack = native.unpack_pairs if native is not None else None
        for off, data, count in self._iter_payloads(partition, info):
            pairs = unpack(data, count) if unpack is not None else None
            if pairs is None:
                it = iter(self._unpack_block(off, data, count))
                pairs = list(zip(it, it))
            yield pairs

    def _unpack_block(self, off: int, data: bytes, count: int) -> list[bytes]:
        """A verified payload's msgpack, as the flat list of its keys and values."""
        try:
            flat = _unpackb(data, use_list=True)
        except Exception as exc:  # msgpack's ExtraData, FormatError, StackError, ValueError...
            raise self._fail(off, f"block payload undecodable ({type(exc).__name__})") from None
        if type(flat) is not list or len(flat) != 2 * count:
            raise self._fail(off, "block record count mismatch")
        return flat

    def _iter_payloads(self, partition: int, info: PartitionInfo) -> Iterator[tuple[int, bytes, int]]:
        """``(offset, decompressed payload, record count)`` of each block of a partition,
        after every check that comes before parsing: block header CRC and lengths, payload
        CRC, decompression and its length; after the last block, the index's totals."""
        fail = self._fail
        pread = self._pread
        unpack_header = BLOCK_HEADER.unpack
        off = info.offset
        end = info.end
        records = ulen_total = 0
        for _ in range(info.blocks):
            if off + BLOCK_HEADER_SIZE > end:
                raise fail(off, "block header out of range of its partition")
            head = pread(BLOCK_HEADER_SIZE, off)
            clen, ulen, count, payload_crc, head_crc = unpack_header(head)
            if _crc32(head[:BLOCK_HEADER_CRC_SPAN]) != head_crc:
                raise fail(off, "block header checksum mismatch")
            if count < 1 or off + BLOCK_HEADER_SIZE + clen > end:
                raise fail(off, "block length out of range of its partition")
            payload = pread(clen, off + BLOCK_HEADER_SIZE)
            if _crc32(payload) != payload_crc:
                raise fail(off, "block checksum mismatch")
            try:
                data = _decompress(payload, uncompressed_size=ulen)
            except Exception as exc:  # lz4.block.LZ4BlockError, MemoryError on absurd sizes
                raise fail(off, f"block decompression failed ({exc})") from None
            del payload
            if len(data) != ulen:
                raise fail(off, f"block uncompressed length mismatch ({len(data)} != {ulen})")
            yield off, data, count
            del data
            records += count
            ulen_total += ulen
            off += BLOCK_HEADER_SIZE + clen
        if off != end or records != info.records or ulen_total != info.uncompressed_bytes:
            raise fail(
                info.offset,
                f"partition {partition} size or record count mismatch with the index",
            )


def read_partition(path: str, partition: int) -> Iterator[tuple[bytes, bytes]]:
    """Open ``path`` now (so a missing or damaged header/footer/index raises here), then
    yield partition ``partition``'s pairs and close the file when done or abandoned."""
    reader = RunReader(path)
    try:
        info = reader.partition_info(partition)
    except BaseException:
        reader.close()
        raise
    return _read_and_close(reader, partition, info)


def _read_and_close(
    reader: RunReader, partition: int, info: PartitionInfo
) -> Iterator[tuple[bytes, bytes]]:
    try:
        yield from reader._iter_pairs(partition, info)
    finally:
        reader.close()
