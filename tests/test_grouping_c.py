"""The reduce side's grouping by key in C (``_core.GroupBy``) against its Python twin.

``shuffle.grouped_values`` gives the reduce loop ``(key bytes, lazy decoded values)`` per
group.  With the C core it is ``_core.GroupBy``; its twin ``shuffle.py_grouped_values`` is
``itertools.groupby`` over ``decoded_records``.  They must agree on everything a reducer
can observe: the groups, the values, ``groupby``'s semantics when a reducer reads part of
its values, none of them, or reads them after the loop has moved on, and *when* values are
decoded (the same msgpack payloads, at the same moments), so a value that fails to decode
raises the same error at the same point.

The first test walks random merged record streams (batches of random sizes including 0 and
1, groups of hundreds of values across many batches and decode slices, tiny slice bounds)
with random consumption plans through both, recording a trace, and compares the traces and
the decoder's payloads; without injected faults it also compares with a plain-Python
reference computed from the records alone.  The second runs a job with a reducer from the
command line once per core and compares the part files and counters with each other and
with plain Python.

Skipped when the extension is not built, unless ``MAPREDUCE_REQUIRE_CORE=1`` (CI).
"""
from __future__ import annotations

import json
import textwrap
from itertools import islice

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce import codec, shuffle

import c_core  # tests/c_core.py
from c_core import run_cli_on_core

_core = c_core.load()  # skips this module when the C core is not built

BAD_VALUE = b"\xc1"  # msgpack's one never-used byte: unpacking fails


def value_of(g: int, j: int):
    """A value of varied type and length (so byte bounds cut slices at varied places)."""
    return [(g, j), j * 0.5, "v" * (j % 6), None, j % 3 == 0][j % 5]


def make_batches(keys, sizes, cuts, bad_at):
    """Records of the groups (key i repeated sizes[i] times), cut into batches by cycling
    through ``cuts`` (0 makes an empty batch).  ``bad_at``: index of a value made
    undecodable, or None."""
    records = [(kb, codec.encode_value(value_of(g, j)))
               for g, (kb, n) in enumerate(zip(keys, sizes)) for j in range(n)]
    if bad_at is not None and records:
        i = bad_at % len(records)
        records[i] = (records[i][0], BAD_VALUE)
    if not any(cuts):
        cuts = cuts + [1]
    batches, i, c = [], 0, 0
    while i < len(records):
        size = cuts[c % len(cuts)]
        batches.append(records[i:i + size])
        i += size
        c += 1
    if c % 3 == 1:
        batches.append([])  # sometimes an empty batch at the end
    return batches


def batch_iter(batches, fail_after):
    """The batches, as the merge yields them; an error after ``fail_after`` of them (the
    merge finding a corrupt block) when it is not None."""
    for n, batch in enumerate(batches):
        if fail_after is not None and n == fail_after:
            raise OSError(5, "corrupt block in run-0007 at offset 4096")
        yield batch
    if fail_after is not None and fail_after >= len(batches):
        raise OSError(5, "corrupt block in run-0007 at offset 4096")


def drive(grouping, plans, calls):
    """Walk ``grouping`` following ``plans`` (cycled: what the reducer does with each group's
    values) and return what a reducer observes, with how many payloads were decoded at each
    step (the moment values are decoded)."""
    trace, earlier = [], None
    try:
        for i, (kb, values) in enumerate(grouping):
            kind, n = plans[i % len(plans)]
            if kind == "all":
                got = list(values)
            elif kind == "some":
                got = list(islice(values, n))
            else:  # "none": the next group skips them all
                got = []
            trace.append(("group", kb, got, len(calls)))
            if earlier is not None:  # a group left behind yields nothing, however read
                trace.append(("stale", list(earlier), len(calls)))
            earlier = values
        trace.append(("end", len(calls)))
    except Exception as exc:  # noqa: BLE001 -- compared as class and message
        trace.append(("error", type(exc).__name__, str(exc), len(calls)))
        trace.append(("after", [kb for kb, _ in grouping], len(calls)))
    if earlier is not None:
        trace.append(("stale at end", list(earlier)))
    return trace


