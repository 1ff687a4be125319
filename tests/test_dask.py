"""The Dask runner (``--runner dask``) on a real cluster on loopback, against the local runner.

The session fixture starts ``dask scheduler`` and two ``dask worker`` processes (one thread
each, with nannies, as a user starts them) as separate processes; the tests submit through
the Python API (``runner="dask", dask_client=client``) and the command line
(``--dask-scheduler``).  Every job must give the local runner's bytes; the fault test kills a
worker process with SIGKILL mid-job.  One test runs the CLI from a fresh virtualenv with a
LocalCluster.  Without ``distributed`` the tests are skipped.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import venv
from pathlib import Path

import pytest

if os.environ.get("MAPREDUCE_REQUIRE_DASK") == "1":  # CI: a skip would hide a broken install
    import distributed
else:
    distributed = pytest.importorskip("distributed", reason="pip install 'mapreduce[dask]'")

import mapreduce  # noqa: E402
from mapreduce.errors import JobCancelledError, UsageError  # noqa: E402
from ft_helpers import stop_process_groups  # noqa: E402
from oracle import read_parts  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
TJOBS = ROOT / "tests" / "jobs"
SAMPLE = ROOT / "sample_data"
sys.path.insert(0, str(JOBS))


def _stop(procs) -> None:
    stop_process_groups(procs, grace=20)



@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers on 127.0.0.1, each its own process
    group; yields (address, client)."""
    d = tmp_path_factory.mktemp("dask")
    info = d / "scheduler.json"
    procs = []

    def start(*args, log):
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=d,
                                      start_new_session=True, stdout=open(d / log, "wb"),
                                      stderr=subprocess.STDOUT))
    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(info), log="scheduler.log")
        for _ in range(600):
            if info.exists() and info.stat().st_size:
                break
            assert procs[0].poll() is None, (d / "scheduler.log").read_text()
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for i in range(2):
            start("worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                  "--host", "127.0.0.1", "--local-directory", str(d / f"w{i}"),
                  log=f"worker{i}.log")
        client = distributed.Client(address, set_as_default=False)
        client.wait_for_workers(2, timeout=120)
        yield address, client
        client.close()
    finally:
        _stop(procs)


def both(tmp_path, job, inputs, client, name="run", **kw):
    """The job on the local runner and on the cluster; asserts identical part files."""
    local = mapreduce.run(str(job), [str(i) for i in inputs], str(tmp_path / f"{name}-local"),
                          progress=False, **kw)
    dask = mapreduce.run(str(job), [str(i) for i in inputs], str(tmp_path / f"{name}-dask"),
                         progress=False, runner="dask", dask_client=client, **kw)
    lp, dp = read_parts(local.output_dir), read_parts(dask.output_dir)
    assert lp and sorted(lp) == sorted(dp)
    for part in lp:
        assert dp[part] == lp[part], f"{part} differs"
    assert (Path(dask.output_dir) / "_SUCCESS").exists()
    return local, dask


def test_wordcount_matches_local_and_counts_once(tmp_path, cluster):
    address, client = cluster
    local, dask = both(tmp_path, JOBS / "wordcount.py", [SAMPLE], client, reducers=3,
                       split_size="32KB")
    assert dask.counters == local.counters
    summary = json.loads((Path(dask.output_dir) / "_job.json").read_text())
    assert summary["runner"] == "dask" and summary["dask_scheduler"] == address
    tasks = [t for t in summary["tasks"] if t["status"] == "committed"]
    # one record per attempt; here every attempt committed, as many as the local run's
    assert len([t for t in tasks if t["kind"] == "map"]) == \
        len([t for t in local.summary["tasks"] if t["kind"] == "map"]) > 1
    assert len([t for t in tasks if t["kind"] == "reduce"]) == 3
    # The tasks ran in the cluster's worker processes, not here.
    assert {t["worker_pid"] for t in tasks} <= set(client.run(os.getpid).values())
    # The report page works on a Dask run.
    from mapreduce.report import write_report
    page = Path(write_report(dask.output_dir)).read_text()
    assert "dask" in page


