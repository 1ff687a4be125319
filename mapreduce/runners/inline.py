"""The inline runner (``--runner inline``, mrjob's ``-r inline``): the whole job in the calling
process, one task at a time, each run once -- so ``breakpoint()``, ``pdb`` and ``print`` work
while debugging a job, and a traceback shows the job's own frames.

It is the local runner's scheduler (:mod:`mapreduce.runners.local`: the same task specs,
shuffle, commits, journal and job commit, hence the same output bytes) with an executor that
runs each task right here when asked for its result, instead of a pool of worker processes.
What a task prints goes to this process's stdout and stderr, not to a log file.  A failed task
fails the job at once: there is no second attempt and no timeout (a task cannot be killed
from the process it runs in).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional

from mapreduce.pool import failure_from
from mapreduce.runners.local import LocalRunner
from mapreduce.session import JobResult, JobSession
from mapreduce.shuffles import make_shuffle


class InlineExecutor:
    """The WorkerPool interface (``submit`` / ``next_event`` / ``pending``), in this process."""

    def __init__(self, workers: int = 1, task_timeout: Optional[float] = None) -> None:
        self._queue: deque = deque()

    def submit(self, task_id: Any, fn: Callable[[Any], Any], arg: Any,
               log_path: Optional[str] = None) -> None:
        self._queue.append((task_id, fn, arg))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def next_event(self, timeout: Optional[float] = None) -> Optional[tuple]:
        if not self._queue:
            return None
        task_id, fn, arg = self._queue.popleft()
        try:
            return ("ok", task_id, fn(arg))
        except KeyboardInterrupt:
            raise  # Ctrl-C stops the job here, as anywhere in this process
        except BaseException as exc:  # the task's failure, reported as a worker's would be
            return ("error", task_id, failure_from(exc))

    def __enter__(self) -> "InlineExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._queue.clear()


def run(job_class: Any, job_ref: Any, config: Any, listener: Any = None,
        ready: Optional[Callable[[Any], None]] = None) -> JobResult:
    """The registry's entry point (see :mod:`mapreduce.runners`)."""
    runner = LocalRunner(JobSession(job_class, job_ref, config, listener),
                         make_shuffle(config.mode), executor=InlineExecutor, max_attempts=1)
    runner.name = "inline"
    if ready is not None:
        ready(runner)
    return runner.run()


__all__ = ["InlineExecutor", "run"]
