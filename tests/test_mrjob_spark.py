"""mrjob's ``spark()`` steps on ``--runner spark`` (issue 17): mrjob's own Spark examples,
unedited, through the real command line.

Each Spark step runs in a driver process of its own that starts its own JVM (as under
mrjob's spark-submit), so these tests are slow: one runs in the default run, the others are
``slow``.  The refusals need no JVM and all run by default.  The references are plain
Python (a word count with the example's regular expression and ``str()`` of each pair, as
``saveAsTextFile`` writes it).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ft_helpers import one_error_line

EXAMPLES = Path(__file__).parent / "mrjob_examples"
TIMEOUT = 900  # a JVM's start on a busy machine
WORD_RE = re.compile(r"[\w']+")
TEXT = ["the cat sat on the mat", "don't stop", "", "caf\u00e9 na\u00efve the end",
        "a a a b"] * 40


def cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapreduce", "run", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


def needs_spark() -> None:
    """Skip without pyspark or Java 17+, unless MAPREDUCE_REQUIRE_SPARK=1 (CI: a failure)."""
    missing = None
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing = "pyspark is not installed (pip install 'mapreduce[spark]')"
    else:
        from mapreduce.errors import UsageError
        from mapreduce.runners.spark import check_java
        try:
            check_java()
        except UsageError as exc:
            missing = str(exc)
    if missing:
        if os.environ.get("MAPREDUCE_REQUIRE_SPARK") == "1":
            pytest.fail(f"MAPREDUCE_REQUIRE_SPARK=1 but {missing}")
        pytest.skip(missing)


@pytest.fixture
def text(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "text.txt"
    path.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    return path


def part_lines(out: Path) -> list[str]:
    return sorted(line for p in sorted(out.glob("part-*"))
                  for line in p.read_text(encoding="utf-8").splitlines())


def word_count_lines(lines) -> list[str]:
    """mr_spark_wordcount's output, in plain Python: str() of each (word, count)."""
    counts = Counter(w for line in lines for w in WORD_RE.findall(line))
    return sorted(str(pair) for pair in counts.items())


def test_mr_spark_wordcount_gives_a_plain_python_word_count(text, tmp_path):
    needs_spark()
    out = tmp_path / "out"
    proc = cli(EXAMPLES / "mr_spark_wordcount.py", text, "-o", out, "--runner", "spark",
               "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert part_lines(out) == word_count_lines(TEXT)
    assert (out / "_SUCCESS").exists() and (out / "_job.json").exists()
    # Only the part files are taken from Spark's output directory (no .crc, no second
    # _SUCCESS), and the work directory is gone.
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("part-")) == \
        ["_SUCCESS", "_job.json"]
    assert not list(tmp_path.glob("out/_temporary*"))


@pytest.mark.slow
def test_mr_sparkaboom_fails_as_under_mrjob(text, tmp_path):
    """mrjob's example whose Spark task raises: the job fails, naming the step and the
    task's Python error (not Spark's Java stack), and leaves no output."""
    needs_spark()
    proc = cli(EXAMPLES / "mr_sparkaboom.py", text, "-o", tmp_path / "out", "--runner",
               "spark", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first == "mapreduce: error: step 0 (spark()) failed: Exception: KABOOM", \
        proc.stderr
    assert "\tat org.apache" not in proc.stderr and "ERROR" not in proc.stderr
    assert "raise Exception('KABOOM')" in proc.stderr  # the user's traceback, as detail
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    assert not list((tmp_path / "out").glob("part-*"))


TWO_SPARK_STEPS = '''
import re
from mrjob.job import MRJob
from mrjob.step import SparkStep


class MRTwoSparkSteps(MRJob):
    """Step 0 counts words (its input: the job's inputs, comma-joined); step 1 reads step
    0's output directory and keeps the words seen at least --min times."""

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--min", type=int, default=1)

    def steps(self):
        return [SparkStep(spark=self.count), SparkStep(spark=self.keep_common)]

    def count(self, input_path, output_path):
        from pyspark import SparkContext
        sc = SparkContext(appName="count")
        (sc.textFile(input_path).flatMap(lambda line: re.findall(r"[\\w']+", line))
         .map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
         .map(lambda kv: "%s\\t%d" % kv).saveAsTextFile(output_path))
        sc.stop()

    def keep_common(self, input_path, output_path):
        from pyspark import SparkContext
        sc = SparkContext(appName="keep")
        least = self.options.min
        (sc.textFile(input_path).map(lambda line: line.split("\\t"))
         .filter(lambda wc: int(wc[1]) >= least).map(lambda wc: wc[0])
         .saveAsTextFile(output_path))
        sc.stop()


if __name__ == "__main__":
    MRTwoSparkSteps.run()
'''


@pytest.mark.slow
def test_spark_steps_run_in_order_each_reading_the_last_ones_output(text, tmp_path):
    """Two SparkSteps: the second reads the first's output directory; two input files are
    passed to the first as mrjob passes them (comma-joined); a job option reaches spark()."""
    needs_spark()
    (tmp_path / "mr_two.py").write_text(TWO_SPARK_STEPS)
    second = tmp_path / "in" / "more.txt"
    second.write_text("zebra zebra zebra the\n", encoding="utf-8")
    proc = cli("mr_two.py", text, second, "-o", "out", "--runner", "spark", "--min", "41",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    counts = Counter(w for line in TEXT + ["zebra zebra zebra the"]
                     for w in WORD_RE.findall(line))
    assert part_lines(tmp_path / "out") == sorted(w for w, n in counts.items() if n >= 41)
    assert "the" in part_lines(tmp_path / "out")  # 121 times: from both files


# --- refusals: no JVM needed --------------------------------------------------------------
@pytest.mark.parametrize("runner", ["local", "inline"])
def test_spark_steps_on_other_runners_name_the_spark_runner(runner, text, tmp_path):
    proc = cli(EXAMPLES / "mr_spark_wordcount.py", text, "-o", tmp_path / "out",
               "--runner", runner, cwd=tmp_path)
    one_error_line(proc, "MRSparkWordcount", "spark()", "--runner spark")
    assert not (tmp_path / "out").exists()


MIXED = '''
from mrjob.job import MRJob
from mrjob.step import MRStep, SparkStep


class MRMixedSteps(MRJob):
    def steps(self):
        return [MRStep(mapper=self.m), SparkStep(spark=self.s)]

    def m(self, _, line):
        yield line, 1

    def s(self, input_path, output_path):
        pass
'''


def test_spark_steps_mixed_with_mrsteps_are_refused_at_start(text, tmp_path):
    needs_spark()  # the Spark runner checks Java before it looks at the job
    (tmp_path / "mr_mixed.py").write_text(MIXED)
    proc = cli("mr_mixed.py", text, "-o", "out", "--runner", "spark", cwd=tmp_path)
    one_error_line(proc, "mr_mixed.py", "MRMixedSteps", "mixes Spark steps")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", [["--output-compression", "gz"], ["--reducers", "3"],
                                    ["--split-size", "1MB"], ["--decode-errors", "replace"]])
def test_engine_options_are_refused_for_spark_steps(option, text, tmp_path):
    """spark() reads and writes for itself: the engine's task and output options would be
    ignored, so they are refused."""
    needs_spark()
    proc = cli(EXAMPLES / "mr_spark_wordcount.py", text, "-o", tmp_path / "out",
               "--runner", "spark", *option, cwd=tmp_path)
    one_error_line(proc, option[0], "mr_spark_wordcount.py")
    assert not (tmp_path / "out").exists()
