"""End-to-end properties: every job run equals a naive single-process oracle, byte for byte.

The oracle (tests/oracle.py) re-implements the documented semantics in plain Python.  The
properties run a handful of job templates over random small inputs with random engine
settings -- tiny splits, tiny sort buffers (a spill per record or so) and merge factors of
2..4 (multi-pass merges on both sides) -- in disk *and* memory mode, and require:

* the part files equal the oracle's, byte for byte (so key order within a part, partitioning,
  value order = emission order, SORT_VALUES order, canonical keys and the output format);
* disk mode == memory mode, byte for byte;
* framework counters the oracle can predict, and the user counters, are right.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce.loader import load_job_class
from mapreduce.runners import run_job
from mapreduce.options import JobConfig

from oracle import read_parts, run_oracle, write_inputs

# --- job templates ------------------------------------------------------------------------
JOB_SOURCES = {
    # Word count with a combiner (sum is associative and commutative) and a user counter.
    "wordcount": """
        from mapreduce import Job

        class WordCount(Job):
            def mapper(self, _, line):
                for word in line.split():
                    self.increment_counter("words", "seen")
                    yield word.lower(), 1

            def combiner(self, word, counts):
                yield word, sum(counts)

            def reducer(self, word, counts):
                yield word, sum(counts)
    """,
    # Keys of every type, mixed; 1, 1.0 and True are one key; list values; the reducer
    # returns the values in the order it got them (must be emission order).
    "mixedkeys": """
        from mapreduce import Job

        class MixedKeys(Job):
            def mapper(self, _, line):
                words = line.split()
                n = len(line)
                yield n % 3 - 1, [n, line[:2]]
                yield n / 2, [len(words), line.encode("utf-8")[:2]]
                yield None, n
                yield line.encode("utf-8")[:2], [line[:1], n % 2 == 0, None]
                yield (words[0] if words else "", n % 2), None
                yield ("t", (n % 2, None), b"\\x00" * (n % 3)), [1.5, [n, [n]]]
                yield 2 ** 70 + n % 2, -n / 4
                if n % 4 == 1:
                    yield True, "true"
                if words:
                    yield words[-1], line
                yield [n % 2, "list"], n                     # lists and tuples: one key
                yield (n % 2, "list"), -n
                yield float("nan") if n % 5 == 0 else -0.0, n  # -0.0 is 0; NaNs are one key
                self.increment_counter("mixed", "lines")
                self.increment_counter("mixed", "chars", n)

            def reducer(self, key, values):
                yield key, list(values)
    """,
    # Value order: each value says where it came from.
    "order": """
        from mapreduce import Job

        class OrderCheck(Job):
            REDUCERS = 3

            def mapper(self, _, line):
                for i, word in enumerate(line.split()):
                    yield word[:1], [line, i]

            def reducer(self, key, values):
                yield key, list(values)
    """,
    # A reducer that reads only the first values of a key: the rest must be skipped, never
    # leak into the next key's values.
    "partial": """
        from itertools import islice

        from mapreduce import Job

        class FirstValues(Job):
            def mapper(self, _, line):
                for i, word in enumerate(line.split()):
                    yield word[:1], (word, i)
                    yield len(word) % 2, word

            def reducer(self, key, values):
                if key == 0:
                    return  # reads nothing at all
                yield key, list(islice(values, 2))
    """,
    # SORT_VALUES: the reducer sees values in ascending natural order (ints and floats).
    "sortvalues": """
        from mapreduce import Job

        class SortValues(Job):
            SORT_VALUES = True

            def mapper(self, _, line):
                for word in line.split():
                    yield word[:1], len(word)
                    yield word[:1], -len(line) / 4
                yield "len", len(line)

            def reducer(self, key, values):
                yield key, list(values)
    """,
    # SORT_VALUES with a combiner that drops duplicate values (it sees them sorted, so
    # duplicates are adjacent); the reducer does the same: sorted distinct values per key.
    "sortdedupe": """
        from mapreduce import Job

        def distinct(values):
            previous = object()
            for v in values:
                if v != previous:
                    yield v
                previous = v

        class SortDedupe(Job):
            SORT_VALUES = True

            def mapper(self, _, line):
                for word in line.split():
                    yield word[:1].lower(), word
                    yield len(word), (word[-1:], len(line))

            def combiner(self, key, values):
                for v in distinct(values):
                    yield key, v

            def reducer(self, key, values):
                yield key, list(distinct(values))
    """,
    # A map-only first step feeding a reduce-only second step (identity mapper over the
    # first step's output, which travels as pair runs).
    "maponly_then_reduce": """
        from mapreduce import Job, Step

        class MapOnlyThenReduce(Job):
            def steps(self):
                return [Step(mapper=self.split, mapper_final=self.final),
                        Step(reducer=self.collect)]

            def split(self, _, line):
                for i, word in enumerate(line.split()):
                    yield word[:2], (i, word, b"\\xff" + word.encode("utf-8"))

            def final(self):
                yield None, "end of task"

            def collect(self, key, values):
                yield key, list(values)
    """,
    # Two steps: count words, then invert to (count, [words...]).
    "multistep": """
        from mapreduce import Job, Step

        class CountThenInvert(Job):
            def steps(self):
                return [Step(mapper=self.words, combiner=self.total, reducer=self.total),
                        Step(mapper=self.invert, reducer=self.collect)]

            def words(self, _, line):
                for word in line.split():
                    yield word.lower(), 1

            def total(self, word, counts):
                yield word, sum(counts)

            def invert(self, word, count):
                yield count, word

            def collect(self, count, words):
                self.increment_counter("inverted", "groups")
                yield count, list(words)
    """,
    # Map-only: one part file per map task, pairs in emission order.  mapper_init returns
    # None instead of yielding.
    "maponly": """
        from mapreduce import Job

        class MapOnly(Job):
            def mapper_init(self):
                self.seen = 0

            def mapper(self, _, line):
                self.seen += 1
                if line.strip():
                    yield len(line), [line, line.encode("utf-8")]

            def mapper_final(self):
                yield "seen", self.seen
    """,
    # Per-task hooks: mapper_init/mapper_final count the lines of each map task, the mapper
    # itself returns None, reducer_init/reducer_final run once per reduce task.
    "initfinal": """
        from mapreduce import Job

        class LineCounter(Job):
            def mapper_init(self):
                self.lines = 0
                yield "tasks", 1

            def mapper(self, _, line):
                self.lines += 1
                self.increment_counter("lines", "mapped")

            def mapper_final(self):
                yield "lines", self.lines

            def reducer_init(self):
                self.groups = 0

            def reducer(self, key, values):
                self.groups += 1
                yield key, list(values)

            def reducer_final(self):
                if self.groups:
                    yield "groups", self.groups
    """,
}
JOB_NAMES = sorted(JOB_SOURCES)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """name -> (job class, JobRef), each loaded from its own job file."""
    d = tmp_path_factory.mktemp("jobs")
    loaded = {}
    for name, src in JOB_SOURCES.items():
        path = d / f"{name}.py"
        path.write_text(textwrap.dedent(src), encoding="utf-8")
        loaded[name] = load_job_class(str(path))
    return loaded


# --- running ---------------------------------------------------------------------------------
def run(job, files: list[bytes], mode: str, **options):
    """Run ``job`` over ``files`` (contents); return (part files, counters)."""
    cls, ref = job
    d = tempfile.mkdtemp(prefix="oracle-")
    try:
        out = os.path.join(d, "out")
        result = run_job(cls, ref, JobConfig(inputs=write_inputs(d, files), output_dir=out, mode=mode, **options))
        names = set(os.listdir(out))
        assert {"_SUCCESS", "_job.json"} <= names
        assert not {n for n in names if not n.startswith("part-")} - {"_SUCCESS", "_job.json"}
        return read_parts(out), result.counters
    finally:
        shutil.rmtree(d, ignore_errors=True)


def check_against_oracle(job, files, split_size, reducers, parts, counters):
    expected = run_oracle(job[0], files, split_size, reducers)
    assert parts == expected.parts
    framework = counters.get("framework", {})
    for name, value in expected.counters.items():
        assert framework.get(name, 0) == value, name
    user = {g: c for g, c in counters.items() if g != "framework"}
    assert user == expected.user_counters


# --- random inputs ---------------------------------------------------------------------------
LINE_CHARS = st.sampled_from(list("aab  cdAB1\t\ré日ßİ€-'"))
LINES = st.lists(st.text(LINE_CHARS, max_size=12), max_size=15)
#: Examples per job template (each runs the job twice); MR_ORACLE_EXAMPLES=500 for a soak.
EXAMPLES = int(os.environ.get("MR_ORACLE_EXAMPLES", "10"))


@st.composite
def input_files(draw):
    files = []
    for lines in draw(st.lists(LINES, min_size=1, max_size=3)):
        text = "\n".join(lines)
        if lines and draw(st.booleans()):
            text += "\n"
        files.append(text.encode("utf-8"))
    return files


@pytest.mark.parametrize("name", JOB_NAMES)
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=input_files(),
       workers=st.integers(1, 3),
       reducers=st.integers(1, 5),
       split_size=st.integers(7, 200),
       sort_buffer=st.integers(1, 4096),
       merge_factor=st.integers(2, 4))
def test_job_matches_oracle_in_both_modes(jobs, name, files, workers, reducers, split_size,
                                          sort_buffer, merge_factor):
    job = jobs[name]
    options = dict(workers=workers, reducers=reducers, split_size=split_size,
                   sort_buffer=sort_buffer, merge_factor=merge_factor)
    disk_parts, disk_counters = run(job, files, "disk", **options)
    memory_parts, memory_counters = run(job, files, "memory", **options)
    assert disk_parts == memory_parts
    check_against_oracle(job, files, split_size, reducers, disk_parts, disk_counters)
    check_against_oracle(job, files, split_size, reducers, memory_parts, memory_counters)


# --- fixed examples --------------------------------------------------------------------------
TEXT = ("the quick brown fox jumps over the lazy dog\n"
        "The Dog barks; the fox runs\n"
        "\n"
        "ünïcödé wörds and 日本語 words\n"
        "a a a b b c\n") * 6


def test_tiny_buffers_take_the_disk_path(jobs):
    """Spill per record, merge factor 2: multi-pass merges on the map and reduce side."""
    files = [TEXT.encode("utf-8"), b"x y z\n" * 5]
    options = dict(workers=2, reducers=2, split_size=120, sort_buffer=1, merge_factor=2)
    parts, counters = run(jobs["wordcount"], files, "disk", **options)
    framework = counters["framework"]
    assert framework["SPILL_FILES"] > 1
    assert framework["MERGE_PASSES"] >= 1
    assert framework["COMBINE_INPUT_RECORDS"] == framework["MAP_OUTPUT_RECORDS"]
    assert framework["MAP_INPUT_RECORDS"] == TEXT.count("\n") + 5
    check_against_oracle(jobs["wordcount"], files, 120, 2, parts, counters)
    words = TEXT.split() + ["x", "y", "z"] * 5
    assert framework["REDUCE_INPUT_GROUPS"] == len({w.lower() for w in words})
    assert counters["words"] == {"seen": len(words)}
    memory_parts, memory_counters = run(jobs["wordcount"], files, "memory", **options)
    assert memory_parts == parts
    assert "SPILL_FILES" not in memory_counters["framework"]


@pytest.mark.parametrize("name", ["mixedkeys", "multistep", "initfinal"])
def test_one_big_split_many_spills(jobs, name):
    """Default-sized split (the three files packed into one map task), spill per record,
    wide merges."""
    files = [TEXT.encode("utf-8"), b"", "\nlast line without newline ß".encode("utf-8")]
    options = dict(workers=2, reducers=3, split_size=1 << 20, sort_buffer=1, merge_factor=3)
    parts, counters = run(jobs[name], files, "disk", **options)
    check_against_oracle(jobs[name], files, 1 << 20, 3, parts, counters)
    assert counters["framework"]["SPILL_FILES"] >= 2  # initfinal emits a few pairs a task


def test_map_only_parts_concatenate_to_emission_order(jobs):
    files = [TEXT.encode("utf-8"), b"one\n\ntwo\n"]
    parts, _ = run(jobs["maponly"], files, "disk", workers=3, reducers=2, split_size=50)
    expected = run_oracle(jobs["maponly"][0], files, 50, 2)
    assert b"".join(parts.values()) == b"".join(expected.parts.values())
    assert len(parts) == sum(-(-len(f) // 50) for f in files)  # one part per map task


def test_reducers_default_to_the_job_attribute(jobs):
    files = [TEXT.encode("utf-8")]
    parts, counters = run(jobs["order"], files, "memory", workers=2, split_size=64)
    assert len(parts) == jobs["order"][0].REDUCERS == 3
    check_against_oracle(jobs["order"], files, 64, 3, parts, counters)
