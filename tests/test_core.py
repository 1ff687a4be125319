"""The C core (``mapreduce._core``) against the pure-Python reference, on the same inputs.

Every kernel must give exactly the Python result -- the same bytes, the same decoded
objects, the same exception class and message -- so each test runs both on the same random
input and compares outcomes, not just "no crash".  The reference is always the Python code
in codec/runfile/shuffle (``py_encode_key``, ``py_merge_blocks``, ``runfile`` with its
``native`` set to None), whichever core the process selected; hand-computed encodings from
docs/key-encoding.md are checked by tests/test_codec.py, which runs on the active core.

Skipped when the extension is not built, unless ``MAPREDUCE_REQUIRE_CORE=1`` (CI), which
makes a missing extension a failure.
"""
from __future__ import annotations

import enum
import math
import os
import struct
import subprocess
import sys
from collections import namedtuple
from operator import itemgetter

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mapreduce import codec, runfile, shuffle
from mapreduce.errors import CorruptDataError

import c_core  # tests/c_core.py

_core = c_core.load()  # skips this module when the C core is not built

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def outcome(f, *args):
    """What calling ``f`` gives, comparable across implementations: the repr and type of
    the result (1 and 1.0 and True differ; NaN equals NaN), or the exception's class and
    message."""
    try:
        result = f(*args)
    except Exception as exc:  # noqa: BLE001 -- comparing whatever is raised is the point
        return ("raised", type(exc), str(exc))
    return ("returned", type(result), repr(result))


# --- keys of every type ----------------------------------------------------------------------
class Color(enum.IntEnum):
    RED = 1
    BIG = 2 ** 70


class Name(str):
    pass


Point = namedtuple("Point", "x y")

_edge_ints = st.sampled_from([0, 1, -1, 255, 256, -256, 2 ** 63 - 1, 2 ** 63, -(2 ** 63),
                              -(2 ** 63) - 1, 2 ** 64 - 1, 2 ** 64, -(2 ** 64) + 1,
                              -(2 ** 64), 10 ** 30, -(10 ** 30)])
_edge_floats = st.sampled_from([0.5, -0.5, -0.1, 1.75, 2.0 ** -10, 5e-324, -5e-324,
                                2.0 ** -1074 * 3, 1e308, -1e308, 2.0 ** 63, -(2.0 ** 63),
                                2.0 ** 64, -(2.0 ** 64), 2.0 ** 53 + 2, 0.1, -0.0,
                                1 - 2.0 ** -53, -(1 - 2.0 ** -53), 2.0 ** 52 + 0.5,
                                -(2.0 ** 52) - 0.5, math.inf, -math.inf, math.nan])
_text = st.text(st.characters(blacklist_categories=()), max_size=12)  # includes surrogates
scalar_keys = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2 ** 80), 2 ** 80), _edge_ints,
    st.floats(), _edge_floats, _text, st.binary(max_size=12),
    st.sampled_from(["", "\x00", "a\x00b", "\ud800", "é", b"", b"\x00", b"\x00\xff", b"a\x00"]),
)
keys = st.recursive(scalar_keys,
                    lambda inner: st.lists(inner, max_size=4)
                    | st.lists(inner, max_size=4).map(tuple),
                    max_leaves=10)
# Subclasses and unsupported types: C hands these to the Python code (or fails like it).
odd_leaves = st.sampled_from([Color.RED, Color.BIG, Name("x\x00y"), Point(1, "a"), {"a": 1},
                              {1, 2}, bytearray(b"x"), 1j, object, frozenset(),
                              memoryview(b"m")])
odd_keys = st.recursive(st.one_of(scalar_keys, odd_leaves),
                        lambda inner: st.lists(inner, max_size=3)
                        | st.lists(inner, max_size=3).map(tuple), max_leaves=6)


@SETTINGS
@given(keys)
def test_encode_key_matches_python(key):
    assert outcome(_core.encode_key, key) == outcome(codec.py_encode_key, key)


@SETTINGS
@given(odd_keys)
def test_encode_key_matches_python_on_subclasses_and_unsupported_types(key):
    assert outcome(_core.encode_key, key) == outcome(codec.py_encode_key, key)


def test_encode_key_delegates_deep_and_self_containing_keys():
    deep = 1
    for _ in range(300):
        deep = (deep, "x")
    assert _core.encode_key(deep) == codec.py_encode_key(deep)
    loop = []
    loop.append(loop)
    assert outcome(_core.encode_key, loop) == outcome(codec.py_encode_key, loop)


