"""What a running job tells the world: the listener interface between the coordinator and
whoever watches it (the terminal progress display, the Python API's async handle, tests).

The coordinator (:class:`~mapreduce.runners.local.LocalRunner`) calls these methods from its one
thread, in order, as things happen; it never waits for a listener and never depends on what
one does.  A listener must therefore be quick and must not raise: a display that fails is a
display problem, not a job failure (:class:`Listeners` swallows nothing, so listeners written
here are kept simple instead).

The data passed is plain dicts and strings, the same records that end up in ``_job.json``
(``task`` dicts are :meth:`LocalRunner._task_record` results), so a listener needs no import
from the engine.

Events, in the order a run produces them::

    job_started(info)                 once, after the input is planned
    phase_started(name, total)        "step 0 map", "step 0 reduce", ... (total = tasks to run)
      task_started(phase, task)       {"kind", "step", "index", "attempt"}
      task_finished(phase, task)      task["status"] is "committed" or "failed"
      note(message)                   a framework decision (--verbose shows these)
    phase_finished(phase)             {"phase", "start", "end", "tasks", "run"}
    job_finished(summary)             the ``_job.json`` dict, on success only
"""
from __future__ import annotations

from typing import Any, Iterable


class JobListener:
    """Receives a job run's events.  Every method does nothing here; override what you need."""

    def job_started(self, info: dict[str, Any]) -> None:
        """``info``: job name, output_dir, work_dir, mode, workers, reducers, steps, inputs
        (file count), input_bytes, map_tasks (first step), run (1, or more after --resume)."""

    def phase_started(self, phase: str, total: int) -> None:
        """A phase begins with ``total`` tasks to run (0 when everything was committed)."""

    def task_started(self, phase: str, task: dict[str, Any]) -> None:
        """An attempt was handed to a worker."""

    def task_finished(self, phase: str, task: dict[str, Any]) -> None:
        """An attempt ended: ``task["status"]`` is ``committed`` or ``failed``."""

    def note(self, message: str) -> None:
        """A framework decision worth a line with ``--verbose`` (splits, spills, retries)."""

    def phase_finished(self, phase: dict[str, Any]) -> None:
        """The phase's record as stored in ``_job.json``'s ``phases``."""

    def job_finished(self, summary: dict[str, Any]) -> None:
        """The job committed; ``summary`` is what ``_job.json`` holds."""


class Listeners(JobListener):
    """Fan one event stream out to several listeners, in order."""

    def __init__(self, listeners: Iterable[JobListener]) -> None:
        self.listeners = [listener for listener in listeners if listener is not None]

    def job_started(self, info: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.job_started(info)

    def phase_started(self, phase: str, total: int) -> None:
        for listener in self.listeners:
            listener.phase_started(phase, total)

    def task_started(self, phase: str, task: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.task_started(phase, task)

    def task_finished(self, phase: str, task: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.task_finished(phase, task)

    def note(self, message: str) -> None:
        for listener in self.listeners:
            listener.note(message)

    def phase_finished(self, phase: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.phase_finished(phase)

    def job_finished(self, summary: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.job_finished(summary)


__all__ = ["JobListener", "Listeners"]
