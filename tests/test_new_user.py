"""What a new user meets around a job (issue 14): a closed stderr pipe, script mode and the
Python API's temporary directories, and the wording of progress and summary lines.

The jobs run the way a user runs them (the real CLI in a subprocess, or ``mapreduce.run``);
expected outputs are computed here with ``collections.Counter``.
"""
from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample_data")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
WORD_RE = re.compile(r"[\w']+")
TIMEOUT = 120


def _env() -> dict:
    env = dict(os.environ)
    return env


def expected_counts(*paths: str) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                counts.update(w.lower() for w in WORD_RE.findall(line))
    return counts


def output_counts(out) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for name in sorted(os.listdir(out)):
        if name.startswith("part-"):
            with open(os.path.join(out, name), encoding="utf-8") as f:
                for line in f:
                    key, value = line.rstrip("\n").split("\t")
                    counts[json.loads(key)] += json.loads(value)
    return counts


def sample_files() -> list[str]:
    return sorted(os.path.join(SAMPLE, f) for f in os.listdir(SAMPLE) if not f.startswith("_"))


#: Word count whose map tasks wait for a gate file (its path is filled in), so that a test
#: can close the reading end of stderr while the job still has lines to print.
GATED_WORDCOUNT = '''
import os, re, time
from mapreduce import Job

WORD_RE = re.compile(r"[\\w']+")
GATE = {gate!r}


class GatedWordCount(Job):
    def mapper_init(self):
        with open(f"{{GATE}}.waiting.{{os.getpid()}}", "w"):
            pass
        deadline = time.monotonic() + 60
        while not os.path.exists(GATE) and time.monotonic() < deadline:
            time.sleep(0.01)

    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)


if __name__ == "__main__":
    GatedWordCount.run()
'''


def _gated_job(tmp_path) -> tuple[str, str]:
    gate = str(tmp_path / "gate")
    job_file = tmp_path / "gated_wordcount.py"
    job_file.write_text(GATED_WORDCOUNT.format(gate=gate), encoding="utf-8")
    return str(job_file), gate


def _run_reading_stderr_once(argv: list[str], gate: str, **kwargs) -> subprocess.Popen:
    """Start ``argv`` with stderr on a pipe, read its first line and close the pipe (what
    ``| head -1`` does), then let the map tasks go: every later progress line, note and the
    summary meet a pipe nobody reads."""
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, env=_env(), cwd=REPO, **kwargs)
    first = proc.stderr.readline()
    assert b"mapreduce: running" in first, first
    proc.stderr.close()
    with open(gate, "w"):
        pass
    proc.wait(TIMEOUT)
    return proc


# --------------------------------------------------------------------------------------------
# a closed stderr pipe (item 3)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [[], ["-v"]])
def test_job_commits_when_its_stderr_pipe_is_closed(tmp_path, flags):
    job_file, gate = _gated_job(tmp_path)
    out = tmp_path / "out"
    proc = _run_reading_stderr_once(
        [sys.executable, "-m", "mapreduce", "run", job_file, SAMPLE, "-o", str(out),
         "--workers", "2", "--split-size", "64KB", *flags], gate)
    assert proc.returncode == 0
    assert os.path.exists(out / "_SUCCESS")
    assert output_counts(out) == expected_counts(*sample_files())


def test_script_mode_prints_its_output_when_its_stderr_pipe_is_closed(tmp_path):
    job_file, gate = _gated_job(tmp_path)
    with open(tmp_path / "stdout", "wb") as stdout:
        proc = _run_reading_stderr_once([sys.executable, job_file, SAMPLE, "-v"], gate,
                                        stdout=stdout)
    printed = (tmp_path / "stdout").read_text(encoding="utf-8")
    assert proc.returncode == 0
    counts: collections.Counter = collections.Counter()
    for line in printed.splitlines():
        key, value = line.split("\t")
        counts[json.loads(key)] += json.loads(value)
    assert counts == expected_counts(*sample_files())


