"""Helpers for the fault-tolerance tests (tests/test_fault_tolerance.py).

Everything here drives the real CLI (``python -m mapreduce run ...``) in subprocesses and
injects faults from the outside: SIGKILL of a worker or of the coordinator at a moment seen
by polling the work directory, the journal or the workers' open files; damage to files of
the work directory; a full file system.  Every process a test starts is put in a session of
its own (its workers lead process groups of their own inside it), so it can be stopped with
its workers by that session's id; no wait is without a deadline.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import psutil

from mapreduce.journal import TASK_COMMITTED, read_journal

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
FT_JOBS = os.path.join(REPO, "tests", "ft_jobs")
WORD_RE = re.compile(r"[\w']+")

#: A progress-display line (stderr is not a terminal here); the error report follows them.
PROGRESS_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d mapreduce: ")

#: Longest any single CLI run may take in these tests before it counts as hung.
RUN_TIMEOUT = 120.0

# A worker points its fds 1 and 2 at the attempt's log for the duration of a task
# (mapreduce.pool), so /proc/PID/fd/1 says which task attempt a worker is running.
_LOG_RE = re.compile(r"/logs/step-(\d+)-(map|reduce)-(\d+)-attempt-(\d+-\d+)\.log$")


def ft_job(name: str) -> str:
    return os.path.join(FT_JOBS, name)


def env(**extra: str) -> dict:
    e = dict(os.environ)  # the package is installed (pip install -e): no PYTHONPATH
    for k in [k for k in e if k.startswith("FT_")]:
        del e[k]  # no fault knobs leak in from the test runner's environment
    e.update({k: str(v) for k, v in extra.items()})
    return e


def command(job: str, inputs: list[str], out: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "mapreduce", "run", job, *map(str, inputs), "-o", str(out),
            *map(str, options)]


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

def write_words(path: str, seed: int, lines: int, vocab: int = 5000, per_line: int = 8,
                poison: tuple[int, ...] = ()) -> str:
    """A text file of random words; line numbers (1-based) in ``poison`` get ``POISON``."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)] + ["Don't", "ÉTÉ", "naïve", "x_y"]
    with open(path, "w", encoding="utf-8") as f:
        for n in range(1, lines + 1):
            line = " ".join(rng.choice(words) for _ in range(rng.randint(1, 2 * per_line)))
            if n in poison:
                line = f"{line} POISON {n}"
            f.write(line + "\n")
    return path


