"""Bad input, bad options and failing jobs: the CLI's error contract, end to end.

Each case runs ``python -m mapreduce run ...`` in a subprocess and checks that

* the exit status is 1 (the job or its input failed) or 2 (bad usage, option or job file);
* stderr starts with ONE line ``mapreduce: error: ...`` naming the file, line, option or task
  at fault (argparse's own errors, also exit 2, are ``usage: ...`` then ``...: error: ...``);
* there is no framework "Traceback" on stderr -- only after a failed *task* may the user's
  traceback follow, and then only after that first line;
* nothing is half-written: no ``_SUCCESS``, no ``_job.json`` and no ``part-*`` file in OUT.
"""
from __future__ import annotations

import bz2
import glob
import gzip
import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample_data")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
JOBS = os.path.join(REPO, "tests", "jobs")
PREFIX = "mapreduce: error: "
TIMEOUT = 120


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def run_cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "mapreduce", "run", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT, env=env)


def job(name: str) -> str:
    return os.path.join(JOBS, name)


def assert_nothing_written(out) -> None:
    out = str(out)
    if not os.path.exists(out):
        return
    assert os.path.isdir(out)
    names = os.listdir(out)
    assert "_SUCCESS" not in names, names
    assert "_job.json" not in names, names
    assert not [n for n in names if n.startswith("part-")], names


#: The progress display's lines when stderr is not a terminal (mapreduce.progress): they
#: precede an error; the error report itself starts at the first line that is not one.
PROGRESS_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d mapreduce: ")


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """stderr without the progress lines: the error report."""
    return [line for line in proc.stderr.splitlines() if not PROGRESS_LINE.match(line)]


def first_line(proc: subprocess.CompletedProcess) -> str:
    lines = stderr_lines(proc)
    assert lines, "nothing on stderr"
    return lines[0]


def assert_error(proc, out, status: int, *needles: str, detail: int = 0) -> str:
    """A non-task failure: one stderr line (plus ``detail`` lines of the user's own file, for
    a job file that does not load), no framework traceback, nothing written."""
    assert proc.returncode == status, (
        f"exit {proc.returncode}, expected {status}\nstderr:\n{proc.stderr}")
    line = first_line(proc)
    assert line.startswith(PREFIX), proc.stderr
    for needle in needles:
        assert needle in line, f"{needle!r} not in error line {line!r}"
    assert "Traceback" not in proc.stderr, f"framework traceback on stderr:\n{proc.stderr}"
    assert len(stderr_lines(proc)) == 1 + detail, f"unexpected stderr lines:\n{proc.stderr}"
    assert proc.stdout == ""
    assert_nothing_written(out)
    return line


def assert_task_failed(proc, out, *needles: str) -> str:
    """A failed task: exit 1, the error line first, then (optionally) the user's traceback."""
    assert proc.returncode == 1, f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    line = first_line(proc)
    assert line.startswith(PREFIX), proc.stderr
    for needle in needles:
        assert needle in line, f"{needle!r} not in error line {line!r}"
    assert "Traceback" not in line
    assert proc.stdout == ""
    assert_nothing_written(out)
    return line


def assert_argparse_error(proc, out, option: str) -> None:
    """argparse's own rejection of an option value: exit 2, the option named, no traceback."""
    assert proc.returncode == 2, f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    errors = [x for x in stderr_lines(proc) if "error:" in x]
    assert len(errors) == 1, proc.stderr
    assert option in errors[0], proc.stderr
    assert proc.stdout == ""
    assert_nothing_written(out)
    assert not os.path.exists(out), "OUT created although the options were rejected"


@pytest.fixture
def small_input(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("alpha beta\ngamma alpha\n", encoding="utf-8")
    return src


# --------------------------------------------------------------------------------------------
# input paths
# --------------------------------------------------------------------------------------------

def test_nonexistent_input_path(tmp_path):
    missing = tmp_path / "no-such-file.txt"
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, missing, "-o", out)
    assert_error(proc, out, 1, str(missing))


def test_one_missing_among_good_inputs(tmp_path, small_input):
    missing = tmp_path / "missing.txt"
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, small_input, missing, "-o", out)
    assert_error(proc, out, 1, str(missing))


