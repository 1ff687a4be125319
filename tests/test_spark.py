"""The Spark runner (``--runner spark``) against the local runner and plain Python.

Every conformance case runs the same job, input and reducer count through both runners and
requires byte-identical part files (plus a plain-Python check of what the output means).
All in-process Spark runs share one SparkContext on ``local[2]`` for the session (the runner
reuses an active context).  Error cases run the CLI in a subprocess.  One test starts a real
standalone cluster (a master and two workers on 127.0.0.1) and submits a job to it.

Without pyspark or Java 17+ the Spark tests are skipped, unless MAPREDUCE_REQUIRE_SPARK=1.
"""
from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce.errors import MapReduceError, UsageError
from mapreduce.loader import load_job_class
from mapreduce.runners import run_job
from mapreduce.options import JobConfig

from ft_helpers import stop_process_groups  # noqa: E402
from oracle import read_parts, run_oracle
from test_oracle import JOB_SOURCES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample_data")
JOBS = os.path.join(REPO, "tests", "jobs")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
WORD_RE = re.compile(r"[\w']+")
REQUIRE = os.environ.get("MAPREDUCE_REQUIRE_SPARK") == "1"


def _spark_missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'mapreduce[spark]')"
    from mapreduce.runners.spark import check_java
    try:
        check_java()
    except UsageError as exc:
        return str(exc)
    return None


MISSING = _spark_missing()


def _need_spark() -> None:
    if MISSING:
        if REQUIRE:
            pytest.fail(f"MAPREDUCE_REQUIRE_SPARK=1 but {MISSING}")
        pytest.skip(MISSING)


@pytest.fixture(scope="session")
def spark():
    """One SparkContext on local[2] for every in-process Spark test."""
    _need_spark()
    # Made the way the runner makes one for a user: nothing here chooses the workers' Python.
    from mapreduce.runners.spark import spark_context, stop_spark
    sc = spark_context("local[2]", "tests")
    yield sc
    stop_spark()


# --- helpers ---------------------------------------------------------------------------------
def config(inputs, out, runner, **kw) -> JobConfig:
    return JobConfig(inputs=[str(i) for i in inputs], output_dir=str(out), runner=runner, **kw)


def both(tmp_path, job_path, inputs, name="run", **kw):
    """Run a job through the local and the Spark runner; assert identical parts."""
    cls, ref = load_job_class(str(job_path))
    local = run_job(cls, ref, config(inputs, tmp_path / f"{name}-local", "local", **kw))
    spark = run_job(cls, ref, config(inputs, tmp_path / f"{name}-spark", "spark", **kw))
    lp, sp = read_parts(local.output_dir), read_parts(spark.output_dir)
    assert sorted(lp) == sorted(sp)
    for part in lp:
        assert sp[part] == lp[part], f"{part} differs"
    assert os.path.exists(os.path.join(spark.output_dir, "_SUCCESS"))
    return local, spark, sp


def lines_of(parts: dict) -> list:
    return [json.loads("[" + ln.replace("\t", ",", 1) + "]")
            for name in sorted(parts) for ln in parts[name].decode().splitlines()]


def write_job(tmp_path, name, source) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def sample_counts() -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for root, dirs, files in os.walk(SAMPLE):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        for f in files:
            if not f.startswith(("_", ".")):
                with open(os.path.join(root, f), encoding="utf-8") as fh:
                    counts.update(w.lower() for w in WORD_RE.findall(fh.read()))
    return counts


# --- conformance: both runners, byte for byte --------------------------------------------------
@pytest.mark.parametrize("reducers", [1, 3])
def test_wordcount_with_combiner(spark, tmp_path, reducers):
    local, result, parts = both(tmp_path, WORDCOUNT, [SAMPLE], reducers=reducers,
                                split_size=64 << 10)
    assert len(parts) == reducers
    assert dict(lines_of(parts)) == dict(sample_counts())
    fw_local, fw_spark = local.counters["framework"], result.counters["framework"]
    for name in ("MAP_INPUT_RECORDS", "MAP_OUTPUT_RECORDS", "COMBINE_INPUT_RECORDS",
                 "COMBINE_OUTPUT_RECORDS", "REDUCE_INPUT_RECORDS", "REDUCE_INPUT_GROUPS",
                 "REDUCE_OUTPUT_RECORDS", "OUTPUT_RECORDS", "BYTES_READ", "BYTES_WRITTEN"):
        assert fw_spark[name] == fw_local[name], name
    with open(os.path.join(result.output_dir, "_job.json")) as f:
        summary = json.load(f)
    assert summary["runner"] == "spark" and summary["spark_master"] == "local[2]"
    assert summary["counters"] == result.counters
    assert {"job", "reducers", "steps", "inputs", "output_dir", "config", "counters",
            "tasks", "phases"} <= set(summary)
    maps = [t for t in summary["tasks"] if t["kind"] == "map"]
    assert len(maps) == len({t["index"] for t in maps}) > 1
    assert not os.path.exists(os.path.join(result.output_dir, "_temporary"))


