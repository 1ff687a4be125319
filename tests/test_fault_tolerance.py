"""Fault tolerance, end to end: the real CLI under faults injected from the outside.

What is checked (each against a fault-free run of the same job, part files byte for byte):

1. a worker SIGKILLed in a map task, a spill, a map-side merge, a reduce-side merge (and an
   idle worker): the attempt fails with the pid and SIGKILL in ``_job.json``, is retried;
2. the coordinator SIGKILLed at kill points drawn from a seeded random generator (during the
   map phase, between phases, during the reduce phase, during the job commit), then
   ``--resume``: tasks the journal held as committed are replayed (``recovered``), never
   executed again, counters are those of a fault-free run; without ``--resume`` the run is
   refused; the dead job's lock is no bar; no process of the killed job lives on (also when
   the coordinator dies while a replacement worker is starting);
3. a committed map output damaged (byte flip, truncation, deletion) before a reducer reads
   it, or between a kill and ``--resume``: the map task is re-run;
4. a mapper raising on a record: the failure names file and line after ``--max-attempts``;
   ``--skip-bad-records`` within and over its limit;
5. a hung task killed by ``--task-timeout`` and retried;
6. the journal: torn tail, corruption in the middle; ``--resume`` with a changed input or
   option; a second job on a locked output;
7. a full file system (small tmpfs), then more space and ``--resume``;
8. coordinator kill + ``--resume`` in ``--mode memory``.

Kill points come from ``random.Random(FT_SEED)`` (default below; set ``FT_SEED`` to explore).
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

import psutil
import pytest

import ft_helpers as H
from mapreduce.journal import RUN_START, TASK_COMMITTED, TASK_FAILED, read_journal

SEED = int(os.environ.get("FT_SEED", "20241123"))

# Many map tasks, many spills, multi-pass merges on both sides.
STD = ["--split-size", "256KB", "--sort-buffer", "64KB", "--merge-factor", "2",
       "--workers", "2", "--reducers", "4"]
N_REDUCERS = 4


@pytest.fixture
def runner(tmp_path):
    r = H.Runner(str(tmp_path / "_runs"))
    yield r
    r.close()


@dataclass
class Ref:
    """A generated input and the fault-free run over it (the reference output)."""

    inputs: list
    options: list
    out: str
    summary: dict
    maps: int
    reducers: int

    @property
    def map_phase_seconds(self) -> float:
        phase = [p for p in self.summary["phases"] if p["phase"].endswith("map")][0]
        return phase["end"] - phase["start"]

    @property
    def counters(self) -> dict:
        return self.summary["counters"]["framework"]


def _reference(base, name: str, job: str, inputs: list, options: list) -> Ref:
    r = H.Runner(os.path.join(base, f"_runs-{name}"))
    try:
        out = os.path.join(base, f"ref-{name}")
        r.ok(H.command(job, inputs, out, *options))
    finally:
        r.close()
    summary = H.load_summary(out)
    maps = len({t["index"] for t in summary["tasks"] if t["kind"] == "map"})
    reducers = len({t["index"] for t in summary["tasks"] if t["kind"] == "reduce"})
    return Ref(inputs, options, out, summary, maps, reducers)


@pytest.fixture(scope="module")
def words(tmp_path_factory) -> Ref:
    """~2 MB of random words: 8 map tasks of ~60 spills each, 4 reducers."""
    base = str(tmp_path_factory.mktemp("words"))
    inp = H.write_words(os.path.join(base, "words.txt"), SEED, 40000)
    ref = _reference(base, "wc", H.WORDCOUNT, [inp], STD)
    # The reference itself, checked against plain Python.
    assert H.output_counts(ref.out) == H.word_counts([inp])
    assert ref.maps >= 6 and ref.reducers == N_REDUCERS
    assert ref.counters["SPILL_FILES"] >= 10 * ref.maps
    assert ref.counters["MERGE_PASSES"] >= 2 * ref.maps
    return ref


@pytest.fixture(scope="module")
def words_memory(words, tmp_path_factory) -> Ref:
    base = str(tmp_path_factory.mktemp("words-memory"))
    ref = _reference(base, "wc-mem", H.WORDCOUNT, words.inputs, STD + ["--mode", "memory"])
    assert H.part_bytes(ref.out) == H.part_bytes(words.out)  # both modes: same bytes
    return ref


def _no_fault_counters_equal(summary: dict, ref: Ref) -> None:
    """Counters come from exactly one committed attempt per task: as in the fault-free run."""
    got = summary["counters"]["framework"]
    assert got == ref.counters, {k: (got.get(k), ref.counters.get(k))
                                 for k in set(got) | set(ref.counters)
                                 if got.get(k) != ref.counters.get(k)}


# ============================================================================================
# 1. SIGKILL of a worker from outside
# ============================================================================================

WORKER_KILL_POINTS = {
    # in the middle of a map task: it has started writing its private files
    "map-task": lambda t, work: t.kind == "map" and bool(t.attempt_files(work)),
    # when the third spill file appears
    "spill": lambda t, work: t.kind == "map" and "spill-00002.run" in
    t.attempt_files(work).values(),
    # while the worker is writing a map-side merge-*.run (merge passes over the spills)
    "map-merge": lambda t, work: t.kind == "map" and any(
        n.startswith("merge-") for n in t.open_attempt_files(work)),
    # while a reduce task is writing a reduce-side intermediate merge-*.run
    "reduce-merge": lambda t, work: t.kind == "reduce" and any(
        n.startswith("merge-") for n in t.open_attempt_files(work)),
    # in the middle of a reduce task: it has started writing its private files
    "reduce-task": lambda t, work: t.kind == "reduce" and bool(t.attempt_files(work)),
}


def _kill_worker_when(coordinator: int, work: str, condition, skip: int = 0):
    """A poll function: SIGKILL the worker whose current task meets ``condition``."""
    seen = []

    def poll():
        for pid in H.children(coordinator):
            task = H.worker_task(pid)
            if task is None or not condition(task, work):
                continue
            if task.log in seen:
                continue
            if len(seen) < skip:  # let the first few tasks meeting the condition go by
                seen.append(task.log)
                continue
            if H.worker_task(pid) == task and H.sigkill(pid):
                return task
        return None
    return poll


@pytest.mark.parametrize("point", list(WORKER_KILL_POINTS))
def test_worker_sigkill(point, words, runner, tmp_path):
    out = str(tmp_path / "out")
    work = os.path.join(out, "_temporary")
    run = runner.start(H.command(H.WORDCOUNT, words.inputs, out, *STD))
    skip = random.Random(f"{SEED}-{point}").randint(0, 2)
    watcher = H.Watcher(_kill_worker_when(run.pid, work, WORKER_KILL_POINTS[point], skip))
    watcher.start()
    rc = run.wait()
    killed = watcher.finish()
    assert killed is not None, f"the kill point {point!r} was never seen"
    assert rc == 0, run.stderr
    H.assert_same_output(out, words.out)
    summary = H.load_summary(out)
    key = (killed.step, killed.kind, killed.index)
    failed = H.assert_failed_then_committed(summary, key)
    # The attempt's log outlives the work directory: the job keeps it in OUT/_logs.
    assert failed["attempt"] == killed.tag
    # A killed attempt that printed nothing has no log (and its record names none).
    assert failed["log"] in ("", os.path.join(out, "_logs", os.path.basename(killed.log)))
    assert not failed["log"] or os.path.exists(failed["log"])
    assert not os.path.exists(work)
    assert failed["worker_pid"] == killed.pid
    assert str(killed.pid) in failed["error"] and "SIGKILL" in failed["error"], failed
    assert len([t for t in summary["tasks"] if t["status"] == "failed"]) == 1
    _no_fault_counters_equal(summary, words)
    assert not H.pids_gone([killed.pid], 5)


def test_idle_worker_sigkill(runner, tmp_path):
    """A worker killed while it waits for work (more workers than tasks) is replaced too."""
    inp = H.write_words(str(tmp_path / "small.txt"), SEED + 5, 3000)
    ref = _reference(str(tmp_path), "small", H.WORDCOUNT, [inp], ["--workers", "1"])
    out = str(tmp_path / "out")
    gate = str(tmp_path / "gate")
    # One map task held at its gate, three idle workers: kill two of them, open the gate.
    run = runner.start(H.command(H.ft_job("gated.py"), [inp], out, "--workers", "4"),
                       FT_GATE=gate)
    deadline = time.monotonic() + 30
    busy = idle = []
    while time.monotonic() < deadline:
        kids = H.children(run.pid)
        busy = [p for p in kids if H.worker_task(p) is not None]
        idle = [p for p in kids if H.worker_task(p) is None]
        if len(kids) == 4 and busy:
            break
        time.sleep(0.01)
    assert len(busy) == 1 and len(idle) == 3, (busy, idle)
    for pid in idle[:2]:
        H.sigkill(pid)
    assert not H.pids_gone(idle[:2], 5)
    open(gate, "w").close()
    assert run.wait() == 0, run.stderr
    H.assert_same_output(out, ref.out)
    assert not [t for t in H.load_summary(out)["tasks"] if t["status"] == "failed"]


# ============================================================================================
# 2. SIGKILL of the coordinator, then --resume
# ============================================================================================

def records_at_least(journal: str, n: int):
    return lambda: len(H.journal_records(journal)) >= n


def seconds_after_journal(journal: str, delay: float, stale=None):
    """Ready ``delay`` seconds after the run's own journal appeared (not ``stale``, the
    header of a journal an --overwrite run has yet to replace)."""
    state = {}

    def ready():
        if "t0" not in state:
            if os.path.exists(journal) and journal_header(journal) != stale:
                state["t0"] = time.monotonic()
            return False
        return time.monotonic() - state["t0"] >= delay
    return ready


def during_map_timed(journal: str, delay: float, maps: int):
    """Ready ``delay`` seconds after the journal appeared, or else when all but one map task
    have committed (HEADER, RUN_START, then ``maps - 1`` TASK_COMMITTED records): the delay
    is drawn from the reference run's map phase, and a run that goes faster than its
    reference (a machine whose load changed) must still be killed inside the map phase, not
    finish unkilled."""
    timed = seconds_after_journal(journal, delay)
    almost_mapped = records_at_least(journal, 1 + maps)
    return lambda: timed() or almost_mapped()


def journal_header(journal: str):
    """The journal's first record (its job's header), or None: tells one run's journal
    from the next one's at the same path."""
    records = H.journal_records(journal)
    return repr(records[0]) if records else None


