"""A pool of worker processes that runs task functions and never hangs on a dead worker.

Each worker is a forked process with its own duplex pipe.  The coordinator hands a worker one
task at a time and waits with :func:`multiprocessing.connection.wait` on the pipes *and the
process sentinels* of busy workers, so a worker that dies (SIGKILL, ``os._exit``, segfault,
the OOM killer) is noticed at once, reported as a failed attempt naming its pid and exit
status or signal, and replaced.  This is the shape of CPython's
``concurrent.futures.ProcessPoolExecutor``, minus its habit of breaking the whole pool when
one worker dies.

Workers are forked, not spawned: they inherit the already-imported job class (see
:mod:`mapreduce.loader`), which keeps start-up in the milliseconds.  In a worker, SIGINT is
ignored (the coordinator handles Ctrl-C and terminates the workers), and the worker asks the
kernel to SIGKILL it if the coordinator dies (``PR_SET_PDEATHSIG``), so a killed coordinator
leaves no orphan writing into the work directory.

Each task may name a log file: for the duration of the task the worker points its file
descriptors 1 and 2 there (so ``print``, ``logging``, C extensions and a segfault's
faulthandler dump all land in the attempt's log, never in the job's output); a log left empty
is removed.  Without a log file, ``print`` goes to stderr.

A task may also have a deadline (``--task-timeout``): a task still running when it passes is
killed with its worker and reported as a failure.  The deadline is set before the task is
sent, and a task is sent without ever blocking the coordinator: its message is written to the
worker's pipe in non-blocking pieces as the pipe drains (a memory-mode reduce task carries its
whole partition, megabytes, and a worker that was stopped while idle never drains it).

Each worker leads a process group of its own, so killing a worker (a timeout, the end of the
job) also kills whatever its tasks started and left behind.  A process a task forks that
returns into the framework (``os.fork()`` without ``os._exit()`` in the child) ends itself
where it would reply, with a status of its own; the worker learns the pids its task forked
(an at-fork hook) and waits for them before it replies, so such a task fails, deterministically
and not retried, with a message saying so.  The coordinator treats any reply it did not ask
for as the worker's failure.

A worker that dies of SIGKILL it was not sent by the pool is most often the kernel's
out-of-memory killer's victim: the failure says so, with the worker's peak RSS (from
``wait4``), and definitely when the cgroup's OOM-kill counter went up meanwhile.

Events returned by :meth:`WorkerPool.next_event`: ``("ok", task_id, result)``,
``("error", task_id, TaskFailure)``.
"""
from __future__ import annotations

import ctypes
import errno as errno_module
import faulthandler
import logging
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import struct
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler

from mapreduce.errors import user_traceback
from typing import Any, Callable, Optional

_CTX = multiprocessing.get_context("fork")



@dataclass
class TaskFailure:
    """Why an attempt failed: a one-line message and the detail (traceback) behind it."""

    message: str
    detail: str
    worker_died: bool = False
    pid: Optional[int] = None
    errno: Optional[int] = None          # an OSError's errno (ENOSPC fails the job at once)
    corrupt_path: Optional[str] = None   # a CorruptDataError's file (a bad map output)
    timed_out: bool = False
    retryable: bool = True               # False: another attempt cannot do better (bad input)
    fork_escaped: bool = False           # a process forked by the task returned into it

    @property
    def disk_full(self) -> bool:
        return self.errno in (errno_module.ENOSPC, errno_module.EDQUOT)