def test_small_sort_buffer_combines_like_the_local_runner(spark, tmp_path):
    local, result, _ = both(tmp_path, WORDCOUNT, [SAMPLE], sort_buffer=16 << 10)
    for name in ("COMBINE_INPUT_RECORDS", "COMBINE_OUTPUT_RECORDS", "REDUCE_INPUT_RECORDS"):
        assert result.counters["framework"][name] == local.counters["framework"][name]


def test_multi_step(spark, tmp_path):
    _, _, parts = both(tmp_path, os.path.join(JOBS, "multi_step.py"), [SAMPLE], reducers=2,
                       split_size=100 << 10)
    expected = sorted(((-c, w) for w, c in sample_counts().items()))[:20]
    assert [tuple(x) for x in lines_of(parts)] == [(-c, w) for c, w in expected]


def test_map_only_one_part_per_split(spark, tmp_path):
    text = "".join(f"line {i} {'x' * (i % 7)}\n" for i in range(400))
    (tmp_path / "in.txt").write_text(text)
    _, result, parts = both(tmp_path, os.path.join(JOBS, "map_only.py"),
                            [tmp_path / "in.txt"], split_size=1000)
    assert len(parts) == -(-len(text) // 1000)
    assert [v for _, v in lines_of(parts)] == text.splitlines()
    assert result.counters["framework"]["OUTPUT_RECORDS"] == 400


def test_sort_values(spark, tmp_path):
    rows = [f"u{i % 5},{(i * 7919) % 1000},e{i}" for i in range(300)]
    (tmp_path / "in.txt").write_text("\n".join(rows) + "\n")
    _, _, parts = both(tmp_path, os.path.join(JOBS, "sort_values.py"), [tmp_path / "in.txt"],
                       split_size=700, reducers=2)
    got = dict(lines_of(parts))
    for user, values in got.items():
        want = sorted((int(t), e) for u, t, e in (r.split(",") for r in rows) if u == user)
        assert [tuple(v) for v in values] == want


def test_counters_user_and_framework(spark, tmp_path):
    local, result, parts = both(tmp_path, os.path.join(JOBS, "counters.py"), [SAMPLE],
                                split_size=64 << 10)
    user = {g: v for g, v in result.counters.items() if g != "framework"}
    assert user == {g: v for g, v in local.counters.items() if g != "framework"}
    counts = sample_counts()
    assert user["words"]["total"] == sum(counts.values())
    assert user["words"]["distinct"] == len(counts)
    assert result.counters["framework"]["REDUCE_INPUT_RECORDS"] == sum(counts.values())


def test_empty_input(spark, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    _, result, parts = both(tmp_path, WORDCOUNT, [tmp_path / "empty.txt"], reducers=3)
    assert parts == {f"part-0000{i}": b"" for i in range(3)}
    assert result.counters["framework"]["MAP_INPUT_RECORDS"] == 0
    _, _, parts = both(tmp_path, os.path.join(JOBS, "map_only.py"), [tmp_path / "empty.txt"],
                       name="maponly")
    assert parts == {"part-00000": b""}


def test_every_key_type(spark, tmp_path):
    (tmp_path / "in.txt").write_text("".join(f"line {i} of {'w' * i}\n" for i in range(40)))
    _, _, parts = both(tmp_path, os.path.join(JOBS, "all_key_types.py"),
                       [tmp_path / "in.txt"], reducers=3, split_size=200)
    got = {json.dumps(k): v for k, v in lines_of(parts)}
    assert got["1"] == 3 * 40 and got['[1, "a"]'] == 2 * 40 and got["null"] == 40
    job = write_job(tmp_path, "mixed", JOB_SOURCES["mixedkeys"])
    both(tmp_path, job, [tmp_path / "in.txt"], name="mixed", reducers=4, split_size=150)


def test_custom_partitioner_and_side_data_terasort(spark, tmp_path):
    spec = tmp_path / "spec.txt"
    spec.write_text("".join(f"{s} 1500".ljust(47) + "\n" for s in (0, 1500, 3000)))
    cls, ref = load_job_class(os.path.join(REPO, "jobs", "teragen.py"))
    run_job(cls, ref, config([spec], tmp_path / "tera-in", "local", split_size=48))
    _, result, parts = both(tmp_path, os.path.join(REPO, "jobs", "terasort.py"),
                            [tmp_path / "tera-in"], reducers=3, split_size=100 << 10)
    rows = b"".join(parts[p] for p in sorted(parts)).splitlines()
    assert len(rows) == 4500 and all(len(p) > 0 for p in parts.values())
    assert [r[:10] for r in rows] == sorted(r[:10] for r in rows)


def test_whole_file_input_and_task_context(spark, tmp_path):
    for i in range(3):
        (tmp_path / "in" / "").mkdir(exist_ok=True)
        (tmp_path / "in" / f"f{i}.txt").write_bytes(b"x\n" * (i + 1))
    job = write_job(tmp_path, "whole", """
        import os
        from mapreduce import Job

        class Whole(Job):
            INPUT_FORMAT = "whole_file"

            def mapper(self, path, data):
                yield os.path.basename(path), [len(data), self.input_start, self.input_end,
                                               os.path.basename(self.input_path)]

            def reducer(self, key, values):
                yield key, list(values)
    """)
    _, _, parts = both(tmp_path, job, [tmp_path / "in"], reducers=2)
    assert dict(lines_of(parts)) == {f"f{i}.txt": [[2 * (i + 1), 0, None, f"f{i}.txt"]]
                                     for i in range(3)}
    ctx = write_job(tmp_path, "ctx", """
        from mapreduce import Job

        class Context(Job):
            def mapper(self, _, line):
                yield line, [self.input_start, self.input_end, self.options.tag]

            def configure_args(self, parser):
                parser.add_argument("--tag", default="none")
    """)
    _, _, parts = both(tmp_path, ctx, [tmp_path / "in"], name="ctx", split_size=3,
                       job_options={"tag": "T"})
    assert all(v[2] == "T" for _, v in lines_of(parts))


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(template=st.sampled_from(["wordcount", "order", "sortdedupe", "maponly_then_reduce",
                                 "multistep"]),
       lines=st.lists(st.text(alphabet="ab c\u00e9", max_size=12), max_size=12),
       split_size=st.integers(4, 40), reducers=st.integers(1, 4))
def test_random_inputs_match_local_and_oracle(spark, tmp_path_factory, template, lines,
                                              split_size, reducers):
    tmp = tmp_path_factory.mktemp("prop")
    data = "".join(f"{ln}\n" for ln in lines).encode("utf-8")
    (tmp / "in.txt").write_bytes(data)
    job = write_job(tmp, template, JOB_SOURCES[template])
    local, result, parts = both(tmp, job, [tmp / "in.txt"], split_size=split_size,
                                reducers=reducers)
    cls, _ = load_job_class(job)
    expected = run_oracle(cls, [data], split_size, reducers)
    assert parts == expected.parts
    user = {g: v for g, v in result.counters.items() if g != "framework"}
    assert user == expected.user_counters


# --- errors ---------------------------------------------------------------------------------------
def test_user_exception_in_a_reducer_fails_the_job(spark, tmp_path):
    (tmp_path / "in.txt").write_text("a boom b\n")
    cls, ref = load_job_class(os.path.join(JOBS, "raising_reducer.py"))
    out = tmp_path / "out"
    with pytest.raises(MapReduceError) as info:
        run_job(cls, ref, config([tmp_path / "in.txt"], out, "spark", reducers=2))
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"step 0 reduce task \d \(partition \d\) failed: reducer raised "
                     r"KeyError: 'boom' \(at key 'boom' of partition \d\)", message), message
    assert "raise KeyError(word)" in info.value.detail
    assert "raising_reducer.py" in info.value.detail
    assert os.listdir(out) == []   # no part files, no _SUCCESS, no work dir


_NOT_PAIRS = {
    "mapper": ("""
        from mapreduce import Job
        class NotPairs(Job):
            REDUCERS = 1
            def mapper(self, _, line):
                yield line[:2]
            def reducer(self, key, values):
                yield key, sum(values)
        """, "mapper yielded 'no' (str), not a (key, value) pair"),
    "reducer": ("""
        from mapreduce import Job
        class NotPairs(Job):
            REDUCERS = 1
            def mapper(self, _, line):
                yield line, 1
            def reducer(self, key, values):
                yield sum(values)
        """, "reducer yielded 2 (int), not a (key, value) pair"),
}


@pytest.mark.parametrize("method", sorted(_NOT_PAIRS))
def test_not_a_pair_is_named_as_by_the_local_runner(spark, tmp_path, method):
    """The Spark runner's task loops report a job method's non-pairs with the local
    runner's words (what was yielded, the job's line, the record or key)."""
    source, needle = _NOT_PAIRS[method]
    job_path = write_job(tmp_path, "not_pairs", source)
    (tmp_path / "in.txt").write_text("north\nsouth\nnorth\n")
    cls, ref = load_job_class(job_path)
    messages = {}
    for runner in ("local", "spark"):
        with pytest.raises(MapReduceError) as info:
            run_job(cls, ref, config([tmp_path / "in.txt"], tmp_path / runner, runner,
                                     max_attempts=1) if runner == "local" else
                    config([tmp_path / "in.txt"], tmp_path / runner, runner))
        message = str(info.value)
        assert needle in message and "not_pairs" in message, message
        # Spark runs a shipped copy of the job file: compare past its path
        messages[runner] = re.sub(r"\(\S+ line (\d+): ", r"(JOB line \1: ",
                                  message[message.index(needle):].split(" (log: ")[0])
    assert messages["spark"] == messages["local"]


def test_missing_dependency_on_executors(spark, tmp_path, monkeypatch):
    helpers = tmp_path / "driver_only"
    helpers.mkdir()
    (helpers / "driver_only_helper.py").write_text("WORD = 'x'\n")
    monkeypatch.syspath_prepend(str(helpers))  # the driver has it; executors do not
    job = write_job(tmp_path, "needs_helper", """
        import driver_only_helper
        from mapreduce import Job

        class NeedsHelper(Job):
            def mapper(self, _, line):
                yield driver_only_helper.WORD, 1
    """)
    (tmp_path / "in.txt").write_text("a\n")
    cls, ref = load_job_class(job)
    with pytest.raises(MapReduceError) as info:
        run_job(cls, ref, config([tmp_path / "in.txt"], tmp_path / "out", "spark"))
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and "java" not in message
    assert "cannot be imported on a Spark executor" in message
    assert "No module named 'driver_only_helper'" in message


def test_options_that_do_not_apply_are_refused(tmp_path):
    _need_spark()
    cls, ref = load_job_class(WORDCOUNT)
    for kw, option in [({"mode": "memory"}, "--mode"), ({"merge_factor": 3}, "--merge-factor"),
                       ({"task_timeout": 5.0}, "--task-timeout"), ({"resume": True}, "--resume")]:
        with pytest.raises(UsageError, match=re.escape(option)):
            run_job(cls, ref, config([SAMPLE], tmp_path / "out", "spark", **kw))


def test_existing_output_is_refused_without_overwrite(spark, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    cls, ref = load_job_class(WORDCOUNT)
    with pytest.raises(MapReduceError, match="output directory is not empty"):
        run_job(cls, ref, config([SAMPLE], out, "spark"))
    run_job(cls, ref, config([SAMPLE], out, "spark", overwrite=True))
    assert not (out / "keep.txt").exists() and (out / "_SUCCESS").exists()


def _cli(args, env=None, pre=None, timeout=180):
    env = dict(os.environ if env is None else env)
    code = (pre or "") + "import sys; from mapreduce.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "run", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_without_pyspark_says_what_to_install(tmp_path):
    block = ("import sys, importlib.abc\n"
             "class _Block(importlib.abc.MetaPathFinder):\n"
             "    def find_spec(self, name, path, target=None):\n"
             "        if name == 'pyspark' or name.startswith('pyspark.'):\n"
             "            raise ImportError('No module named ' + repr(name))\n"
             "sys.meta_path.insert(0, _Block())\n")
    proc = _cli([WORDCOUNT, SAMPLE, "-o", tmp_path / "out", "--runner", "spark"], pre=block)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "mapreduce: error: --runner spark needs pyspark: pip install 'mapreduce[spark]'"]


def test_cli_without_java_says_what_to_install(tmp_path):
    if MISSING and "pyspark" in MISSING:
        pytest.skip(MISSING)
    env = dict(os.environ, JAVA_HOME=str(tmp_path / "no-java"),
               PATH=os.path.dirname(sys.executable))
    proc = _cli([WORDCOUNT, SAMPLE, "-o", tmp_path / "out", "--runner", "spark"], env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs Java 17+" in lines[0]
    assert "apt-get install openjdk-17-jre-headless" in lines[0]


def test_cli_resume_is_a_local_runner_feature(tmp_path):
    if MISSING and "pyspark" in MISSING:
        pytest.skip(MISSING)
    proc = _cli([WORDCOUNT, SAMPLE, "-o", tmp_path / "out", "--runner", "spark", "--resume"])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Spark recovers failed tasks itself" in lines[0]


def test_cli_user_exception_is_one_line_without_java_trace(tmp_path):
    _need_spark()
    (tmp_path / "in.txt").write_text("boom\n")
    env = dict(os.environ, PYSPARK_SUBMIT_ARGS="--conf spark.ui.enabled=false pyspark-shell")
    proc = _cli([os.path.join(JOBS, "raising_reducer.py"), tmp_path / "in.txt", "-o",
                 tmp_path / "out", "--runner", "spark", "--spark-master", "local[1]"], env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("mapreduce: error: step 0 reduce task ")
    assert "reducer raised KeyError: 'boom'" in lines[0]
    assert "\tat " not in proc.stderr and "Py4J" not in proc.stderr
    assert "org.apache.spark" not in proc.stderr
    assert lines[-1] == "KeyError: 'boom'"
    assert not os.path.exists(tmp_path / "out" / "_SUCCESS")


# --- a real standalone cluster on loopback --------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs) -> None:
    stop_process_groups(procs, grace=15)



def test_standalone_cluster_on_loopback(tmp_path):
    _need_spark()
    import pyspark
    spark_home = os.path.dirname(pyspark.__file__)
    spark_class = os.path.join(spark_home, "bin", "spark-class")
    port, ui = _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    env = dict(os.environ, SPARK_HOME=spark_home, SPARK_LOG_DIR=str(tmp_path / "logs"),
               SPARK_WORKER_DIR=str(tmp_path / "work"), SPARK_LOCAL_IP="127.0.0.1",
               PYSPARK_PYTHON=sys.executable)
    procs = []
    try:
        def start(*args, log):
            procs.append(subprocess.Popen([spark_class, *args], env=env, start_new_session=True,
                                          stdout=open(tmp_path / log, "wb"),
                                          stderr=subprocess.STDOUT))
        start("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
              str(port), "--webui-port", str(ui), log="master.log")
        for i in range(2):
            start("org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
                  "--cores", "1", "--memory", "1g", "--webui-port", "0", log=f"worker{i}.log")
        deadline = time.monotonic() + 60
        alive = 0
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as r:
                    alive = sum(w.get("state") == "ALIVE" for w in json.load(r)["workers"])
            except OSError:
                alive = 0
            if alive == 2:
                break
            time.sleep(0.5)
        assert alive == 2, (tmp_path / "master.log").read_text()[-2000:]
        out = tmp_path / "cluster-out"
        proc = _cli([os.path.join(JOBS, "multi_step.py"), SAMPLE, "-o", out, "--runner",
                     "spark", "--spark-master", master_url, "--reducers", "2", "-q"],
                    env=dict(env, PYSPARK_SUBMIT_ARGS="--conf spark.ui.enabled=false "
                             "--conf spark.driver.host=127.0.0.1 pyspark-shell"))
        assert proc.returncode == 0, proc.stderr
        cls, ref = load_job_class(os.path.join(JOBS, "multi_step.py"))
        local = run_job(cls, ref, config([SAMPLE], tmp_path / "local-out", "local",
                                         reducers=2))
        assert read_parts(str(out)) == read_parts(local.output_dir)
        with open(out / "_job.json") as f:
            summary = json.load(f)
        assert summary["spark_master"] == master_url
        hosts = {t["host"] for t in summary["tasks"]}
        assert hosts and len(summary["tasks"]) >= 4
    finally:
        _stop(procs)
