"""Tests for mapreduce/runfile.py (format: docs/run-format.md)."""
from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce import runfile
from mapreduce.errors import CorruptDataError
from mapreduce.runfile import (
    BLOCK_HEADER_SIZE,
    FOOTER_SIZE,
    HEADER_SIZE,
    RunReader,
    RunStats,
    RunWriter,
    pack_flat,
    read_partition,
    unpack_flat,
)

FIXTURE_OK = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- helpers -----------------------------------------------------------------------------


def flatten(pairs):
    return [x for kv in pairs for x in kv]


def read_all(path):
    """Every partition of the file, read through the pair iterator."""
    with RunReader(path) as r:
        return [list(r.iter_partition(p)) for p in range(r.num_partitions)]


def layout(path):
    """Map each byte offset of a good file to the offset a reader must report for damage there.

    Walks the blocks independently of the reader's iteration code, using the documented
    block header (compressed_len is its first little-endian u32).
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read()
    owner = [0] * size  # header -> 0
    blocks = []
    with RunReader(path) as r:
        for p in range(r.num_partitions):
            info = r.partition_info(p)
            off = info.offset
            for _ in range(info.blocks):
                (clen,) = struct.unpack_from("<I", data, off)
                end = off + BLOCK_HEADER_SIZE + clen
                owner[off:end] = [off] * (end - off)
                blocks.append((p, off, end))
                off = end
            assert off == info.end
    index_off = size - FOOTER_SIZE - r.num_partitions * runfile.INDEX_ENTRY_SIZE
    assert blocks[-1][2] == index_off if blocks else index_off == HEADER_SIZE
    owner[index_off : size - FOOTER_SIZE] = [index_off] * (size - FOOTER_SIZE - index_off)
    owner[size - FOOTER_SIZE :] = [size - FOOTER_SIZE] * FOOTER_SIZE
    return owner, blocks


def write_small_file(path, block_bytes=12):
    parts = {
        0: [(b"apple", b"1"), (b"banana", b"22"), (b"cherry", b"333")],
        2: [(b"", b""), (b"k" * 30, b"v" * 40)],
        3: [(b"x%d" % i, b"y%d" % i) for i in range(5)],
    }
    with RunWriter(str(path), 4, block_bytes=block_bytes) as w:
        for p in sorted(parts):
            w.write_partition(p, parts[p])
    return [parts.get(p, []) for p in range(4)]


# --- strategies --------------------------------------------------------------------------

small_bytes = st.binary(max_size=12)
value_bytes = st.one_of(st.binary(max_size=40), st.binary(min_size=300, max_size=2000))
record = st.tuples(small_bytes, value_bytes)


@st.composite
def partitioned_records(draw):
    nparts = draw(st.integers(1, 8))
    parts = []
    for _ in range(nparts):
        if draw(st.booleans()):
            parts.append([])
        else:
            recs = draw(st.lists(record, max_size=60))
            if draw(st.booleans()):
                # many tiny records (force many blocks with a tiny block size)
                recs += [(b"k%d" % i, b"") for i in range(draw(st.integers(0, 300)))]
            parts.append(recs)
    return parts


block_sizes = st.sampled_from([1, 7, 64, 512, 4096, 256 * 1024])


def check_file(path, parts):
    with RunReader(path) as r:
        assert r.num_partitions == len(parts)
        for p, recs in enumerate(parts):
            assert r.partition_records(p) == len(recs)
            assert list(r.iter_partition(p)) == recs
            flat = []
            for block in r.iter_partition_flat(p):
                assert block  # blocks are never empty
                flat.extend(block)
            assert flat == flatten(recs)
    for p, recs in enumerate(parts):
        assert list(read_partition(path, p)) == recs


# --- round trips -------------------------------------------------------------------------


@FIXTURE_OK
@given(parts=partitioned_records(), block_bytes=block_sizes)
def test_round_trip_write_partition(tmp_path, parts, block_bytes):
    path = str(tmp_path / "run")
    with RunWriter(path, len(parts), block_bytes=block_bytes) as w:
        for p, recs in enumerate(parts):
            if recs or p % 2:  # empty partitions: sometimes written explicitly, sometimes skipped
                w.write_partition(p, iter(recs))
    stats = w.close()
    assert stats == RunStats(
        records=sum(map(len, parts)),
        raw_bytes=sum(len(k) + len(v) for recs in parts for k, v in recs),
        file_bytes=os.path.getsize(path),
        partition_records=[len(r) for r in parts],
    )
    check_file(path, parts)


@FIXTURE_OK
@given(
    parts=partitioned_records(),
    block_bytes=block_sizes,
    data=st.data(),
    scan=st.sampled_from([2, 6, 1024]),
)
def test_round_trip_write_flat(tmp_path, monkeypatch, parts, block_bytes, data, scan):
    # exercise the block splitter with slices much smaller than blocks, too
    monkeypatch.setattr(runfile, "_SCAN_ELEMENTS", scan)
    path = str(tmp_path / "run")
    with RunWriter(path, len(parts), block_bytes=block_bytes) as w:
        for p, recs in enumerate(parts):
            flat = flatten(recs)
            # Split into several appends at random record boundaries (empty appends included).
            cuts = sorted(data.draw(st.lists(st.integers(0, len(recs)), max_size=4)))
            prev = 0
            for c in cuts + [len(recs)]:
                w.write_flat(p, flat[2 * prev : 2 * c])
                prev = c
    stats = w.close()
    assert stats.partition_records == [len(r) for r in parts]
    assert stats.file_bytes == os.path.getsize(path)
    check_file(path, parts)

    # Same records and block size through write_partition give the very same bytes.
    path2 = str(tmp_path / "run2")
    with RunWriter(path2, len(parts), block_bytes=block_bytes) as w:
        for p, recs in enumerate(parts):
            w.write_partition(p, recs)
    with open(path, "rb") as a, open(path2, "rb") as b:
        assert a.read() == b.read()


def test_large_values_and_block_bounds(tmp_path):
    path = str(tmp_path / "run")
    big = os.urandom(1 << 20)
    recs = [(b"a", b"x" * 10)] * 1000 + [(b"b", big)] + [(b"c", b"")] * 5000
    with RunWriter(path, 1, block_bytes=1000) as w:
        w.write_partition(0, recs)
    with RunReader(path) as r:
        info = r.partition_info(0)
        assert info.blocks > 10
        for block in r.iter_partition_flat(0):
            sizes = [len(x) + 2 for x in block]
            # A block closes when it reaches the target; only its last record may overshoot.
            assert sum(sizes[:-2]) < 1000
        assert list(r.iter_partition(0)) == recs


def test_empty_file_and_all_empty_partitions(tmp_path):
    path = str(tmp_path / "run")
    stats = RunWriter(path, 5).close(fsync=False)
    assert stats == RunStats(0, 0, HEADER_SIZE + 5 * 48 + FOOTER_SIZE, [0] * 5)
    assert read_all(path) == [[]] * 5


def test_close_twice_and_write_after_close(tmp_path):
    w = RunWriter(str(tmp_path / "run"), 2)
    w.write_partition(0, [(b"k", b"v")])
    s1 = w.close()
    assert w.close() is s1
    with pytest.raises(ValueError):
        w.write_partition(1, [])


def test_pack_flat_round_trip():
    flat = [b"", b"a", b"\x00" * 300, b"z" * 70000]
    assert unpack_flat(pack_flat(flat)) == flat
    assert unpack_flat(pack_flat([])) == []


# --- ordering ------------------------------------------------------------------------------


def test_out_of_order_partitions_raise(tmp_path):
    w = RunWriter(str(tmp_path / "run"), 4)
    w.write_partition(2, [(b"k", b"v")])
    with pytest.raises(ValueError):
        w.write_partition(1, [])
    with pytest.raises(ValueError):
        w.write_partition(2, [])  # strictly increasing
    with pytest.raises(ValueError):
        w.write_flat(1, [b"k", b"v"])
    w.write_flat(2, [b"k2", b"v2"])  # appending to the current partition is fine
    w.write_flat(3, [b"k3", b"v3"])
    w.write_flat(3, [b"k4", b"v4"])
    with pytest.raises(ValueError):
        w.write_flat(2, [])
    with pytest.raises(ValueError):
        w.write_partition(3, [])
    with pytest.raises(ValueError):
        w.write_flat(3, [b"odd"])
    w.close(fsync=False)
    assert read_all(str(tmp_path / "run")) == [
        [], [], [(b"k", b"v"), (b"k2", b"v2")], [(b"k3", b"v3"), (b"k4", b"v4")]
    ]


def test_partition_out_of_range(tmp_path):
    w = RunWriter(str(tmp_path / "run"), 2)
    with pytest.raises(ValueError):
        w.write_partition(2, [])
    with pytest.raises(ValueError):
        w.write_partition(-1, [])
    w.close(fsync=False)


def test_exception_in_context_leaves_unfinished_file(tmp_path):
    path = str(tmp_path / "run")
    with pytest.raises(RuntimeError):
        with RunWriter(path, 1, block_bytes=10) as w:
            w.write_partition(0, [(b"k%d" % i, b"v") for i in range(100)])
            raise RuntimeError("boom")
    assert w._file.closed
    assert os.path.exists(path)
    with pytest.raises(CorruptDataError) as ei:
        read_all(path)
    assert "truncated" in ei.value.reason


# --- corruption -----------------------------------------------------------------------------


def assert_reports(exc: CorruptDataError, path: str, offset: int):
    assert exc.path == path
    assert exc.offset == offset, (exc.offset, offset, exc.reason)
    msg = str(exc)
    assert path in msg and f"offset {offset}" in msg


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope")
    with pytest.raises(CorruptDataError) as ei:
        RunReader(path)
    assert ei.value.reason == "file missing" and ei.value.offset == 0
    with pytest.raises(CorruptDataError) as ei:
        list(read_partition(path, 0))
    assert ei.value.reason == "file missing"


def test_flip_every_byte_of_small_file(tmp_path):
    path = str(tmp_path / "run")
    write_small_file(path)
    good = open(path, "rb").read()
    owner, blocks = layout(path)
    assert len(blocks) >= 6
    for off in range(len(good)):
        for mask in (0x01, 0xFF):
            bad = bytearray(good)
            bad[off] ^= mask
            with open(path, "wb") as f:
                f.write(bad)
            with pytest.raises(CorruptDataError) as ei:
                read_all(path)
            assert_reports(ei.value, path, owner[off])
            if any(start <= off < end for _, start, end in blocks):
                # damage inside a block: only that block's partition fails
                assert "block" in ei.value.reason


def test_flip_in_block_names_the_block(tmp_path):
    path = str(tmp_path / "run")
    write_small_file(path)
    _, blocks = layout(path)
    good = open(path, "rb").read()
    for p, start, end in blocks:
        bad = bytearray(good)
        bad[end - 1] ^= 0x10  # last payload byte
        with open(path, "wb") as f:
            f.write(bad)
        with RunReader(path) as r:  # index and footer are fine: open succeeds
            for q in range(r.num_partitions):
                if q != p:
                    list(r.iter_partition(q))
            with pytest.raises(CorruptDataError) as ei:
                list(r.iter_partition(p))
        assert ei.value.reason == "block checksum mismatch"
        assert_reports(ei.value, path, start)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_flip_random_byte_of_bigger_file(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("flip")
    path = str(tmp / "run")
    parts = [[(b"%08d" % i, b"value-%d" % (i * p)) for i in range(300 * p)] for p in range(3)]
    with RunWriter(path, 3, block_bytes=700) as w:
        for p, recs in enumerate(parts):
            w.write_partition(p, recs)
    owner, _ = layout(path)
    good = open(path, "rb").read()
    off = data.draw(st.integers(0, len(good) - 1))
    mask = data.draw(st.integers(1, 255))
    bad = bytearray(good)
    bad[off] ^= mask
    with open(path, "wb") as f:
        f.write(bad)
    with pytest.raises(CorruptDataError) as ei:
        read_all(path)
    assert_reports(ei.value, path, owner[off])


def test_truncation_at_every_length(tmp_path):
    path = str(tmp_path / "run")
    write_small_file(path)
    good = open(path, "rb").read()
    for n in range(len(good)):
        with open(path, "wb") as f:
            f.write(good[:n])
        with pytest.raises(CorruptDataError) as ei:
            read_all(path)
        reason = ei.value.reason
        assert "truncated" in reason or "mismatch" in reason, reason
        assert path in str(ei.value) and "offset" in str(ei.value)


def test_appended_garbage_detected(tmp_path):
    path = str(tmp_path / "run")
    write_small_file(path)
    with open(path, "ab") as f:
        f.write(b"\x00" * 10)
    with pytest.raises(CorruptDataError):
        read_all(path)


def test_not_a_run_file(tmp_path):
    path = str(tmp_path / "run")
    with open(path, "wb") as f:
        f.write(b"hello, world\n" * 20)
    with pytest.raises(CorruptDataError) as ei:
        RunReader(path)
    assert_reports(ei.value, path, 0)
    assert "bad magic" in ei.value.reason


def test_error_is_picklable(tmp_path):
    import pickle

    path = str(tmp_path / "run")
    with pytest.raises(CorruptDataError) as ei:
        RunReader(path)
    e2 = pickle.loads(pickle.dumps(ei.value))
    assert (e2.path, e2.offset, e2.reason) == (path, 0, "file missing")
