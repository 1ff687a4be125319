"""One engine, many runners: the same job gives the same bytes and counters on every runner.

Every case runs one job through the Python API (``mapreduce.run``, as a user calls it) on

* ``inline``: the whole job in this process, one task at a time;
* ``local``: worker processes, disk shuffle; ``local-memory``: the same with ``mode="memory"``;
* ``spark``: Apache Spark on ``local[2]`` (one SparkContext for the whole session: the runner
  reuses an active context, as it would a notebook's),

and checks each run against an independent plain-Python oracle (``tests/oracle.py``): the
part files byte for byte, the framework counters the oracle predicts and the user counters.
Every runner's run-independent counters (records, bytes read and written, combiner calls,
user groups) must equal the inline runner's; ``RunResult.pairs()`` must equal the oracle's
part files parsed here with ``json`` (or, for ``raw_value`` output, split into lines).

The cases cover: word count with a combiner, a two-step job, ``SORT_VALUES``, TeraSort
(``raw_value`` output, ``prepare()`` side data and a custom partitioner), a job reading side
data in every task, a map-only job (a part file per split), user counters, every kind of key,
``mapper_init``/``mapper_final``, and a mapper raising on some records under
``skip_bad_records`` (which Spark refuses, naming the runner).  Spark is slow to start and to run a job on two cores, so
three Spark cases are in the default run and the others are ``slow``.

Without pyspark or Java 17+ the Spark cases are skipped, unless MAPREDUCE_REQUIRE_SPARK=1 (CI).
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

import mapreduce
from mapreduce.errors import UsageError
from mapreduce.loader import load_job_class

from oracle import read_parts, run_oracle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample_data")
JOBS = os.path.join(REPO, "jobs")
TEST_JOBS = os.path.join(REPO, "tests", "jobs")
SPLIT = 64 << 10          # several map tasks per sample_data file
REQUIRE_SPARK = os.environ.get("MAPREDUCE_REQUIRE_SPARK") == "1"

#: Framework counters that describe how a runner's shuffle stores data, not what the job
#: did: the memory shuffle spills nothing, Spark's shuffle is Spark's (no SHUFFLE_BYTES).
SHUFFLE_COUNTERS = {"SHUFFLE_BYTES", "SPILLED_BYTES", "SPILLED_RECORDS", "SPILL_FILES"}


# --- inputs (plain Python, seeded) ----------------------------------------------------------------
def sample_files(_tmp) -> list[str]:
    return sorted(os.path.join(SAMPLE, f) for f in os.listdir(SAMPLE)
                  if not f.startswith(("_", ".")))


def timeline_files(tmp) -> list[str]:
    """``user,timestamp,event`` lines, timestamps out of order and repeated."""
    rng = random.Random(15)
    path = tmp / "events.csv"
    path.write_text("".join(f"u{rng.randrange(40)},{rng.randrange(500)},"
                            f"{rng.choice(['view', 'click', 'buy', 'leave'])}\n"
                            for _ in range(6000)))
    return [str(path)]


def tera_files(tmp) -> list[str]:
    """TeraGen-like records in two files: a 10-character key ('!'..'~', some repeated, so
    the sort's stability shows), a row number, filler."""
    rng = random.Random(1015)
    keys = ["".join(chr(rng.randrange(33, 127)) for _ in range(10)) for _ in range(1500)]
    paths = []
    for f in range(2):
        path = tmp / f"tera-{f}.txt"
        path.write_text("".join(f"{rng.choice(keys)}  {f:01d}{i:07d}  "
                                f"{'AB' * rng.randrange(1, 20)}\n" for i in range(3000)))
        paths.append(str(path))
    return paths


def booms_files(tmp) -> list[str]:
    """Lines of words; every 97th line holds BOOM, on which tests/jobs/raising.py raises."""
    rng = random.Random(97)
    words = ["alpha", "beta", "gamma", "delta", "BOOM"]
    path = tmp / "booms.txt"
    path.write_text("".join((f"line {i} BOOM\n" if i % 97 == 5 else
                             " ".join(rng.choice(words[:4]) for _ in range(3)) + "\n")
                            for i in range(4000)))
    return [str(path)]


@dataclass(frozen=True)
class Case:
    job: str
    inputs: Callable[[Any], list[str]]
    reducers: int
    options: dict = field(default_factory=dict)
    skip_bad_records: bool = False
    spark: str = "slow"           # "default", "slow" or "refused"


CASES = {
    "wordcount-combiner": Case(os.path.join(JOBS, "wordcount.py"), sample_files, 3),
    "multi-step": Case(os.path.join(TEST_JOBS, "multi_step.py"), sample_files, 2,
                       spark="default"),
    "sort-values": Case(os.path.join(TEST_JOBS, "sort_values.py"), timeline_files, 3,
                        spark="default"),
    "terasort-raw-value-prepare-partitioner": Case(os.path.join(JOBS, "terasort.py"),
                                                   tera_files, 3, spark="default"),
    "side-data": Case(os.path.join(TEST_JOBS, "side_data.py"), sample_files, 2),
    "map-only": Case(os.path.join(TEST_JOBS, "map_only.py"), sample_files, 3),
    "user-counters": Case(os.path.join(TEST_JOBS, "counters.py"), sample_files, 3),
    "every-key-type": Case(os.path.join(TEST_JOBS, "all_key_types.py"), sample_files, 2),
    "mapper-init-final": Case(os.path.join(TEST_JOBS, "line_count.py"), sample_files, 1),
    "skip-bad-records": Case(os.path.join(TEST_JOBS, "raising.py"), booms_files, 2,
                             {"skip_bad_records": 100}, skip_bad_records=True,
                             spark="refused"),
}

RUNNERS = {
    "inline": {"runner": "inline"},
    "local": {"runner": "local", "workers": 2},
    "local-memory": {"runner": "local", "workers": 2, "mode": "memory"},
    "spark": {"runner": "spark", "spark_master": "local[2]"},
}


# --- Spark ----------------------------------------------------------------------------------------
def _spark_missing() -> Optional[str]:
    from mapreduce.runners.spark import check_environment
    try:
        check_environment()
    except UsageError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def spark_context():
    """The session's SparkContext on local[2], made the way the runner makes one for a user
    (spark_context reuses it if another test module made it first)."""
    missing = _spark_missing()
    if missing:
        if REQUIRE_SPARK:
            pytest.fail(f"MAPREDUCE_REQUIRE_SPARK=1 but {missing}")
        pytest.skip(missing)
    from mapreduce.runners.spark import spark_context, stop_spark
    sc = spark_context("local[2]", "tests")
    yield sc
    stop_spark()


# --- what each case should give -------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, list[str]]:
    tmp = tmp_path_factory.mktemp("conformance-inputs")
    return {name: case.inputs(tmp) for name, case in CASES.items()}


_ORACLE: dict[str, Any] = {}
_INLINE: dict[str, Any] = {}


def oracle(name: str, paths: list[str]):
    if name not in _ORACLE:
        case = CASES[name]
        cls, _ = load_job_class(case.job)
        contents = []
        for p in paths:
            with open(p, "rb") as f:
                contents.append(f.read())
        _ORACLE[name] = run_oracle(cls, contents, SPLIT, case.reducers, input_paths=paths,
                                   skip_bad_records=case.skip_bad_records)
    return _ORACLE[name]


def run(name: str, runner: str, paths: list[str], out) -> mapreduce.RunResult:
    case = CASES[name]
    return mapreduce.run(case.job, paths, str(out), progress=False, split_size=SPLIT,
                         reducers=case.reducers, **case.options, **RUNNERS[runner])


def inline_run(name: str, paths: list[str], tmp_path_factory) -> mapreduce.RunResult:
    if name not in _INLINE:
        _INLINE[name] = run(name, "inline", paths, tmp_path_factory.mktemp("inline") / "out")
    return _INLINE[name]


def parsed(parts: dict[str, bytes], protocol: str) -> list[tuple[Any, Any]]:
    """The output pairs, parsed here with json (independent of mapreduce.output)."""
    pairs = []
    for name in sorted(parts):
        for line in parts[name].decode("utf-8").splitlines():
            if protocol == "raw_value":
                pairs.append((None, line))
            else:
                key, value = line.split("\t", 1)   # json escapes tabs in strings
                pairs.append((json.loads(key), json.loads(value)))
    return pairs


def run_independent(counters: dict) -> dict:
    return {group: {k: v for k, v in names.items()
                    if not (group == "framework" and k in SHUFFLE_COUNTERS)}
            for group, names in counters.items()}


def _params():
    for name, case in CASES.items():
        for runner in RUNNERS:
            marks = []
            if runner == "spark" and case.spark == "slow":
                marks.append(pytest.mark.slow)
            yield pytest.param(name, runner, marks=marks, id=f"{name}-{runner}")


# --- the conformance suite ------------------------------------------------------------------------
@pytest.mark.parametrize("name,runner", list(_params()))
def test_same_bytes_and_counters_on_every_runner(name, runner, inputs, tmp_path,
                                                 tmp_path_factory, request):
    case = CASES[name]
    paths = inputs[name]
    if runner == "spark":
        if case.spark == "refused":
            with pytest.raises(UsageError) as info:
                run(name, runner, paths, tmp_path / "out")
            assert str(info.value).startswith(
                "skip_bad_records does not apply to runner spark (")
            assert not (tmp_path / "out").exists()
            return
        request.getfixturevalue("spark_context")
    expected = oracle(name, paths)
    assert expected.parts, "the case must produce output"
    result = run(name, runner, paths, tmp_path / "out")

    # the part files, byte for byte, and what they mean
    assert read_parts(result.output_dir) == expected.parts
    assert os.path.exists(os.path.join(result.output_dir, "_SUCCESS"))
    protocol = load_job_class(case.job)[0].OUTPUT_PROTOCOL
    assert list(result.pairs()) == parsed(expected.parts, protocol)

    # counters: what the oracle predicts, then everything the runner does not shape itself
    framework = result.counters["framework"]
    assert {k: framework.get(k, 0) for k in expected.counters} == expected.counters
    assert {g: n for g, n in result.counters.items() if g != "framework"} \
        == expected.user_counters
    reference = inline_run(name, paths, tmp_path_factory)
    assert run_independent(result.counters) == run_independent(reference.counters)
    if runner == "local":  # the same scheduler as inline: every counter alike
        assert result.counters == reference.counters


def test_the_cases_mean_what_they_say(inputs):
    """The oracle's view of the cases checked once more without it, so that a case that
    stopped exercising its feature is noticed."""
    # SORT_VALUES: each user's events in ascending (timestamp, event) order
    timeline = parsed(oracle("sort-values", inputs["sort-values"]).parts, "json")
    assert len(timeline) == 40
    for _, events in timeline:
        assert events == sorted(events)
    # TeraSort: the concatenated parts are the input stably sorted by the 10-character key
    # (GNU sort -s -k1.1,1.10), in more than one part
    lines = []
    for p in inputs["terasort-raw-value-prepare-partitioner"]:
        with open(p, encoding="utf-8") as f:
            lines += f.read().splitlines()
    tera = oracle("terasort-raw-value-prepare-partitioner",
                  inputs["terasort-raw-value-prepare-partitioner"])
    assert [v for _, v in parsed(tera.parts, "raw_value")] == sorted(lines, key=lambda s: s[:10])
    assert sum(1 for part in tera.parts.values() if part) == 3
    # side data reached the tasks: the stop words were dropped and counted
    side = oracle("side-data", inputs["side-data"])
    assert side.user_counters["side"]["stopped"] > 1000
    # skip_bad_records: every BOOM line was skipped, no other
    skipping = oracle("skip-bad-records", inputs["skip-bad-records"])
    assert skipping.counters["SKIPPED_RECORDS"] == sum(1 for i in range(4000) if i % 97 == 5)
    # the combiner ran (its counters are the runner's, not the oracle's)
    assert "REDUCE_INPUT_RECORDS" not in oracle("wordcount-combiner",
                                                inputs["wordcount-combiner"]).counters