def test_two_executions_of_one_attempt_share_no_file(tmp_path):
    """Dask may run one submitted attempt twice (it lost the worker running it): each
    execution writes under its own names, all inside the attempt's prefix (which the
    coordinator's cleanup removes), and the coordinator commits one of them."""
    from mapreduce.layout import WorkLayout
    from mapreduce.runners.dask import _own_names
    from mapreduce.shuffles import make_shuffle
    from mapreduce.task import TaskSpec, TextOutput
    from mapreduce.loader import JobRef

    layout = WorkLayout(str(tmp_path / "work"))
    shuffle = make_shuffle("disk")
    ref = JobRef(str(JOBS / "wordcount.py"), "WordCount")
    specs = []
    for kind, index in (("map", 3), ("reduce", 1)):
        prefix = layout.attempt_prefix(0, kind, index, "1-2")
        specs.append(TaskSpec(
            kind, ref, 0, index, "1-2", 2, 1 << 20, False,
            sink=shuffle.map_sink(prefix, 2, 10, False) if kind == "map" else None,
            source=shuffle.reduce_source([], index, prefix, 10, False)
            if kind == "reduce" else None,
            output=TextOutput(prefix + "part-00001") if kind == "reduce" else None))
    for spec in specs:
        a, b = _own_names(spec, "aaaa"), _own_names(spec, "bbbb")
        prefix = layout.attempt_prefix(0, spec.kind, spec.index, "1-2")
        for field in ("sink", "source", "output"):
            original = getattr(spec, field)
            if original is None:
                continue
            name = "path" if field == "output" else "prefix"
            pa, pb = getattr(getattr(a, field), name), getattr(getattr(b, field), name)
            assert pa != pb and pa.startswith(prefix) and pb.startswith(prefix)
            assert getattr(original, name).startswith(prefix)  # the spec itself is unchanged


def test_multi_step_job(tmp_path, cluster):
    both(tmp_path, TJOBS / "multi_step.py", [SAMPLE], cluster[1], reducers=2,
         split_size="64KB")


def test_sort_values_job(tmp_path, cluster):
    lines = [f"u{i % 7},{(i * 7919) % 1000},e{i}" for i in range(3000)]
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    _, dask = both(tmp_path, TJOBS / "sort_values.py", [tmp_path / "events.csv"], cluster[1],
                   reducers=3, split_size="16KB", sort_buffer="64KB")
    for _user, values in dask.pairs():  # an independent check of the order
        assert values == sorted(values)


def test_terasort(tmp_path, cluster):
    import teragen
    spec = tmp_path / "spec"
    subprocess.run([sys.executable, str(JOBS / "teragen.py"), "--write-spec", str(spec),
                    "--rows", "20000", "--tasks", "3"], cwd=ROOT, check=True)
    gen = mapreduce.run(str(JOBS / "teragen.py"), [str(spec)], str(tmp_path / "gen"),
                        progress=False, split_size=teragen.SPEC_LINE_BYTES)
    _, dask = both(tmp_path, JOBS / "terasort.py", gen.part_files, cluster[1], reducers=3,
                   sort_buffer="256KB")
    sorted_bytes = b"".join(Path(p).read_bytes() for p in dask.part_files)
    proc = subprocess.run(["sort", "-s", "-k1.1,1.10", *gen.part_files], capture_output=True,
                          env={**os.environ, "LC_ALL": "C"}, check=True)
    assert sorted_bytes == proc.stdout


def test_grid_search_example(tmp_path, cluster):
    pytest.importorskip("sklearn")
    import grid_search
    spec = tmp_path / "params.jsonl"
    grid_search.write_grid(spec, {"C": [1, 10], "gamma": [0.001]})
    _, dask = both(tmp_path, JOBS / "grid_search.py", [spec], cluster[1],
                   job_options={"folds": 2}, split_size=grid_search.SPEC_LINE_BYTES)
    assert dask.counter("grid_search", "FITS") == 2 * 2


SLOW_JOB = """\
import time
from mapreduce import Job


class SlowCount(Job):
    def mapper(self, _, line):
        time.sleep(0.02)
        for word in line.split():
            yield word, 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        time.sleep(0.001)
        yield word, sum(counts)
"""


def slow_job_and_inputs(tmp_path: Path, n_files: int, line) -> tuple[Path, Path]:
    """SLOW_JOB as a file, and a directory of ``n_files`` small files of 20 lines each
    (``line(i, j)``: line j of file i)."""
    job = tmp_path / "slow_count.py"
    job.write_text(SLOW_JOB)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(n_files):
        (inputs / f"{i:02d}.txt").write_text("".join(line(i, j) + "\n" for j in range(20)))
    return job, inputs


