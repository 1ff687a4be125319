"""The Python API (``mapreduce.run``, ``run_async``): results checked against plain Python.

Word counts are compared with ``collections.Counter`` over the same files; the async handle is
driven deterministically with the gated job of the fault-tolerance tests (its map tasks wait
for a gate file), so no test depends on how fast anything runs.
"""
from __future__ import annotations

import collections
import json
import os
import re
import sys
import types

import pytest

import mapreduce
from mapreduce import Job, run, run_async
from mapreduce.errors import JobCancelledError, TaskFailedError, UsageError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample_data")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
GATED = os.path.join(REPO, "tests", "ft_jobs", "gated.py")
JOBS = os.path.join(REPO, "tests", "jobs")
WORD_RE = re.compile(r"[\w']+")


def sample_counts(paths=None) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for root, _, names in os.walk(SAMPLE):
        for name in names:
            if not name.startswith(("_", ".")):
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    counts.update(w.lower() for w in WORD_RE.findall(f.read()))
    return counts


def write_words(path, n_lines=400):
    words = [f"w{i % 37}" for i in range(n_lines * 5)]
    with open(path, "w") as f:
        for i in range(n_lines):
            f.write(" ".join(words[i * 5:(i + 1) * 5]) + "\n")
    return collections.Counter(words)


class ApiWordCount(Job):
    REDUCERS = 3

    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            self.increment_counter("api", "words")
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)


def test_run_job_file_returns_counters_timings_and_decoded_pairs(tmp_path):
    result = run(WORDCOUNT, SAMPLE, str(tmp_path / "out"), reducers=2, workers=2)
    expected = sample_counts()
    pairs = list(result.pairs())
    assert dict(pairs) == dict(expected)
    assert len(pairs) == len(expected)            # no key twice
    assert result.output_dir == str(tmp_path / "out")
    assert len(result.part_files) == 2
    assert result.counter("framework", "REDUCE_OUTPUT_RECORDS") == len(expected)
    assert result.counters["framework"]["MAP_OUTPUT_RECORDS"] == sum(expected.values())
    assert set(result.phases) == {"step 0 map", "step 0 reduce"}
    assert all(seconds >= 0 for seconds in result.phases.values())
    assert result.wall_seconds > 0
    with open(tmp_path / "out" / "_job.json") as f:
        assert result.summary == json.load(f)


def test_run_job_class_without_output_uses_a_temporary_dir(tmp_path):
    src = tmp_path / "in.txt"
    expected = write_words(src)
    with run(ApiWordCount, str(src), workers=None, reducers=None) as result:  # = defaults
        out = result.output_dir
        assert dict(result) == dict(expected)   # iterating a result gives its pairs
        assert result.counter("api", "words") == sum(expected.values())
        assert os.path.isdir(out)
    assert not os.path.exists(out)              # the context manager removed it


def test_job_class_without_a_source_file_runs(tmp_path):
    """A notebook cell's class has no file: the fingerprint falls back to its source."""
    module = types.ModuleType("notebook_cell")
    exec("from mapreduce import Job\n"
         "class Cell(Job):\n"
         "    def mapper(self, _, line):\n"
         "        yield len(line), 1\n"
         "    def reducer(self, n, ones):\n"
         "        yield n, sum(ones)\n", module.__dict__)
    sys.modules["notebook_cell"] = module
    try:
        src = tmp_path / "in.txt"
        src.write_text("a\nbb\ncc\n\n")
        with run(module.Cell, str(src)) as result:
            assert sorted(result.pairs()) == [[0, 1], [1, 1], [2, 2]] or \
                sorted(map(tuple, result.pairs())) == [(0, 1), (1, 1), (2, 2)]
    finally:
        del sys.modules["notebook_cell"]