def _describe_exit(exitcode: Optional[int]) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _oom_kills() -> Optional[int]:
    """How many processes of this cgroup the kernel's OOM killer has killed (cgroup v2
    ``memory.events`` or v1 ``memory.oom_control``); None where that cannot be read."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates.append(f"/sys/fs/cgroup{path}/memory.events")
        elif "memory" in controllers.split(","):
            candidates.append(f"/sys/fs/cgroup/memory{path}/memory.oom_control")
    for candidate in candidates:
        try:
            with open(candidate, encoding="utf-8") as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def _frame(message: Any) -> list[memoryview]:
    """``message`` as the bytes ``Connection.send`` would write: a signed 32-bit big-endian
    length (or -1 and a 64-bit length above 2 GiB) followed by the pickle.  The worker reads
    it with an ordinary ``Connection.recv``; the coordinator writes it without blocking."""
    data = ForkingPickler.dumps(message)
    n = len(data)
    header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)
    return [memoryview(header), memoryview(data)]


def failure_from(exc: BaseException) -> TaskFailure:
    from mapreduce.errors import CorruptDataError, MapReduceError

    if isinstance(exc, MapReduceError):
        # A failure the framework understands: its message says it all, plus the user's
        # own frames when user code raised.
        message = str(exc)
        cause = exc.__cause__
        detail = user_traceback(cause) if exc.show_traceback and cause is not None else ""
        retryable = exc.retryable
    elif isinstance(exc, OSError):
        message, detail, retryable = f"{exc.strerror or exc}: {exc.filename or ''}", "", True
    else:  # unexpected: a framework bug or an environment problem; show everything
        message = f"{type(exc).__name__}: {exc}"
        detail = "".join(traceback.format_exception(exc))
        retryable = True
    failure = TaskFailure(message, detail, pid=os.getpid(), retryable=retryable)
    # The interesting cause may be chained under a wrapper (e.g. a user-code error).
    cause: Optional[BaseException] = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno and failure.errno is None:
            failure.errno = cause.errno
        if isinstance(cause, CorruptDataError) and failure.corrupt_path is None:
            failure.corrupt_path = cause.path
        cause = cause.__cause__
    return failure


def _die_with_parent(coordinator_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when the coordinator dies (no-op elsewhere).

    The request only covers deaths after it is made: if the coordinator died between the
    fork and here, nobody would ever signal us, so check the parent and leave at once.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != coordinator_pid:
        os._exit(1)


class _LogRedirect:
    """Point fds 1 and 2 at a log file for the duration of one task."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self.saved: list[int] = []

    def __enter__(self) -> "_LogRedirect":
        if self.path:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            sys.stdout.flush()
            sys.stderr.flush()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self.saved = [os.dup(1), os.dup(2)]
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.saved:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(self.saved[0], 1)
            os.dup2(self.saved[1], 2)
            for fd in self.saved:
                os.close(fd)
            self.saved = []
            try:  # most attempts print nothing: leave no empty log behind
                if os.path.getsize(self.path) == 0:
                    os.remove(self.path)
            except OSError:
                pass


def _worker_main(conn, coordinator_end, coordinator_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    coordinator_end.close()  # so that recv() sees EOF once the coordinator's end is gone
    _die_with_parent(coordinator_pid)
    os.setpgid(0, 0)  # a group of its own: killing it kills what its tasks started too
    worker_pid = os.getpid()
    signal.signal(WHERE_SIGNAL, _say_where)
    forks = _ForkWatch()
    # Python-level streams on the real fds 1 and 2, whatever the parent had: in Jupyter (or
    # under pytest's capture) sys.stderr is an in-process object with no fileno, and an
    # ipykernel stream must not be used from a forked child at all.  The attempt's log is
    # then installed under these fds with dup2 (_LogRedirect).
    inherited = (sys.stdout, sys.stderr)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1,
                      closefd=False)
    sys.stdout = sys.stderr  # without a log file, prints must not corrupt stdout output
    # Logging handlers the parent pointed at its streams (basicConfig in a notebook) follow.
    for handler in logging.root.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in inherited:
            handler.setStream(sys.stderr)
    faulthandler.enable()  # a segfault's traceback goes to fd 2, i.e. the attempt's log
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        task_id, fn, arg, log_path = message
        redirect = _LogRedirect(log_path)
        try:
            redirect.__enter__()
        except OSError:  # e.g. the disk is full: run the task without its log file
            redirect = _LogRedirect(None)
        try:
            reply = ("ok", task_id, fn(arg))
        except BaseException as exc:  # report everything; the coordinator decides
            if os.getpid() != worker_pid:
                _escaped_fork(worker_pid)
            failure = failure_from(exc)
            try:
                print(failure.detail or failure.message, file=sys.stderr)  # the attempt's log
                sys.stderr.flush()
            except OSError:  # the log's disk may be the full one: the reply still goes out
                pass
            reply = ("error", task_id, failure)
        if os.getpid() != worker_pid:
            _escaped_fork(worker_pid)
        escaped = forks.escaped()  # waits for the processes the task forked
        if escaped is not None:
            reply = ("error", task_id, escaped)
        try:
            redirect.__exit__(None, None, None)
        except OSError:
            pass
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. an unpicklable result
            conn.send(("error", task_id, failure_from(exc)))
    conn.close()