def test_sigkill_a_worker_mid_job(tmp_path, cluster):
    address, client = cluster
    job, inputs = slow_job_and_inputs(tmp_path, 12,
                                      lambda i, j: f"w{(i * 31 + j) % 97} w{j % 13} x")
    # split_size 256: one map task per ~200-byte file (small files are otherwise packed)
    clean = mapreduce.run(str(job), [str(inputs)], str(tmp_path / "clean"), progress=False,
                          runner="dask", dask_client=client, reducers=2, split_size=256)
    pids = client.run(os.getpid)
    handle = mapreduce.run_async(str(job), [str(inputs)], str(tmp_path / "killed"),
                                 progress=False, runner="dask", dask_client=client,
                                 reducers=2, split_size=256)
    for _ in range(3000):  # until two map tasks have committed (others are running)
        p = handle.progress
        if p.phase == "step 0 map" and p.done >= 2 or handle.ready():
            break
        time.sleep(0.01)
    assert not handle.ready(), "the job finished before a worker could be killed"
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    result = handle.result(timeout=300)
    assert read_parts(result.output_dir) == read_parts(clean.output_dir)
    assert result.counters == clean.counters
    local = mapreduce.run(str(job), [str(inputs)], str(tmp_path / "local"), progress=False,
                          reducers=2, split_size=256)
    assert read_parts(result.output_dir) == read_parts(local.output_dir)
    assert result.counters == local.counters
    # The worker really died (its nanny started a new one), and the cluster is whole again
    # for the tests after this one.
    client.wait_for_workers(2, timeout=120)
    assert victim not in client.run(os.getpid).values()


def test_resume_after_cancel_runs_only_what_is_missing(tmp_path, cluster):
    """--resume on Dask is the local runner's: the journal keeps the committed attempts."""
    _, client = cluster
    job, inputs = slow_job_and_inputs(tmp_path, 8, lambda i, j: f"w{(i + j) % 11}")
    out = tmp_path / "out"
    # split_size 64: a task per ~70-byte file or less (small files are otherwise packed
    # into one task, which finishes before the cancel)
    handle = mapreduce.run_async(str(job), [str(inputs)], str(out), progress=False,
                                 runner="dask", dask_client=client, split_size=64)
    for _ in range(3000):
        if handle.progress.done >= 2 or handle.ready():
            break
        time.sleep(0.01)
    handle.cancel()
    handle.wait(120)
    with pytest.raises(JobCancelledError):
        handle.result()
    assert not (out / "_SUCCESS").exists()
    result = mapreduce.run(str(job), [str(inputs)], str(out), progress=False, runner="dask",
                           dask_client=client, resume=True, split_size=64)
    kept = [t for t in result.summary["tasks"] if t.get("recovered")]
    assert kept and result.summary["runs"] == 2
    local = mapreduce.run(str(job), [str(inputs)], str(tmp_path / "local"), progress=False,
                          split_size=64)
    assert read_parts(str(out)) == read_parts(local.output_dir)
    assert result.counters == local.counters


def test_prints_go_to_the_attempt_logs(tmp_path, cluster):
    _, client = cluster
    result = mapreduce.run(str(TJOBS / "printing.py"), str(SAMPLE / "kjv-ecclesiastes.txt"),
                           str(tmp_path / "out"), progress=False, runner="dask",
                           dask_client=client)
    logs = sorted((tmp_path / "out" / "_logs").iterdir())
    text = "".join(p.read_text() for p in logs)
    assert "noise from mapper:" in text and "noise from reducer:" in text
    assert {t["log"] for t in result.summary["tasks"]} == {str(p) for p in logs}