@SETTINGS
@given(keys)
def test_decode_key_matches_python_on_encodings(key):
    data = codec.py_encode_key(key)
    assert outcome(_core.decode_key, data) == outcome(codec.py_decode_key, data)


def _mutations(data: bytes):
    """Byte strings one edit away from ``data``: what corruption does to a key."""
    return st.one_of(
        st.builds(lambda i, b: data[:i] + bytes([b]) + data[i + 1:],
                  st.integers(0, max(len(data) - 1, 0)), st.integers(0, 255)),
        st.builds(lambda i: data[:i], st.integers(0, len(data))),
        st.builds(lambda i, b: data[:i] + bytes([b]) + data[i:],
                  st.integers(0, len(data)), st.integers(0, 255)),
        st.builds(lambda i: data[:i] + data[i + 1:], st.integers(0, len(data))),
    )


@SETTINGS
@given(st.data())
def test_decode_key_matches_python_on_damaged_and_random_bytes(data):
    raw = data.draw(st.one_of(
        keys.map(codec.py_encode_key).flatmap(_mutations),
        st.binary(max_size=24),
        st.lists(st.sampled_from([0x00, 0x01, 0x16, 0x17, 0x18, 0x1F, 0x20, 0x21, 0x28, 0x29,
                                  0x2A, 0x2B, 0x40, 0x41, 0x50, 0xFF, 0x61, 0x80]),
                 max_size=16).map(bytes)))
    assert outcome(_core.decode_key, raw) == outcome(codec.py_decode_key, raw)


def test_decode_key_of_non_bytes_is_delegated():
    for data in (bytearray(b"\x21\x01"), memoryview(b"\x40ab"), "not bytes", None):
        assert outcome(_core.decode_key, data) == outcome(codec.py_decode_key, data)


@SETTINGS
@given(st.binary(max_size=40), st.one_of(st.integers(1, 1000), st.integers(-5, 0),
                                          st.just(2 ** 70), st.just(1 << 31)))
def test_partition_of_matches_python(kb, n):
    assert outcome(_core.partition_of, kb, n) == outcome(codec.py_partition_of, kb, n)


def test_partition_of_rejects_what_zlib_rejects():
    assert outcome(_core.partition_of, "str", 3) == outcome(codec.py_partition_of, "str", 3)
    assert _core.partition_of(bytearray(b"\x40x"), 7) == codec.py_partition_of(b"\x40x", 7)


# --- sorting records ---------------------------------------------------------------------------
short_bytes = st.binary(max_size=10) | st.sampled_from([b"", b"\x00", b"a", b"a\x00", b"ab",
                                                         b"abcdefgh", b"abcdefgh\x00", b"abcdefghi"])
records = st.lists(st.tuples(short_bytes, st.binary(max_size=3)), max_size=200)


@SETTINGS
@given(records, st.booleans())
def test_sort_records_is_python_stable_sort(recs, sort_values):
    expected = sorted(recs) if sort_values else sorted(recs, key=itemgetter(0))
    got = list(recs)
    _core.sort_records(got, sort_values)
    assert got == expected
    # stable: equal records stay in their order, as the same objects
    assert [id(r) for r in got] == [id(r) for r in expected]


def test_sort_records_rejects_what_is_not_a_record():
    with pytest.raises(TypeError, match="records must be"):
        _core.sort_records([(b"a", b"1"), (b"b", "str")], False)
    with pytest.raises(TypeError, match="records must be"):
        _core.sort_records([(b"a", b"1"), [b"b", b"2"]], False)


sort_buffer_pairs = st.lists(st.tuples(
    st.integers(-3, 3) | st.sampled_from(["", "a", "ab", "abcdefgh", "abcdefgh\x00", "é"]),
    st.integers(0, 9) | st.text(max_size=3)), max_size=150)


@SETTINGS
@given(sort_buffer_pairs, st.booleans(), st.integers(1, 3), st.integers(1, 4000))
def test_sort_buffer_spills_the_same_on_both_cores(pairs, sort_values, n, limit):
    """The sort buffer (kernel.SortBuffer) wired to _core.sort_records spills exactly the
    records, in exactly the order (stability included), of the Python sort."""
    from mapreduce import kernel
    from mapreduce.job import Step

    if sort_values:
        pairs = [(k, v) for k, v in pairs if type(v) is int]  # values sorted: one type
    spills = {}
    active = kernel.sort_records
    from mapreduce import core
    assert (active is _core.sort_records) == (core.ACTIVE == "c")  # wired when C runs
    try:
        for name, sort in (("c", _core.sort_records), ("python", kernel.py_sort_records)):
            kernel.sort_records = sort
            sink = c_core.RecordingSink()
            buf = kernel.SortBuffer(Step(), n, limit, sort_values, sink, {})
            buf.extend(iter(pairs))
            buf.finish()
            spills[name] = sink.spills
    finally:
        kernel.sort_records = active
    assert spills["c"] == spills["python"]
    assert sum(len(r) for spill in spills["c"] for r in spill) == len(pairs)


