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
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
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