# --- errors, through the command line ----------------------------------------------------------
def cli(*args, env=None, python=sys.executable, timeout=300):
    return subprocess.run([python, "-m", "mapreduce", "run", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_unreachable_scheduler_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    out = tmp_path / "out"
    proc = cli(JOBS / "wordcount.py", SAMPLE, "-o", out, "--runner", "dask",
               "--dask-scheduler", f"tcp://127.0.0.1:{port}", "-q")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"mapreduce: error: cannot reach the Dask scheduler at "
                               f"tcp://127.0.0.1:{port} (--dask-scheduler)")
    assert not out.exists()


def test_worker_missing_a_package_is_one_line(tmp_path, cluster):
    address, _ = cluster
    here_only = tmp_path / "here_only"
    here_only.mkdir()
    (here_only / "tokenizer_here_only.py").write_text("def words(line):\n"
                                                      "    return line.split()\n")
    job = tmp_path / "needs_pkg.py"
    job.write_text(textwrap.dedent("""\
        from mapreduce import Job
        import tokenizer_here_only


        class NeedsPackage(Job):
            def mapper(self, _, line):
                for word in tokenizer_here_only.words(line):
                    yield word, 1

            def reducer(self, word, counts):
                yield word, sum(counts)
        """))
    env = {**os.environ, "PYTHONPATH": str(here_only)}  # installed here, not on the workers
    out = tmp_path / "out"
    proc = cli(job, SAMPLE, "-o", out, "--runner", "dask", "--dask-scheduler", address, "-q",
               env=env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "failed after 1 attempt" in lines[0]
    assert f"job file {job} cannot be imported on Dask worker tcp://127.0.0.1:" in lines[0]
    assert "No module named 'tokenizer_here_only'" in lines[0]
    assert not (out / "_SUCCESS").exists() and not list(out.glob("part-*"))


def test_worker_without_mapreduce_is_one_line(tmp_path):
    """A worker whose Python cannot import mapreduce: refused before the job starts."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(textwrap.dedent("""\
        import sys, importlib.abc
        class _Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "mapreduce":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, _Hide())
        """))
    info = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(info)], cwd=tmp_path,
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(600):
            if info.exists() and info.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
             "--no-dashboard", "--host", "127.0.0.1"], cwd=tmp_path, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(hide)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=120)
        out = tmp_path / "out"
        proc = cli(JOBS / "wordcount.py", SAMPLE, "-o", out, "--runner", "dask",
                   "--dask-scheduler", address, "-q")
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("mapreduce: error: Dask worker tcp://127.0.0.1:")
        assert lines[0].endswith(f"(scheduler {address}) cannot import mapreduce: pip install "
                                 "'mapreduce[dask]' on every worker")
        assert not out.exists()
    finally:
        _stop(procs)


def _small_cluster(directory: Path, workers: int = 1, env=None) -> tuple[str, list]:
    """A scheduler and ``workers`` workers of its own (for tests that break a cluster)."""
    info = directory / "scheduler.json"
    info.unlink(missing_ok=True)
    procs = [subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(info)], cwd=directory,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for _ in range(600):
        if info.exists() and info.stat().st_size:
            break
        time.sleep(0.1)
    address = json.loads(info.read_text())["address"]
    for _ in range(workers):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
             "--no-dashboard", "--host", "127.0.0.1"], cwd=directory, start_new_session=True,
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    with distributed.Client(address, set_as_default=False) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, procs


@pytest.mark.slow
def test_scheduler_lost_mid_job_then_resume_on_another(tmp_path):
    """The scheduler dies mid-job: one line saying to --resume; --resume on a new cluster
    finishes the job with the local runner's bytes."""
    job = tmp_path / "slow_count.py"
    job.write_text(SLOW_JOB)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(12):
        (inputs / f"{i:02d}.txt").write_text("".join(f"w{(i + j) % 7}\n" for j in range(40)))
    out = tmp_path / "out"
    address, procs = _small_cluster(tmp_path)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mapreduce", "run", str(job), str(inputs), "-o", str(out),
             "--runner", "dask", "--dask-scheduler", address, "-q"], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        journal = out / "_temporary"
        for _ in range(3000):  # until a map task has committed
            if (journal / "step-0").is_dir() and list((journal / "step-0").glob("map-*.out")):
                break
            time.sleep(0.01)
        os.killpg(procs[0].pid, signal.SIGKILL)  # the scheduler
        _, stderr = proc.communicate(timeout=300)
    finally:
        _stop(procs)
    assert proc.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"mapreduce: error: lost the Dask scheduler at {address}")
    assert lines[0].endswith("run the same command with --resume to finish the job")
    assert not (out / "_SUCCESS").exists()
    address, procs = _small_cluster(tmp_path, workers=2)
    try:
        again = cli(job, inputs, "-o", out, "--runner", "dask", "--dask-scheduler", address,
                    "--resume", "-q")
    finally:
        _stop(procs)
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "_job.json").read_text())
    assert summary["runs"] == 2 and any(t.get("recovered") for t in summary["tasks"])
    local = mapreduce.run(str(job), [str(inputs)], str(tmp_path / "local"), progress=False)
    assert read_parts(str(out)) == read_parts(local.output_dir)
    assert summary["counters"] == local.counters


