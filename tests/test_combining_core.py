"""The combining buffer's per-pair loop and run_map's loop in C against their Python twins.

``_core.group_values`` (CombiningBuffer.extend's fast path) and ``_core.map_group`` (the
map loop of a step with a combiner) hand everything but the common case back to Python, so
a job with a combiner must give exactly what the pure-Python core gives: the same spills
(bytes, and where they happen), the same counters, the same error and message.  The first
test runs random jobs -- random keys (unhashable lists, big ints, tuples), values around
the small-int boundary, non-scalar and unencodable values, mappers yielding bad pairs,
returning lists, ints or None, raising -- through the real ``run_map`` with both twins and
tiny sort buffers (a spill at every boundary), and compares everything.  The second runs a
combining job the way a user does, ``python -m mapreduce run`` once per core, and compares
the output bytes and the counters of ``_job.json``.

Skipped when the extension is not built, unless ``MAPREDUCE_REQUIRE_CORE=1`` (CI).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce import codec, kernel
from mapreduce.job import Job, Step

import c_core  # tests/c_core.py
from c_core import run_cli_on_core

_core = c_core.load()  # skips this module when the C core is not built

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- random jobs ---------------------------------------------------------------------------
keys = (st.sampled_from(["a", "b", "ab", "é", "", "zz"]) | st.integers(-3, 3)
        | st.sampled_from([2 ** 70, -2 ** 70, 1.5, None, True])
        | st.lists(st.sampled_from(["a", 1]), max_size=2)      # unhashable: canonicalised
        | st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 1)))
values = (st.sampled_from([-6, -5, 0, 1, 2, 255, 256, 257])   # the fast path's edges
          | st.integers(-2 ** 66, 2 ** 66)                     # beyond msgpack: an error
          | st.sampled_from([True, False, None, 0.5, "x", b"y", 2 ** 63])
          | st.lists(st.integers(0, 3), max_size=2)            # snapshotted through msgpack
          | st.dictionaries(st.sampled_from(["k"]), st.integers(0, 2), max_size=1)
          | st.just(object()))                                 # cannot be encoded
pairs = st.tuples(keys, values)
# What a mapper yields: mostly pairs, sometimes something that is no pair.
emitted = st.one_of(pairs, pairs, pairs, pairs, pairs, pairs, pairs,
                    st.sampled_from(["ab", "abc", 5, None, (1, 2, 3)]),
                    st.lists(st.integers(0, 1), min_size=2, max_size=2).map(
                        lambda kv: ["k", kv[1]]))               # a list pair: unpacks fine
# One record's plan: how the mapper answers it.
record_plans = st.one_of(
    st.tuples(st.just("yield"), st.lists(emitted, max_size=8)),
    st.tuples(st.just("yield"), st.lists(pairs, max_size=8)),
    st.tuples(st.just("return list"), st.lists(pairs, max_size=4)),
    st.tuples(st.just("return"), st.sampled_from([None, 7, "ab", ()])),
    st.tuples(st.just("raise"), st.sampled_from([ValueError, TypeError, KeyError])),
    st.tuples(st.just("yield then raise"), st.lists(pairs, max_size=3)))
# Word-count-like plans, so that the fast path (known keys, small ints) runs long stretches.
word_plans = st.tuples(st.just("yield"), st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 2)), max_size=12))
# Runs of one value per key broken by another (a C group keeps a run as (value, count) and
# turns into a list at the first different object): 1s, then True (== 1 but must stay
# True), a big or negative int, 1.0, a str.
run_values = st.sampled_from([1, 1, 1, 1, 1, True, -3, 2 ** 40, -2 ** 40, 1.0, "x", 0])
run_plans = st.tuples(st.just("yield"), st.lists(
    st.tuples(st.sampled_from(["a", "b"]), run_values), max_size=16))


class _Split:
    def describe(self):
        return "the test's records"


def _mapper(plans):
    def mapper(_key, index):
        how, what = plans[index]
        if how == "return list":
            return list(what)
        if how == "return":
            return what
        if how == "raise":
            raise what(f"record {index}")
        return _yielding(how, what, index)
    return mapper


def _yielding(how, what, index):
    yield from what
    if how == "yield then raise":
        raise ValueError(f"after the pairs of record {index}")


def combiner(key, vals):
    assert iter(vals) is vals   # an iterator (single pass), as the list_iterator was
    vals = list(vals)
    yield key, len(vals)
    yield key, repr(vals[:2])


def _partial_combiner(key, vals):
    """Takes only the first values (the rest of a repeat() or a list is left unread)."""
    first = next(vals)
    yield key, repr([first, next(vals, "none")])


def _summing_combiner(key, vals):
    yield key, sum(v for v in vals if isinstance(v, (int, float)))


def _none_combiner(key, vals):
    return None


def _bad_combiner(key, vals):
    yield from vals   # yields the values themselves: not pairs (a 2-char str would unpack)


COMBINERS = [combiner, _partial_combiner, _summing_combiner, _none_combiner, _bad_combiner]


def run_map_with(twins, plans, partitions, limit, hooks, combine=combiner):
    """run_map's outcome with kernel's group_values/map_group, the group type their
    buffer makes and the spill's sort of its groups set to ``twins``."""
    active = kernel.group_values, kernel.map_group, kernel.Group, kernel.sort_groups
    kernel.group_values, kernel.map_group, kernel.Group, kernel.sort_groups = twins
    try:
        step = Step(mapper=_mapper(plans), combiner=combine,
                    mapper_final=(lambda: iter([("a", 1), ("zz", 3)])) if hooks else None)
        sink = c_core.RecordingSink()
        try:
            outcome = kernel.run_map(Job(), step, _Split(), [(None, i) for i in range(len(plans))],
                                     partitions=partitions, sort_buffer=limit,
                                     sort_values=False, sink=sink)
        except Exception as exc:  # noqa: BLE001 -- comparing whatever is raised is the point
            return ("raised", type(exc).__name__, str(exc), sink.spills)
        return ("returned", outcome.counters, outcome.records_in, sink.spills)
    finally:
        kernel.group_values, kernel.map_group, kernel.Group, kernel.sort_groups = active


