"""Messages speak the user's language: a hint names options the way the user gives them.

A command-line user reads ``--decode-errors replace``, ``--skip-bad-records``, ``--job NAME``,
``--runner spark``; a caller of :func:`mapreduce.run` reads ``decode_errors="replace"``,
``skip_bad_records``, ``job_name="NAME"``, ``runner="spark"`` (the option table's
:class:`~mapreduce.options.Spelling`).  Every case runs the way a user would: the real
command line (``python -m mapreduce``) or a real call of ``mapreduce.run``.  Also here: Spark
without Java or pyspark fails in one line *before* anything is created, and an empty
``--work-dir`` is refused.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

import mapreduce
from mapreduce.errors import JobDefinitionError, MapReduceError, UsageError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
SAMPLE = os.path.join(REPO, "sample_data")
RAISING = os.path.join(REPO, "tests", "jobs", "raising.py")
TWO_JOBS = os.path.join(REPO, "tests", "jobs", "two_jobs.py")
#: The progress lines a run prints to stderr ("2026-01-01 12:00:00 mapreduce: ...").
PROGRESS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d mapreduce: ")


def cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapreduce", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def python(code: str, env=None) -> subprocess.CompletedProcess:
    """A user's script calling the API, in its own process (for a changed PATH)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr without progress lines."""
    return [ln for ln in proc.stderr.splitlines() if not PROGRESS.match(ln)]


def bad_utf8(tmp_path) -> str:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nbad \xff byte\n")
    return str(path)


# --- (a) the --decode-errors hint ---------------------------------------------------------------
@pytest.mark.parametrize("runner", ["local", "inline"])
def test_decode_errors_hint_from_python_spells_the_keyword(tmp_path, runner):
    with pytest.raises(MapReduceError) as info:
        mapreduce.run(WORDCOUNT, bad_utf8(tmp_path), str(tmp_path / "out"), runner=runner)
    message = str(info.value).replace(str(tmp_path), "TMP")
    assert "invalid UTF-8 at byte offset 14" in message
    assert 'use decode_errors="replace" to decode leniently' in message
    assert "--decode-errors" not in message
    # the hint works as given
    result = mapreduce.run(WORDCOUNT, bad_utf8(tmp_path), str(tmp_path / "out2"),
                           runner=runner, decode_errors="replace")
    assert dict(result.pairs()) == {"good": 1, "line": 1, "bad": 1, "byte": 1}


def test_decode_errors_hint_on_the_command_line_spells_the_flag(tmp_path):
    proc = cli("run", WORDCOUNT, bad_utf8(tmp_path), "-o", tmp_path / "out")
    assert proc.returncode == 1
    [line] = errors(proc)
    line = line.replace(str(tmp_path), "TMP")  # the test's name is in tmp_path
    assert line.startswith("mapreduce: error: ") and "invalid UTF-8" in line
    assert "use --decode-errors replace to decode leniently" in line
    assert "decode_errors" not in line


# --- (a) the --skip-bad-records limit -----------------------------------------------------------
def booms(tmp_path, n: int) -> str:
    path = tmp_path / "booms.txt"
    path.write_text("".join(f"line {i}\n" if i % 3 else f"BOOM {i}\n" for i in range(3 * n)))
    return str(path)


@pytest.mark.parametrize("runner", ["local", "inline"])
def test_skip_bad_records_limit_from_python_spells_the_keyword(tmp_path, runner):
    with pytest.raises(MapReduceError) as info:
        mapreduce.run(RAISING, booms(tmp_path, 3), str(tmp_path / "out"), runner=runner,
                      skip_bad_records=2)
    message = str(info.value).replace(str(tmp_path), "TMP")
    assert "more than skip_bad_records=2 bad records" in message, message
    assert "--skip-bad-records" not in message


def test_skip_bad_records_limit_on_the_command_line_spells_the_flag(tmp_path):
    proc = cli("run", RAISING, booms(tmp_path, 3), "-o", tmp_path / "out",
               "--skip-bad-records", "2")
    assert proc.returncode == 1
    line = errors(proc)[0].replace(str(tmp_path), "TMP")
    assert "more than --skip-bad-records=2 bad records" in line, proc.stderr
    assert "skip_bad_records" not in line