@dataclass
class Killed:
    out: str
    argv: list
    committed: dict      # (step, kind, index) -> TASK_COMMITTED payload, read after the kill
    records: list
    coordinator: int


def start_and_kill(runner: H.Runner, argv: list, out: str, ready, env: dict | None = None,
                   self_kill: bool = False) -> Killed:
    """Run ``argv`` and SIGKILL its coordinator once ``ready()`` (or let a job file's hook
    kill it, ``self_kill``); check the kill's aftermath; return what the journal holds."""
    run = runner.start(argv, **(env or {}))
    workers: list[int] = []

    def poll():
        if not ready():
            return None
        workers.extend(H.children(run.pid))
        H.sigkill(run.pid)
        return True

    watcher = None
    if not self_kill:
        watcher = H.Watcher(poll)
        watcher.start()
    rc = run.wait()
    if watcher is not None:
        fired = watcher.finish()
        assert fired, f"kill point never reached; the job ended with {rc}: {run.stderr[-2000:]}"
    assert rc == -signal.SIGKILL, f"exit {rc}, expected SIGKILL\n{run.stderr[-3000:]}"
    # PR_SET_PDEATHSIG: the workers die with the coordinator, none is left writing.
    assert not H.pids_gone(workers, 10), "workers outlived their coordinator"
    assert H.wait_group_gone(run.pid, 10), "processes of the killed job are left"
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    journal = H.journal_path(out)
    assert os.path.exists(journal), "killed before the journal existed: bad kill point"
    # The dead coordinator's lock file is still there (naming it) but must not block.
    lock = os.path.join(out, "_LOCK")
    assert os.path.exists(lock)
    with open(lock, encoding="utf-8") as f:
        assert json.load(f)["pid"] == run.pid
    records = H.journal_records(journal)
    return Killed(out, argv, H.committed_in_journal(journal), records, run.pid)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def refuse_without_resume(runner: H.Runner, killed: Killed, env: dict | None = None) -> None:
    journal = H.journal_path(killed.out)
    before = _read(journal)
    run = runner.run(killed.argv, **(env or {}))
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert "--resume" in line, line
    assert _read(journal) == before, "a refused run changed the journal"