def test_task_that_raises(tmp_path, cluster):
    address, _ = cluster
    (tmp_path / "in.txt").write_text("fine\nBOOM here\nfine\n")
    out = tmp_path / "out"
    proc = cli(TJOBS / "raising.py", tmp_path / "in.txt", "-o", out, "--runner", "dask",
               "--dask-scheduler", address, "--max-attempts", "2", "-q")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("mapreduce: error: step 0 map task 0 (input "), proc.stderr
    assert "failed after 2 attempts" in lines[0]
    assert "ValueError: bad record: 'BOOM here'" in lines[0]
    assert "Traceback" in proc.stderr and "explode" in proc.stderr  # the user's frames
    assert "distributed" not in proc.stderr  # none of Dask's
    assert not (out / "_SUCCESS").exists() and not list(out.glob("part-*"))


def test_without_distributed_says_what_to_install(tmp_path):
    block = ("import sys, importlib.abc\n"
             "class _Block(importlib.abc.MetaPathFinder):\n"
             "    def find_spec(self, name, path, target=None):\n"
             "        if name.split('.')[0] in ('distributed', 'dask'):\n"
             "            raise ImportError('No module named ' + repr(name))\n"
             "sys.meta_path.insert(0, _Block())\n"
             "from mapreduce.cli import main; sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", block, "run", str(JOBS / "wordcount.py"),
                           str(SAMPLE), "-o", str(out), "--runner", "dask"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "mapreduce: error: --runner dask needs distributed: pip install 'mapreduce[dask]'"]
    assert not out.exists()


def test_options_dask_does_not_take_are_refused(tmp_path):
    proc = cli(JOBS / "wordcount.py", SAMPLE, "-o", tmp_path / "out", "--runner", "dask",
               "--task-timeout", "5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mapreduce: error: --task-timeout does not apply to --runner dask (use Spark's "
        "speculation settings; the inline runner cannot kill a task running in its own "
        "process, nor can Dask one running in a worker's thread)"]
    with pytest.raises(UsageError, match="dask_client: expected a distributed"):
        mapreduce.run(str(JOBS / "wordcount.py"), str(SAMPLE), str(tmp_path / "o2"),
                      runner="dask", dask_client="tcp://127.0.0.1:1", progress=False)
    # A class with no file (a notebook's, an interactive session's) cannot be shipped.
    interactive = type("Interactive", (mapreduce.Job,), {
        "__module__": "no_such_module", "mapper": lambda self, _, line: [(line, 1)]})
    with pytest.raises(UsageError, match="ships the job's file to the workers, and "
                                         "Interactive has none"):
        mapreduce.run(interactive, str(SAMPLE), str(tmp_path / "o4"), runner="dask",
                      progress=False)
    assert not (tmp_path / "o4").exists()
    with pytest.raises(UsageError, match="dask_scheduler does not apply to runner"):
        mapreduce.run(str(JOBS / "wordcount.py"), str(SAMPLE), str(tmp_path / "o3"),
                      dask_scheduler="tcp://127.0.0.1:1", progress=False)


def test_cli_from_a_fresh_virtualenv_on_a_local_cluster(tmp_path):
    """The real CLI from a virtualenv whose python is not on PATH, without
    --dask-scheduler: a LocalCluster whose workers must run that virtualenv's Python."""
    home = tmp_path / "venv"
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    site = next((home / "lib").glob("python3*/site-packages"))
    # The packages this test process runs with (mapreduce, distributed, ...), made
    # visible to the new environment instead of downloading them again.
    import site as site_module
    here = [p for p in site_module.getsitepackages() if os.path.isdir(p)]
    (site / "outer.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n"
                                            for p in here))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MAPREDUCE_"))}
    env["PATH"] = "/usr/bin:/bin"
    out = tmp_path / "out"
    proc = cli(JOBS / "wordcount.py", SAMPLE, "-o", out, "--runner", "dask", "--workers", "2",
               "-q", env=env, python=python)
    assert proc.returncode == 0, proc.stderr
    local = mapreduce.run(str(JOBS / "wordcount.py"), str(SAMPLE), str(tmp_path / "local"),
                          workers=2, progress=False)
    assert read_parts(str(out)) == read_parts(local.output_dir)
    summary = json.loads((out / "_job.json").read_text())
    assert summary["runner"] == "dask"
    assert summary["dask_scheduler"].startswith("tcp://127.0.0.1:")