# --- the merge -----------------------------------------------------------------------------
@st.composite
def block_runs(draw, sort_values):
    runs = []
    for r in range(draw(st.integers(0, 7))):
        keys_ = sorted(draw(st.lists(st.sampled_from([b"", b"a", b"b", b"bb", b"c", b"c\x00"]),
                                     max_size=30)))
        if sort_values:
            recs = sorted((k, draw(st.sampled_from([b"0", b"1", b""]))) for k in keys_)
        else:
            recs = [(k, f"{r}:{i:03d}".encode()) for i, k in enumerate(keys_)]
        sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
        empties = draw(st.lists(st.booleans(), min_size=1, max_size=4))
        blocks, i, j = [], 0, 0
        while i < len(recs):  # blocks of varying size, empty ones among them
            if empties[j % len(empties)]:
                blocks.append([])
            size = sizes[j % len(sizes)]
            blocks.append(recs[i:i + size])
            i += size
            j += 1
        runs.append(blocks)
    return runs


@SETTINGS
@given(st.data())
def test_merge_matches_python_merge(data):
    sort_values = data.draw(st.booleans())
    runs = data.draw(block_runs(sort_values))
    want = [rec for batch in shuffle.py_merge_blocks([iter(r) for r in runs], sort_values)
            for rec in batch]
    batches = list(_core.Merge([iter(r) for r in runs], sort_values))
    assert [rec for batch in batches for rec in batch] == want
    largest = max((len(b) for run in runs for b in run), default=0)
    assert all(len(batch) <= largest * len(runs) for batch in batches)


def test_merge_errors_come_through():
    def failing():
        yield [(b"a", b"1")]
        raise CorruptDataError("f.run", 24, "block checksum mismatch")

    with pytest.raises(CorruptDataError, match="block checksum mismatch"):
        list(_core.Merge([failing(), iter([[(b"b", b"2")], [(b"c", b"3")]])], False))
    with pytest.raises(TypeError, match="records must be"):
        list(_core.Merge([iter([[(b"a", 1)]]), iter([[(b"b", b"2")]])], False))


# --- the reduce side's batched value decoding, memory mode ----------------------------------
@SETTINGS
@given(st.lists(st.binary(max_size=30), max_size=40), st.integers(1, 5), st.integers(1, 60))
def test_value_payloads_cut_and_join_like_python(values, max_records, max_bytes):
    old = shuffle.DECODE_BATCH, shuffle.DECODE_BATCH_BYTES
    shuffle.DECODE_BATCH, shuffle.DECODE_BATCH_BYTES = max_records, max_bytes
    try:
        slices = shuffle.decode_slices(values)
    finally:
        shuffle.DECODE_BATCH, shuffle.DECODE_BATCH_BYTES = old
    want = [(a, b, struct.pack(">BI", 0xDD, b - a) + b"".join(values[a:b])) for a, b in slices]
    batch = [(b"k%d" % i, v) for i, v in enumerate(values)]
    assert _core.value_payloads(batch, max_records, max_bytes) == want


def _with_core(module, use_c, f, *args):
    """``f(*args)``'s outcome with ``module`` on the C or the Python core (for shuffle, its
    merge too, which it binds at import)."""
    old = module.native, getattr(module, "merge_blocks", None)
    module.native = _core if use_c else None
    if module is shuffle:
        shuffle.merge_blocks = _core.Merge if use_c else shuffle.py_merge_blocks
    try:
        return outcome(f, *args)
    finally:
        module.native = old[0]
        if module is shuffle:
            shuffle.merge_blocks = old[1]


values_ = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1)
                       | st.floats() | st.text(max_size=5) | st.binary(max_size=5),
                       lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@SETTINGS