C_TWINS = (_core.group_values, _core.map_group, _core.Group, _core.sort_groups)
PY_TWINS = (kernel.py_group_values, kernel.py_map_group, kernel.PyGroup,
            kernel.py_sort_groups)


def test_the_c_twins_are_wired_when_c_runs():
    from mapreduce import core
    assert (kernel.map_group is _core.map_group) == (core.ACTIVE == "c")
    assert (kernel.group_values is _core.group_values) == (core.ACTIVE == "c")
    assert (kernel.Group is _core.Group) == (core.ACTIVE == "c")
    assert (kernel.sort_groups is _core.sort_groups) == (core.ACTIVE == "c")


@SETTINGS
@given(st.lists(record_plans | word_plans | run_plans, max_size=25), st.integers(1, 3),
       st.integers(1, 1500) | st.just(64 << 20), st.booleans(), st.sampled_from(COMBINERS))
def test_random_combining_jobs_map_alike_on_both_cores(plans, partitions, limit, hooks,
                                                       combine):
    c = run_map_with(C_TWINS, plans, partitions, limit, hooks, combine)
    python = run_map_with(PY_TWINS, plans, partitions, limit, hooks, combine)
    assert c == python


# Limits the word plans' sizes can hit exactly (a group of a 1-letter key is charged
# VALUE_SLOT_SIZE + 2 + GROUP_OVERHEAD = 211, each further value 9): a spill exactly at,
# not one pair after, the limit is the boundary an off-by-one would move.
exact_limits = st.builds(lambda groups, values: groups * 211 + values * 9,
                         st.integers(1, 4), st.integers(0, 40))


@SETTINGS
@given(st.lists(word_plans, min_size=1, max_size=40), exact_limits | st.integers(200, 1200))
def test_word_count_spills_at_the_same_pair_on_both_cores(plans, limit):
    """Only fast-path pairs: the C loop's own size accounting decides every spill point,
    and the spills must match the Python loop's exactly."""
    c = run_map_with(C_TWINS, plans, 2, limit, False)
    python = run_map_with(PY_TWINS, plans, 2, limit, False)
    assert c == python
    assert c[0] == "returned"


@SETTINGS
@given(st.lists(run_plans, min_size=1, max_size=40), exact_limits | st.integers(200, 1200),
       st.sampled_from(COMBINERS[:3]))
def test_runs_of_one_value_spill_alike_on_both_cores(plans, limit, combine):
    """Runs of 1s (compact in a C group) broken by other values, with spills at exact
    boundaries and combiners that read all, part or a sum of their values."""
    c = run_map_with(C_TWINS, plans, 2, limit, False, combine)
    python = run_map_with(PY_TWINS, plans, 2, limit, False, combine)
    assert c == python
    assert c[0] == "returned"


# Objects to append: some shared (the same object again and again), some equal but distinct.
_BIG = 2 ** 40
_SHARED = [1, True, 1.0, "x", _BIG, None, 0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(range(len(_SHARED))) | st.builds(lambda n: n * _BIG, st.just(1))
                | st.builds(lambda: [1]), min_size=0, max_size=40))