def run_c(batches, fail_after, plans, max_records, max_bytes):
    calls = []

    def decode(data):
        calls.append(data)
        return shuffle._unpack_values(data)
    grouping = _core.GroupBy(batch_iter(batches, fail_after), decode, max_records, max_bytes)
    return drive(grouping, plans, calls), calls


def run_python(batches, fail_after, plans, max_records, max_bytes):
    """The twin, reached directly whichever core is active: its C-core branch cuts its
    payloads with ``value_payloads`` (test_core checks them against ``decode_slices``) and
    unpacks them through ``shuffle._unpack_values``, which records them here."""
    calls = []

    def decode(data):
        calls.append(data)
        return unpack(data)
    unpack = shuffle._unpack_values
    saved = (shuffle.native, shuffle._unpack_values, shuffle.DECODE_BATCH,
             shuffle.DECODE_BATCH_BYTES)
    shuffle.native, shuffle._unpack_values = _core, decode
    shuffle.DECODE_BATCH, shuffle.DECODE_BATCH_BYTES = max_records, max_bytes
    try:
        grouping = shuffle.py_grouped_values(batch_iter(batches, fail_after), False)
        return drive(grouping, plans, calls), calls
    finally:
        (shuffle.native, shuffle._unpack_values, shuffle.DECODE_BATCH,
         shuffle.DECODE_BATCH_BYTES) = saved


def reference(keys, sizes, plans):
    """What a reducer must observe, from the groups alone (no batches, no slices)."""
    trace = []
    for i, (kb, n) in enumerate(zip(keys, sizes)):
        values = [value_of(i, j) for j in range(n)]
        kind, k = plans[i % len(plans)]
        got = values if kind == "all" else values[:k] if kind == "some" else []
        trace.append(("group", kb, got))
        if i:
            trace.append(("stale", []))
    trace.append(("end",))
    if keys:
        trace.append(("stale at end", []))
    return trace


def without_counts(trace):
    return [entry[:-1] if entry[0] != "stale at end" else entry for entry in trace]


group_sizes = st.one_of(st.integers(1, 3), st.integers(1, 3), st.integers(40, 400))
plans_ = st.lists(st.tuples(st.sampled_from(["all", "some", "none"]), st.integers(0, 6)),
                  min_size=1, max_size=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(st.binary(max_size=3), unique=True, max_size=12).map(sorted),
       sizes=st.lists(group_sizes, min_size=12, max_size=12),
       cuts=st.lists(st.sampled_from([0, 1, 1, 2, 3, 7, 64, 500]), min_size=1, max_size=6),
       plans=plans_,
       max_records=st.sampled_from([1, 2, 3, 5, 4096]),
       max_bytes=st.sampled_from([1, 8, 40, 1 << 20]),
       bad_at=st.none() | st.none() | st.integers(0, 5000),
       fail_after=st.none() | st.none() | st.none() | st.integers(0, 40))
def test_grouping_matches_python_twin_and_plain_groups(keys, sizes, cuts, plans, max_records,
                                                       max_bytes, bad_at, fail_after):
    sizes = sizes[:len(keys)]
    batches = make_batches(keys, sizes, cuts, bad_at)
    c_trace, c_calls = run_c(batches, fail_after, plans, max_records, max_bytes)
    py_trace, py_calls = run_python(batches, fail_after, plans, max_records, max_bytes)
    assert c_trace == py_trace
    assert c_calls == py_calls  # the same payloads: the same slices, decoded in the same order
    if bad_at is None and fail_after is None:
        assert without_counts(c_trace) == reference(keys, sizes, plans)
    if bad_at is not None and keys and fail_after is None:
        assert any(entry[0] == "error" for entry in c_trace)