@given(st.lists(st.lists(st.tuples(st.integers(0, 5), values_), max_size=30), max_size=4))
def test_decoded_records_match_python(batches):
    batches = [[(codec.py_encode_key(k), codec.encode_value(v)) for k, v in b] for b in batches]

    def decode():
        return list(shuffle.decoded_records(iter(batches), False))
    assert _with_core(shuffle, True, decode) == _with_core(shuffle, False, decode)


@SETTINGS
@given(st.lists(st.lists(st.lists(st.tuples(short_bytes, st.binary(max_size=4)), max_size=8),
                         min_size=3, max_size=3), max_size=4),
       st.booleans())
def test_memory_shuffle_packs_and_reads_like_python(spills, sort_values):
    for spill in spills:
        for part in spill:
            part.sort(key=None if sort_values else itemgetter(0))

    def run():
        sink = shuffle.MemoryShuffle().map_sink("", 3, 10, sort_values)
        for spill in spills:
            sink.spill([list(p) for p in spill])
        out = sink.finish()
        read = [list(shuffle.MemoryShuffle().reduce_source([out, out], p, "", 10,
                                                           sort_values).open())
                for p in range(3)]
        return out.location, out.partition_records, out.partition_bytes, read
    assert _with_core(shuffle, True, run) == _with_core(shuffle, False, run)


# --- run files: the same bytes on disk, the same records and errors back --------------------
def write_run(path, parts, block_bytes, use_c, how):
    """A run file of ``parts`` ({partition: records}), written through one of the writer's
    entry points, by the C or the Python path."""
    old = runfile.native
    runfile.native = _core if use_c else None
    try:
        with runfile.RunWriter(path, max(parts, default=0) + 1, block_bytes) as w:
            for p in sorted(parts):
                recs = parts[p]
                if how == "partition":
                    w.write_partition(p, recs)
                elif how == "generator":
                    w.write_partition(p, (r for r in recs))
                elif how == "flat":
                    for i in range(0, len(recs), 3):
                        w.write_flat(p, [b for r in recs[i:i + 3] for b in r])
                else:
                    for i in range(0, len(recs), 5):
                        w.append_records(p, recs[i:i + 5])
            stats = w.close(fsync=False)
    finally:
        runfile.native = old
    with open(path, "rb") as f:
        return f.read(), stats


def read_run(path, use_c):
    """Everything a reader gives back for a run file, or the error it raises."""
    old = runfile.native
    runfile.native = _core if use_c else None
    try:
        def read():
            with runfile.RunReader(path) as r:
                return [(list(r.iter_partition_flat(p)), list(r.iter_partition_blocks(p)),
                         list(r.iter_partition(p))) for p in range(r.num_partitions)]
        return outcome(read)
    finally:
        runfile.native = old


run_parts = st.dictionaries(st.integers(0, 5),
                            st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=300)),
                                     max_size=40),
                            max_size=4)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(run_parts, st.sampled_from([1, 7, 64, 300, 1024, 1 << 18]),
       st.sampled_from(["partition", "generator", "flat", "append"]))
def test_run_file_bytes_and_reading_match_python(tmp_path, parts, block_bytes, how):
    a, sa = write_run(tmp_path / "c.run", parts, block_bytes, True, how)
    b, sb = write_run(tmp_path / "py.run", parts, block_bytes, False, how)
    assert a == b and sa == sb
    assert read_run(tmp_path / "c.run", True) == read_run(tmp_path / "c.run", False)
    assert read_run(tmp_path / "c.run", True)[0] == "returned"


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_run_files_fail_alike(tmp_path, data):
    """Flip, cut or extend a run file anywhere: both readers give the same error."""
    parts = {0: [(b"k%03d" % i, b"v" * (i % 7)) for i in range(60)], 2: [(b"z", b"")]}
    raw, _ = write_run(tmp_path / "ok.run", parts, 64, True, "partition")
    kind = data.draw(st.sampled_from(["flip", "cut", "extend"]))
    if kind == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        bad = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1:]
    elif kind == "cut":
        bad = raw[:data.draw(st.integers(0, len(raw) - 1))]
    else:
        bad = raw + data.draw(st.binary(min_size=1, max_size=8))
    path = tmp_path / "bad.run"
    path.write_bytes(bad)
    got = read_run(path, True)
    assert got == read_run(path, False)
    assert got[0] == "raised" and got[1] is CorruptDataError


