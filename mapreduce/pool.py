"""A pool of worker processes that runs task functions and never hangs on a dead worker.

Each worker is a forked process with its own duplex pipe.  The coordinator hands a worker one
task at a time and waits with :func:`multiprocessing.connection.wait` on the pipes *and the
process sentinels* of busy workers, so a worker that dies (SIGKILL, ``os._exit``, segfault,
the OOM killer) is noticed at once, reported as a failed attempt naming its pid and exit
status or signal, and replaced.  This is the shape of CPython's
``concurrent.futures.ProcessPoolExecutor``, minus its habit of breaking the whole pool when
one worker dies.

Workers are forked, not spawned: they inherit the already-imported job class (see
:mod:`mapreduce.loader`), which keeps start-up in the milliseconds.  In a worker, ``print``
output goes to stderr so it can never corrupt output written to stdout, and SIGINT is ignored
(the coordinator handles Ctrl-C and terminates the workers).

Events returned by :meth:`WorkerPool.next_event`: ``("ok", task_id, result)``,
``("error", task_id, TaskFailure)``.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
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


def _describe_exit(exitcode: Optional[int]) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _failure_from(exc: BaseException) -> TaskFailure:
    from mapreduce.errors import MapReduceError

    detail = "".join(traceback.format_exception(exc))
    if isinstance(exc, MapReduceError):
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
    return TaskFailure(message, detail, pid=os.getpid())


def _worker_main(conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout = sys.stderr  # user prints must not corrupt output on stdout
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        task_id, fn, arg = message
        try:
            reply = ("ok", task_id, fn(arg))
        except BaseException as exc:  # report everything; the coordinator decides
            reply = ("error", task_id, _failure_from(exc))
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. an unpicklable result
            conn.send(("error", task_id, _failure_from(exc)))
    conn.close()


class _Worker:
    def __init__(self) -> None:
        parent, child = _CTX.Pipe(duplex=True)
        self.conn = parent
        self.process = _CTX.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.task_id: Any = None

    @property
    def pid(self) -> int:
        return self.process.pid


class WorkerPool:
    """``submit`` tasks, then call ``next_event`` until every submitted task has reported."""

    def __init__(self, workers: int) -> None:
        self.size = workers
        self._workers = [_Worker() for _ in range(workers)]
        self._queue: deque = deque()
        self.running: dict[Any, int] = {}  # task id -> worker pid

    def submit(self, task_id: Any, fn: Callable[[Any], Any], arg: Any) -> None:
        self._queue.append((task_id, fn, arg))

    @property
    def pending(self) -> int:
        return len(self._queue) + sum(1 for w in self._workers if w.task_id is not None)

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._queue:
                return
            if worker.task_id is None:
                task_id, fn, arg = self._queue.popleft()
                worker.task_id = task_id
                self.running[task_id] = worker.pid
                worker.conn.send((task_id, fn, arg))

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
        ready = multiprocessing.connection.wait(list(waitables), timeout)
        if not ready:
            return None
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