def test_a_group_is_streamed_not_collected():
    """A group of 100,000 values spanning 100 batches: values are decoded a slice at a time
    as they are read (one payload of at most DECODE_BATCH values ahead), never the group."""
    kb = codec.encode_key("k")
    batches = [[(kb, codec.encode_value(b * 1000 + j)) for j in range(1000)]
               for b in range(100)]
    calls = []

    def decode(data):
        calls.append(data)
        return shuffle._unpack_values(data)
    (key, values), = list(islice(_core.GroupBy(iter(batches), decode, 256, 1 << 20), 1))
    assert key == kb and len(calls) == 1  # the first slice: the group's first record
    seen = 0
    for seen, v in enumerate(values, 1):
        assert v == seen - 1
        assert len(calls) == (seen - 1) // 1000 * 4 + (seen - 1) % 1000 // 256 + 1
    assert seen == 100_000


def _batches_referring_back(kb):
    class Batches:  # an iterable that can refer back to the grouping: a cycle
        def __init__(self):
            self.it = iter([[(kb, codec.encode_value(1))], [(kb, codec.encode_value(2))]])

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.it)
    return Batches()


@pytest.mark.parametrize("through", ["grouping", "values"])
def test_a_cycle_through_the_grouping_or_a_values_iterator_is_collected(through):
    """GroupBy and its values iterators are tracked by the cyclic GC, as itertools.groupby
    and its groupers are: batches that hold the grouping, or one of its values iterators
    (which keeps the grouping alive), still get collected."""
    import gc
    import weakref
    batches = _batches_referring_back(codec.encode_key("k"))
    grouping = _core.GroupBy(batches, shuffle._unpack_values, 4096, 1 << 20)
    (key, values), = list(islice(grouping, 1))
    assert gc.is_tracked(grouping) and gc.is_tracked(values)
    batches.back = grouping if through == "grouping" else values
    probe = weakref.ref(batches)
    del batches, grouping, key, values
    gc.collect()
    assert probe() is None


def test_a_batches_iterator_that_advances_its_own_grouping_gets_an_error_not_a_crash():
    """Re-entry from the batches iterator into the GroupBy it feeds is refused (as a
    generator's "already executing"); the refusal ends the grouping with that error."""
    import gc

    def batches():
        yield [(codec.encode_key("a"), codec.encode_value(1))]
        next(grouping)  # re-entry: the ValueError propagates out of this generator
        yield [(codec.encode_key("b"), codec.encode_value(2))]

    grouping = _core.GroupBy(batches(), shuffle._unpack_values, 4096, 1 << 20)
    key, values = next(grouping)
    assert key == codec.encode_key("a") and next(values) == 1
    with pytest.raises(ValueError, match="already executing"):
        next(values)  # looking past batch one runs the generator, which re-enters
    assert list(values) == [] and list(grouping) == []  # the grouping is over, nothing is left half-released
    gc.collect()


def test_reducer_error_and_bad_value_name_the_same_key_on_both_cores():
    """run_reduce's errors through GroupBy and through the twin: a reducer exception names
    its key, a value that does not decode gives the twin's error under the same key."""
    from mapreduce import kernel
    from mapreduce.job import Job

    class Boom(Job):
        def reducer(self, key, values):
            for v in values:
                if v == 13:
                    raise RuntimeError("thirteen")
            yield key, 0

    class Sink:
        def write(self, k, v):
            pass

        def finish(self):
            return None, 0

    def run(core, batches):
        saved = shuffle.native
        shuffle.native = core
        try:
            job = Boom()
            kernel.run_reduce(job, job.steps()[0], iter(batches), Sink(), partition=3,
                              sort_values=False)
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__, str(exc), type(exc.__cause__).__name__, \
                str(exc.__cause__)
        finally:
            shuffle.native = saved
        return None

    records = [(codec.encode_key(k), codec.encode_value(k * 10 + j))
               for k in range(3) for j in range(5)]
    raised = run(_core, [records[:7], records[7:]])
    assert raised == run(None, [records[:7], records[7:]])
    assert "key 1 of partition 3" in raised[1] and raised[3] == "thirteen"
    bad = records[:11] + [(records[11][0], BAD_VALUE)] + records[12:]
    raised = run(_core, [bad[:10], bad[10:]])  # key 2's values start the second batch
    assert raised == run(None, [bad[:10], bad[10:]])
    assert "key 1 of partition 3" in raised[1]  # decoding key 2's slice, while at key 1