# --- (b) a file with several jobs ----------------------------------------------------------------
def test_several_jobs_in_a_file_from_python_says_job_name(tmp_path):
    with pytest.raises(JobDefinitionError) as info:
        mapreduce.run(TWO_JOBS, SAMPLE, str(tmp_path / "out"))
    assert str(info.value).endswith(
        "defines several Job subclasses (CountLines, CountChars); pick one with "
        'job_name="NAME"')
    assert not (tmp_path / "out").exists()
    # and the advice works
    result = mapreduce.run(TWO_JOBS, SAMPLE, str(tmp_path / "out"), job_name="CountChars")
    assert [k for k, _ in result.pairs()] == ["chars"]


def test_several_jobs_in_a_file_on_the_command_line_says_job(tmp_path):
    proc = cli("run", TWO_JOBS, SAMPLE, "-o", tmp_path / "out")
    assert proc.returncode == 2
    assert errors(proc) == [f"mapreduce: error: {TWO_JOBS}: defines several Job subclasses "
                            "(CountLines, CountChars); pick one with --job NAME"]


# --- (c) Spark without Java or pyspark: one line, before anything is created -------------------
def _without_java() -> dict:
    """The user's environment minus Java: no JAVA_HOME, a PATH holding only this Python."""
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = os.path.dirname(sys.executable)
    assert not any(os.access(os.path.join(d, "java"), os.X_OK)
                   for d in env["PATH"].split(os.pathsep))
    return env


def test_spark_without_java_is_one_line_and_leaves_no_output(tmp_path):
    out = tmp_path / "out"
    proc = cli("run", WORDCOUNT, SAMPLE, "-o", out, "--runner", "spark", env=_without_java())
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "mapreduce: error: --runner spark needs Java 17+ and no java is on PATH: install "
        "Java 17 or later (e.g. apt-get install openjdk-17-jre-headless) or point JAVA_HOME "
        "at one"]
    assert not out.exists()


def test_spark_without_java_from_python_spells_the_keyword(tmp_path):
    out = tmp_path / "out"
    proc = python(f"""
        import mapreduce
        from mapreduce.errors import UsageError
        try:
            mapreduce.run({WORDCOUNT!r}, {SAMPLE!r}, {str(out)!r}, runner="spark")
        except UsageError as exc:
            print(exc)
        """, env=_without_java())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('runner="spark" needs Java 17+ and no java is on PATH: ')
    assert not out.exists()


BLOCK_PYSPARK = """
import importlib.abc, sys
class _NoPyspark(importlib.abc.MetaPathFinder):  # as if pyspark were not installed
    def find_spec(self, name, path, target=None):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _NoPyspark())
"""


def test_spark_without_pyspark_is_one_line_and_leaves_no_output(tmp_path):
    out = tmp_path / "out"
    proc = python(BLOCK_PYSPARK + textwrap.dedent(f"""
        from mapreduce.cli import main
        sys.exit(main(["run", {WORDCOUNT!r}, {SAMPLE!r}, "-o", {str(out)!r},
                       "--runner", "spark"]))
        """))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "mapreduce: error: --runner spark needs pyspark: pip install 'mapreduce[spark]'"]
    assert not out.exists()


# --- (d) an empty --work-dir ----------------------------------------------------------------------
def test_empty_work_dir_is_refused_on_the_command_line(tmp_path):
    out = tmp_path / "out"
    proc = cli("run", WORDCOUNT, SAMPLE, "-o", out, "--work-dir", "")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "mapreduce: error: --work-dir: must not be empty (got ''); leave the option out for "
        "its default"]
    assert not out.exists()


def test_empty_work_dir_is_refused_from_python(tmp_path):
    with pytest.raises(UsageError, match=r"^work_dir: must not be empty \(got ''\)"):
        mapreduce.run(WORDCOUNT, SAMPLE, str(tmp_path / "out"), work_dir="")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_spark_master_other_than_the_running_context_is_refused_before_output(tmp_path):
    """A notebook's own SparkContext on local[2]; a job asking for local[1] is refused,
    spelled the Python way, and leaves nothing behind (slow: starts a JVM)."""
    pytest.importorskip("pyspark")
    out = tmp_path / "out"
    proc = python(f"""
        import mapreduce
        from pyspark import SparkContext
        from mapreduce.errors import UsageError
        sc = SparkContext("local[2]", "notebook")
        try:
            mapreduce.run({WORDCOUNT!r}, {SAMPLE!r}, {str(out)!r}, runner="spark",
                          spark_master="local[1]")
        except UsageError as exc:
            print(exc)
        finally:
            sc.stop()
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "spark_master local[1] differs from the master of the SparkContext already running "
        "in this process (local[2]); omit spark_master or stop that context first"]
    assert not out.exists()