def test_failing_job_with_closed_stderr_still_exits_1(tmp_path):
    job_file, gate = _gated_job(tmp_path)
    out = tmp_path / "out"
    src = tmp_path / "in.txt"
    src.write_bytes(b"fine line\n\xff not utf-8\n")  # the map task fails: an input error
    proc = _run_reading_stderr_once(
        [sys.executable, "-m", "mapreduce", "run", job_file, str(src), "-o", str(out)], gate)
    assert proc.returncode == 1
    assert not os.path.exists(out / "_SUCCESS")


# --------------------------------------------------------------------------------------------
# script mode and the API without an output directory (item 8)
# --------------------------------------------------------------------------------------------

RAISING_JOB = '''
from mapreduce import Job


class Raising(Job):
    def mapper(self, _, line):
        print("hello from the mapper")
        raise RuntimeError("boom")
        yield line, 1


if __name__ == "__main__":
    Raising.run()
'''

LOG_RE = re.compile(r"\(log: (\S+\.log)\)")


def _interrupt(argv: list[str], gate: str) -> tuple[int, str]:
    """Start ``argv`` (with 2 workers) as a terminal would, wait until both workers run a map
    task, press Ctrl-C (SIGINT to the process group, as a terminal sends it)."""
    import glob
    import signal
    import time
    # --split-size: several map tasks (sample_data's 4 files would be packed into one split)
    proc = subprocess.Popen(argv + ["--workers", "2", "--split-size", "64KB"],
                            stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, env=_env(), cwd=REPO,
                            start_new_session=True)
    first = proc.stderr.readline()
    assert b"mapreduce: running" in first, first
    # Not earlier: a SIGINT that lands while the coordinator forks a worker is lost (an
    # at-fork handler swallows the KeyboardInterrupt), which is not what this test is about.
    deadline = time.monotonic() + TIMEOUT
    while len(glob.glob(gate + ".waiting.*")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait(TIMEOUT)
    return proc.returncode, (first + rest).decode()


def test_script_mode_interrupt_without_output_says_nothing_is_kept(tmp_path):
    job_file, gate = _gated_job(tmp_path)
    status, stderr = _interrupt([sys.executable, job_file, SAMPLE], gate)
    assert status == 130, stderr
    assert "nothing is kept" in stderr and "with -o DIR" in stderr, stderr
    assert "run the same command with --resume" not in stderr


def test_interrupt_with_output_says_resume(tmp_path):
    job_file, gate = _gated_job(tmp_path)
    status, stderr = _interrupt([sys.executable, job_file, SAMPLE, "-o", str(tmp_path / "out")],
                                gate)
    assert status == 130, stderr
    assert "run the same command with --resume" in stderr


def test_script_mode_resume_without_output_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, WORDCOUNT, SAMPLE, "--resume"], capture_output=True,
                          text=True, timeout=TIMEOUT, env=_env(), cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("mapreduce: error: --resume needs -o OUT: without it the job "
                                   "runs in a temporary directory that is not kept, so there "
                                   "is nothing to resume")


def _kept_logs(message: str) -> tuple[str, str]:
    """The log the error names and the kept directory the note names; checks that the log
    is there, holds what the attempt printed, and is all that was kept."""
    log = LOG_RE.search(message).group(1)
    kept = re.search(r"the attempt logs are kept in (\S+);", message).group(1)
    assert log.startswith(kept + os.sep)
    with open(log, encoding="utf-8") as f:
        assert "hello from the mapper" in f.read()
    files = [os.path.join(root, name) for root, _, names in os.walk(kept) for name in names]
    assert files and all(f.endswith(".log") for f in files), files
    return log, kept