#: Sent to a worker whose task has passed its deadline, just before it is killed: the worker
#: writes where its task is (the record, from the task kernel's frame) to its attempt log.
WHERE_SIGNAL = signal.SIGUSR1
#: How long a timed-out worker gets to say where it is before it is killed.
WHERE_GRACE_SECONDS = 1.0
#: The line a worker writes for WHERE_SIGNAL; the coordinator looks for it in the log.
WHERE_MARK = "mapreduce: the task was at "


def _say_where(signum: int, frame: Any) -> None:
    """WHERE_SIGNAL's handler: print where the running task is, if the kernel knows
    (:func:`mapreduce.kernel.position`), to fd 2 (the attempt's log).  A task stuck inside C
    code never runs it; it is then killed without saying."""
    from mapreduce.kernel import position  # the kernel reads its own loop's frame

    where = position(frame)
    if where:
        try:
            os.write(2, f"\n{WHERE_MARK}{where}\n".encode("utf-8", "backslashreplace"))
        except OSError:
            pass


def _where_from_log(path: Optional[str]) -> str:
    """The position a timed-out task wrote to its log (see _say_where), or ""."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line for line in tail.splitlines() if line.startswith(WHERE_MARK)]
    return lines[-1][len(WHERE_MARK):] if lines else ""


#: The exit status of a process a task forked that returned into the worker loop.
ESCAPED_STATUS = 70
#: How long a worker waits, after its task, for the processes the task forked to end.
FORK_GRACE_SECONDS = 30.0


def _escaped_fork(worker_pid: int) -> None:
    """In a process a task forked that has returned into the worker loop (instead of ending
    with ``os._exit``): leave at once, with a status the worker recognises."""
    try:
        os.write(2, f"mapreduce: process {os.getpid()}, forked by the task in worker "
                    f"{worker_pid}, returned into the framework; ending it\n".encode())
    finally:
        os._exit(ESCAPED_STATUS)


class _ForkWatch:
    """Which processes the running task forked (an at-fork hook in each child writes its
    pid to a pipe), so that the worker can wait for them after the task and know whether one
    returned into the framework -- before it replies, so the outcome never depends on
    which process's reply arrives first."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        write = self._write
        os.register_at_fork(after_in_child=lambda: _note_pid(write))

    def escaped(self) -> Optional[TaskFailure]:
        pids = []
        while True:
            try:
                data = os.read(self._read, 4096)
            except BlockingIOError:
                break
            if not data:
                break
            pids.extend(struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4]))
        bad = []
        deadline = time.monotonic() + FORK_GRACE_SECONDS
        for pid in pids:
            status = _wait_until(pid, deadline)
            if status is None:  # still running after the grace: a stray, end it
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
            elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == ESCAPED_STATUS:
                bad.append(pid)
        if not bad:
            return None
        return TaskFailure(
            f"a process forked by the task (pid {bad[0]}) returned into the framework "
            "instead of ending: end forked children with os._exit(), or use subprocess or "
            "multiprocessing", "", pid=bad[0], retryable=False, fork_escaped=True)


def _note_pid(fd: int) -> None:
    try:
        os.write(fd, struct.pack("i", os.getpid()))
    except OSError:
        pass


def _wait_until(pid: int, deadline: float) -> Optional[int]:
    """The wait status of child ``pid`` (None if it is still running at ``deadline``, 0 if
    someone else reaped it already: multiprocessing reaps its own)."""
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


