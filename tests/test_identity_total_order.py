"""Identity paths and the built-in total-order partitioner (issue 18).

* A step whose mapper or reducer is ``identity_mapper`` / ``identity_reducer`` is run by the
  kernel without calling it; its output must be byte-identical to the same job with an
  explicit identity function (which the kernel does call), and equal to the oracle's
  (tests/oracle.py, plain Python).  Random jobs and inputs, disk and memory mode.
* ``total_order_split_points``: the part files in name order hold every input record in
  Python's ``sorted()`` order (stable), each part's keys within its split points; the
  oracle partitions with Python's ``bisect`` over the natural order, the engine with
  ``bisect`` over encoded bytes.  (TeraSort against GNU ``sort``: tests/test_tera.py.)
* Bad split points and conflicting hooks: one line naming the hook, exit 1, no output.

CI runs this file on both cores (.ci/run); the kernel paths under test are the same Python
code either way, but the merge and the codec under them differ.
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce import Job, Step, identity_mapper, identity_reducer
from mapreduce.loader import load_job_class
from mapreduce.options import JobConfig
from mapreduce.runners import run_job

from oracle import natural_key, read_parts, run_oracle, write_inputs


# --- job templates: {M} is the identity mapper, {R} the identity reducer --------------------
HEADER = """
    from mapreduce import Job, Step, identity_mapper, identity_reducer

    def explicit_mapper(key, value):
        yield key, value

    def explicit_reducer(key, values):
        for value in values:
            yield key, value
