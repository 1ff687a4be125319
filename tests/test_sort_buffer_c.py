"""The C sort buffer (``_core.SortBuffer`` behind ``kernel.NativeSortBuffer``) against the
Python one (``kernel.SortBuffer`` with ``list.sort``), on the same random map outputs.

Both buffers are fed the same pairs -- keys of every encodable type, values msgpack packs
inline in C and ones it hands back to Python (lists, dicts, big ints), pairs as lists
(Python's path inside the C buffer), partitioned by CRC, by a total order's split points
or by a job's partitioner, with buffers small enough to spill many times, with and without
a combiner and ``SORT_VALUES`` -- into the disk back end and the memory back end.  The map
output files must be the same bytes, and the records, counters and spill counts equal.
Bad pairs must fail with the same exception and message.  Last, ``jobs/terasort.py`` runs
under both cores from the command line and its part files must equal ``sort -s``'s output.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce import kernel
from mapreduce.codec import encode_key
from mapreduce.core import native
from mapreduce.diskshuffle import DiskMapSink
from mapreduce.errors import SerializationError
from mapreduce.job import Step
from mapreduce.kernel import NativeSortBuffer, NotAPairError, SortBuffer
from mapreduce.shuffle import MemoryMapSink

pytestmark = pytest.mark.skipif(native is None, reason="the C core is not built")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCALARS = (st.text(max_size=6) | st.integers(-2**64, 2**64) | st.binary(max_size=6)
           | st.floats(allow_nan=False) | st.none() | st.booleans())
KEYS = (st.sampled_from(["a", "b", "", 1, ("a", 1)])  # repeated keys: the sort's ties
        | st.text("abé\x00\ud800", max_size=5) | st.integers(-300, 300)
        | st.tuples(st.text("ab", max_size=2), st.integers(-3, 3)) | SCALARS)
VALUES = (SCALARS | st.integers(-2**63, 2**64 - 1) | st.text(max_size=40)
          | st.lists(st.integers(-5, 5), max_size=3)
          | st.dictionaries(st.text("xy", max_size=1), st.integers(0, 3), max_size=2))


def encodable(value) -> bool:
    """Whether the engine can encode ``value`` as a value (msgpack's int range, no lone
    surrogates) -- the random jobs here are ones that succeed; errors are tested below."""
    try:
        kernel.encode_value(value)
        return True
    except SerializationError:
        return False


def keyable(key) -> bool:
    try:
        encode_key(key)
        return True
    except SerializationError:
        return False


PAIR = st.tuples(KEYS.filter(keyable), VALUES.filter(encodable))
#: A mapper call's output: a few pairs, some given as lists (not the C loop's tuples).
CALLS = st.lists(st.lists(st.tuples(PAIR, st.integers(0, 9)), max_size=8), max_size=50)


def _partitioner(key, n):
    return len(repr(key)) % n


def _combiner(key, values):
    values = list(values)
    yield key, len(values)
    if len(values) > 2:
        yield key, repr(values[0])


def _combiner_final():
    yield "final", 1
    yield ("t", 2), [1, 2]


def _buffers(tmp_path, kind: str, step: Step, n: int, limit: int, sort_values: bool,
             partitioner, points):
    """The Python and the C buffer with a sink each (kind: "disk" or "memory")."""
    out = []
    for name, cls in (("python", SortBuffer), ("c", NativeSortBuffer)):
        if kind == "disk":
            prefix = str(tmp_path / name) + os.sep
            if os.path.exists(prefix):
                shutil.rmtree(prefix)
            sink = DiskMapSink(prefix, n, 3, sort_values)
        else:
            sink = MemoryMapSink(n, sort_values)
        counters: dict = {}
        out.append((cls(step, n, limit, sort_values, sink, counters, partitioner, points),
                    counters))
    return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(calls=CALLS, n=st.integers(1, 4),
       # tiny buffers spill every few records; big ones sort hundreds at once (the sort's
       # merge passes only start beyond its 24-record insertion-sorted runs)
       limit=st.integers(1, 3000) | st.integers(3000, 1 << 16),
       sort_values=st.booleans(), combine=st.booleans(), final=st.booleans(),
       how=st.sampled_from(["crc", "points", "partitioner"]),
       points=st.lists(KEYS.filter(keyable), max_size=3),
       kind=st.sampled_from(["disk", "memory"]))
def test_c_buffer_writes_the_python_buffers_bytes(tmp_path, monkeypatch, calls, n, limit,
                                                  sort_values, combine, final, how, points,
                                                  kind):
    # The reference: the Python buffer with list.sort, not the C core's sort_records.
    monkeypatch.setattr(kernel, "sort_records", kernel.py_sort_records)
    step = Step(combiner=_combiner if combine else None,
                combiner_final=_combiner_final if final else None)
    partitioner = _partitioner if how == "partitioner" else None
    split = (sorted(encode_key(p) for p in points)[:n - 1] if how == "points" else None)
    results = []
    for buf, counters in _buffers(tmp_path, kind, step, n, limit, sort_values, partitioner,
                                  split):
        for call in calls:
            # SORT_VALUES: values are sorted, so they must be keys (a dict is not)
            pairs = [(k, v if not sort_values or keyable(v) else repr(v)) for (k, v), _ in call]
            pairs = [list(pair) if form == 0 else pair for pair, (_, form) in zip(pairs, call)]
            if len(pairs) == 1 and call[0][1] == 1:
                buf.add(*pairs[0])
            else:
                buf.extend(iter(pairs) if call and call[0][1] % 2 else pairs)
        output = buf.finish()
        if kind == "disk":
            with open(output.location, "rb") as f:
                data = f.read()
        else:
            data = output.location
        results.append((data, output.partition_records, output.partition_bytes, buf.records,
                        counters))
    python, c = results
    assert c[0] == python[0]          # the map output's bytes
    assert c[1:] == python[1:]        # records per partition, sizes, MAP_OUTPUT, counters
    assert c[3] == sum(len(call) for call in calls)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), n=st.integers(1, 3),
       sort_values=st.booleans(), how=st.sampled_from(["crc", "points", "partitioner"]),
       kind=st.sampled_from(["disk", "memory"]))
def test_c_buffer_sorts_big_spills_stably(tmp_path, monkeypatch, seed, n, sort_values, how,
                                          kind):
    """Thousands of records with few distinct keys per spill: the sort's merge passes
    must keep equal keys in emission order (under SORT_VALUES: equal records)."""
    import random
    rng = random.Random(seed)
    monkeypatch.setattr(kernel, "sort_records", kernel.py_sort_records)
    keys = [rng.choice(["a", "b", "ab", 1, -1, ("a", 2), b"x"]) for _ in range(6)]
    pairs = [(rng.choice(keys), rng.choice([i, str(i % 7), i % 3])) for i in range(3000)]
    partitioner = _partitioner if how == "partitioner" else None
    split = [encode_key("ab")] if how == "points" and n > 1 else None
    limit = rng.choice([20_000, 100_000, 1 << 30])
    results = []
    for buf, counters in _buffers(tmp_path, kind, Step(), n, limit, sort_values,
                                  partitioner, split):
        buf.extend(iter(pairs))
        output = buf.finish()
        data = open(output.location, "rb").read() if kind == "disk" else output.location
        results.append((data, output.partition_records, counters))
    assert results[0] == results[1]


def _error_of(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 -- the comparison is the point
        return type(exc), str(exc)
    return None


BAD_ITEMS = st.sampled_from(["ab", "abc", "", 7, None, ("k", 1, 2), ("k",), ["k"],
                             ("k", object()), (object(), 1), ("k", 2**70), ({1}, 1),
                             ("\ud800", 1), ("k", "\ud800")])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(PAIR, max_size=4), bad=BAD_ITEMS, after=st.lists(PAIR, max_size=2),
       sort_values=st.booleans(), bad_partition=st.sampled_from([None, -1, "0", 9, 1.0]))
def test_c_buffer_raises_the_python_buffers_errors(tmp_path, before, bad, after,
                                                   sort_values, bad_partition):
    partitioner = None if bad_partition is None else (lambda key, n: bad_partition)
    outcomes = []
    for cls in (SortBuffer, NativeSortBuffer):
        buf = cls(Step(), 2, 1 << 20, sort_values, MemoryMapSink(2, sort_values), {},
                  partitioner)

        def mapper():
            yield from before
            yield bad
            yield from after

        outcomes.append((_error_of(lambda: buf.extend(mapper())), buf.records))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("result", [5, 2.5, object()])
def test_c_buffer_refuses_a_result_that_is_not_iterable(result):
    errors = [_error_of(lambda: cls(Step(), 2, 100, False, MemoryMapSink(2, False),
                                    {}).extend(result))
              for cls in (SortBuffer, NativeSortBuffer)]
    assert errors[0] == errors[1]
    assert errors[0][0] is NotAPairError


def test_terasort_output_is_the_same_under_both_cores(tmp_path):
    """The user's path: the CLI with MAPREDUCE_CORE unset (C) and =python, small sort
    buffers (many spills); both must equal GNU ``sort -s`` on the key."""
    import random
    rng = random.Random(18)
    src = tmp_path / "in.txt"
    with open(src, "w", encoding="ascii") as f:
        for i in range(30000):
            key = "".join(rng.choice("ABCDEFGH!~") for _ in range(10))
            f.write(f"{key}  {i:08d} {'x' * rng.randrange(0, 60)}\n")
    outputs = []
    for core in ("", "python"):
        out = tmp_path / f"out-{core or 'c'}"
        env = dict(os.environ)
        env.pop("MAPREDUCE_CORE", None)
        if core:
            env["MAPREDUCE_CORE"] = core
        subprocess.run([sys.executable, "-m", "mapreduce", "run",
                        os.path.join(REPO, "jobs", "terasort.py"), str(src), "-o", str(out),
                        "--sort-buffer", "256KB", "--reducers", "3", "-q"],
                       check=True, env=env, cwd=REPO)
        parts = sorted(p for p in os.listdir(out) if p.startswith("part-"))
        outputs.append(b"".join((out / p).read_bytes() for p in parts))
    expected = subprocess.run(["sort", "-s", "-k1.1,1.10", str(src)], check=True,
                              capture_output=True, env=dict(os.environ, LC_ALL="C")).stdout
    assert outputs[0] == expected
    assert outputs[1] == expected


def test_c_buffer_passes_an_iter_methods_own_error_through():
    class Odd:
        def __iter__(self):
            raise TypeError("my own")

    class NotAnIterator:
        def __iter__(self):
            return 5

    for thing in (Odd(), NotAnIterator()):
        errors = [_error_of(lambda: cls(Step(), 2, 100, False, MemoryMapSink(2, False),
                                        {}).extend(thing))
                  for cls in (SortBuffer, NativeSortBuffer)]
        assert errors[0] == errors[1]