def test_group_yields_the_very_objects_appended_on_both_cores(picks):
    """A group's values() yields exactly the objects appended, in order (identity, so True
    stays True and an equal but distinct int stays distinct), once; len counts them."""
    appended = [_SHARED[p] if isinstance(p, int) and p < len(_SHARED) else p for p in picks]
    appended.insert(0, 1)
    for group_type in (_core.Group, kernel.PyGroup):
        group = group_type(b"\x40k", appended[0])
        for value in appended[1:]:
            group.append(value)
        assert group.kb == b"\x40k" and len(group) == len(appended)
        values = group.values()
        assert iter(values) is values
        got = list(values)
        assert len(got) == len(appended)
        assert all(a is b for a, b in zip(got, appended))
        assert list(values) == []   # single pass
        assert list(group.values()) == appended   # a fresh iterator each call


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"", b"\x00", b"\x00\x00", b"\x01", b"@a", b"@ab",
                                 b"@abcdefgh", b"@abcdefgh\x00", b"@abcdefgi", b"\xff" * 9])
                | st.binary(max_size=12), max_size=80))
def test_sort_groups_sorts_like_python_and_is_stable(kbs):
    """Key bytes that tie on the 8-byte prefix, are prefixes of each other or are equal
    (equal ones must keep their order: identity is checked)."""
    c_groups = [_core.Group(kb, i) for i, kb in enumerate(kbs)]
    py_groups = [kernel.PyGroup(kb, i) for i, kb in enumerate(kbs)]
    _core.sort_groups(c_groups)
    kernel.py_sort_groups(py_groups)
    assert [(g.kb, list(g.values())) for g in c_groups] == \
        [(g.kb, list(g.values())) for g in py_groups]
    assert [g.kb for g in c_groups] == sorted(kbs)
    with pytest.raises(TypeError, match="expected Group objects, got PyGroup"):
        _core.sort_groups(c_groups + [kernel.PyGroup(b"", 0)])


def test_c_accounts_with_the_kernel_constants():
    assert _core.COMBINE_SIZES == (kernel.VALUE_SLOT_SIZE, kernel.GROUP_OVERHEAD)


def test_group_values_hands_back_what_it_does_not_take():
    groups = {"a": _core.Group(b"ka", 1), ("l",): _core.Group(b"kl", 1), "l": [b"kl"]}
    end, full = object(), object()
    items = [("a", 1), ("a", 256), ("a", -5), ("a", 257)]
    assert _core.group_values(groups, iter(items), 0, 100, end, full) == (3, 27, ("a", 257))
    assert list(groups["a"].values()) == [1, 1, 256, -5] and len(groups["a"]) == 4
    for item in (("é", 1), (5, 1), ("a", True), ["a", 1], "ab", ("a", 1, 2), (["l"], 1),
                 ("a", 1.0), ("l", 1)):   # the last: a group that is not a Group
        assert _core.group_values(groups, iter([item]), 0, 100, end, full) == (0, 0, item)
    # a new ASCII str key: a group (key bytes, value), charged as _add_grouped charges it
    assert _core.group_values(groups, iter([("new", 3)]), 0, 10 ** 6, end, full) == \
        (1, kernel.VALUE_SLOT_SIZE + 4 + kernel.GROUP_OVERHEAD, end)
    assert groups["new"].kb == codec.encode_key("new")
    assert list(groups["new"].values()) == [3]
    # a run of one value is compact: values() repeats it; a different value makes a list
    assert _core.group_values(groups, iter([("new", 3)] * 3), 0, 10 ** 6, end, full)[0] == 3
    assert type(groups["new"].values()).__name__ == "repeat"
    assert _core.group_values(groups, iter([("new", 4), ("new", 3)]), 0, 10 ** 6, end,
                              full)[0] == 2
    assert list(groups["new"].values()) == [3, 3, 3, 3, 4, 3] and len(groups["new"]) == 6
    # full: right after the pair that reaches the limit
    assert _core.group_values(groups, iter([("a", 1)] * 5), 0, 18, end, full) == (2, 18, full)
    assert _core.group_values(groups, iter([]), 7, 18, end, full) == (0, 7, end)


def test_groups_made_in_c_are_not_tracked_by_the_cyclic_gc_and_keep_what_they_hold():
    """A new group list is untracked (the GC would otherwise walk every buffered value at
    each full collection); a tracked object Python appends to it later (a non-scalar value's
    snapshot) survives collections, since an untracked referrer only makes it look alive."""
    import gc
    import weakref

    class Box(dict):  # a dict subclass: weak-referenceable, and tracked by the GC
        pass

    groups: dict = {}
    end, full = object(), object()
    assert _core.group_values(groups, iter([("w", 1)]), 0, 10 ** 6, end, full)[2] is end
    group = groups["w"]
    assert not gc.is_tracked(group)
    value = Box(x=[1, 2])
    alive = weakref.ref(value)
    group.append(value)   # the group turns into a list: untracked as well
    del value
    for _ in range(3):
        gc.collect()
    assert alive() is not None and list(group.values())[1] == {"x": [1, 2]}
    del groups, group
    gc.collect()
    assert alive() is None  # freed with its group: nothing leaks