def resume_and_check(runner: H.Runner, killed: Killed, ref: Ref, rerun: tuple = (),
                     env: dict | None = None, counters: bool = True) -> dict:
    """--resume; output as fault-free; journaled commits replayed, not executed again.

    ``rerun``: keys of committed map tasks whose output the test damaged (must re-run)."""
    run = runner.ok(killed.argv + ["--resume"], **(env or {}))
    H.assert_same_output(killed.out, ref.out)
    summary = H.load_summary(killed.out)
    runs = 1 + sum(1 for r in killed.records if r.type == RUN_START)  # + this run
    assert summary["runs"] == runs, (summary["runs"], runs)
    now = summary["runs"]
    reduces_missing = [(0, "reduce", r) for r in range(ref.reducers)
                       if (0, "reduce", r) not in killed.committed]
    for key, payload in killed.committed.items():
        records = H.attempts_of(summary, key)
        replayed = [t for t in records if t.get("recovered")]
        out = payload["output"]
        # memory mode: a map output died with the coordinator; if a reducer still needs it,
        # the replayed commit is discarded and the task runs once more
        volatile = "records" in out and out.get("path") is None and bool(reduces_missing)
        assert len(replayed) == 1, f"{key} committed before the kill: {records}"
        assert replayed[0]["attempt"] == payload["attempt"]
        assert replayed[0]["status"] == ("discarded" if key in rerun or volatile
                                         else "committed"), (key, records)
        executed = [t for t in records if t["run"] == now and not t.get("recovered")]
        if key in rerun or volatile:
            assert [t["status"] for t in executed] == ["committed"], (key, records)
        else:
            assert not executed, f"{key} was committed before the kill but ran again: {records}"
    for key in [(0, "map", i) for i in range(ref.maps)] + \
            [(0, "reduce", r) for r in range(ref.reducers)]:
        if key in killed.committed:
            continue
        if key[1] == "map" and not reduces_missing:
            continue  # no reducer needs it: a map not committed before the kill stays so
        records = H.attempts_of(summary, key)
        executed = [t for t in records if t["run"] == now and t["status"] == "committed"]
        assert len(executed) == 1, f"{key} not committed once in the resumed run: {records}"
    assert not any(t.get("recovered") for t in summary["tasks"] if t["run"] == now)
    if counters:
        _no_fault_counters_equal(summary, ref)
    assert "Traceback" not in run.stderr
    return summary


def _coordinator_kill_plan(ref: Ref) -> dict:
    """Kill points drawn from the seeded generator: name -> (kind, parameter)."""
    rng = random.Random(f"{SEED}-coordinator")
    first_reduce = 2 + ref.maps  # HEADER, RUN_START, one TASK_COMMITTED per map task
    last = first_reduce + ref.reducers
    return {
        "start-of-map": ("records", 2),
        "during-map": ("records", rng.randint(3, first_reduce - 1)),
        "during-map-timed": ("seconds", rng.uniform(0.05, 0.8 * ref.map_phase_seconds)),
        "between-phases": ("records", first_reduce),
        "during-reduce": ("records", rng.randint(first_reduce + 1, last - 1)),
        "job-commit": ("commit", rng.randint(1, ref.reducers + 2)),
        "anywhere": ("records", rng.randint(2, last - 1)),
    }


COORDINATOR_KILL_POINTS = ["start-of-map", "during-map", "during-map-timed", "between-phases",
                           "during-reduce", "job-commit", "anywhere"]


@pytest.mark.parametrize("point", COORDINATOR_KILL_POINTS)
def test_coordinator_sigkill_then_resume(point, words, runner, tmp_path):
    kind, param = _coordinator_kill_plan(words)[point]
    out = str(tmp_path / "out")
    journal = H.journal_path(out)
    if kind == "commit":
        # The job file's hook kills the coordinator itself inside the job commit: before
        # moving part `param` into OUT (param <= parts), or before _job.json / _SUCCESS.
        argv = H.command(H.ft_job("commit_killer.py"), words.inputs, out, *STD)
        killed = start_and_kill(runner, argv, out, None, self_kill=True,
                                env={"FT_KILL_COMMIT": str(param), "FT_OUT": out})
        assert len(killed.committed) == words.maps + words.reducers
        moved = len(glob.glob(os.path.join(out, "part-*")))
        assert moved == min(param - 1, words.reducers), (param, moved)
    else:
        ready = (records_at_least(journal, param) if kind == "records"
                 else during_map_timed(journal, param, words.maps))
        argv = H.command(H.WORDCOUNT, words.inputs, out, *STD)
        killed = start_and_kill(runner, argv, out, ready)
        if kind == "records":
            assert len(killed.records) >= param
    refuse_without_resume(runner, killed)
    resume_and_check(runner, killed, words)


def _children_now(pid: int) -> set:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return set(map(int, f.read().split()))
    except OSError:
        return set(H.children(pid))