"""
TEMPLATES = {
    # Two steps: words with mixed keys and values through an identity reducer, then an
    # identity mapper (step input: decoded pairs) into an identity reducer.
    "twostep": """
    class TwoStep(Job):
        def words(self, _, line):
            for i, word in enumerate(line.split()):
                yield (word.lower(), i % 2) if i % 3 else word, [len(word), word[:1], None]
                yield len(word), word.encode("utf-8")[:3]

        def steps(self):
            return [Step(mapper=self.words, reducer={R}),
                    Step(mapper={M}, reducer={R})]
    """,
    # A combiner after the identity mapper (the combining buffer's path), SORT_VALUES off;
    # then SORT_VALUES-free raw_value output through the identity reducer.
    "combined": """
    class Combined(Job):
        OUTPUT_PROTOCOL = "raw_value"

        def words(self, _, line):
            for word in line.split():
                yield word, 1

        def count(self, word, counts):
            yield word, sum(counts)

        def as_line(self, word, count):
            yield count % 3, f"{{word}} {{count}}"

        def steps(self):
            return [Step(mapper=self.words, combiner=self.count, reducer=self.count),
                    Step(mapper=self.as_line, reducer={R})]
    """,
    # SORT_VALUES: the identity reducer writes the values in sorted order.
    "sortvalues": """
    class SortValues(Job):
        SORT_VALUES = True

        def lengths(self, _, line):
            yield len(line) % 4, line
            yield None, len(line)

        def steps(self):
            return [Step(mapper=self.lengths, reducer={R}), Step(mapper={M}, reducer={R})]
    """,
    # The class-body spelling, on text input: no mapper at all (None keys) and
    # ``reducer = identity_reducer``; hooks around the identity reducer still run.
    "classbody": """
    class ClassBody(Job):
        {REDUCER}

        def reducer_final(self):
            yield "end", 1
    """,
    # Map-only: the identity mapper's records go straight to the part files.
    "maponly": """
    class MapOnly(Job):
        def steps(self):
            return [Step(mapper={M})]
    """,
}
CLASS_REDUCER = {
    True: "reducer = identity_reducer",
    False: "def reducer(self, key, values):\n            for v in values:\n"
           "                yield key, v",
}


def job_source(name: str, identity: bool) -> str:
    body = TEMPLATES[name].format(
        M="identity_mapper" if identity else "explicit_mapper",
        R="identity_reducer" if identity else "explicit_reducer",
        REDUCER=CLASS_REDUCER[identity])
    return textwrap.dedent(HEADER) + textwrap.dedent(body)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """(template, identity?) -> (job class, JobRef), each loaded from its own file."""
    d = tmp_path_factory.mktemp("jobs")
    loaded = {}
    for name in TEMPLATES:
        for identity in (True, False):
            path = d / f"{name}_{'identity' if identity else 'explicit'}.py"
            path.write_text(job_source(name, identity), encoding="utf-8")
            loaded[name, identity] = load_job_class(str(path))
    return loaded


def run(job, files: list[bytes], **options):
    """Run ``job`` over ``files``; (part files, framework counters)."""
    cls, ref = job
    d = tempfile.mkdtemp(prefix="identity-")
    try:
        out = os.path.join(d, "out")
        result = run_job(cls, ref, JobConfig(inputs=write_inputs(d, files), output_dir=out,
                                             **options))
        return read_parts(out), result.counters.get("framework", {})
    finally:
        shutil.rmtree(d, ignore_errors=True)


LINE_CHARS = st.sampled_from(list("aab  cdAB1\té日ß-"))
LINES = st.lists(st.text(LINE_CHARS, max_size=10), max_size=12)


@st.composite
def input_files(draw):
    return ["\n".join(lines).encode("utf-8") + (b"\n" if draw(st.booleans()) else b"")
            for lines in draw(st.lists(LINES, min_size=1, max_size=3))]


#: Counters that do not depend on how a task ran (not times, spills or bytes).
COUNTED = ("MAP_INPUT_RECORDS", "MAP_OUTPUT_RECORDS", "REDUCE_INPUT_GROUPS",
           "REDUCE_OUTPUT_RECORDS", "OUTPUT_RECORDS", "COMBINE_INPUT_RECORDS",
           "COMBINE_OUTPUT_RECORDS")


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=input_files(), reducers=st.integers(1, 4), split_size=st.integers(7, 120),
       sort_buffer=st.integers(1, 2048), mode=st.sampled_from(["disk", "memory"]))
def test_identity_equals_explicit_identity(jobs, name, files, reducers, split_size,
                                           sort_buffer, mode):
    options = dict(workers=1, reducers=reducers, split_size=split_size,
                   sort_buffer=sort_buffer, merge_factor=2, mode=mode)
    fast, fast_counters = run(jobs[name, True], files, **options)
    slow, slow_counters = run(jobs[name, False], files, **options)
    assert fast == slow
    assert {k: fast_counters.get(k) for k in COUNTED} == \
        {k: slow_counters.get(k) for k in COUNTED}
    expected = run_oracle(jobs[name, False][0], files, split_size, reducers)
    assert fast == expected.parts


def test_the_kernel_does_not_call_the_identity_functions(jobs, monkeypatch):
    """The shortcut is taken: with the markers' __call__ broken, the job still runs (an
    explicit-function job would fail), and a marker is still a working function."""
    def refuse(*args):
        raise AssertionError("the kernel called the identity function")
    monkeypatch.setattr(type(identity_reducer), "__call__", refuse)
    parts, _ = run(jobs["twostep", True], [b"a b c\nb c\n"], reducers=2, mode="memory",
                   workers=1)
    assert b"".join(parts.values()).count(b"\n") == 10
    monkeypatch.undo()
    assert list(identity_reducer("k", iter([1, 2]))) == [("k", 1), ("k", 2)]
    assert list(identity_mapper("k", 3)) == [("k", 3)]
    assert pickle.loads(pickle.dumps(identity_reducer)) is identity_reducer
    assert Step(reducer=identity_reducer).describe()["reducer"]


# --- the total-order partitioner -------------------------------------------------------------
TOTAL_ORDER = """
    from mapreduce import Job, identity_reducer

    class TotalOrder(Job):
        OUTPUT_PROTOCOL = "raw_value"
        KIND = {kind!r}

        def prepare(self, inputs):
            keys = sorted(self.key(line) for path in inputs
                          for line in open(path, encoding="utf-8").read().split("\\n")
                          if line)
            return {{"sample": keys[::3]}}

        def total_order_split_points(self, n):
            s = self.side_data["sample"]
            return [s[i * len(s) // n] for i in range(1, n)] if s else []

        def key(self, line):
            word = line.split(" ")[0]
            if self.KIND == "int":
                return len(word) * 7 % 11 - 5
            if self.KIND == "tuple":
                return (word[:1], len(word) % 3)
            return word

        def mapper(self, _, line):
            if line:
                yield self.key(line), line

        reducer = identity_reducer
"""


@pytest.fixture(scope="module")
def total_order_jobs(tmp_path_factory):
    d = tmp_path_factory.mktemp("total")
    loaded = {}
    for kind in ("int", "str", "tuple"):
        path = d / f"total_{kind}.py"
        path.write_text(textwrap.dedent(TOTAL_ORDER.format(kind=kind)), encoding="utf-8")
        loaded[kind] = load_job_class(str(path))
    return loaded


@pytest.mark.parametrize("kind", ["int", "str", "tuple"])
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=input_files(), reducers=st.integers(1, 5), split_size=st.integers(7, 120),
       sort_buffer=st.integers(1, 2048))
def test_total_order_output_is_sorted_input(total_order_jobs, kind, files, reducers,
                                            split_size, sort_buffer):
    cls, ref = total_order_jobs[kind]
    d = tempfile.mkdtemp(prefix="total-")
    try:
        paths = write_inputs(d, files)
        out = os.path.join(d, "out")
        run_job(cls, ref, JobConfig(inputs=paths, output_dir=out, reducers=reducers,
                                    split_size=split_size, sort_buffer=sort_buffer,
                                    merge_factor=2, workers=1))
        parts = read_parts(out)
        expected = run_oracle(cls, files, split_size, reducers, input_paths=paths)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert parts == expected.parts
    # Independently of the oracle: the concatenation is Python's stable sort of the lines.
    job = cls()
    lines = [line for data in files for line in data.decode("utf-8").split("\n") if line]
    by_key = sorted(lines, key=lambda line: natural_key(job.key(line)))
    assert b"".join(parts[name] for name in sorted(parts)) == \
        "".join(line + "\n" for line in by_key).encode("utf-8")
    assert len(parts) == reducers


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m mapreduce ...`` as a user runs it (the package installed, no flags)."""
    return subprocess.run([sys.executable, "-m", "mapreduce", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


BAD_POINTS = """
    from mapreduce import Job

    class Bad(Job):
        def total_order_split_points(self, n):
            return {points}

        def mapper(self, _, line):
            yield line, 1

        def reducer(self, key, values):
            yield key, sum(values)
"""


@pytest.mark.parametrize("points, message", [
    ('["b", "a"]', "Bad.total_order_split_points(4): split points must be in ascending "
                   "order, but 'b' comes before 'a'"),
    ('["a", "b", "c", "d"]', "Bad.total_order_split_points(4) returned 4 split points; at "
                             "most 3 for 4 partitions"),
    ('"abc"', "Bad.total_order_split_points(4) returned 'abc' (str); expected a list of keys"),
    ('[object()]', "Bad.total_order_split_points(4): split point <object object at"),
])
def test_bad_split_points_fail_in_one_line(tmp_path, points, message):
    (tmp_path / "bad.py").write_text(textwrap.dedent(BAD_POINTS.format(points=points)))
    (tmp_path / "in.txt").write_text("x\ny\n")
    done = cli("run", "bad.py", "in.txt", "-o", "out", "--reducers", "4", "-q", cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any(
        p.name.startswith("part-") or p.name == "_SUCCESS" for p in (tmp_path / "out").iterdir())


def test_a_raising_hook_is_named(tmp_path):
    (tmp_path / "bad.py").write_text(textwrap.dedent(BAD_POINTS.format(
        points='self.side_data["points"]')))
    (tmp_path / "in.txt").write_text("x\ny\n")
    done = cli("run", "bad.py", "in.txt", "-o", "out", "--max-attempts", "1", cwd=tmp_path)
    assert done.returncode == 1
    assert "total_order_split_points raised KeyError: 'points'" in done.stderr


def test_partitioner_and_total_order_together_are_refused_at_start(tmp_path):
    (tmp_path / "both.py").write_text(textwrap.dedent("""
        from mapreduce import Job

        class Both(Job):
            def partitioner(self, key, n):
                return 0

            def total_order_split_points(self, n):
                return []

            def reducer(self, key, values):
                yield key, list(values)
    """))
    (tmp_path / "in.txt").write_text("x\n")
    done = cli("run", "both.py", "in.txt", "-o", "out", "-q", cwd=tmp_path)
    assert done.returncode == 2  # a job definition error, as for every other
    assert "Both defines both partitioner() and total_order_split_points()" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_split_points_are_compared_as_encoded_keys():
    """Points of mixed types and equal-for-the-shuffle keys (1, 1.0, True) are ordered the
    engine's way; a key equal to a point goes to the partition the point starts."""
    from mapreduce.codec import encode_key
    from mapreduce.kernel import split_point_bytes
    from bisect import bisect_right

    class Mixed(Job):
        def total_order_split_points(self, n):
            return [None, 1, 1.0, "a", b"a", ("a",)][:n - 1]

    points = split_point_bytes(Mixed(), 7)
    assert points == [encode_key(p) for p in (None, 1, 1, "a", b"a", ("a",))]
    assert [bisect_right(points, encode_key(k)) for k in (None, True, 0.5, "", "b", (), ("b",))] \
        == [1, 3, 1, 3, 4, 5, 6]
    assert split_point_bytes(Job(), 3) is None