def test_map_group_reports_the_failing_record():
    def mapper(_k, v):
        if v == 2:
            raise KeyError("boom")
        yield "a", 1

    progress = [-1]
    with pytest.raises(KeyError):
        _core.map_group(iter([(None, 0), (None, 1), (None, 2)]), mapper,
                        {"a": _core.Group(b"", 1)}, 0, 100, progress, object(), object())
    assert progress == [2]


# --- the user's path: the CLI, once per core --------------------------------------------------
JOB = textwrap.dedent('''
    from mapreduce import Job


    class Tally(Job):
        """Word count with a combiner, plus pairs the fast path does not take."""

        def mapper(self, _, line):
            words = line.split()
            for word in words:
                yield word, 1
            if len(words) % 7 == 3:
                yield [words[0], len(words)], 2 ** 40      # unhashable key, big value
            if len(words) % 5 == 1:
                yield words[-1], {"n": len(words)}         # non-scalar value

        def combiner(self, key, values):
            total = 0
            for v in values:
                total += v if isinstance(v, int) else v["n"]
            yield key, total

        def reducer(self, key, values):
            yield key, sum(values)
''')


def _run_cli(tmp_path, core, inputs, sort_buffer):
    return run_cli_on_core(core, tmp_path / "tally.py", inputs,
                           tmp_path / f"out-{core}-{sort_buffer}",
                           "--sort-buffer", sort_buffer, "--reducers", "3")


@pytest.mark.parametrize("sort_buffer", ["2KB", "64MB"])
def test_cli_output_and_counters_equal_on_both_cores(tmp_path, sort_buffer):
    (tmp_path / "tally.py").write_text(JOB)
    text = os.path.join(ROOT, "sample_data")
    c_parts, c_counters = _run_cli(tmp_path, "c", text, sort_buffer)
    py_parts, py_counters = _run_cli(tmp_path, "python", text, sort_buffer)
    assert c_parts == py_parts
    assert c_counters == py_counters
    framework = c_counters["framework"]
    assert framework["COMBINE_INPUT_RECORDS"] == framework["MAP_OUTPUT_RECORDS"]
    if sort_buffer == "2KB":
        assert framework["SPILL_FILES"] > 10  # the tiny buffer spilled many times
    # Independent reference: the word counts in plain Python.
    expected: dict = {}
    for root, _dirs, names in os.walk(text):
        for name in names:
            if name.startswith(("_", ".")):
                continue  # hidden files are not input (Hadoop's rule)
            with open(os.path.join(root, name), encoding="utf-8") as f:
                for line in f:
                    words = line.split()
                    for w in words:
                        expected[w] = expected.get(w, 0) + 1
                    if len(words) % 7 == 3:
                        key = json.dumps([words[0], len(words)])
                        expected[key] = expected.get(key, 0) + 2 ** 40
                    if len(words) % 5 == 1:
                        expected[words[-1]] = expected.get(words[-1], 0) + len(words)
    got = {}
    for data in c_parts.values():
        for line in data.decode().splitlines():
            k, v = line.split("\t")
            k = json.loads(k)
            got[json.dumps(k) if isinstance(k, list) else k] = json.loads(v)
    assert got == expected


HANGING_JOB = textwrap.dedent('''
    import time

    from mapreduce import Job


    class HangingTally(Job):
        def mapper(self, _, line):
            if "HANG" in line:
                deadline = time.monotonic() + 1000
                while time.monotonic() < deadline:
                    time.sleep(0.05)
            for word in line.split():
                yield word, 1

        def combiner(self, word, counts):
            yield word, sum(counts)

        def reducer(self, word, counts):
            yield word, sum(counts)
''')


def test_a_timed_out_combining_task_names_its_record(tmp_path):
    """The map loop runs in C for a step with a combiner; a task killed by --task-timeout
    still says which record its mapper was on (map_group keeps the index live)."""
    (tmp_path / "hang.py").write_text(HANGING_JOB)
    inp = tmp_path / "in.txt"
    inp.write_text("a b\nc d\nthis line HANGs\ne f\n")
    done = subprocess.run([sys.executable, "-m", "mapreduce", "run", str(tmp_path / "hang.py"),
                           str(inp), "-o", str(tmp_path / "out"), "--task-timeout", "2",
                           "--max-attempts", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 1, done.stderr
    assert "timed out after 2 s" in done.stderr
    assert f"at {inp} line 3 (in the mapper)" in done.stderr, done.stderr