class _Worker:
    def __init__(self) -> None:
        parent, child = _CTX.Pipe(duplex=True)
        self.conn = parent
        self.process = _CTX.Process(target=_worker_main, args=(child, parent, os.getpid()),
                                    daemon=True)
        self.process.start()
        child.close()
        self.task_id: Any = None
        self.deadline: Optional[float] = None
        self.outbox: list[memoryview] = []   # what is left to write of the task's message
        self.killed = False                  # the pool killed it (timeout, stray reply)
        self.peak_rss: Optional[int] = None  # bytes, once it has died and been reaped
        self.log_path: Optional[str] = None  # the running attempt's log
        self.asked_where = False             # timed out: told to say where it is

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (the worker and what its tasks left)."""
        self.killed = True
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                self.process.kill()
            except (ProcessLookupError, AttributeError):
                pass

    def write_some(self) -> None:
        """Write as much of the outbox as the pipe takes now, without blocking."""
        fd = self.conn.fileno()
        os.set_blocking(fd, False)
        try:
            while self.outbox:
                try:
                    n = os.write(fd, self.outbox[0])
                except BlockingIOError:
                    return
                if n == len(self.outbox[0]):
                    self.outbox.pop(0)
                else:
                    self.outbox[0] = self.outbox[0][n:]
        finally:
            os.set_blocking(fd, True)  # recv() expects a blocking descriptor

    def reap(self) -> int:
        """Wait for the dead worker; its exit code, and ``peak_rss`` from its rusage."""
        try:
            _, status, usage = os.wait4(self.pid, 0)
        except ChildProcessError:  # reaped already
            self.process.join(timeout=5)
            return self.process.exitcode if self.process.exitcode is not None else -9
        code = os.waitstatus_to_exitcode(status)
        self.peak_rss = usage.ru_maxrss * 1024  # Linux reports KiB
        popen = getattr(self.process, "_popen", None)
        if popen is not None:
            popen.returncode = code  # multiprocessing would wait for it again otherwise
        return code


class WorkerPool:
    """``submit`` tasks, then call ``next_event`` until every submitted task has reported."""

    def __init__(self, workers: int, task_timeout: Optional[float] = None) -> None:
        self.size = workers
        self.task_timeout = task_timeout
        self._workers = [_Worker() for _ in range(workers)]
        self._queue: deque = deque()
        self._oom_kills = _oom_kills()

    def submit(self, task_id: Any, fn: Callable[[Any], Any], arg: Any,
               log_path: Optional[str] = None) -> None:
        self._queue.append((task_id, fn, arg, log_path))

    @property
    def pending(self) -> int:
        return len(self._queue) + sum(1 for w in self._workers if w.task_id is not None)

    def _dispatch(self) -> None:
        """Give queued tasks to idle workers.  Never blocks: the deadline starts now and the
        message goes out in pieces as the worker's pipe drains (see ``next_event``)."""
        for slot, worker in enumerate(self._workers):
            if not self._queue:
                return
            if worker.task_id is not None:
                continue
            message = self._queue.popleft()
            frame = _frame(message)
            worker.task_id = message[0]
            worker.log_path = message[3]
            worker.outbox = frame
            if self.task_timeout:
                worker.deadline = time.monotonic() + self.task_timeout
            try:
                worker.write_some()
            except OSError:
                # The worker died while idle (e.g. the OOM killer): replace it, send again.
                worker.reap()
                worker.conn.close()
                worker = self._workers[slot] = _Worker()
                worker.task_id, worker.outbox = message[0], _frame(message)
                if self.task_timeout:
                    worker.deadline = time.monotonic() + self.task_timeout
                worker.write_some()

    def next_event(self, timeout: Optional[float] = None) -> Optional[tuple]:
        """Block until a task finishes or fails; ``None`` on timeout or nothing pending."""
        self._dispatch()
        busy = [w for w in self._workers if w.task_id is not None]
        if not busy:
            return None
        deadlines = [w.deadline for w in busy if w.deadline is not None]
        if deadlines:
            until_deadline = max(0.0, min(deadlines) - time.monotonic())
            timeout = until_deadline if timeout is None else min(timeout, until_deadline)
        readers = {}
        poller = select.poll()
        for w in self._workers:
            # Idle workers' pipes too: a reply from one is a stray (a forked child's).
            readers[w.conn.fileno()] = (w, "reply")
            poller.register(w.conn.fileno(),
                            select.POLLIN | (select.POLLOUT if w.outbox else 0))
        for w in busy:
            readers[w.process.sentinel] = (w, "sentinel")
            poller.register(w.process.sentinel, select.POLLIN)
        ready = poller.poll(None if timeout is None else int(timeout * 1000 + 0.999))
        if not ready:
            return self._expire(busy)
        died = None
        # Prefer a worker's reply over its sentinel: a reply sent just before exiting counts.
        for fd, flags in ready:
            worker, what = readers[fd]
            if what == "sentinel":
                died = died or worker
                continue
            if worker.outbox and flags & select.POLLOUT:
                try:
                    worker.write_some()
                except OSError:
                    died = died or worker  # the sentinel says why
                    continue
            if flags & select.POLLIN or (worker.task_id is not None
                                          and flags & (select.POLLHUP | select.POLLERR)):
                event = self._receive(worker)
                if event is not None:
                    return event
            elif flags & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                self._replace_idle(worker)  # died while idle: nothing to report
        if died is not None:
            return self._worker_died(died)
        return None

    def _receive(self, worker: _Worker) -> Optional[tuple]:
        """The event a readable worker pipe carries; None if there is none (yet)."""
        if not worker.conn.poll():
            return None  # POLLHUP without data: the sentinel will say why it died
        try:
            event = worker.conn.recv()
        except (EOFError, OSError):
            return None
        status, task_id, _payload = event
        if task_id != worker.task_id or worker.outbox:
            # A reply nobody asked for (a task that answered twice, a stray process writing
            # to the pipe).  The worker cannot be trusted any more: kill it (its task, if it has
            # one, is reported by the sentinel as a failed attempt) and report the reply.
            worker.kill()
            if status == "ok":
                return None
            return ("error", task_id, _payload)
        self._release(worker)
        return event

    def _replace_idle(self, worker: _Worker) -> None:
        worker.kill()
        worker.reap()
        worker.conn.close()
        self._workers[self._workers.index(worker)] = _Worker()

    def _release(self, worker: _Worker) -> None:
        worker.task_id = None
        worker.deadline = None
        worker.outbox = []
        worker.asked_where = False

    def _expire(self, busy: list[_Worker]) -> Optional[tuple]:
        """A worker whose task ran past its deadline is first asked where it is (it writes
        the record to its log), then, WHERE_GRACE_SECONDS later, killed and reported."""
        now = time.monotonic()
        for worker in busy:
            if worker.deadline is None or worker.deadline > now:
                continue
            if not worker.asked_where and not worker.outbox:
                worker.asked_where = True
                worker.deadline = now + WHERE_GRACE_SECONDS
                try:
                    os.kill(worker.pid, WHERE_SIGNAL)
                except ProcessLookupError:
                    pass
                continue
            worker.kill()
            log = worker.log_path
            event = self._worker_died(worker)
            failure = event[2]
            where = _where_from_log(log)
            failure.message = (f"task timed out after {self.task_timeout:g} s"
                               + (f" at {where}" if where else "")
                               + f"; worker process {failure.pid} was killed")
            failure.timed_out = True
            return event
        return None

    def _worker_died(self, worker: _Worker) -> tuple:
        exitcode = worker.reap()
        task_id = worker.task_id
        pid, status = worker.pid, _describe_exit(exitcode)
        if exitcode == -signal.SIGKILL and not worker.killed:
            status += self._oom_hint(worker)
        self._release(worker)
        worker.conn.close()
        try:
            os.killpg(pid, signal.SIGKILL)  # whatever the task started dies with it
        except (ProcessLookupError, PermissionError):
            pass
        self._workers[self._workers.index(worker)] = _Worker()
        failure = TaskFailure(f"worker process {pid} {status} while running the task",
                              "", worker_died=True, pid=pid)
        return ("error", task_id, failure)

    def _oom_hint(self, worker: _Worker) -> str:
        """Why a worker may have died of a SIGKILL nobody here sent: most often memory."""
        peak = f"{worker.peak_rss / 2**20:.0f} MiB" if worker.peak_rss else "unknown"
        kills = _oom_kills()
        if kills is not None and self._oom_kills is not None and kills > self._oom_kills:
            self._oom_kills = kills
            return (f" from the kernel's out-of-memory killer (its peak RSS was {peak}; "
                    "lower --sort-buffer or --workers, or give the machine more memory)")
        return (f" (out of memory? the kernel's OOM killer sends SIGKILL; its peak RSS was "
                f"{peak})")

    def close(self) -> None:
        """Stop every worker: an idle one is asked to exit (it ends as a process should, with
        its buffers flushed), a busy one is killed; then whatever their tasks left running in
        their process groups is killed too."""
        for w in self._workers:
            if w.task_id is None:
                try:
                    w.conn.send(None)
                except OSError:
                    w.kill()
            else:
                w.kill()
        for w in self._workers:
            w.process.join(timeout=5)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            try:
                os.killpg(w.pid, signal.SIGKILL)  # strays the worker's tasks left behind
            except (ProcessLookupError, PermissionError):
                pass
            w.conn.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