def test_coordinator_killed_while_replacing_a_worker_leaves_no_orphan(words, runner, tmp_path):
    """SIGKILL a busy worker, then the coordinator while the replacement it forked is still
    starting up (the job file makes that start-up take a second): the new worker must die
    with its coordinator (or exit by itself) like every other worker, not live on as an
    orphan holding the job's pipes and files."""
    out = str(tmp_path / "out")
    flag = str(tmp_path / "slow-start")
    run = runner.start(H.command(H.ft_job("slow_worker_start.py"), words.inputs, out, *STD),
                       FT_SLOW_START_FLAG=flag, FT_SLOW_START_SECONDS="1")
    deadline = time.monotonic() + 30
    busy = []
    while not busy and time.monotonic() < deadline:
        busy = [p for p in H.children(run.pid) if H.worker_task(p)]
        time.sleep(0.005)
    assert busy, run.stderr
    before = _children_now(run.pid)
    open(flag, "w").close()  # workers forked from now on start slowly
    H.sigkill(busy[0])
    new: set = set()
    while not new and time.monotonic() < deadline:
        new = _children_now(run.pid) - before
        time.sleep(0.001)
    assert new, "the coordinator did not replace the dead worker"
    H.sigkill(run.pid)
    assert run.wait() == -signal.SIGKILL
    if not H.wait_group_gone(run.pid, 5):
        left = [(p.pid, p.ppid(), p.status()) for p in psutil.process_iter()
                if H._in_group(p, run.pid)]
        raise AssertionError(f"processes of the killed job live on (pid, ppid, status): {left}")


# ============================================================================================
# 3. damaged map outputs
# ============================================================================================