def test_raw_value_output_decodes_to_none_keys(tmp_path):
    teragen = os.path.join(REPO, "jobs", "teragen.py")
    spec = tmp_path / "spec.txt"
    import subprocess
    subprocess.run([sys.executable, teragen, "--write-spec", str(spec), "--rows", "50",
                    "--tasks", "2"], check=True, cwd=REPO, capture_output=True)
    with run(teragen, str(spec)) as result:
        pairs = list(result.pairs())
        lines = b"".join(open(p, "rb").read() for p in result.part_files).decode().splitlines()
    assert len(pairs) == 50
    assert pairs == [(None, line) for line in lines]


def test_job_options_and_bad_options_raise_the_cli_messages(tmp_path):
    src = tmp_path / "in.txt"
    write_words(src)
    with pytest.raises(UsageError, match="unknown option.*sort_bufer"):
        run(WORDCOUNT, str(src), sort_bufer="1MB")
    with pytest.raises(UsageError, match="sort_buffer: invalid size 'lots'"):
        run(WORDCOUNT, str(src), sort_buffer="lots")
    with pytest.raises(UsageError, match=r"workers: must be at least 1 \(got 0\)"):
        run(WORDCOUNT, str(src), workers=0)
    with pytest.raises(UsageError, match="mode: must be one of disk, memory"):
        run(WORDCOUNT, str(src), mode="ram")
    with pytest.raises(UsageError, match="WordCount has no option top"):
        run(WORDCOUNT, str(src), job_options={"top": 3})
    with pytest.raises(UsageError, match="not a mapreduce.Job subclass"):
        run(dict, str(src))
    top = os.path.join(REPO, "jobs", "top_words.py")
    with run(top, str(src), job_options={"top": 3}) as result:
        pairs = list(result.pairs())
    assert len(pairs) == 3


def test_failed_job_raises_its_one_line_error(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("fine\nBOOM here\n")
    with pytest.raises(TaskFailedError) as info:
        run(os.path.join(JOBS, "raising.py"), str(src), str(tmp_path / "out"), max_attempts=1)
    assert "\n" not in str(info.value)
    assert not os.path.exists(tmp_path / "out" / "_SUCCESS")


@pytest.fixture
def gate(tmp_path, monkeypatch):
    """Hold every map task of the gated job until the test opens the gate."""
    path = tmp_path / "gate"
    monkeypatch.setenv("FT_GATE", str(path))
    monkeypatch.setenv("FT_GATE_MAX", "120")
    return path


def test_async_handle_reports_progress_waits_and_returns(tmp_path, gate):
    src = tmp_path / "in.txt"
    expected = write_words(src, 2000)
    handle = run_async(GATED, str(src), str(tmp_path / "out"), split_size="4KB", workers=2,
                       reducers=2)
    assert handle.wait(0.3) is False            # the gate is shut: it cannot have finished
    assert not handle.ready()
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.01)
    with pytest.raises(RuntimeError):
        handle.successful()
    first = handle.progress
    assert first.done == 0 and not first.finished and first.fraction == 0.0
    assert "JobHandle Gated" in repr(handle)
    gate.write_text("")
    result = handle.result(timeout=120)
    assert handle.ready() and handle.successful()
    assert dict(result.pairs()) == dict(expected)
    last = handle.progress
    assert last.finished and last.fraction == 1.0
    assert last.phase == "step 0 reduce" and last.done == last.total == 2
    assert last.phases_done == 2 and last.failed == 0
    assert handle.cancel() is False             # too late: it finished


def test_cancel_stops_the_job_and_resume_finishes_it(tmp_path, gate):
    src = tmp_path / "in.txt"
    expected = write_words(src, 2000)
    out = str(tmp_path / "out")
    handle = run_async(GATED, str(src), out, split_size="4KB", workers=2)
    assert handle.progress.finished is False
    assert handle.cancel() is True
    assert handle.wait(60)
    assert not handle.successful()
    with pytest.raises(JobCancelledError, match="resume=True"):
        handle.result()
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    gate.write_text("")
    resumed = run(GATED, str(src), out, split_size="4KB", workers=2, resume=True)
    assert dict(resumed.pairs()) == dict(expected)
    assert resumed.summary["runs"] == 2