def write_letters(path: str, seed: int, lines: int) -> str:
    """Random lowercase 'words': compresses poorly (for jobs that must fill a disk)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            f.write(" ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
                             for _ in range(10)) + "\n")
    return path


def word_counts(paths: list[str], skip=lambda line: False) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if skip(line):
                    continue
                for w in WORD_RE.findall(line):
                    w = w.lower()
                    counts[w] = counts.get(w, 0) + 1
    return counts


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------

@dataclass
class Run:
    """A CLI run started in its own session; stdout/stderr go to files."""

    argv: list[str]
    proc: subprocess.Popen
    stdout_path: str
    stderr_path: str
    returncode: Optional[int] = None
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"run did not finish within {timeout} s: {self.argv}\n"
                                 f"stderr:\n{self.stderr[-3000:]}") from None
        return self.returncode

    def stop(self) -> None:
        """Kill the run's whole session (coordinator, workers, their children) and reap it."""
        for pid in [self.proc.pid] + [p.pid for p in psutil.process_iter(["pid"])
                                      if _in_group(p, self.proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        wait_group_gone(self.proc.pid, 10)

    @property
    def stderr(self) -> str:
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    @property
    def stdout(self) -> str:
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()


class Runner:
    """Starts CLI runs and, at teardown, stops every one still alive (see the fixture)."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.runs: list[Run] = []
        os.makedirs(logdir, exist_ok=True)

    def start(self, argv: list[str], **env_extra: str) -> Run:
        n = len(self.runs)
        out_path = os.path.join(self.logdir, f"run-{n}.stdout")
        err_path = os.path.join(self.logdir, f"run-{n}.stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(argv, cwd=REPO, env=env(**env_extra), stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        run = Run(argv, proc, out_path, err_path)
        self.runs.append(run)
        return run

    def run(self, argv: list[str], timeout: float = RUN_TIMEOUT, **env_extra: str) -> Run:
        run = self.start(argv, **env_extra)
        run.wait(timeout)
        return run

    def ok(self, argv: list[str], timeout: float = RUN_TIMEOUT, **env_extra: str) -> Run:
        run = self.run(argv, timeout, **env_extra)
        assert run.returncode == 0, (f"exit {run.returncode}: {' '.join(argv)}\n"
                                     f"stderr:\n{run.stderr[-5000:]}")
        assert "Traceback" not in run.stderr, run.stderr[-5000:]
        return run

    def close(self) -> None:
        for run in self.runs:
            run.stop()


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no process of session ``pgid`` (a run's coordinator, its workers and
    whatever they started) is left (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in psutil.process_iter(["pid"]) if _in_group(p, pgid)]
        if not alive:
            return True
        time.sleep(0.02)
    return False


def _in_group(p: psutil.Process, sid: int) -> bool:
    try:
        return os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error, OSError):
        return False


def children(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def pids_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` for ``pids`` to exit; returns those still alive."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p.pid for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def sigkill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


@dataclass
class WorkerTask:
    pid: int
    step: int
    kind: str
    index: int
    tag: str
    log: str

    def attempt_files(self, work: str) -> dict[str, str]:
        """This attempt's private files in the work dir: {path: name within the attempt}.

        Either layout: ``step-S/KIND-NNNNN/attempt-T/NAME`` (a directory per attempt) or
        ``step-S/attempts/KIND-NNNNN.T.NAME`` (a name prefix per attempt)."""
        step = os.path.join(work, f"step-{self.step}")
        name = f"{self.kind}-{self.index:05d}"
        found = {}
        directory = os.path.join(step, name, f"attempt-{self.tag}")
        try:
            for entry in os.listdir(directory):
                found[os.path.join(directory, entry)] = entry
        except OSError:
            pass
        prefix = f"{name}.{self.tag}."
        try:
            for entry in os.listdir(os.path.join(step, "attempts")):
                if entry.startswith(prefix):
                    found[os.path.join(step, "attempts", entry)] = entry[len(prefix):]
        except OSError:
            pass
        return found

    def open_attempt_files(self, work: str) -> list[str]:
        """Names (within the attempt) of this attempt's files the worker has open now."""
        mine = self.attempt_files(work)
        return [mine[f] for f in open_files(self.pid) if f in mine]


def worker_task(pid: int) -> Optional[WorkerTask]:
    """The task attempt worker ``pid`` is running now (from where its stdout points)."""
    try:
        target = os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return None
    m = _LOG_RE.search(target)
    if not m:
        return None
    return WorkerTask(pid, int(m.group(1)), m.group(2), int(m.group(3)), m.group(4), target)


def open_files(pid: int) -> list[str]:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    found = []
    for fd in fds:
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return found


class Watcher(threading.Thread):
    """Calls ``poll()`` every ``interval`` s until it returns something other than None
    (kept in ``result``), the deadline passes, or ``stop()``.  ``poll`` does the killing."""

    def __init__(self, poll: Callable[[], Any], timeout: float = RUN_TIMEOUT,
                 interval: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.poll = poll
        self.timeout = timeout
        self.interval = interval
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while not self._stop_event.is_set() and time.monotonic() < deadline:
                result = self.poll()
                if result is not None:
                    self.result = result
                    return
                time.sleep(self.interval)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def stop(self) -> None:
        self._stop_event.set()

    def finish(self) -> Any:
        self.stop()
        self.join(timeout=30)
        assert not self.is_alive(), "watcher thread did not stop"
        if self.error is not None:
            raise self.error
        return self.result


# --------------------------------------------------------------------------------------------
# the journal and the output
# --------------------------------------------------------------------------------------------

def journal_path(out: str) -> str:
    return os.path.join(out, "_temporary", "journal")


def journal_records(path: str) -> list:
    """The journal's intact records ([] while it does not exist yet)."""
    if not os.path.exists(path):
        return []
    records, _torn = read_journal(path)
    return records


def committed_in_journal(path: str) -> dict[tuple, dict]:
    """(step, kind, index) -> TASK_COMMITTED payload, for every commit the journal holds."""
    done = {}
    for r in journal_records(path):
        if r.type == TASK_COMMITTED:
            p = r.payload
            done[(p["step"], p["kind"], p["index"])] = p
    return done


def part_bytes(out: str) -> dict[str, bytes]:
    result = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("part-"):
            with open(os.path.join(out, name), "rb") as f:
                result[name] = f.read()
    return result


def output_counts(out: str) -> dict:
    counts = {}
    for data in part_bytes(out).values():
        for line in data.decode("utf-8").splitlines():
            k, v = line.split("\t")
            counts[json.loads(k)] = json.loads(v)
    return counts


def assert_same_output(out: str, reference: str) -> None:
    """``out`` is a complete job output whose part files equal ``reference``'s byte for byte."""
    assert os.path.isfile(os.path.join(out, "_SUCCESS")), f"no _SUCCESS in {out}"
    got, want = part_bytes(out), part_bytes(reference)
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for name in want:
        assert got[name] == want[name], f"{out}/{name} differs from the fault-free run's"
    assert not os.path.exists(os.path.join(out, "_LOCK")), "the output lock was left behind"


def load_summary(out: str) -> dict:
    with open(os.path.join(out, "_job.json"), encoding="utf-8") as f:
        return json.load(f)


def task_key(task: dict) -> tuple:
    return (task["step"], task["kind"], task["index"])


def attempts_of(summary: dict, key: tuple) -> list[dict]:
    return [t for t in summary["tasks"] if task_key(t) == key]


def assert_failed_then_committed(summary: dict, key: tuple) -> dict:
    """The task has a failed attempt and a later committed one; returns the failed record."""
    records = attempts_of(summary, key)
    failed = [t for t in records if t["status"] == "failed"]
    committed = [t for t in records if t["status"] == "committed"]
    assert failed, f"no failed attempt of {key} in _job.json: {records}"
    assert len(committed) == 1, f"{key} should have exactly one committed attempt: {records}"
    return failed[0]


def assert_each_task_committed_once(summary: dict, maps: int, reducers: int) -> None:
    for key in [(0, "map", i) for i in range(maps)] + [(0, "reduce", r) for r in range(reducers)]:
        committed = [t for t in attempts_of(summary, key) if t["status"] == "committed"]
        assert len(committed) >= 1, f"{key} never committed"


def one_line_error(stderr: str) -> str:
    """The ``mapreduce: error: ...`` line of a failed run's stderr."""
    lines = [line for line in stderr.splitlines() if line.startswith("mapreduce: error:")]
    assert lines, f"no 'mapreduce: error:' line in stderr:\n{stderr[-3000:]}"
    return lines[0]


def one_error_line(proc, *needles: str, status: int = 2) -> str:
    """A refused run's whole stderr: exactly one ``mapreduce: error:`` line (no traceback,
    nothing else), holding every one of ``needles``, and exit status ``status``."""
    assert proc.returncode == status, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapreduce: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def stop_process_groups(procs, grace: float = 20) -> None:
    """End servers a test started, each in its own process group: SIGTERM every group, wait
    up to ``grace`` seconds for each leader, then SIGKILL the groups that did not end."""
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