# Payloads whose checksums are right but whose msgpack is not what a writer makes: C must
# hand them to msgpack, which decides (an error, or records that are not bytes).
def _payload_variants(flat):
    n = len(flat)
    return {
        "str items": msgpack.packb([x.decode("latin-1") for x in flat]),
        "count too small": msgpack.packb(flat[:-2], use_bin_type=True),
        "count too large": msgpack.packb(flat + [b"x", b"y"], use_bin_type=True),
        "trailing byte": msgpack.packb(flat, use_bin_type=True) + b"\xc0",
        "a map": msgpack.packb({b"k": b"v"}, use_bin_type=True),
        "truncated item": msgpack.packb(flat, use_bin_type=True)[:-1],
        "array32 header": struct.pack(">BI", 0xDD, n) + b"".join(
            msgpack.packb(x, use_bin_type=True) for x in flat),
        "bin32 items": struct.pack(">BH", 0xDC, n) + b"".join(
            struct.pack(">BI", 0xC6, len(x)) + x for x in flat),
        "huge bin length": struct.pack(">BH", 0xDC, n) + struct.pack(">BI", 0xC6, 1 << 31),
        "huge array": struct.pack(">BI", 0xDD, 0xFFFFFFFE),
        "ints": msgpack.packb(list(range(n))),
        "empty": b"",
    }


@pytest.mark.parametrize("variant", sorted(_payload_variants([b"a", b"b"])))
def test_unusual_payloads_with_good_checksums_read_alike(tmp_path, monkeypatch, variant):
    flat = [b"k1", b"v1", b"k2", b""]
    payload = _payload_variants(flat)[variant]
    monkeypatch.setattr(runfile, "_packb", lambda _flat, use_bin_type: payload)
    write_run(tmp_path / "odd.run", {0: [(b"k1", b"v1"), (b"k2", b"")]}, 1 << 18, False,
              "partition")
    got = read_run(tmp_path / "odd.run", True)
    assert got == read_run(tmp_path / "odd.run", False)
    assert outcome(_core.unpack_pairs, payload, 2)[0] == "returned"  # None or records


def test_writer_rejects_records_that_are_not_bytes(tmp_path, monkeypatch):
    """The one documented difference: C refuses records that are not bytes, where the Python
    writer would pack whatever msgpack packs (no reader expects that)."""
    monkeypatch.setattr(runfile, "native", _core)
    w = runfile.RunWriter(str(tmp_path / "x.run"), 1)
    try:
        with pytest.raises(TypeError, match="x.run: run file records must be bytes, not str"):
            w.write_partition(0, [(b"k", "v")])
        with pytest.raises(ValueError, match="x.run: records must be .key, value. pairs"):
            w.append_records(0, [(b"k",)])
    finally:
        w.abort()


def test_block_packer_closes_blocks_where_the_python_writer_does():
    packer = _core.BlockPacker(10)
    done = packer.add_pairs([(b"ab", b"cd"), (b"", b""), (b"x", b"")])  # 8, 4: closes at 12
    assert [(msgpack.unpackb(d), n, acc) for d, n, acc in done] == \
        [([b"ab", b"cd", b"", b""], 2, 12)]
    assert packer.pending == (1, 5)
    data, n, acc = packer.flush()
    assert msgpack.unpackb(data) == [b"x", b""] and (n, acc) == (1, 5)
    assert packer.flush() is None


# --- selecting the core ------------------------------------------------------------------------
def _probe(env_value):
    env = {k: v for k, v in os.environ.items() if k != "MAPREDUCE_CORE"}
    if env_value is not None:
        env["MAPREDUCE_CORE"] = env_value
    code = ("from mapreduce import codec, core, runfile, shuffle;"
            "print(core.ACTIVE, type(codec.encode_key).__name__,"
            " shuffle.merge_blocks is shuffle.py_merge_blocks)")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                          capture_output=True, text=True)


def test_environment_variable_selects_the_core():
    assert _probe(None).stdout.split() == ["c", "builtin_function_or_method", "False"]
    assert _probe("c").stdout.split() == ["c", "builtin_function_or_method", "False"]
    assert _probe("python").stdout.split() == ["python", "function", "True"]
    bad = _probe("fortran")
    assert bad.returncode != 0 and "MAPREDUCE_CORE='fortran'" in bad.stderr


def test_version_names_the_active_core():
    for value, core in ((None, "c"), ("python", "python")):
        env = {k: v for k, v in os.environ.items() if k != "MAPREDUCE_CORE"}
        if value:
            env["MAPREDUCE_CORE"] = value
        out = subprocess.run([sys.executable, "-m", "mapreduce", "--version"], env=env,
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        assert out.startswith("mapreduce ") and f"(core: {core} (" in out
