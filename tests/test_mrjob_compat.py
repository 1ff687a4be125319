"""mrjob jobs run unchanged (issue 17): mrjob's own examples, protocols, testing pattern,
the refusals, and the three bugs of the issue.

The oracle is the real mrjob (0.7.4, in the ``test`` extra): its inline runner runs the same
unedited example script (``python mr_x.py -r inline INPUT``) and our CLI must give the same
output lines (sorted: the two engines number their part files differently), plus plain
Python references where the job's result is simple to state.  Every run is a subprocess
started the way a user starts it, with no environment variable set.
"""
from __future__ import annotations

import collections
import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent / "mrjob_examples"
TIMEOUT = 120
WORDS = "the quick brown fox jumps over lazy dog café naïve über cat hat don't".split()


def cli(*args, cwd, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapreduce", "run", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def mrjob_inline(script, *args, cwd) -> subprocess.CompletedProcess:
    """The real mrjob runs the unedited script (the oracle)."""
    return subprocess.run([sys.executable, str(script), "-r", "inline", "--no-conf",
                           *map(str, args)], cwd=cwd, capture_output=True, timeout=TIMEOUT)


def our_lines(out: Path) -> list[bytes]:
    return sorted(b"".join(p.read_bytes() for p in sorted(out.glob("part-*"))).splitlines())


def one_error_line(proc, *needles) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapreduce: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    rng = random.Random(17)
    d = tmp_path_factory.mktemp("mrjob-input")
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
             for _ in range(3000)]
    (d / "text.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d / "text.txt"


# --- mrjob's examples against mrjob itself -------------------------------------------------
SAME_AS_MRJOB = [
    ("mr_word_freq_count.py", ()),
    ("mr_wc.py", ()),
    ("mr_next_word_stats.py", ()),            # SORT_VALUES, two steps
    ("mr_count_lines_right.py", ()),
    ("mr_count_lines_by_file.py", ()),        # jobconf_from_env('mapreduce.map.input.file')
    ("mr_text_classifier.py", ("--stop-words", "the,over")),  # mapper_raw, load_args, 6 steps
    ("mr_most_used_word.py", ()),             # FILES = ['stop_words.txt'], add_file_arg
]


@pytest.mark.parametrize("script,options", SAME_AS_MRJOB, ids=[s for s, _ in SAME_AS_MRJOB])
def test_mrjob_example_gives_mrjobs_output(script, options, text, tmp_path):
    pytest.importorskip("mrjob")
    ref = mrjob_inline(EXAMPLES / script, text.name, *options, cwd=text.parent)
    assert ref.returncode == 0, ref.stderr.decode()
    proc = cli(EXAMPLES / script, text.name, "-o", tmp_path / "out", "-q", *options,
               cwd=text.parent)
    assert proc.returncode == 0, proc.stderr
    assert our_lines(tmp_path / "out") == sorted(ref.stdout.splitlines())


def test_word_freq_count_matches_plain_python_on_every_local_runner(text, tmp_path):
    """Independent of mrjob: JSONProtocol's bytes (ASCII-escaped) of a Counter."""
    counts = collections.Counter(w.lower() for line in text.read_text("utf-8").splitlines()
                                 for w in re.findall(r"[\w']+", line))
    expected = sorted(json.dumps(w).encode() + b"\t" + str(n).encode()
                      for w, n in counts.items())
    assert b'"caf\\u00e9"' in b"\n".join(expected)
    for runner in ("inline", "local"):
        out = tmp_path / runner
        proc = cli(EXAMPLES / "mr_word_freq_count.py", text, "-o", out, "-q",
                   "--runner", runner, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert our_lines(out) == expected


def test_log_sampler_required_option_and_sample(text, tmp_path):
    """load_args + arg_parser.error + SORT_VALUES + RawValueProtocol/ReprProtocol."""
    proc = cli(EXAMPLES / "mr_log_sampler.py", text, "-o", tmp_path / "a", cwd=tmp_path)
    one_error_line(proc, "--sample-size")
    assert not (tmp_path / "a").exists()
    proc = cli(EXAMPLES / "mr_log_sampler.py", text, "-o", tmp_path / "b", "-q",
               "--sample-size", "7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sampled = our_lines(tmp_path / "b")
    assert len(sampled) == 7
    assert set(sampled) <= set(text.read_bytes().splitlines())


def test_mr_boom_fails_as_under_mrjob(text, tmp_path):
    proc = cli(EXAMPLES / "mr_boom.py", text, "-o", tmp_path / "o", "--max-attempts", "1",
               cwd=tmp_path)
    assert proc.returncode == 1 and "BOOM" in proc.stderr
    assert not (tmp_path / "o" / "_SUCCESS").exists()


@pytest.mark.parametrize("script,needle", [
    ("mr_sparkaboom.py", "--runner spark"),
    ("mr_jar_step_example.py", "pick_protocols"),
])
def test_what_mapreduce_does_not_run_is_refused_at_start(script, needle, text, tmp_path):
    proc = cli(EXAMPLES / script, text, "-o", tmp_path / "o", cwd=tmp_path)
    one_error_line(proc, needle)
    assert not (tmp_path / "o").exists()


# --- shell commands (mrjob's inline runner cannot run them; its local runner is the slow
# --- oracle, so the references here are GNU grep and plain Python) -----------------------
def test_mapper_cmd_is_grep(text, tmp_path):
    proc = cli(EXAMPLES / "mr_grep.py", text, "-o", tmp_path / "o", "-q", "-e", "caf",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    grep = subprocess.run(["grep", "-e", "caf", str(text)], capture_output=True, check=True)
    assert our_lines(tmp_path / "o") == sorted(grep.stdout.splitlines())


def test_mapper_pre_filter(text, tmp_path):
    proc = cli(EXAMPLES / "mr_words_containing_u_freq_count.py", text, "-o", tmp_path / "o",
               "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    counts = collections.Counter(
        w.lower() for line in text.read_text("utf-8").splitlines() if "u" in line.lower()
        for w in re.findall(r"[\w']*u[\w']*", line, re.I))
    assert our_lines(tmp_path / "o") == sorted(
        json.dumps(w).encode() + b"\t" + str(n).encode() for w, n in counts.items())


COMMANDS_JOB = """
from mrjob.job import MRJob
from mrjob.step import MRStep


class MRCommands(MRJob):
    def steps(self):
        return [MRStep(mapper=self.words, reducer_pre_filter="grep -v '^\\"the\\"'",
                       reducer=self.count),
                MRStep(mapper_cmd="awk -F'\\t' '$2 > 100'", reducer_cmd="sort -r")]

    def words(self, _, line):
        for word in line.split():
            yield word, 1

    def count(self, word, ones):
        yield word, sum(ones)
"""


def test_reducer_pre_filter_mapper_cmd_reducer_cmd_over_two_steps(text, tmp_path):
    (tmp_path / "mr_commands.py").write_text(COMMANDS_JOB)
    for runner in ("inline", "local"):
        out = tmp_path / runner
        proc = cli("mr_commands.py", text, "-o", out, "-q", "--runner", runner, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        counts = collections.Counter(w for line in text.read_text("utf-8").splitlines()
                                     for w in line.split())
        assert our_lines(out) == sorted(json.dumps(w).encode() + b"\t" + str(n).encode()
                                        for w, n in counts.items() if w != "the" and n > 100)


def test_failing_command_fails_the_job_naming_it(text, tmp_path):
    (tmp_path / "mr_fail.py").write_text(
        "from mrjob.job import MRJob\nclass MRFail(MRJob):\n"
        "    def mapper_cmd(self):\n        return 'exit 3'\n")
    proc = cli("mr_fail.py", text, "-o", "o", "--max-attempts", "1", "-q", cwd=tmp_path)
    assert proc.returncode == 1
    assert "mapper_cmd 'exit 3' exited with status 3" in proc.stderr.splitlines()[0]


# --- protocols ----------------------------------------------------------------------------
VALUES = [None, 0, -3, 2.5, "", "tab\there", "caf\u00e9", "\u2603", [1, "a"], {"k": [None]},
          True]


def test_protocols_write_mrjobs_bytes_and_read_them_back():
    real = pytest.importorskip("mrjob.protocol")
    from mapreduce.mrjob import protocol as ours
    for name in ("JSONProtocol", "JSONValueProtocol", "StandardJSONProtocol",
                 "PickleValueProtocol", "ReprProtocol", "ReprValueProtocol"):
        for key in VALUES:
            for value in VALUES:
                mine, theirs = getattr(ours, name)(), getattr(real, name)()
                line = mine.write(key, value)
                assert line == theirs.write(key, value), (name, key, value)
                assert mine.read(line) == theirs.read(line)
    for name in ("RawValueProtocol", "TextValueProtocol", "RawProtocol", "TextProtocol"):
        for pair in [("a", "b"), (None, "caf\u00e9")]:
            assert getattr(ours, name)().write(*pair) == getattr(real, name)().write(*pair)
    for name in ("BytesProtocol", "BytesValueProtocol"):
        assert getattr(ours, name)().read(b"a\tb\tc") == getattr(real, name)().read(b"a\tb\tc")


PROTOCOL_JOB = '''
from mrjob.job import MRJob
from mrjob.protocol import JSONValueProtocol, PickleProtocol, ReprProtocol
from mrjob.step import MRStep


class MRProtocols(MRJob):
    INPUT_PROTOCOL = JSONValueProtocol
    INTERNAL_PROTOCOL = PickleProtocol
    OUTPUT_PROTOCOL = ReprProtocol
    JOBCONF = {"mapreduce.job.reduces": 1}

    def steps(self):
        return [MRStep(mapper=self.by_user, reducer=self.total),
                MRStep(mapper=self.swap, reducer_init=self.start, reducer=self.top)]

    def by_user(self, _, record):
        self.increment_counter("records", record["kind"])
        yield (record["user"], record["kind"]), (record["n"], {record["tag"]})

    def total(self, key, values):
        n, tags = 0, set()
        for count, tag in values:
            n += count
            tags |= tag
        yield key, (n, frozenset(tags))

    def swap(self, key, value):
        yield None, (value[0], key, sorted(value[1]))

    def start(self):
        self.seen = 0

    def top(self, _, values):
        for value in sorted(values, reverse=True)[:5]:
            yield value[1], value[0]

if __name__ == "__main__":
    MRProtocols.run()
'''


def test_input_internal_output_protocols_and_jobconf_reduces(tmp_path):
    """JSON input, pickled tuples/sets between steps, repr output: mrjob's bytes; and
    mapreduce.job.reduces=1 gives one part file (it gave 4, ignored, before)."""
    pytest.importorskip("mrjob")
    rng = random.Random(3)
    rows = [json.dumps({"user": rng.choice("abcdefg"), "kind": rng.choice(["x", "y"]),
                        "n": rng.randint(1, 9), "tag": rng.choice(["p", "q", "r"])})
            for _ in range(500)]
    (tmp_path / "in.json").write_text("\n".join(rows) + "\n")
    (tmp_path / "mr_protocols.py").write_text(PROTOCOL_JOB)
    ref = mrjob_inline(tmp_path / "mr_protocols.py", "in.json", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr.decode()
    proc = cli("mr_protocols.py", "in.json", "-o", "out", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "out").glob("part-*")] == ["part-00000"]
    assert (tmp_path / "out" / "part-00000").read_bytes() == ref.stdout


# --- mrjob's testing pattern (as in mrjob's tests/test_job.py) -------------------------
def test_sandbox_make_runner_parse_output_counters():
    from mapreduce.mrjob import MRJob

    class MRWordCount(MRJob):
        def mapper(self, _, line):
            for word in line.split():
                self.increment_counter("words", "seen")
                yield word, 1

        def combiner(self, word, counts):
            yield word, sum(counts)

        def reducer(self, word, counts):
            yield word, sum(counts)

    job = MRWordCount(["-r", "inline", "--no-conf", "-"])
    job.sandbox(stdin=io.BytesIO(b"foo bar foo\ncaf\xc3\xa9 bar foo\n"))
    with job.make_runner() as runner:
        runner.run()
        assert sorted(job.parse_output(runner.cat_output())) == [
            ("bar", 2), ("caf\u00e9", 1), ("foo", 3)]
        assert runner.counters() == [{"words": {"seen": 6}}]


def test_passthru_options_reach_tasks_and_bad_switches_are_refused():
    from mapreduce.errors import UsageError
    from mapreduce.mrjob import MRJob

    class MRMin(MRJob):
        def configure_args(self):
            super().configure_args()
            self.add_passthru_arg("--min", type=int, default=1)

        def mapper(self, _, line):
            yield line, 1

        def reducer(self, line, ones):
            n = sum(ones)
            if n >= self.options.min:
                yield line, n

    job = MRMin(["-r", "local", "--num-cores", "2", "--min", "2"])
    job.sandbox(stdin=io.BytesIO(b"a\nb\na\n"))
    with job.make_runner() as runner:
        runner.run()
        assert list(job.parse_output(runner.cat_output())) == [("a", 2)]
    for args, needle in [(["-r", "emr"], "Amazon EMR"), (["--bogus"], "--bogus"),
                         (["-c", "mrjob.conf"], "mrjob.conf")]:
        with pytest.raises(UsageError, match=re.escape(needle)):
            MRMin(args)


# --- the mapping of mrjob's module names ---------------------------------------------------
def test_alias_only_while_loading_even_when_mrjob_is_absent(tmp_path, monkeypatch):
    """The loader maps mrjob.* to mapreduce.mrjob for the job file's import only:
    sys.modules is as it was afterwards, and a missing mrjob does not matter."""
    from mapreduce.loader import load_job_class
    from mapreduce.mrjob import MRJob
    (tmp_path / "mr_x.py").write_text(
        "from mrjob.job import MRJob\nfrom mrjob.compat import jobconf_from_env\n"
        "class MRX(MRJob):\n    def mapper(self, _, line):\n        yield line, 1\n")
    for name in [n for n in sys.modules if n == "mrjob" or n.startswith("mrjob.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mrjob", None)  # as if not installed: import fails
    cls, _ = load_job_class(str(tmp_path / "mr_x.py"))
    assert issubclass(cls, MRJob)
    assert sys.modules["mrjob"] is None
    assert not [n for n in sys.modules if n.startswith("mrjob.")]


# --- the three bugs and plain Job refusals ---------------------------------------------
def test_configure_args_mrjob_style_on_a_plain_job(text, tmp_path):
    (tmp_path / "j.py").write_text(
        "from mapreduce import Job\nclass J(Job):\n"
        "    def configure_args(self):\n        super().configure_args()\n"
        "        self.add_passthru_arg('--tag', default='x')\n"
        "    def mapper(self, _, line):\n        yield self.options.tag, 1\n"
        "    def reducer(self, k, ones):\n        yield k, sum(ones)\n")
    proc = cli("j.py", text, "-o", "out", "-q", "--tag", "t", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert our_lines(tmp_path / "out") == [b'"t"\t3000']


def test_required_job_option(text, tmp_path):
    (tmp_path / "j.py").write_text(
        "from mapreduce import Job\nclass J(Job):\n"
        "    def configure_args(self, parser):\n"
        "        parser.add_argument('--tag', required=True)\n"
        "    def mapper(self, _, line):\n        yield self.options.tag, 1\n"
        "    def reducer(self, k, ones):\n        yield k, sum(ones)\n")
    proc = cli("j.py", text, "-o", "out", "-q", "--tag", "t", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert our_lines(tmp_path / "out") == [b'"t"\t3000']
    proc = cli("j.py", text, "-o", "out2", cwd=tmp_path)
    assert proc.returncode == 2 and "--tag" in proc.stderr and not (tmp_path / "out2").exists()


def test_import_error_is_reported_not_its_options(text, tmp_path):
    (tmp_path / "j.py").write_text("import no_such_module_17\n")
    proc = cli("j.py", text, "-o", "out", "--top", "3", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "ModuleNotFoundError" in first and "no_such_module_17" in first, proc.stderr
    assert "unrecognized" not in proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("body,needle", [
    ("    def mapper_pre_filter(self):\n        return 'grep a'\n", "mapper_pre_filter"),
    ("    def reduce(self, k, v):\n        yield k, 1\n", "did you mean reducer()"),
    ("    JOBCONF = {'mapreduce.job.reduces': 1}\n", "JOBCONF"),
    ("    INPUT_PROTOCOL = object\n", "INPUT_PROTOCOL"),
    ("    def spark(self, i, o):\n        pass\n", "spark"),
])
def test_plain_job_with_an_mrjob_hook_is_refused(body, needle, text, tmp_path):
    (tmp_path / "j.py").write_text("from mapreduce import Job\nclass J(Job):\n" + body +
                                   "    def mapper(self, _, line):\n        yield line, 1\n")
    for runner in ("local", "inline"):
        proc = cli("j.py", text, "-o", "out", "--runner", runner, cwd=tmp_path)
        one_error_line(proc, needle)
        assert not (tmp_path / "out").exists()


def test_unknown_jobconf_is_refused(text, tmp_path):
    (tmp_path / "mr_j.py").write_text(
        "from mrjob.job import MRJob\nclass MRJ(MRJob):\n"
        "    JOBCONF = {'mapreduce.output.fileoutputformat.compress': 'true'}\n"
        "    def mapper(self, _, line):\n        yield line, 1\n")
    proc = cli("mr_j.py", text, "-o", "out", cwd=tmp_path)
    one_error_line(proc, "mapreduce.output.fileoutputformat.compress")


@pytest.mark.slow
def test_mrjob_example_on_the_spark_runner(text, tmp_path):
    """Executors import the job file with mrjob's names mapped too (they once bound the
    installed mrjob's MRJob, which the engine cannot run)."""
    pytest.importorskip("pyspark")
    pytest.importorskip("mrjob")
    from mapreduce.errors import UsageError
    from mapreduce.runners.spark import check_java
    try:
        check_java()
    except UsageError as exc:
        pytest.skip(str(exc))
    script = EXAMPLES / "mr_next_word_stats.py"
    ref = mrjob_inline(script, text.name, cwd=text.parent)
    assert ref.returncode == 0, ref.stderr.decode()
    proc = cli(script, text.name, "-o", tmp_path / "out", "-q", "--runner", "spark",
               cwd=text.parent, timeout=900)  # a JVM's start on a busy machine
    assert proc.returncode == 0, proc.stderr
    assert our_lines(tmp_path / "out") == sorted(ref.stdout.splitlines())


MIXED_VALUES_JOB = '''
from mrjob.job import MRJob


class MRMixed(MRJob):
    def mapper(self, _, line):
        for word in line.split()[:3]:
            for value in (1, True, 2 ** 70, -(2 ** 63), 2 ** 63, -5, 1.0, None, [1, 2], "1"):
                yield word, value

    def combiner(self, word, values):
        values = list(values)
        yield word, sum(v for v in values if type(v) is int)
        for v in values:
            if type(v) is not int:
                yield word, v

    def reducer(self, word, values):
        yield word, sorted(repr(v) for v in values)


if __name__ == "__main__":
    MRMixed.run()
'''


def test_int_values_travel_as_ints_without_changing_what_jobs_see(text, tmp_path):
    """Ints cross the shuffle as ints (the fast path), which must be invisible: bools stay
    bools, ints beyond 64 bits and floats keep their type, sums match mrjob's."""
    pytest.importorskip("mrjob")
    (tmp_path / "mr_mixed.py").write_text(MIXED_VALUES_JOB)
    ref = mrjob_inline(tmp_path / "mr_mixed.py", text, cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr.decode()
    proc = cli("mr_mixed.py", text, "-o", "out", "-q", "--split-size", "16KB", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # The combiner runs a different number of times here and there: compare what does not
    # depend on it (every value's type and the total of the ints per word).
    def summary(lines):
        result = {}
        for line in lines:
            word, values = line.split(b"\t")
            reprs = json.loads(values)
            result[word] = (sum(int(r) for r in reprs if re.fullmatch(r"-?\d+", r)),
                            sorted(r for r in reprs if not re.fullmatch(r"-?\d+", r)))
        return result
    ours, theirs = summary(our_lines(tmp_path / "out")), summary(ref.stdout.splitlines())
    assert ours == theirs and len(ours) > 10


DIRECT_JOB = '''
from mapreduce.mrjob import MRJob


class MRDirect(MRJob):
    def mapper(self, _, line):
        for word in line.split():
            yield word, 1

    def reducer(self, word, ones):
        yield word, sum(ones)


if __name__ == "__main__":
    MRDirect.run()
'''


def test_script_run_directly_takes_mrjobs_switches(tmp_path):
    """``python mr_job.py`` with ``from mapreduce.mrjob import MRJob``: mrjob's switches,
    standard input without an input path, output printed (or kept with -o)."""
    (tmp_path / "mr_direct.py").write_text(DIRECT_JOB)
    (tmp_path / "in.txt").write_text("a b a\nc a\n")
    expected = [b'"a"\t3', b'"b"\t1', b'"c"\t1']
    run = [sys.executable, "mr_direct.py"]
    for args, stdin in [(["-r", "local", "in.txt"], b""), (["--no-conf"], b"a b a\nc a\n")]:
        proc = subprocess.run(run + args, cwd=tmp_path, input=stdin, capture_output=True,
                              timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr.decode()
        assert sorted(proc.stdout.splitlines()) == expected
    proc = subprocess.run(run + ["-o", "out", "in.txt"], cwd=tmp_path, capture_output=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0 and proc.stdout == b""
    assert our_lines(tmp_path / "out") == expected and (tmp_path / "out" / "_SUCCESS").exists()
    proc = subprocess.run(run + ["-r", "emr", "in.txt"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "-r emr" in proc.stderr


def test_an_mrjob_module_we_do_not_provide_is_named(text, tmp_path):
    (tmp_path / "mr_emr.py").write_text("from mrjob.emr import EMRJobRunner\n"
                                        "from mrjob.job import MRJob\n")
    proc = cli("mr_emr.py", text, "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "mrjob.emr is not part of mapreduce's mrjob compatibility layer" in first
    assert not (tmp_path / "out").exists()


# --- a slice of mrjob's tests/test_job.py patterns -----------------------------------------
def test_mrstep_checks_its_keywords_as_mrjob_does():
    from mapreduce.mrjob.step import MRStep
    with pytest.raises(TypeError, match="unexpected keyword argument 'mappper'"):
        MRStep(mappper=print)
    with pytest.raises(ValueError, match="Step has no mappers and no reducers"):
        MRStep(jobconf={})
    with pytest.raises(ValueError, match="Can't specify both mapper_cmd and mapper"):
        MRStep(mapper=print, mapper_cmd="cat")
    step = MRStep(reducer_init=print)
    assert step["mapper"] is not None and step["reducer"] is not None  # the identities
    assert MRStep(mapper=print) == MRStep(mapper=print)


def test_default_steps_come_from_the_overridden_methods():
    from mapreduce.mrjob import MRJob, MRStep

    class MRBoth(MRJob):
        def mapper(self, key, value):
            yield key, value

        def reducer_final(self):
            yield "done", 1

        def mapper_pre_filter(self):
            return "grep x"

    job = MRBoth([])
    assert job.steps() == [MRStep(mapper=job.mapper, reducer_final=job.reducer_final,
                                  mapper_pre_filter="grep x")]


def test_hooks_run_once_per_task_in_order_and_counters_per_step():
    """mapper_init/mapper_final and reducer_init/reducer_final as mrjob's test_job.py checks
    them, over two steps, with the counters of each step apart."""
    from mapreduce.mrjob import MRJob, MRStep

    class MRHooks(MRJob):
        JOBCONF = {"mapreduce.job.reduces": 1}

        def steps(self):
            return [MRStep(mapper_init=self.init, mapper=self.map, mapper_final=self.final,
                           reducer=self.total),
                    MRStep(reducer_init=self.r_init, reducer=self.passing,
                           reducer_final=self.r_final)]

        def init(self):
            self.seen = 0
            self.increment_counter("step0", "init")

        def map(self, _, line):
            self.seen += 1
            yield "lines", 1

        def final(self):
            yield "seen by a task", self.seen

        def total(self, key, values):
            yield key, sum(values)

        def r_init(self):
            self.increment_counter("step1", "init")
            yield "r_init", 0

        def passing(self, key, values):
            yield key, list(values)

        def r_final(self):
            yield "r_final", 0

    job = MRHooks(["-r", "inline", "-"])
    job.sandbox(stdin=io.BytesIO(b"a\nb\nc\n"))
    with job.make_runner() as runner:
        runner.run()
        assert dict(job.parse_output(runner.cat_output())) == {
            "r_init": 0, "lines": [3], "seen by a task": [3], "r_final": 0}
        assert runner.counters() == [{"step0": {"init": 1}}, {"step1": {"init": 1}}]


def test_dash_D_jobconf_on_the_command_line_and_in_mrjob_args(text, tmp_path):
    proc = cli(EXAMPLES / "mr_word_freq_count.py", text, "-o", tmp_path / "a", "-q",
               "--runner", "inline", "-D", "mapreduce.job.reduces=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "a").glob("part-*")) == ["part-00000",
                                                                       "part-00001"]
    proc = cli(EXAMPLES / "mr_word_freq_count.py", text, "-o", tmp_path / "b", "-q",
               "-D", "mapreduce.output.fileoutputformat.compress=true", cwd=tmp_path)
    one_error_line(proc, "mapreduce.output.fileoutputformat.compress")

    from mapreduce.mrjob import MRJob

    class MRLines(MRJob):
        def mapper(self, _, line):
            yield line, 1

        def reducer(self, line, ones):
            yield line, sum(ones)

    job = MRLines(["-r", "inline", "-D", "mapred.reduce.tasks=1", "-"])
    job.sandbox(stdin=io.BytesIO(b"b\na\nb\n"))
    with job.make_runner() as runner:
        runner.run()
        assert len(list(Path(runner.get_output_dir()).glob("part-*"))) == 1
        assert list(job.parse_output(runner.cat_output())) == [("a", 1), ("b", 2)]