def test_script_mode_failure_keeps_the_log_it_names(tmp_path):
    job_file = tmp_path / "raising.py"
    job_file.write_text(RAISING_JOB, encoding="utf-8")
    src = tmp_path / "in.txt"
    src.write_text("a\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(job_file), str(src), "--max-attempts", "1"],
                          capture_output=True, text=True, timeout=TIMEOUT, env=_env(), cwd=REPO)
    assert proc.returncode == 1
    try:
        log, kept = _kept_logs(proc.stderr)
        assert proc.stderr.rstrip().endswith("nothing else is (no -o given): delete it when done")
    finally:
        import shutil
        match = re.search(r"the attempt logs are kept in (\S+);", proc.stderr)
        if match:
            shutil.rmtree(match.group(1), ignore_errors=True)


def test_api_failure_without_output_keeps_the_log_it_names(tmp_path):
    from mapreduce import run
    from mapreduce.errors import TaskFailedError

    job_file = tmp_path / "raising.py"
    job_file.write_text(RAISING_JOB, encoding="utf-8")
    src = tmp_path / "in.txt"
    src.write_text("a\n", encoding="utf-8")
    with pytest.raises(TaskFailedError) as info:
        run(str(job_file), str(src), max_attempts=1, progress=False)
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1, notes
    import shutil
    try:
        _kept_logs(str(info.value) + "\n" + notes[0])
    finally:
        shutil.rmtree(re.search(r"kept in (\S+);", notes[0]).group(1), ignore_errors=True)


def test_api_result_without_cleanup_is_removed_when_python_exits(tmp_path):
    """``run()`` without ``output=`` and without ``with``/``cleanup()``: the temporary
    directory lives as long as the process (readable through the result), no longer."""
    code = ("import os, sys\n"
            "from mapreduce import run\n"
            "result = run(sys.argv[1], sys.argv[2], progress=False)\n"
            "assert os.path.exists(os.path.join(result.output_dir, '_SUCCESS'))\n"
            "print(result.output_dir)\n"
            "out = run(sys.argv[1], sys.argv[2], progress=False).output_dir\n"
            "assert os.path.exists(os.path.join(out, '_SUCCESS')), 'removed while in use'\n"
            "print(out)\n")
    proc = subprocess.run([sys.executable, "-c", code, WORDCOUNT, SAMPLE], capture_output=True,
                          text=True, timeout=TIMEOUT, env=_env(), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    outs = proc.stdout.split()
    assert len(outs) == 2
    for out in outs:
        assert not os.path.exists(os.path.dirname(out)), f"{out} left behind"


def test_cancelled_handle_reads_cancelled_and_keeps_nothing(tmp_path):
    from mapreduce import run_async
    from mapreduce.errors import JobCancelledError

    job_file, gate = _gated_job(tmp_path)
    handle = run_async(job_file, SAMPLE, progress=False)
    assert handle.cancel()
    assert handle.wait(TIMEOUT)
    assert "cancelled" in repr(handle) and "failed" not in repr(handle), repr(handle)
    with pytest.raises(JobCancelledError) as info:
        handle.result()
    notes = getattr(info.value, "__notes__", [])
    assert notes and "cannot be resumed" in notes[0], notes
    with open(gate, "w"):
        pass


# --------------------------------------------------------------------------------------------
# plurals (item 9)
# --------------------------------------------------------------------------------------------

def test_progress_and_summary_say_one_task_not_one_tasks(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("alpha beta\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "mapreduce", "run", WORDCOUNT, str(src), "-o",
                           str(out), "--workers", "1", "--reducers", "1"], capture_output=True,
                          text=True, timeout=TIMEOUT, env=_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    text = proc.stderr
    for wrong in re.findall(r"\b1 (?:map )?(?:tasks|workers|reducers|steps|part files|"
                            r"attempt logs)\b", text):
        pytest.fail(f"{wrong!r} in:\n{text}")
    assert "1 map task over" in text and "1 step, 1 reducer, 1 worker," in text, text
    assert "step 0 map: 1 task\n" in text and "step 0 map: done, 1 task in" in text, text
    assert "(1 part file, " in text, text
    assert re.search(r"step 0 map\s+1 task ", text), text