def test_glob_matching_nothing(tmp_path):
    pattern = str(tmp_path / "nothing-*.txt")
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, pattern, "-o", out)
    assert_error(proc, out, 1, pattern)


def test_glob_matching_only_hidden_files(tmp_path):
    (tmp_path / "_hidden.txt").write_text("x\n")
    (tmp_path / ".dot.txt").write_text("x\n")
    pattern = str(tmp_path / "*.txt")
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, pattern, "-o", out)
    assert_error(proc, out, 1, pattern)


def test_directory_without_input_files(tmp_path):
    d = tmp_path / "indir"
    (d / ".git").mkdir(parents=True)
    (d / ".git" / "config").write_text("x\n")
    (d / "_SUCCESS").write_text("")
    (d / "_logs").mkdir()
    (d / "_logs" / "log.txt").write_text("x\n")
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, d, "-o", out)
    assert_error(proc, out, 1, str(d))


# --------------------------------------------------------------------------------------------
# bad bytes in input files
# --------------------------------------------------------------------------------------------

def test_truncated_gz_names_the_file(tmp_path):
    data = "".join(f"line {i} some words here\n" for i in range(5000)).encode()
    blob = gzip.compress(data)
    bad = tmp_path / "truncated.txt.gz"
    bad.write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, bad, "-o", out)
    line = assert_error(proc, out, 1, str(bad))
    assert "gz" in line


def test_corrupt_bz2_names_the_file(tmp_path):
    blob = bz2.compress(b"hello world\n" * 1000)
    bad = tmp_path / "corrupt.bz2"
    bad.write_bytes(blob[:10] + b"\x00" * 40 + blob[50:])
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, bad, "-o", out)
    assert_error(proc, out, 1, str(bad))


def test_not_utf8_names_file_and_byte_offset(tmp_path):
    bad = tmp_path / "latin1.txt"
    content = "first line\ncaf".encode() + b"\xe9" + b" au lait\nlast\n"
    bad.write_bytes(content)
    offset = content.index(b"\xe9")  # 14
    out = tmp_path / "out"
    proc = run_cli(job("map_only.py"), bad, "-o", out)
    line = assert_error(proc, out, 1, str(bad))
    assert f"offset {offset}" in line, line


def test_not_utf8_offset_is_in_the_file_not_the_split(tmp_path):
    """The bad byte is in the third split: the offset reported is the file offset."""
    bad = tmp_path / "bad.txt"
    good = b"".join(b"%05d abcdefghijklmnopqrstuvwxyz\n" % i for i in range(200))  # 6400 B
    content = good + b"oops \xff\xfe here\n" + good
    bad.write_bytes(content)
    offset = content.index(b"\xff")
    out = tmp_path / "out"
    proc = run_cli(job("map_only.py"), bad, "-o", out, "--split-size", "3KB")
    line = assert_task_failed(proc, out, str(bad))
    assert f"offset {offset}" in line, line


def test_not_utf8_succeeds_with_decode_errors_replace(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"first line\ncaf\xe9 au lait\nlast\n")
    out = tmp_path / "out"
    proc = run_cli(job("map_only.py"), bad, "-o", out, "--decode-errors", "replace")
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(out / "_SUCCESS")
    pairs = []
    for path in sorted(glob.glob(str(out / "part-*"))):
        with open(path, encoding="utf-8") as f:
            for text in f:
                k, v = text.rstrip("\n").split("\t")
                pairs.append((json.loads(k), json.loads(v)))
    assert pairs == [(10, "first line"), (12, "caf\ufffd au lait"), (4, "last")]


# --------------------------------------------------------------------------------------------
# job files
# --------------------------------------------------------------------------------------------

def test_nonexistent_job_file(tmp_path, small_input):
    missing = tmp_path / "no_such_job.py"
    out = tmp_path / "out"
    proc = run_cli(missing, small_input, "-o", out)
    assert_error(proc, out, 2, str(missing))


def test_job_file_is_a_directory(tmp_path, small_input):
    out = tmp_path / "out"
    proc = run_cli(JOBS, small_input, "-o", out)
    assert_error(proc, out, 2, JOBS)


