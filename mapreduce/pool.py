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
killed with its worker and reported as a failure.

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
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
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


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` with the framework's own frames left out."""
    te = traceback.TracebackException.from_exception(exc, capture_locals=False)
    frames = [f for f in te.stack if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)]
    te.stack = traceback.StackSummary.from_list(frames)
    te.__cause__ = te.__context__ = None
    return "".join(te.format())


def _failure_from(exc: BaseException) -> TaskFailure:
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
            failure = _failure_from(exc)
            try:
                print(failure.detail or failure.message, file=sys.stderr)  # the attempt's log
                sys.stderr.flush()
            except OSError:  # the log's disk may be the full one: the reply still goes out
                pass
            reply = ("error", task_id, failure)
        try:
            redirect.__exit__(None, None, None)
        except OSError:
            pass
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. an unpicklable result
            conn.send(("error", task_id, _failure_from(exc)))
    conn.close()


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

    @property
    def pid(self) -> int:
        return self.process.pid


class WorkerPool:
    """``submit`` tasks, then call ``next_event`` until every submitted task has reported."""

    def __init__(self, workers: int, task_timeout: Optional[float] = None) -> None:
        self.size = workers
        self.task_timeout = task_timeout
        self._workers = [_Worker() for _ in range(workers)]
        self._queue: deque = deque()
        self.running: dict[Any, int] = {}  # task id -> worker pid

    def submit(self, task_id: Any, fn: Callable[[Any], Any], arg: Any,
               log_path: Optional[str] = None) -> None:
        self._queue.append((task_id, fn, arg, log_path))

    @property
    def pending(self) -> int:
        return len(self._queue) + sum(1 for w in self._workers if w.task_id is not None)

    def _dispatch(self) -> None:
        for slot, worker in enumerate(self._workers):
            if not self._queue:
                return
            if worker.task_id is not None:
                continue
            message = self._queue[0]
            try:
                worker.conn.send(message)
            except OSError:
                # The worker died while idle (e.g. the OOM killer): replace it and retry.
                worker.process.join(timeout=5)
                worker.conn.close()
                worker = self._workers[slot] = _Worker()
                worker.conn.send(message)
            self._queue.popleft()
            worker.task_id = message[0]
            if self.task_timeout:
                worker.deadline = time.monotonic() + self.task_timeout
            self.running[message[0]] = worker.pid

    def next_event(self, timeout: Optional[float] = None) -> Optional[tuple]:
        """Block until a task finishes or fails; ``None`` on timeout or nothing pending."""
        self._dispatch()
        busy = [w for w in self._workers if w.task_id is not None]
        if not busy:
            return None
        waitables = {}
        for w in busy:
            waitables[w.conn] = w
            waitables[w.process.sentinel] = w
        deadlines = [w.deadline for w in busy if w.deadline is not None]
        if deadlines:
            until_deadline = max(0.0, min(deadlines) - time.monotonic())
            timeout = until_deadline if timeout is None else min(timeout, until_deadline)
        ready = multiprocessing.connection.wait(list(waitables), timeout)
        if not ready:
            return self._expire(busy)
        # Prefer a worker's reply over its sentinel: a reply sent just before exiting counts.
        for obj in ready:
            worker = waitables[obj]
            if obj is worker.conn:
                try:
                    event = worker.conn.recv()
                except (EOFError, OSError):
                    continue  # the pipe closed: the sentinel will say why
                self._release(worker)
                return event
        worker = waitables[ready[0]]
        return self._worker_died(worker)

    def _release(self, worker: _Worker) -> None:
        self.running.pop(worker.task_id, None)
        worker.task_id = None
        worker.deadline = None

    def _expire(self, busy: list[_Worker]) -> Optional[tuple]:
        """Kill the first worker whose task ran past its deadline and report it."""
        now = time.monotonic()
        for worker in busy:
            if worker.deadline is not None and worker.deadline <= now:
                worker.process.kill()
                event = self._worker_died(worker)
                failure = event[2]
                failure.message = (f"task timed out after {self.task_timeout:g} s; worker "
                                   f"process {failure.pid} was killed")
                failure.timed_out = True
                return event
        return None

    def _worker_died(self, worker: _Worker) -> tuple:
        worker.process.join(timeout=5)
        task_id = worker.task_id
        pid, status = worker.pid, _describe_exit(worker.process.exitcode)
        self._release(worker)
        worker.conn.close()
        self._workers[self._workers.index(worker)] = _Worker()
        failure = TaskFailure(f"worker process {pid} {status} while running the task",
                              "", worker_died=True, pid=pid)
        return ("error", task_id, failure)

    def kill_task(self, task_id: Any) -> None:
        """Kill the worker running ``task_id`` (e.g. a hung task); next_event reports it."""
        for w in self._workers:
            if w.task_id == task_id:
                w.process.kill()

    def close(self) -> None:
        for w in self._workers:
            if w.task_id is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
            else:
                w.process.kill()
        for w in self._workers:
            w.process.join(timeout=5)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