def _corrupt_module():
    spec = importlib.util.spec_from_file_location("ft_corrupt_map_output",
                                                  H.ft_job("corrupt_map_output.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _map_index_of(path: str) -> int:
    return int(os.path.basename(path)[4:9])  # map-NNNNN.TAG.out


@pytest.mark.parametrize("mode", ["flip", "flip-data", "truncate", "delete"])
def test_damaged_map_output_is_rerun(mode, words, runner, tmp_path):
    out = str(tmp_path / "out")
    marker = str(tmp_path / "damaged")
    victim_index = random.Random(f"{SEED}-{mode}").randrange(words.maps)
    run = runner.run(H.command(H.ft_job("corrupt_map_output.py"), words.inputs, out, *STD),
                     FT_CORRUPT_MODE=mode, FT_CORRUPT_MARKER=marker,
                     FT_CORRUPT_INDEX=str(victim_index),
                     FT_CORRUPT_GLOB=os.path.join(out, "_temporary", "step-0", "map-*.out"))
    with open(marker, encoding="utf-8") as f:
        victim = f.read()
    assert victim, "the reducer did not damage a map output"
    assert run.returncode == 0, run.stderr
    H.assert_same_output(out, words.out)
    summary = H.load_summary(out)
    index = _map_index_of(victim)
    assert index == victim_index
    commits = [t for t in H.attempts_of(summary, (0, "map", index)) if t["status"] == "committed"]
    assert len(commits) == 2, f"map task {index} should have been re-run: {commits}"
    # A reducer's failed attempt names the damaged file (a fetch failure).
    fetch = [t for t in summary["tasks"] if t["kind"] == "reduce" and t["status"] == "failed"]
    assert fetch and any(victim in t["error"] for t in fetch), fetch
    # No other map task ran twice.
    for i in range(words.maps):
        if i != index:
            assert len(H.attempts_of(summary, (0, "map", i))) == 1
    _no_fault_counters_equal(summary, words)
    # Every attempt of a task has a tag of its own (its own attempt dir, log and, for a map
    # task, committed file name): the re-run is not "attempt 1" of the same run again.
    assert commits[0]["attempt"] != commits[1]["attempt"], commits
    assert not commits[0]["log"] or commits[0]["log"] != commits[1]["log"], commits


@pytest.mark.parametrize("mode", ["flip-data", "truncate", "delete"])
def test_damaged_map_output_detected_on_resume(mode, words, runner, tmp_path):
    out = str(tmp_path / "out")
    argv = H.command(H.WORDCOUNT, words.inputs, out, *STD)
    # Kill the coordinator as soon as every map task is journaled as committed.
    killed = start_and_kill(runner, argv, out, records_at_least(H.journal_path(out),
                                                                2 + words.maps))
    maps = sorted(k for k in killed.committed if k[1] == "map")
    assert len(maps) == words.maps
    key = random.Random(f"{SEED}-resume-{mode}").choice(maps)
    path = killed.committed[key]["output"]["path"]
    assert os.path.exists(path)
    _corrupt_module().damage(path, mode)
    summary = resume_and_check(runner, killed, words, rerun=(key,))
    assert summary["runs"] == 2


# ============================================================================================
# 4. bad records
# ============================================================================================

def test_mapper_raising_fails_job_naming_file_and_line(runner, tmp_path):
    rng = random.Random(f"{SEED}-bad")
    line_no = rng.randint(500, 2500)
    inp = H.write_words(str(tmp_path / "in.txt"), SEED + 1, 3000, poison=(line_no,))
    out = str(tmp_path / "out")
    run = runner.run(H.command(H.ft_job("bad_records.py"), [inp], out, "--split-size", "32KB",
                               "--max-attempts", "2", "--workers", "2"))
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert f"{inp} line {line_no}" in line, line
    assert "after 2 attempts" in line and "map task" in line, line
    assert "poisoned record" in line, line
    log = line.rsplit("(log: ", 1)[1].rstrip(")")
    assert os.path.isfile(log), f"the log named in the message does not exist: {log}"
    with open(log, encoding="utf-8") as f:
        assert "poisoned record" in f.read()
    assert "Traceback" in run.stderr and "in poisoned" in run.stderr
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    assert not glob.glob(os.path.join(out, "part-*"))
    # Exactly two attempts of that task were made (and failed).
    failed = [r.payload for r in H.journal_records(H.journal_path(out)) if r.type == TASK_FAILED]
    assert len(failed) == 2 and len({(p["kind"], p["index"]) for p in failed}) == 1, failed


def test_skip_bad_records(runner, tmp_path):
    rng = random.Random(f"{SEED}-skip")
    poison = tuple(sorted(rng.sample(range(1, 3001), 3)))
    inp = H.write_words(str(tmp_path / "in.txt"), SEED + 2, 3000, poison=poison)
    clean = str(tmp_path / "clean.txt")
    with open(inp, encoding="utf-8") as src, open(clean, "w", encoding="utf-8") as dst:
        dst.writelines(line for line in src if "POISON" not in line)
    ref = _reference(str(tmp_path), "clean", H.WORDCOUNT, [clean], [])
    opts = ["--split-size", "32KB", "--workers", "2"]
    job = H.ft_job("bad_records.py")

    out = str(tmp_path / "out5")
    runner.ok(H.command(job, [inp], out, *opts, "--skip-bad-records", "5"))
    H.assert_same_output(out, ref.out)
    summary = H.load_summary(out)
    assert summary["counters"]["framework"]["SKIPPED_RECORDS"] == 3
    skipped = summary["skipped_records"]
    assert len(skipped) == 3
    for n in poison:
        assert sum(f"{inp} line {n}:" in s for s in skipped) == 1, (n, skipped)
    assert not any(t["status"] == "failed" for t in summary["tasks"])

    out = str(tmp_path / "out2")
    run = runner.run(H.command(job, [inp], out, *opts, "--skip-bad-records", "2"))
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    # (3 bad records in all, or more than 2 in one task, depending on where they fell)
    assert "--skip-bad-records" in line and "bad records" in line, line
    # It fails as soon as the limit is passed, in the map phase: no reduce task starts.
    assert "step 0 map: " in run.stderr and "step 0 reduce" not in run.stderr, run.stderr
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    assert not glob.glob(os.path.join(out, "part-*"))


# ============================================================================================
# 5. a hung task
# ============================================================================================

def test_hung_task_is_killed_by_timeout_and_retried(runner, tmp_path):
    inp = H.write_words(str(tmp_path / "in.txt"), SEED + 3, 8000)
    opts = ["--split-size", "128KB", "--workers", "2"]
    ref = _reference(str(tmp_path), "hang", H.WORDCOUNT, [inp], opts)
    out = str(tmp_path / "out")
    marker = str(tmp_path / "hung")
    started = time.monotonic()
    run = runner.run(H.command(H.ft_job("hang_once.py"), [inp], out, *opts,
                               "--task-timeout", "2"), timeout=60, FT_HANG_MARKER=marker)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    assert 2 <= elapsed < 45, elapsed
    H.assert_same_output(out, ref.out)
    with open(marker, encoding="utf-8") as f:
        hung_pid = int(f.read())
    summary = H.load_summary(out)
    failed = [t for t in summary["tasks"] if t["status"] == "failed"]
    assert len(failed) == 1, failed
    assert "timed out" in failed[0]["error"] and str(hung_pid) in failed[0]["error"]
    assert failed[0]["worker_pid"] == hung_pid
    H.assert_failed_then_committed(summary, H.task_key(failed[0]))
    assert not H.pids_gone([hung_pid], 5), "the hung worker is still alive"


# ============================================================================================
# 6. the journal, changed jobs, the lock
# ============================================================================================

@pytest.mark.parametrize("damage", ["garbage-tail", "cut-last-record"])
def test_torn_journal_tail_then_resume(damage, words, runner, tmp_path):
    out = str(tmp_path / "out")
    journal = H.journal_path(out)
    n = random.Random(f"{SEED}-torn-{damage}").randint(4, 2 + words.maps + 2)
    argv = H.command(H.WORDCOUNT, words.inputs, out, *STD)
    killed = start_and_kill(runner, argv, out, records_at_least(journal, n))
    last = killed.records[-1]
    assert last.type == TASK_COMMITTED
    if damage == "garbage-tail":
        # Half a record: a frame header promising 300 bytes, and 40 of them.
        with open(journal, "ab") as f:
            f.write(struct.pack("<IBI", 300, TASK_COMMITTED, 0xDEADBEEF) + b'{"run": 1, ' * 4)
    else:
        # A crash in the middle of appending the last record: it is lost.
        size = os.path.getsize(journal)
        os.truncate(journal, last.offset + (size - last.offset) // 2)
        lost = (last.payload["step"], last.payload["kind"], last.payload["index"])
        del killed.committed[lost]
        killed.records = killed.records[:-1]
    records, torn = read_journal(journal)
    assert torn and len(records) == len(killed.records)
    resume_and_check(runner, killed, words)


def test_corrupt_journal_record_fails_resume(words, runner, tmp_path):
    out = str(tmp_path / "out")
    journal = H.journal_path(out)
    argv = H.command(H.WORDCOUNT, words.inputs, out, *STD)
    killed = start_and_kill(runner, argv, out, records_at_least(journal, 6))
    victim = killed.records[random.Random(f"{SEED}-journal").randint(2, len(killed.records) - 2)]
    with open(journal, "r+b") as f:
        f.seek(victim.offset + 9 + 5)  # a byte of its JSON payload
        byte = f.read(1)
        f.seek(victim.offset + 9 + 5)
        f.write(bytes([byte[0] ^ 0x01]))
    with open(journal, "rb") as f:
        before = f.read()
    run = runner.run(argv + ["--resume"])
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.splitlines()
             if line.strip() and not H.PROGRESS_LINE.match(line)]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("mapreduce: error:") and journal in lines[0], lines[0]
    assert f"offset {victim.offset}" in lines[0], lines[0]
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    with open(journal, "rb") as f:
        assert f.read() == before, "a failed --resume modified the journal"


def test_resume_refuses_changed_input(words, runner, tmp_path):
    inp = str(tmp_path / "words.txt")
    shutil.copyfile(words.inputs[0], inp)
    other = H.write_words(str(tmp_path / "other.txt"), SEED + 4, 500)
    out = str(tmp_path / "out")
    argv = H.command(H.WORDCOUNT, [inp, other], out, *STD)
    killed = start_and_kill(runner, argv, out, records_at_least(H.journal_path(out), 4))
    journal_before = _read(H.journal_path(out))
    # Touching a file (same size, new mtime) is a change ...
    st = os.stat(inp)
    os.utime(inp, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    run = runner.run(argv + ["--resume"])
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert inp in line and other not in line, line
    # Putting the mtime back does not hide it: the change time moved.
    os.utime(inp, ns=(st.st_atime_ns, st.st_mtime_ns))
    run = runner.run(argv + ["--resume"])
    assert run.returncode == 1, run.stderr
    assert inp in H.one_line_error(run.stderr)
    # ... and appending to another is a change too.
    with open(other, "a", encoding="utf-8") as f:
        f.write("one more line\n")
    run = runner.run(argv + ["--resume"])
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert "changed" in line, line
    assert "--resume" in line or "--overwrite" in line, line
    assert _read(H.journal_path(out)) == journal_before
    assert len(H.committed_in_journal(H.journal_path(out))) == len(killed.committed)


def test_resume_refuses_changed_options(words, runner, tmp_path):
    out = str(tmp_path / "out")
    argv = H.command(H.WORDCOUNT, words.inputs, out, *STD)
    killed = start_and_kill(runner, argv, out, records_at_least(H.journal_path(out), 5))
    for option, value in [("--sort-buffer", "128KB"), ("--reducers", "3"),
                          ("--merge-factor", "3"), ("--mode", "memory")]:
        changed = list(argv)
        if option in changed:
            changed[changed.index(option) + 1] = value
        else:
            changed += [option, value]
        run = runner.run(changed + ["--resume"])
        assert run.returncode == 1, (option, run.stderr)
        line = H.one_line_error(run.stderr)
        assert option in line and "--resume" in line, line
    # Options that do not shape the output may change; the refusals changed nothing.
    changed = list(argv)
    changed[changed.index("--workers") + 1] = "1"
    resume_and_check(runner, Killed(out, changed, killed.committed, killed.records,
                                    killed.coordinator), words)


def test_second_job_on_locked_output_is_refused(words, runner, tmp_path):
    out = str(tmp_path / "out")
    gate = str(tmp_path / "gate")
    job = H.ft_job("gated.py")
    first = runner.start(H.command(job, words.inputs, out, *STD), FT_GATE=gate)
    lock = os.path.join(out, "_LOCK")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.exists(H.journal_path(out)) and any(
                H.worker_task(p) for p in H.children(first.pid)):
            break
        assert first.proc.poll() is None, first.stderr
        time.sleep(0.01)
    assert os.path.exists(lock), "job 1 runs but holds no lock file"
    for extra in ([], ["--overwrite"], ["--resume"]):
        started = time.monotonic()
        second = runner.run(H.command(H.WORDCOUNT, words.inputs, out, *STD, *extra),
                            timeout=30)
        assert time.monotonic() - started < 10, "job 2 was not refused quickly"
        assert second.returncode == 1, second.stderr
        line = H.one_line_error(second.stderr)
        assert f"pid {first.pid}" in line, line
        assert first.proc.poll() is None, "job 2 disturbed job 1"
    open(gate, "w").close()
    assert first.wait() == 0, first.stderr
    H.assert_same_output(out, words.out)


# ============================================================================================
# 7. disk full
# ============================================================================================

@pytest.fixture
def small_fs(tmp_path):
    mnt = str(tmp_path / "fs")
    os.makedirs(mnt)
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command here: cannot make a small file system to fill")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): "
                    f"{proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=30)


def test_disk_full_then_resume(small_fs, runner, tmp_path):
    inp = H.write_letters(str(tmp_path / "letters.txt"), SEED + 6, 80000)  # ~5 MB
    opts = ["--split-size", "512KB", "--sort-buffer", "256KB", "--merge-factor", "4",
            "--workers", "2", "--reducers", "4"]
    job = H.ft_job("bulky.py")
    ref = _reference(str(tmp_path), "bulky", job, [inp], opts)
    assert ref.counters["SPILLED_BYTES"] > 3 * 2**20
    out = os.path.join(small_fs, "out")
    argv = H.command(job, [inp], out, *opts)
    run = runner.run(argv)
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.splitlines()
             if line.strip() and not H.PROGRESS_LINE.match(line)]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("mapreduce: error:"), lines
    assert "disk full" in lines[0] and "--resume" in lines[0], lines[0]
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    subprocess.run(["mount", "-o", "remount,size=200m", small_fs], check=True)
    runner.ok(argv + ["--resume"])
    H.assert_same_output(out, ref.out)
    assert H.load_summary(out)["runs"] == 2


# ============================================================================================
# 8. memory mode
# ============================================================================================

def _memory_kill_plan(ref: Ref) -> list:
    rng = random.Random(f"{SEED}-memory")
    return [("reduce-commits", rng.randint(3, 2 + N_REDUCERS - 1)),
            ("seconds", rng.uniform(0.02, 0.8 * ref.map_phase_seconds)),
            ("commit", rng.randint(1, N_REDUCERS + 2))]


@pytest.mark.parametrize("case", [0, 1, 2])
def test_memory_mode_coordinator_sigkill_then_resume(case, words_memory, runner, tmp_path):
    kind, param = _memory_kill_plan(words_memory)[case]
    out = str(tmp_path / "out")
    journal = H.journal_path(out)
    if kind == "commit":  # inside the job commit (see test_coordinator_sigkill_then_resume)
        argv = H.command(H.ft_job("commit_killer.py"), words_memory.inputs, out, *STD,
                         "--mode", "memory")
        killed = start_and_kill(runner, argv, out, None, self_kill=True,
                                env={"FT_KILL_COMMIT": str(param), "FT_OUT": out})
        assert sum(1 for k in killed.committed if k[1] == "reduce") == N_REDUCERS
    else:
        argv = H.command(H.WORDCOUNT, words_memory.inputs, out, *STD, "--mode", "memory")
        ready = (records_at_least(journal, param) if kind == "reduce-commits"
                 else during_map_timed(journal, param, words_memory.maps))
        killed = start_and_kill(runner, argv, out, ready)
    # Memory mode journals map commits too, but their outputs are not durable (no path).
    assert all(p["output"].get("path") is None for k, p in killed.committed.items()
               if k[1] == "map"), killed.committed
    refuse_without_resume(runner, killed)
    # (the counters after such a resume are checked on their own below)
    resume_and_check(runner, killed, words_memory, counters=False)


def test_memory_mode_resume_keeps_map_counters(words_memory, runner, tmp_path):
    """Killed in the job commit, every reduce task committed: the resumed run recomputes
    nothing, and _job.json must still count the map side (MAP_INPUT_RECORDS, ...)."""
    out = str(tmp_path / "out")
    argv = H.command(H.ft_job("commit_killer.py"), words_memory.inputs, out, *STD,
                     "--mode", "memory")
    killed = start_and_kill(runner, argv, out, None, self_kill=True,
                            env={"FT_KILL_COMMIT": "1", "FT_OUT": out})
    summary = resume_and_check(runner, killed, words_memory, counters=False)
    _no_fault_counters_equal(summary, words_memory)


# ============================================================================================
# the slow, bigger randomized campaign
# ============================================================================================

def _damage_committed_part(rng: random.Random, out: str, journal: str) -> tuple | None:
    """Flip, truncate or extend a committed part file (in the work directory, or already in
    OUT after a kill during the job commit); the key of the task that made it."""
    parts = {k: p for k, p in H.committed_in_journal(journal).items() if "part" in p["output"]}
    if not parts:
        return None
    key = rng.choice(sorted(parts))
    path = parts[key]["output"]["part"]
    if not os.path.exists(path):
        path = os.path.join(out, f"part-{key[2]:05d}")
    size = os.path.getsize(path)
    how = rng.choice(["flip", "truncate", "append"])
    if how == "truncate":
        os.truncate(path, size // 2)
    elif how == "append":
        with open(path, "ab") as f:
            f.write(b'"w0"\t1\n')
    elif size:
        with open(path, "r+b") as f:
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 0x04]))
    return key