def test_job_file_with_syntax_error(tmp_path, small_input):
    out = tmp_path / "out"
    path = job("syntax_error.py")
    with open(path, encoding="utf-8") as f:
        bad_line = next(i for i, text in enumerate(f, 1) if text.strip().startswith("def mapper"))
    proc = run_cli(path, small_input, "-o", out)
    line = assert_error(proc, out, 2, "syntax_error.py", detail=3)
    assert f"{path}:{bad_line}" in line or f"line {bad_line}" in line, line
    # Then Python's own view of the error: the file and line, the line's text, a caret.
    detail = stderr_lines(proc)[1:]
    assert detail[0] == f'  File "{path}", line {bad_line}'
    assert detail[1].strip().startswith("def mapper") and detail[2].strip() == "^"


def test_job_file_raising_on_import(tmp_path, small_input):
    out = tmp_path / "out"
    proc = run_cli(job("raises_on_import.py"), small_input, "-o", out)
    line = assert_error(proc, out, 2, "raises_on_import.py", "RuntimeError", detail=3)
    assert ":9" in line or "line 9" in line, line
    # Then the job file's own frames only: no importlib or framework frames.
    detail = stderr_lines(proc)[1:]
    assert detail[0] == f'  File "{job("raises_on_import.py")}", line 9, in <module>', detail


def test_file_without_job_subclass(tmp_path, small_input):
    out = tmp_path / "out"
    proc = run_cli(job("not_a_job.py"), small_input, "-o", out)
    assert_error(proc, out, 2, "not_a_job.py", "Job")


def test_two_job_subclasses_need_job_option(tmp_path, small_input):
    out = tmp_path / "out"
    proc = run_cli(job("two_jobs.py"), small_input, "-o", out)
    assert_error(proc, out, 2, "two_jobs.py", "CountLines", "CountChars", "--job")


def test_job_option_naming_missing_class(tmp_path, small_input):
    out = tmp_path / "out"
    proc = run_cli(job("two_jobs.py"), small_input, "-o", out, "--job", "NoSuchJob")
    assert_error(proc, out, 2, "two_jobs.py", "NoSuchJob")


# --------------------------------------------------------------------------------------------
# output location
# --------------------------------------------------------------------------------------------

def test_output_dir_not_empty_needs_overwrite(tmp_path, small_input):
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "precious.txt"
    keep.write_text("do not delete\n")
    proc = run_cli(WORDCOUNT, small_input, "-o", out)
    assert proc.returncode in (1, 2), proc.stderr
    line = first_line(proc)
    assert line.startswith(PREFIX) and str(out) in line and "--overwrite" in line, line
    assert "Traceback" not in proc.stderr and len(stderr_lines(proc)) == 1
    assert_nothing_written(out)
    assert os.listdir(out) == ["precious.txt"]
    assert keep.read_text() == "do not delete\n"

    proc = run_cli(WORDCOUNT, small_input, "-o", out, "--overwrite", "-q")
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(out / "_SUCCESS")
    assert not keep.exists()
    lines = sorted(text for p in glob.glob(str(out / "part-*")) for text in open(p))
    assert lines == ['"alpha"\t2\n', '"beta"\t1\n', '"gamma"\t1\n']


def test_output_path_is_a_regular_file(tmp_path, small_input):
    out = tmp_path / "out.txt"
    out.write_text("not a directory\n")
    proc = run_cli(WORDCOUNT, small_input, "-o", out)
    assert proc.returncode in (1, 2), proc.stderr
    line = first_line(proc)
    assert line.startswith(PREFIX) and str(out) in line, line
    assert "Traceback" not in proc.stderr and len(stderr_lines(proc)) == 1
    assert out.read_text() == "not a directory\n"
    # Not even --overwrite replaces a regular file.
    proc = run_cli(WORDCOUNT, small_input, "-o", out, "--overwrite")
    assert proc.returncode in (1, 2), proc.stderr
    assert first_line(proc).startswith(PREFIX) and "Traceback" not in proc.stderr
    assert out.read_text() == "not a directory\n"


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option,value", [
    ("--sort-buffer", "abc"),
    ("--sort-buffer", "0"),
    ("--sort-buffer", "-5MB"),
    ("--split-size", "12XB"),
    ("--split-size", "0"),
])
def test_bad_size_option(tmp_path, small_input, option, value):
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, small_input, "-o", out, option, value)
    if proc.stderr.startswith("usage:"):  # argparse may reject "-5MB" as a missing value
        assert_argparse_error(proc, out, option)
    else:
        assert_error(proc, out, 2, option, value)
        assert not os.path.exists(out)


