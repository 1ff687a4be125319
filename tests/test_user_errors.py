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


# --------------------------------------------------------------------------------------------
# a job method whose result is not (key, value) pairs
# --------------------------------------------------------------------------------------------

#: name -> (the job's methods, needles of the error line).  Input: "north\nsouth\nnorth\n".
NOT_PAIRS = {
    "mapper yields a word": ('''
    def mapper(self, _, line):
        for word in line.split():
            yield word

    def reducer(self, key, values):
        yield key, sum(values)
''', ["mapper yielded 'north' (str), not a (key, value) pair", "the_job.py line 9: yield word",
      "at {src} line 1"]),
    # The silent case: every 2-character string unpacked into a key and a value.
    "mapper yields 2-character strings": ('''
    def mapper(self, _, line):
        yield line[:2]

    def reducer(self, key, values):
        yield key, list(values)
''', ["mapper yielded 'no' (str), not a (key, value) pair", "yield line[:2]",
      "at {src} line 1"]),
    "2-character strings into a combiner": ('''
    def mapper(self, _, line):
        yield line[:2]

    def combiner(self, key, values):
        yield key, sum(values)

    def reducer(self, key, values):
        yield key, sum(values)
''', ["mapper yielded 'no' (str), not a (key, value) pair", "at {src} line 1"]),
    "2-character strings, map-only": ('''
    def mapper(self, _, line):
        yield line[:2]
''', ["mapper yielded 'no' (str), not a (key, value) pair", "at {src} line 1"]),
    "mapper returns a pair": ('''
    def mapper(self, _, line):
        return line, 1

    def reducer(self, key, values):
        yield key, sum(values)
''', ["mapper returned ('north', 1) (tuple), whose item 'north' (str) is not a (key, value) "
      "pair", "yield key, value", "at {src} line 1"]),
    "reducer yields a sum": ('''
    def mapper(self, _, line):
        yield line, 1

    def reducer(self, key, values):
        yield sum(values)
''', ["reducer yielded 2 (int), not a (key, value) pair", "yield sum(values)",
      "at key 'north' of partition 0"]),
    "reducer returns a sum": ('''
    def mapper(self, _, line):
        yield line, 1

    def reducer(self, key, values):
        return sum(values)
''', ["reducer returned 2 (int), not (key, value) pairs", "at key 'north' of partition 0"]),
    "combiner yields a sum": ('''
    def mapper(self, _, line):
        yield line, 1

    def combiner(self, key, values):
        yield sum(values)

    def reducer(self, key, values):
        yield key, sum(values)
''', ["combiner yielded 2 (int), not a (key, value) pair", "yield sum(values)"]),
    "mapper_final returns a number": ('''
    def mapper(self, _, line):
        yield line, 1

    def mapper_final(self):
        return 5

    def reducer(self, key, values):
        yield key, sum(values)
''', ["mapper_final returned 5 (int), not (key, value) pairs"]),
    "reducer_final yields a string": ('''
    def mapper(self, _, line):
        yield line, 1

    def reducer(self, key, values):
        yield key, sum(values)

    def reducer_final(self):
        yield "xy"
''', ["reducer_final yielded 'xy' (str), not a (key, value) pair", 'yield "xy"',
      "at partition 0"]),
}


def _job_file(tmp_path, methods: str) -> str:
    path = tmp_path / "the_job.py"
    path.write_text("from mapreduce import Job\n\n\nclass TheJob(Job):\n    REDUCERS = 1\n"
                    + methods, encoding="utf-8")
    return str(path)


def assert_failed_once(proc, out, *needles: str) -> str:
    """Exit 1, one error line holding every needle, and ONE attempt: not retried."""
    assert proc.returncode == 1, proc.stderr
    lines = error_lines(proc)
    assert lines and lines[0].startswith(PREFIX), proc.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert "failed after 1 attempt:" in lines[0], lines[0]
    assert len(failed_attempts(proc)) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "too many values to unpack" not in proc.stderr
    assert_nothing_written(out)
    return lines[0]