def test_async_error_is_raised_by_result(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("BOOM\n")
    handle = run_async(os.path.join(JOBS, "raising.py"), str(src), max_attempts=1)
    assert handle.wait(60)
    assert not handle.successful()
    with pytest.raises(TaskFailedError):
        handle.result()


def test_bad_option_raises_before_anything_starts(tmp_path):
    with pytest.raises(UsageError):
        run_async(WORDCOUNT, SAMPLE, str(tmp_path / "out"), merge_factor=1)
    assert not os.path.exists(tmp_path / "out")


def test_progress_bar_in_a_notebook_like_stream(tmp_path, capsys, monkeypatch):
    """progress=True draws tqdm's text bar on stderr (what a Jupyter cell shows)."""
    monkeypatch.setenv("MAPREDUCE_PROGRESS", "bar")
    src = tmp_path / "in.txt"
    write_words(src)
    with run(WORDCOUNT, str(src), progress=True, reducers=2):
        pass
    err = capsys.readouterr().err
    assert "step 0 map: 100%" in err and "step 0 reduce: 100%" in err and "\r" in err
    with run(WORDCOUNT, str(src), progress=False):
        pass
    assert capsys.readouterr().err == ""


def test_lazy_exports():
    assert mapreduce.run is run and mapreduce.RunResult.__name__ == "RunResult"
    with pytest.raises(AttributeError):
        mapreduce.no_such_name  # noqa: B018


class LoggingJob(Job):
    def mapper(self, _, line):
        import logging
        logging.getLogger("in-task").warning("LOGGED %s", line)
        print("PRINTED", line)
        yield line, 1


def test_task_logging_reaches_attempt_logs_even_when_the_caller_redirected_it(tmp_path):
    """A notebook's logging.basicConfig and sys.stderr are in-process objects: in a forked
    worker they must give way to the attempt's log file, not swallow (or corrupt) output."""
    import io
    import logging
    src = tmp_path / "in.txt"
    src.write_text("a\nb\nc\n")
    caller_stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.StreamHandler(caller_stream)
    root.handlers = [handler]
    saved_stderr, sys.stderr = sys.stderr, caller_stream
    try:
        result = run(LoggingJob, str(src), str(tmp_path / "out"), workers=1)
    finally:
        sys.stderr = saved_stderr
        root.handlers = saved
    logs = "".join(open(os.path.join(result.output_dir, "_logs", name)).read()
                   for name in os.listdir(os.path.join(result.output_dir, "_logs")))
    for line in "abc":
        assert f"LOGGED {line}" in logs and f"PRINTED {line}" in logs
    assert "LOGGED" not in caller_stream.getvalue()


def test_step_reducers_and_counters_per_step(tmp_path):
    """Step(reducers=1) keeps its own reducer count under reducers=4 (one part file, not one
    with the output and three empty), and the job-level OUTPUT_RECORDS is the output's own
    line count, not the sum over both steps; each step keeps its counters (issue 14)."""
    src = tmp_path / "in.txt"
    src.write_text("b a c a b a d\nd d d e\n")
    with run(os.path.join(JOBS, "top_one_reducer.py"), str(src), str(tmp_path / "out"),
             reducers=4) as result:
        parts = result.part_files
        lines = b"".join(open(p, "rb").read() for p in parts).splitlines()
        assert [os.path.basename(p) for p in parts] == ["part-00000"]
        assert list(result.pairs()) == [("d", 4), ("a", 3), ("b", 2)]
        assert result.counter("framework", "OUTPUT_RECORDS") == len(lines) == 3
        assert result.counter("framework", "MAP_INPUT_RECORDS") == 2  # the input's lines
        first, second = result.step_counters
        assert first["framework"]["OUTPUT_RECORDS"] == 5      # distinct words
        assert first["framework"]["MAP_INPUT_RECORDS"] == 2
        assert second["framework"]["MAP_INPUT_RECORDS"] == 5
        assert second["framework"]["OUTPUT_RECORDS"] == 3
        steps = result.summary["steps"]
        assert [s["reducers"] for s in steps] == [4, 1] and result.summary["schema"] == 2