@pytest.mark.parametrize("argv,option", [
    (["--workers", "0"], "--workers"),
    (["--workers", "two"], "--workers"),
    (["--reducers", "0"], "--reducers"),
    (["--merge-factor", "1"], "--merge-factor"),
    (["--mode", "fast"], "--mode"),
    (["--decode-errors", "ignore"], "--decode-errors"),
])
def test_bad_option_value(tmp_path, small_input, argv, option):
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, small_input, "-o", out, *argv)
    if proc.stderr.startswith(PREFIX):
        assert_error(proc, out, 2, option)
    else:
        assert_argparse_error(proc, out, option)


def test_missing_output_option(tmp_path, small_input):
    proc = run_cli(WORDCOUNT, small_input)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "-o" in proc.stderr


# --------------------------------------------------------------------------------------------
# failing user code
# --------------------------------------------------------------------------------------------

def _check_user_traceback(proc, *frames: str) -> None:
    lines = stderr_lines(proc)
    rest = "\n".join(lines[1:])
    assert "Traceback" in rest, f"no traceback after the error line:\n{proc.stderr}"
    for frame in frames:
        assert frame in rest, f"{frame!r} not in the traceback:\n{proc.stderr}"
    assert "ValueError: bad record" in rest


def test_mapper_raises(tmp_path):
    src = tmp_path / "records.txt"
    src.write_text("ok 1\nok 2\nok 3\nthis is BOOM\nok 5\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(job("raising.py"), src, "-o", out)
    line = assert_task_failed(proc, out, "map task", str(src), "line 4", "ValueError",
                              "mapper")
    assert "BOOM" in line
    _check_user_traceback(proc, "raising.py", "in mapper", "in explode")


def test_mapper_raises_line_number_in_later_split(tmp_path):
    src = tmp_path / "records.txt"
    lines = [f"record number {i:06d} padding padding" for i in range(1, 3001)]
    lines[2345 - 1] = "record BOOM here"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(job("raising.py"), src, "-o", out, "--split-size", "10KB")
    assert_task_failed(proc, out, "map task", str(src), "line 2345", "ValueError")
    _check_user_traceback(proc, "raising.py")


def test_mapper_raises_in_gz_input(tmp_path):
    src = tmp_path / "records.txt.gz"
    src.write_bytes(gzip.compress(b"a\nb\nc\nBOOM\n"))
    out = tmp_path / "out"
    proc = run_cli(job("raising.py"), src, "-o", out)
    assert_task_failed(proc, out, "map task", str(src), "line 4", "ValueError")


def test_mapper_yields_unserializable_key(tmp_path, small_input):
    out = tmp_path / "out"
    proc = run_cli(job("bad_key.py"), small_input, "-o", out)
    line = assert_task_failed(proc, out, "mapper", "dict", "map task")
    assert "Traceback" not in line


_BAD_RAW_LINE_JOBS = '''
from mapreduce import Job


class BadRaw(Job):
    OUTPUT_PROTOCOL = "raw_value"
    REDUCERS = 1

    def mapper(self, _, line):
        yield line, 1

    def reducer(self, key, counts):
        yield key, ("bad \\ud800 " if key == "b" else "") + key


class BadRawMapOnly(Job):
    OUTPUT_PROTOCOL = "raw_value"

    def mapper(self, _, line):
        yield None, ("bad \\ud800 " if line == "b" else "") + line
'''


@pytest.mark.parametrize("job_name, where", [("BadRaw", "reducer output at key 'b'"),
                                             ("BadRawMapOnly", "mapper output at")])
def test_unwritable_raw_line_names_the_record_that_made_it(tmp_path, job_name, where):
    """raw_value part files encode lines in batches, but a line that cannot be written must
    fail while its record is current: the error names key 'b' / line 2, not a later one."""
    job_file = tmp_path / "bad_raw.py"
    job_file.write_text(_BAD_RAW_LINE_JOBS, encoding="utf-8")
    src = tmp_path / "in.txt"
    src.write_text("a\nb\nc\nd\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(job_file, "--job", job_name, src, "-o", out, "--max-attempts", "1")
    line = assert_task_failed(proc, out, where, "raw_value cannot write the line 'bad \\ud800 b'")
    if job_name == "BadRawMapOnly":
        assert f"{src} line 2:" in line


def test_reducer_raises_leaves_no_part_files(tmp_path):
    """Other reduce tasks succeed and commit, but the job's output must stay empty."""
    src = tmp_path / "words.txt"
    src.write_text(" ".join(f"w{i}" for i in range(500)) + " boom\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(job("raising_reducer.py"), src, "-o", out, "--reducers", "4",
                   "--workers", "2")
    assert_task_failed(proc, out, "reduce task", "reducer", "KeyError", "boom")
    assert "raising_reducer.py" in "\n".join(stderr_lines(proc)[1:])


@pytest.mark.parametrize("mode", ["disk", "memory"])
def test_failed_job_then_fixed_input_reruns(tmp_path, mode):
    """After a failed run, fixing the input and rerunning with --overwrite succeeds and
    leaves only the new output."""
    src = tmp_path / "records.txt"
    src.write_text("a\nBOOM\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(job("raising.py"), src, "-o", out, "--mode", mode)
    assert_task_failed(proc, out, "line 2")
    src.write_text("a\nb\na\n", encoding="utf-8")
    proc = run_cli(job("raising.py"), src, "-o", out, "--mode", mode, "--overwrite", "-q")
    assert proc.returncode == 0, proc.stderr
    lines = sorted(text for p in glob.glob(str(out / "part-*")) for text in open(p))
    assert lines == ['"a"\t2\n', '"b"\t1\n']
    assert os.path.isfile(out / "_SUCCESS")


# --------------------------------------------------------------------------------------------
# --overwrite must never destroy input or leave stale output
# --------------------------------------------------------------------------------------------

def test_overwrite_refuses_output_dir_holding_an_input_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    src = out / "data.txt"
    src.write_text("precious input\n")
    proc = run_cli(WORDCOUNT, src, "-o", out, "--overwrite")
    assert proc.returncode in (1, 2), proc.stderr
    assert first_line(proc).startswith(PREFIX) and "data.txt" in first_line(proc)
    assert "Traceback" not in proc.stderr
    assert src.read_text() == "precious input\n"


def test_overwrite_refuses_input_named_through_a_symlink(tmp_path):
    """The input lives in OUT but is named via a symlink to OUT: still OUT's file."""
    out = tmp_path / "out"
    out.mkdir()
    src = out / "data.txt"
    src.write_text("precious input\n")
    link = tmp_path / "link"
    link.symlink_to(out, target_is_directory=True)
    proc = run_cli(WORDCOUNT, link / "data.txt", "-o", out, "--overwrite")
    assert src.exists(), f"--overwrite deleted the job's input file\nstderr:\n{proc.stderr}"
    assert src.read_text() == "precious input\n"
    assert proc.returncode in (1, 2), proc.stderr
    assert first_line(proc).startswith(PREFIX) and "data.txt" in first_line(proc)
    assert "Traceback" not in proc.stderr


def test_overwrite_through_symlinked_output_dir_leaves_no_stale_parts(tmp_path, small_input):
    """-o names a symlink to an old output directory: either replace the old output
    completely or refuse; never mix old part files with new ones."""
    real = tmp_path / "real-out"
    proc = run_cli(WORDCOUNT, small_input, "-o", real, "--reducers", "6", "-q")
    assert proc.returncode == 0, proc.stderr
    before = {n: (real / n).read_bytes() for n in os.listdir(real)}
    link = tmp_path / "link-out"
    link.symlink_to(real, target_is_directory=True)
    other = tmp_path / "other.txt"
    other.write_text("delta\n")
    proc = run_cli(WORDCOUNT, other, "-o", link, "--reducers", "2", "--overwrite", "-q")
    if proc.returncode == 0:
        parts = sorted(n for n in os.listdir(link) if n.startswith("part-"))
        assert parts == ["part-00000", "part-00001"], f"stale part files left: {parts}"
        lines = [text for n in parts for text in open(link / n)]
        assert lines == ['"delta"\t1\n']
    else:
        assert first_line(proc).startswith(PREFIX) and "Traceback" not in proc.stderr
        assert {n: (real / n).read_bytes() for n in os.listdir(real)} == before