JOB = textwrap.dedent('''
    from itertools import islice
    from mapreduce import Job

    class Spread(Job):
        """7 keys of thousands of values each (each group spans decode slices and merge
        batches), and a tiny group per hundredth number."""

        def mapper(self, _, line):
            n = int(line)
            yield n % 7, [n, "x" * (n % 13)]
            if n % 100 == 0:
                yield "rare-%d" % n, n

        def reducer(self, key, values):
            if isinstance(key, str):
                yield key, sum(values)
            elif key % 2:        # odd keys: only the first three values are read
                yield key, [v[0] for v in islice(values, 3)]
            else:
                count = total = longest = 0
                for n, pad in values:
                    count += 1
                    total += n
                    longest = max(longest, len(pad))
                yield key, [count, total, longest]
''')


IDENTITY_JOB = textwrap.dedent('''
    from mapreduce import Job, identity_reducer

    class Buckets(Job):
        """Every third number under its residue mod 5: the identity reducer writes each
        group's values (thousands, across decode slices) whole."""

        def mapper(self, _, line):
            n = int(line)
            if n % 3 == 0:
                yield n % 5, n

        reducer = identity_reducer
''')


def _run_cli(tmp_path, core, job="spread.py"):
    return run_cli_on_core(core, tmp_path / job, tmp_path / "numbers.txt",
                           tmp_path / f"out-{core}-{job}", "--sort-buffer", "512KB",
                           "--reducers", "2")


def test_cli_reducer_job_equal_on_both_cores_and_plain_python(tmp_path):
    total = 60_000
    (tmp_path / "spread.py").write_text(JOB)
    (tmp_path / "numbers.txt").write_text("".join(f"{n}\n" for n in range(total)))
    c_parts, c_counters = _run_cli(tmp_path, "c")
    py_parts, py_counters = _run_cli(tmp_path, "python")
    assert c_parts == py_parts
    assert c_counters == py_counters
    assert c_counters["framework"]["SPILL_FILES"] > 2  # the merge had several runs
    # Independent reference: plain Python over the numbers, in input order.
    expected = {}
    for key in range(7):
        ns = [n for n in range(total) if n % 7 == key]
        expected[json.dumps(key)] = (ns[:3] if key % 2 else
                                     [len(ns), sum(ns), max(n % 13 for n in ns)])
    for n in range(0, total, 100):
        expected[json.dumps(f"rare-{n}")] = n
    got = {}
    for data in c_parts.values():
        for line in data.decode().splitlines():
            k, v = line.split("\t")
            got[k] = json.loads(v)
    assert got == expected


def test_cli_identity_reducer_equal_on_both_cores_and_plain_python(tmp_path):
    total = 60_000
    (tmp_path / "buckets.py").write_text(IDENTITY_JOB)
    (tmp_path / "numbers.txt").write_text("".join(f"{n}\n" for n in range(total)))
    c_parts, c_counters = _run_cli(tmp_path, "c", "buckets.py")
    py_parts, py_counters = _run_cli(tmp_path, "python", "buckets.py")
    assert c_parts == py_parts
    assert c_counters == py_counters
    got: dict = {}
    for data in c_parts.values():
        keys = []
        for line in data.decode().splitlines():
            k, v = map(json.loads, line.split("\t"))
            if not keys or keys[-1] != k:
                keys.append(k)
            got.setdefault(k, []).append(v)
        assert keys == sorted(set(keys))  # each key's values together, keys in order
    # Plain Python: each residue's numbers, in input order (the merge is stable).
    assert got == {r: [n for n in range(0, total, 3) if n % 5 == r] for r in range(5)}