def _rewrite_same_bytes(path: str) -> None:
    """Replace ``path`` by a copy of itself with the same size and mtime (what ``cp -p`` or
    ``rsync -t`` do): a new inode and ctime, which --resume must take as a change."""
    st = os.stat(path)
    shutil.copyfile(path, path + ".new")
    os.utime(path + ".new", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(path + ".new", path)


@pytest.mark.slow
def test_random_fault_campaign(tmp_path):
    """Rounds of random faults on a bigger input: each job gets 1-3 coordinator kills (at
    random journal lengths or times, or in the middle of the job commit) with busy workers
    SIGKILLed now and then; between a kill and the --resume, in disk mode sometimes a damaged
    map output, sometimes a damaged committed part file, and sometimes an input rewritten
    with the same size and mtime (the resume must then be refused, naming the input, and the
    job is run again with --overwrite).  The final output must equal the fault-free run's,
    the counters too, and what the journal held as committed before the last --resume must
    be replayed, not executed again.  FT_CAMPAIGN_ROUNDS sets the size."""
    rng = random.Random(f"{SEED}-campaign")
    base = str(tmp_path)
    original = H.write_words(os.path.join(base, "big.txt"), SEED + 7, 120000, vocab=20000)
    refs = {mode: _reference(base, f"big-{mode}", H.WORDCOUNT, [original],
                             STD + ["--mode", mode]) for mode in ("disk", "memory")}
    corrupt = _corrupt_module()
    job = H.ft_job("commit_killer.py")  # word count that can kill itself mid-commit
    kills = worker_kills_total = commit_kills = part_damages = input_changes = 0
    rounds = int(os.environ.get("FT_CAMPAIGN_ROUNDS", "20"))
    for round_no in range(rounds):
        mode = rng.choice(["disk", "disk", "memory"])
        ref = refs[mode]
        total = 2 + (ref.maps if mode == "disk" else 0) + ref.reducers
        out = os.path.join(base, f"round-{round_no}")
        inp = os.path.join(base, f"input-{round_no}.txt")
        shutil.copyfile(original, inp)
        journal = H.journal_path(out)
        argv = H.command(job, [inp], out, *STD, "--mode", mode)
        runner = H.Runner(os.path.join(base, f"_runs-{round_no}"))
        story = [f"round {round_no}: {mode}"]
        try:
            resume = False
            overwrite = False
            damaged: set = set()
            for _ in range(rng.randint(1, 3)):
                # An --overwrite run starts with the killed job's journal still in place
                # (the old job stays until the new one takes over): kill points count the
                # new run's journal only.
                stale = journal_header(journal) if overwrite else None
                have = len(H.journal_records(journal)) if stale is None else 0
                env: dict = {}
                pick = rng.random()
                if pick < 0.2 and resume:
                    k = rng.randint(1, ref.reducers + 2)
                    env = {"FT_KILL_COMMIT": str(k), "FT_OUT": out}
                    ready, how = (lambda: False), f"in the job commit (operation {k})"
                elif pick < 0.6 and have < total - 1:
                    n = rng.randint(max(have + 1, 2), total - 1)
                    counted = records_at_least(journal, n)
                    ready = (lambda counted=counted, stale=stale:
                             journal_header(journal) != stale and counted())
                    how = f"at {n} journal records"
                else:
                    delay = rng.uniform(0.05, 3.0)
                    ready = seconds_after_journal(journal, delay, stale)
                    how = f"after {delay:.2f} s"
                extra = ["--resume"] if resume else ["--overwrite"] if overwrite else []
                run = runner.start(argv + extra, **env)
                worker_kills: list = []
                wrng = random.Random(rng.random())

                def poll(run=run, ready=ready, wrng=wrng, worker_kills=worker_kills):
                    if ready():
                        H.sigkill(run.pid)
                        return True
                    # now and then, SIGKILL a busy worker; at most 3 a run, so that no task
                    # can lose all 4 of its attempts (--max-attempts) to this test: on a slow
                    # machine the job polls longer and would otherwise fail for real
                    if len(worker_kills) < 3 and wrng.random() < 0.002:
                        busy = [p for p in H.children(run.pid) if H.worker_task(p)]
                        if busy:
                            victim = wrng.choice(busy)
                            if H.sigkill(victim):
                                worker_kills.append(victim)
                    return None
                watcher = H.Watcher(poll)
                watcher.start()
                rc = run.wait()
                watcher.finish()
                worker_kills_total += len(worker_kills)
                story.append(f"coordinator kill {how}, {len(worker_kills)} worker kills: "
                             f"exit {rc}")
                assert H.wait_group_gone(run.pid, 10), \
                    f"processes of a killed job live on; {story}"
                if rc == 0:
                    break  # the job won the race against this kill
                assert rc == -signal.SIGKILL, (story, run.stderr[-3000:])
                kills += 1
                commit_kills += bool(env)
                if not os.path.exists(journal):
                    shutil.rmtree(out)  # killed before the journal existed: start over
                    resume = overwrite = False
                    continue
                if stale is not None and journal_header(journal) == stale:
                    # killed before the --overwrite run replaced the old job's journal:
                    # what is there is still the old job (its input changed), so the next
                    # run must be --overwrite again (a --resume is refused, naming it)
                    story.append("killed before the overwrite took over")
                    continue
                resume, overwrite = True, False
                if rng.random() < 0.1:
                    # An input rewritten with the same size and mtime: the resume is refused
                    # (naming the input) and changes nothing; the job then starts over.
                    _rewrite_same_bytes(inp)
                    input_changes += 1
                    before = H.committed_in_journal(journal)
                    refused = runner.run(argv + ["--resume"])
                    assert refused.returncode == 1, (story, refused.stderr[-2000:])
                    line = H.one_line_error(refused.stderr)
                    assert inp in line and "changed" in line, (story, line)
                    assert H.committed_in_journal(journal) == before
                    story.append("input rewritten: resume refused")
                    resume, overwrite = False, True
                    damaged = set()
                    continue
                if mode == "disk" and rng.random() < 0.3:
                    maps = {k: p for k, p in H.committed_in_journal(journal).items()
                            if k[1] == "map"}
                    if maps:
                        key = rng.choice(sorted(maps))
                        how = rng.choice(["flip-data", "truncate", "delete"])
                        if os.path.exists(maps[key]["output"]["path"]):
                            corrupt.damage(maps[key]["output"]["path"], how)
                            damaged.add(key)
                            story.append(f"damaged {key} ({how})")
                if rng.random() < 0.2:
                    key = _damage_committed_part(rng, out, journal)
                    if key is not None:
                        damaged.add(key)
                        part_damages += 1
                        story.append(f"damaged the part file of {key}")
            committed = H.committed_in_journal(journal) if resume else {}
            if not os.path.exists(os.path.join(out, "_SUCCESS")) or overwrite:
                extra = ["--resume"] if resume else ["--overwrite"] if overwrite else []
                final = runner.ok(argv + extra)
                assert "Traceback" not in final.stderr
            H.assert_same_output(out, ref.out)
            summary = H.load_summary(out)
            now = summary["runs"]
            for key in committed if now > 1 else ():
                records = H.attempts_of(summary, key)
                assert any(t.get("recovered") for t in records), (story, key, records)
                if key not in damaged:
                    assert not [t for t in records if t["run"] == now
                                and not t.get("recovered")], (story, key, records)
            _no_fault_counters_equal(summary, ref)
            print("; ".join(story))
        finally:
            runner.close()
        shutil.rmtree(out, ignore_errors=True)
    print(f"campaign: {rounds} rounds, {kills} coordinator kills ({commit_kills} in the job "
          f"commit), {worker_kills_total} worker kills, {part_damages} damaged part files, "
          f"{input_changes} rewritten inputs")
    assert kills >= rounds, f"only {kills} coordinator kills landed in {rounds} rounds"
    assert worker_kills_total >= rounds // 4


def test_job_killed_before_its_journal_existed_starts_afresh(tmp_path):
    """A coordinator killed before it wrote its journal committed nothing: what it left (the
    lock file, an empty work dir) must not block the rerun, with or without --resume; found
    by the kill campaign (tests/kill_campaign.py)."""
    ref = tmp_path / "ref"
    base = [sys.executable, "-m", "mapreduce", "run", H.WORDCOUNT, "sample_data", "-q"]
    subprocess.run(base + ["-o", str(ref)], cwd=H.REPO, check=True, timeout=120)
    for extra in ([], ["--resume"]):
        out = tmp_path / f"out{len(extra)}"
        (out / "_temporary").mkdir(parents=True)
        (out / "_LOCK").write_text('{"pid": 1}')
        run = subprocess.run(base + ["-o", str(out)] + extra, cwd=H.REPO, timeout=120,
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        H.assert_same_output(str(out), str(ref))
    # but a directory holding anything else is not ours to take over
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    run = subprocess.run(base + ["-o", str(other), "--resume"], cwd=H.REPO, timeout=120,
                         capture_output=True, text=True)
    assert run.returncode == 1 and "nothing to resume" in run.stderr
    assert (other / "precious.txt").read_text() == "keep me"


def test_task_timeout_names_the_record_it_was_on(runner, tmp_path):
    """A task killed by --task-timeout says which record it was on, like other failures
    (issue 14): the worker is asked first, and writes it to its log."""
    inp = str(tmp_path / "in.txt")
    with open(inp, "w", encoding="utf-8") as f:
        f.write("a b\nc d\nthis line HANGs\ne f\n")
    out = str(tmp_path / "out")
    run = runner.run(H.command(H.ft_job("hang_on_line.py"), [inp], out, "--task-timeout", "2",
                               "--max-attempts", "1"), timeout=90)
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert "timed out after 2 s" in line and f"at {inp} line 3 (in the mapper)" in line, line
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
