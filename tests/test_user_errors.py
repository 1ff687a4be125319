"""A new user's mistakes, reported as mistakes (issue 14): not as crashes, not retried, not
silently accepted.

* option prefixes (``--overwrit``, ``--reducer 2``) are not options;
* a job method that yields something that is not a ``(key, value)`` pair is named with what it
  yielded and where, and fails at once (a deterministic mistake is not retried);
* the job's own options (``configure_args``) are checked before any task starts, from the
  command line, script mode and the Python API.

Every case runs the real CLI (or the API) the way a user would; the expected output is
computed here in plain Python.
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
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
PREFIX = "mapreduce: error: "
TIMEOUT = 120
PROGRESS_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d mapreduce: ")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_cli(*args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapreduce", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT, env=_env())


def run_script(job_file, *args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(job_file), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT, env=_env())


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr without the progress lines."""
    return [line for line in proc.stderr.splitlines() if not PROGRESS_LINE.match(line)]


def failed_attempts(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines()
            if PROGRESS_LINE.match(line) and " failed: " in line]


def assert_nothing_written(out) -> None:
    if os.path.exists(out):
        names = os.listdir(out)
        assert "_SUCCESS" not in names and "_job.json" not in names, names
        assert not [n for n in names if n.startswith("part-")], names


@pytest.fixture
def small_input(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("alpha beta\ngamma alpha\n", encoding="utf-8")
    return src


# --------------------------------------------------------------------------------------------
# option prefixes are not options
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, prefix", [
    (["--overwrit"], "--overwrit"),
    (["--reducer", "2"], "--reducer"),
    (["--sort-buf", "1MB"], "--sort-buf"),
])
def test_run_rejects_option_prefixes(tmp_path, small_input, argv, prefix):
    out = tmp_path / "out"
    proc = run_cli("run", WORDCOUNT, small_input, "-o", out, *argv)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and prefix in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(out)


def test_script_mode_rejects_option_prefixes(tmp_path, small_input):
    proc = run_script(WORDCOUNT, small_input, "--reducer", "2")
    assert proc.returncode == 2, proc.stderr
    assert "unrecognized arguments: --reducer" in proc.stderr
    assert proc.stdout == ""


def test_job_option_prefix_is_rejected(tmp_path, small_input):
    job_file = tmp_path / "top.py"
    job_file.write_text(JOB_WITH_OPTIONS, encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli("run", job_file, small_input, "-o", out, "--sample-size", "2", "--uni", "b")
    assert proc.returncode == 2, proc.stderr
    assert "unrecognized arguments: --uni" in proc.stderr
    assert not os.path.exists(out)


def test_report_and_bench_reject_option_prefixes(tmp_path, small_input):
    proc = run_cli("report", tmp_path, "--outp", tmp_path / "r.html")
    assert proc.returncode == 2 and "unrecognized arguments: --outp" in proc.stderr
    proc = run_cli("bench", WORDCOUNT, small_input, "--repea", "1")
    assert proc.returncode == 2 and "unrecognized arguments: --repea" in proc.stderr


#: A job with options of its own, as a user writes one (used by the job-option tests below).
JOB_WITH_OPTIONS = '''
from mapreduce import Job


class Sample(Job):
    REDUCERS = 1

    def configure_args(self, parser):
        parser.add_argument("--sample-size", type=int, required=True)
        parser.add_argument("--unit", choices=["a", "b"], default="a")

    def mapper(self, _, line):
        yield self.options.unit, self.options.sample_size

    def reducer(self, unit, sizes):
        yield unit, sum(sizes)


if __name__ == "__main__":
    Sample.run()
'''