@pytest.mark.parametrize("case", sorted(NOT_PAIRS))
def test_not_a_pair_is_named_and_not_retried(tmp_path, case):
    methods, needles = NOT_PAIRS[case]
    src = tmp_path / "in.txt"
    src.write_text("north\nsouth\nnorth\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli("run", _job_file(tmp_path, methods), src, "-o", out, "--workers", "1")
    assert_failed_once(proc, out, *(n.format(src=src) for n in needles))


@pytest.mark.parametrize("mode", ["disk", "memory"])
def test_unencodable_key_is_not_retried(tmp_path, small_input, mode):
    out = tmp_path / "out"
    proc = run_cli("run", os.path.join(REPO, "tests", "jobs", "bad_key.py"), small_input,
                   "-o", out, "--mode", mode)
    assert_failed_once(proc, out, "mapper output at", "dict")


def test_undecodable_input_is_not_retried(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"alpha\n\xff beta\n")
    out = tmp_path / "out"
    proc = run_cli("run", WORDCOUNT, src, "-o", out)
    assert_failed_once(proc, out, str(src), "invalid UTF-8 at byte offset 6")


def test_users_own_value_error_is_still_retried(tmp_path):
    """A ValueError raised inside the mapper's generator is the user's (it may be flaky):
    retried, and reported as the user's exception with its traceback -- not as a pair
    mistake, although it is the same exception type an unpacking raises."""
    src = tmp_path / "in.txt"
    src.write_text("1 2\nthree 4\n", encoding="utf-8")
    out = tmp_path / "out"
    job_file = _job_file(tmp_path, '''
    def mapper(self, _, line):
        for word in line.split():
            yield "n", int(word)

    def reducer(self, key, values):
        yield key, sum(values)
''')
    proc = run_cli("run", job_file, src, "-o", out, "--max-attempts", "3")
    assert proc.returncode == 1
    line = error_lines(proc)[0]
    assert "failed after 3 attempts: mapper raised ValueError: invalid literal" in line, line
    assert f"at {src} line 2" in line
    assert len(failed_attempts(proc)) == 3
    assert "yield \"n\", int(word)" in proc.stderr  # the user's traceback follows


def test_pairs_that_are_lists_and_tuples_still_work(tmp_path):
    """What unpacks as a pair and is not a str stays a pair (a list, a tuple subclass)."""
    src = tmp_path / "in.txt"
    src.write_text("a b\nb c\n", encoding="utf-8")
    out = tmp_path / "out"
    job_file = _job_file(tmp_path, '''
    def mapper(self, _, line):
        import collections
        Pair = collections.namedtuple("Pair", "key value")
        for word in line.split():
            yield [word, 1]
            yield Pair(word, 10)

    def reducer(self, key, values):
        yield [key, sum(values)]
''')
    proc = run_cli("run", job_file, src, "-o", out)
    assert proc.returncode == 0, proc.stderr
    with open(out / "part-00000", encoding="utf-8") as f:
        got = dict(tuple(json.loads(x) for x in line.rstrip("\n").split("\t")) for line in f)
    assert got == {"a": 11, "b": 22, "c": 11}


def test_not_a_pair_is_not_a_skippable_bad_record(tmp_path):
    """--skip-bad-records tolerates records whose mapper raises; a mapper that yields no
    pairs at all is a mistake in the job, reported at once."""
    src = tmp_path / "in.txt"
    src.write_text("north\nsouth\nnorth\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli("run", _job_file(tmp_path, NOT_PAIRS["mapper yields a word"][0]), src,
                   "-o", out, "--skip-bad-records", "10")
    assert_failed_once(proc, out, "mapper yielded 'north' (str), not a (key, value) pair",
                       "yield word")
    assert "skipping bad record" not in proc.stderr


# --- the collectors themselves (the map task's per-pair loops) ------------------------------

class _Sink:
    counters: dict = {}

    def spill(self, parts) -> None:
        pass

    def finish(self) -> None:
        pass


def _sum(key, values):
    yield key, sum(values)


def _collectors():
    from mapreduce.job import Step
    from mapreduce.core import native
    from mapreduce.kernel import CombiningBuffer, NativeSortBuffer, SortBuffer, _DirectCollector

    class Writer:
        def __init__(self):
            self.written = []

        def write(self, key, value):
            self.written.append((key, value))

    return [SortBuffer(Step(), 2, 1 << 20, False, _Sink(), {}),
            SortBuffer(Step(), 2, 1 << 20, True, _Sink(), {}),
            CombiningBuffer(Step(combiner=_sum), 2, 1 << 20, False, _Sink(), {}),
            _DirectCollector(Writer()),
            # the C sort buffer (the map side's buffer when the C core runs), both ways
            *([NativeSortBuffer(Step(), 2, 1 << 20, False, _Sink(), {}),
               NativeSortBuffer(Step(), 2, 1 << 20, True, _Sink(), {})]
              if native is not None else [])]


def _n_collectors():
    from mapreduce.core import native
    return 4 if native is None else 6


@pytest.mark.parametrize("bad", ["ab", "abc", "", 7, None, ("k", 1, 2), ("k",)])
@pytest.mark.parametrize("which", range(_n_collectors()))
def test_collectors_reject_what_is_not_a_pair(bad, which):
    from mapreduce.kernel import NotAPairError

    def mapper():
        yield "k", 1
        yield bad

    collector = _collectors()[which]
    with pytest.raises(NotAPairError, match=re.escape(f"yielded {bad!r} ({type(bad).__name__})"
                                                      ", not a (key, value) pair")):
        collector.extend(mapper())
    # The pair before the bad one was taken (a str that unpacks is found after the call).
    assert collector.records == (2 if bad == "ab" and which != 2 else 1)


@pytest.mark.parametrize("which", range(_n_collectors()))
def test_collectors_pass_the_users_own_exceptions_through(which):
    """A ValueError or TypeError raised inside the user's generator stays the user's."""
    def mapper():
        yield "k", 1
        int("x")

    def mapper2():
        yield "k", 1
        len(5)

    with pytest.raises(ValueError, match="invalid literal"):
        _collectors()[which].extend(mapper())
    with pytest.raises(TypeError, match="has no len"):
        _collectors()[which].extend(mapper2())


# --------------------------------------------------------------------------------------------
# the job's own options: checked once, in the coordinator, before any task
# --------------------------------------------------------------------------------------------

@pytest.fixture
def options_job(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text(JOB_WITH_OPTIONS, encoding="utf-8")
    src = tmp_path / "in.txt"
    src.write_text("x\ny\nz\n", encoding="utf-8")
    return path, src


def part_pairs(out) -> dict:
    pairs = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("part-"):
            with open(os.path.join(out, name), encoding="utf-8") as f:
                for line in f:
                    k, v = line.rstrip("\n").split("\t")
                    pairs[json.loads(k)] = json.loads(v)
    return pairs


def test_required_job_option_given_on_the_command_line(tmp_path, options_job):
    job_file, src = options_job
    out = tmp_path / "out"
    proc = run_cli("run", job_file, src, "-o", out, "--sample-size", "5", "--unit", "b")
    assert proc.returncode == 0, proc.stderr
    assert part_pairs(out) == {"b": 15}  # 3 lines, 5 each


def test_required_job_option_given_in_script_mode(tmp_path, options_job):
    job_file, src = options_job
    proc = run_script(job_file, src, "--sample-size", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '"a"\t6\n'


@pytest.mark.parametrize("argv, needle", [
    ([], "--sample-size"),
    (["--sample-size", "many"], "--sample-size: invalid int value: 'many'"),
    (["--sample-size", "2", "--unit", "c"], "--unit: invalid choice: 'c'"),
])
@pytest.mark.parametrize("script", [False, True])
def test_bad_or_missing_job_option_is_a_usage_error(tmp_path, options_job, argv, needle,
                                                     script):
    job_file, src = options_job
    out = tmp_path / "out"
    proc = (run_script(job_file, src, "-o", out, *argv) if script else
            run_cli("run", job_file, src, "-o", out, *argv))
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and needle in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and " failed: " not in proc.stderr
    assert not os.path.exists(out)


def test_api_job_options_are_converted_and_checked(tmp_path, options_job):
    from mapreduce import run
    from mapreduce.errors import UsageError

    job_file, src = options_job
    with run(str(job_file), str(src), job_options={"sample_size": "4", "unit": "b"},
             progress=False) as result:
        assert dict(result.pairs()) == {"b": 12}
    cases = [({"unit": "b"}, "Sample needs job_options['sample_size'] (the job's required "
                             "option --sample-size)"),
             ({"sample_size": "many"}, "job_options['sample_size']: invalid int value: 'many'"),
             ({"sample_size": 1, "unit": "c"}, "job_options['unit']: invalid choice: 'c'"),
             ({"sample_size": "1", "unit": "c"}, "job_options['unit']: invalid choice: 'c'"),
             ({"sample_size": 1, "units": "a"}, "Sample has no option units")]
    for n, (given, needle) in enumerate(cases):
        out = tmp_path / f"out{n}"
        with pytest.raises(UsageError) as info:
            run(str(job_file), str(src), str(out), job_options=given, progress=False)
        assert needle in str(info.value)
        assert "\n" not in str(info.value)
        assert not os.path.exists(out)  # refused before anything started


def test_api_string_option_is_converted_before_the_tasks_see_it(tmp_path):
    """Without the check, "3" reached the tasks as a str (and [-"3":] failed 4 times)."""
    from mapreduce import run

    path = tmp_path / "top.py"
    path.write_text('''
from mapreduce import Job


class Top(Job):
    REDUCERS = 1

    def configure_args(self, parser):
        parser.add_argument("--top", type=int, default=2)

    def mapper(self, _, line):
        yield None, line

    def reducer(self, _, lines):
        yield "top", sorted(lines)[-self.options.top:]
''', encoding="utf-8")
    src = tmp_path / "in.txt"
    src.write_text("b\nd\na\nc\n", encoding="utf-8")
    with run(str(path), str(src), job_options={"top": "3"}, progress=False) as result:
        assert dict(result.pairs()) == {"top": ["b", "c", "d"]}
    with run(str(path), str(src), progress=False) as result:
        assert dict(result.pairs()) == {"top": ["c", "d"]}


def test_tasks_never_parse_options(tmp_path):
    """configure_args runs in the coordinator only: a task gets the parsed values."""
    calls = tmp_path / "calls"
    path = tmp_path / "opts.py"
    path.write_text(f'''
import os
from mapreduce import Job


class Opts(Job):
    def configure_args(self, parser):
        with open({str(calls)!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        parser.add_argument("--n", type=int, default=1)

    def mapper(self, _, line):
        yield os.getpid(), self.options.n

    def reducer(self, pid, ns):
        yield pid, sum(ns)
''', encoding="utf-8")
    src = tmp_path / "in.txt"
    src.write_text("".join(f"line {i}\n" for i in range(50)), encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli("run", path, src, "-o", out, "--n", "3", "--split-size", "100",
                   "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    task_pids = set(part_pairs(out))
    assert sum(part_pairs(out).values()) == 150
    parsing_pids = {int(x) for x in calls.read_text().split()}
    assert parsing_pids and not parsing_pids & task_pids


# --------------------------------------------------------------------------------------------
# a directory whose files are all skipped
# --------------------------------------------------------------------------------------------

def test_directory_of_skipped_names_says_how_many_and_why(tmp_path):
    d = tmp_path / "indir"
    (d / ".git").mkdir(parents=True)
    (d / ".git" / "config").write_text("x\n")
    (d / "_SUCCESS").write_text("")
    (d / "_part-00000").write_text("a b\n")
    (d / "sub").mkdir()
    (d / "sub" / ".hidden.txt").write_text("x\n")
    out = tmp_path / "out"
    proc = run_cli("run", WORDCOUNT, d, "-o", out)
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc) == [
        f"{PREFIX}input directory contains no input files: {d} (4 names skipped: .git, "
        "_SUCCESS, _part-00000 and 1 more; names starting with _ or . inside a directory are "
        "not input (Hadoop's rule): name a file on the command line to read it anyway)"]
    assert_nothing_written(out)


def test_empty_directory_says_it_holds_no_files(tmp_path):
    d = tmp_path / "empty"
    (d / "sub").mkdir(parents=True)
    proc = run_cli("run", WORDCOUNT, d, "-o", tmp_path / "out")
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc) == [
        f"{PREFIX}input directory contains no input files: {d} (it holds no files)"]


# --------------------------------------------------------------------------------------------
# a sort buffer too small to be meant
# --------------------------------------------------------------------------------------------

def test_tiny_sort_buffer_is_warned_about_once_and_runs(tmp_path, small_input):
    out = tmp_path / "out"
    proc = run_cli("run", WORDCOUNT, small_input, "-o", out, "--sort-buffer", "1KB",
                   "--reducers", "1")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and PROGRESS_LINE.match(warnings[0]), proc.stderr
    assert warnings[0].endswith(
        "mapreduce: warning: --sort-buffer 1KB is below 1MB: the map tasks spill every 1024 "
        "bytes and the job runs many times slower (the default is 64MB)"), proc.stderr
    assert part_pairs(out) == {"alpha": 2, "beta": 1, "gamma": 1}
    proc = run_cli("run", WORDCOUNT, small_input, "-o", tmp_path / "out2", "--sort-buffer",
                   "1MB")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    proc = run_cli("run", WORDCOUNT, small_input, "-o", tmp_path / "out3", "--sort-buffer",
                   "1KB", "-q")  # quiet: no progress, no warnings, no summary
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_tiny_sort_buffer_from_python_is_a_warning(small_input):
    from mapreduce import run

    with pytest.warns(UserWarning, match=r"sort_buffer='4KB' is below 1MB"):
        with run(WORDCOUNT, str(small_input), sort_buffer="4KB", progress=False) as result:
            assert dict(result.pairs()) == {"alpha": 2, "beta": 1, "gamma": 1}
