"""The Python API: run a job from a notebook, a script or a test, and get a result object.

::

    from mapreduce import run, run_async
    result = run(WordCount, "input/", reducers=2)        # or run("jobs/wordcount.py", ...)
    result.counters["framework"]["MAP_INPUT_RECORDS"]
    dict(result.pairs())                                 # the output, decoded

    handle = run_async("jobs/wordcount.py", "big/", output="out/")
    handle.progress          # Progress(phase='step 0 map', done=3, total=16, ...)
    handle.wait(5)           # True once finished
    handle.result()          # the RunResult, or raises the job's error
    handle.cancel()          # stop it; run again with resume=True to finish

Keyword options are the CLI's options with ``_`` for ``-`` (``sort_buffer="64MB"`` or bytes,
``max_attempts=4``, ``runner="spark"``, ...; and one without a flag: ``dask_client=`` a
``distributed.Client`` for ``runner="dask"``); the job's own options (``configure_args``) go
in ``job_options={"iterations": 5}``.  Every option is checked the way the command line checks
it, so a mistake raises :class:`~mapreduce.errors.UsageError` with the same message.

Design choices:

* ``run`` runs in the calling thread, exactly as the CLI does (Ctrl-C interrupts it).
  ``run_async`` runs the same code in a background thread; the coordinator forks its worker
  processes from that thread, which is safe because the coordinator thread holds no locks
  the workers need (they only use their own pipe).  ``cancel()`` sets a flag the scheduler
  polls (:meth:`LocalRunner.cancel`); the workers are killed, commits already made stay
  journaled, and ``resume=True`` finishes the job later, like a killed CLI run.
* Progress: ``progress=None`` (the default) shows a bar only where someone watches: a
  terminal or a Jupyter kernel (tqdm's plain text bar: no widgets to install); ``True``
  forces it, ``False`` hides it.  The async handle's ``progress`` works either way.
* Without ``output``, the job writes to a fresh temporary directory that the result owns:
  ``with run(...) as result:`` (or ``result.cleanup()``) removes it, and so does the end of
  the Python process if neither did.  Not garbage collection: ``run(...).output_dir`` or
  ``run(...).part_files`` would name files already deleted (``tempfile.TemporaryDirectory``'s
  trap).  If the job fails, only its attempt logs are kept (the error names them) and a
  note on the exception says where; the rest cannot be resumed without ``output``.
"""
from __future__ import annotations

import atexit
import functools
import os
import io
import shutil
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence, Union

from mapreduce.cli import job_options_from_dict, keep_only_logs, sort_buffer_warning
from mapreduce.errors import JobCancelledError, UsageError
from mapreduce.events import JobListener, Listeners
from mapreduce.job import Job
from mapreduce.loader import JobRef, load_job_class, register_job_class
from mapreduce.output import parse_line
from mapreduce.progress import format_summary, make_progress
from mapreduce.options import JobConfig, config_from_keywords
from mapreduce.runners import run_job
from mapreduce.session import JobResult
from mapreduce.storage import filesystem_for, is_remote

JobSpec = Union[str, "os.PathLike[str]", type]


class RunResult:
    """A finished job: its output directory, counters, timings and decoded output."""

    def __init__(self, result: JobResult, temporary: Optional[str] = None) -> None:
        self.output_dir: str = result.output_dir
        #: Job-level counters (group -> name -> value; OUTPUT_RECORDS is the output's own).
        self.counters: dict[str, dict[str, int]] = result.counters
        self.wall_seconds: float = result.wall_seconds
        self.summary: dict[str, Any] = result.summary       # what _job.json holds
        #: Each step's own counters, in step order (docs/job-json.md).
        self.step_counters: list[dict[str, dict[str, int]]] = [
            step.get("counters", {}) for step in result.summary.get("steps", [])]
        self._temporary = temporary
        self._at_exit: Optional[functools.partial] = None
        if temporary:
            # Removed by cleanup() or a with block, else when the process ends (never at
            # garbage collection: run(...).output_dir would name a deleted directory).
            self._at_exit = functools.partial(shutil.rmtree, temporary, ignore_errors=True)
            atexit.register(self._at_exit)

    @property
    def phases(self) -> dict[str, float]:
        """Seconds per phase, e.g. ``{"step 0 map": 1.2, "step 0 reduce": 0.4}``.  A phase
        that ran in several runs (after ``resume``) adds up."""
        times: dict[str, float] = {}
        for p in self.summary.get("phases", []):
            times[p["phase"]] = times.get(p["phase"], 0.0) + p["end"] - p["start"]
        return times

    @property
    def part_files(self) -> list[str]:
        """The part files' paths (URLs for an output in a remote store)."""
        fs, out = filesystem_for(self.output_dir, "output")
        return [fs.join(out, e.name) for e in fs.list(out) if e.name.startswith("part-")]

    def pairs(self) -> Iterator[tuple[Any, Any]]:
        """The output pairs in part-file order, decoded back to Python values (JSON's
        view: tuples come back as lists; ``raw_value`` output gives ``(None, line)``)."""
        protocol = self.summary.get("output_protocol", "json")
        for path in self.part_files:
            fs, name = filesystem_for(path, "output")
            with io.BufferedReader(fs.open_range(name), 1 << 20) as f:  # type: ignore[arg-type]
                for line in f:
                    yield parse_line(line, protocol)

    __iter__ = pairs

    def counter(self, group: str, name: str) -> int:
        """One counter's value (0 when it never moved)."""
        return self.counters.get(group, {}).get(name, 0)

    def format_summary(self) -> str:
        return format_summary(self.summary, self.wall_seconds)

    def cleanup(self) -> None:
        """Remove the temporary output directory ``run`` made when no ``output`` was given
        (else done when the process ends)."""
        if self._temporary:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
            self._at_exit = None

    def __enter__(self) -> "RunResult":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return (f"<RunResult {self.summary.get('job', {}).get('class', '?')} "
                f"{self.wall_seconds:.2f} s, output {self.output_dir}>")


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running job (``JobHandle.progress``)."""

    phase: Optional[str]     # "step 0 map", ... or None before the first phase
    done: int                # tasks of this phase committed
    total: int               # tasks of this phase
    failed: int              # failed attempts so far (all phases)
    phases_done: int         # phases finished
    elapsed: float           # seconds since the job started
    finished: bool

    @property
    def fraction(self) -> float:
        """Of the current phase (1.0 when the job finished)."""
        if self.finished:
            return 1.0
        return self.done / self.total if self.total else 0.0


class _ProgressState(JobListener):
    """Keeps the latest Progress for a handle (events arrive on the job's thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.phase: Optional[str] = None
        self.done = self.total = self.failed = self.phases_done = 0

    def phase_started(self, phase: str, total: int) -> None:
        with self.lock:
            self.phase, self.done, self.total = phase, 0, total

    def task_finished(self, phase: str, task: dict[str, Any]) -> None:
        with self.lock:
            if task.get("status") == "committed":
                self.done += 1
            else:
                self.failed += 1

    def phase_finished(self, phase: dict[str, Any]) -> None:
        with self.lock:
            self.phases_done += 1

    def snapshot(self, finished: bool) -> Progress:
        with self.lock:
            return Progress(self.phase, self.done, self.total, self.failed, self.phases_done,
                            time.monotonic() - self.started, finished)


def _load(job: JobSpec, job_name: Optional[str]) -> tuple[type[Job], JobRef]:
    if isinstance(job, type):
        if not issubclass(job, Job):
            raise UsageError(f"{job.__name__} is not a mapreduce.Job subclass")
        return job, register_job_class(job)
    if isinstance(job, (str, os.PathLike)):
        return load_job_class(os.fspath(job), job_name, pick='job_name="NAME"')
    raise UsageError(f"job must be a Job subclass or the path of a job file, not "
                     f"{type(job).__name__}")


def make_config(job_class: type[Job], inputs: Union[str, Sequence[str]], output: str,
                job_options: Optional[dict[str, Any]] = None, **options: Any) -> JobConfig:
    """A JobConfig from keyword options, checked with the option table exactly as the command
    line checks its flags (errors name the keyword: ``task_timeout``, ``overwrite=True``)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fspath(i) for i in inputs]
    if not inputs:
        raise UsageError("no inputs given")
    config = config_from_keywords(inputs, os.fspath(output),
                                  job_options_from_dict(job_class, dict(job_options or {})),
                                  options)
    given = options.get("sort_buffer", "64MB")
    warning = sort_buffer_warning(config.sort_buffer, f"sort_buffer={given!r}")
    if warning:  # a warning, as on the command line; Python's, so a caller can filter it
        warnings.warn(warning, stacklevel=4)  # at the caller of run() / run_async()
    return config


def _progress_listener(progress: Optional[bool], verbose: bool) -> Optional[JobListener]:
    if progress is False:
        return make_progress(quiet=True, verbose=verbose)
    if progress is None and not _watched():
        return make_progress(quiet=True, verbose=verbose)
    return make_progress(verbose=verbose)


def _watched() -> bool:
    try:
        return sys.stderr.isatty() or "ipykernel" in sys.modules
    except (AttributeError, ValueError):
        return False


def _prepare(job: JobSpec, inputs: Any, output: Optional[str], job_name: Optional[str],
             job_options: Optional[dict], options: dict) -> tuple:
    job_class, job_ref = _load(job, job_name)
    report = options.pop("report", False)
    if report and output is not None and is_remote(os.fspath(output)):
        raise UsageError(f"report=True writes _report.html next to the output, which is in a "
                         f"remote store ({output}): not supported")
    temporary = None
    if output is None:
        if options.get("resume"):
            raise UsageError("resume=True needs output=: the directory of the job to resume")
        temporary = tempfile.mkdtemp(prefix="mapreduce-")
        output = os.path.join(temporary, "out")
    config = make_config(job_class, inputs, output, job_options, **options)
    return job_class, job_ref, config, temporary, report


def _failed(exc: BaseException, temporary: Optional[str]) -> None:
    """A job without ``output`` failed: keep only the attempt logs its error names, and say
    where they are; after an interrupt or a cancel, keep nothing (nothing can resume)."""
    if temporary is None:
        return
    if isinstance(exc, Exception) and not isinstance(exc, JobCancelledError) \
            and keep_only_logs(temporary):
        exc.add_note(f"mapreduce: the attempt logs are kept in {temporary}; nothing else is "
                     "(no output= given): delete it when done")
        return
    shutil.rmtree(temporary, ignore_errors=True)
    if isinstance(exc, (JobCancelledError, KeyboardInterrupt)):
        exc.add_note("mapreduce: no output= was given, so nothing is kept and this job cannot "
                     "be resumed (with output=DIR, resume=True finishes it)")


def _finish(result: JobResult, temporary: Optional[str], report: bool) -> RunResult:
    if report:
        from mapreduce.report import write_report  # same (entry) layer
        write_report(result.output_dir)
    return RunResult(result, temporary)


def run(job: JobSpec, inputs: Union[str, Sequence[str]], output: Optional[str] = None, *,
        job_name: Optional[str] = None, job_options: Optional[dict[str, Any]] = None,
        progress: Optional[bool] = None, verbose: bool = False, report: bool = False,
        **options: Any) -> RunResult:
    """Run a job to completion and return its :class:`RunResult`.

    ``job`` is a Job subclass or a job file's path (``job_name`` picks the class when the
    file defines several).  Raises :class:`~mapreduce.errors.MapReduceError` (one clear
    message) when the job or an option is wrong.
    """
    options["report"] = report
    job_class, job_ref, config, temporary, report = _prepare(job, inputs, output, job_name,
                                                             job_options, options)
    try:
        result = run_job(job_class, job_ref, config, _progress_listener(progress, verbose))
    except BaseException as exc:
        _failed(exc, temporary)
        raise
    return _finish(result, temporary, report)


class JobHandle:
    """A job running in the background (ipyparallel's ``AsyncResult``, for a job)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._state = _ProgressState()
        self._done = threading.Event()
        self._result: Optional[RunResult] = None
        self._error: Optional[BaseException] = None
        self._runner: Any = None
        self._cancel_requested = False
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    # --- state ---------------------------------------------------------------------------
    def ready(self) -> bool:
        """Has the job finished (successfully, with an error, or cancelled)?"""
        return self._done.is_set()

    def successful(self) -> bool:
        """Finished without error (raises if not finished yet, like ipyparallel)."""
        if not self.ready():
            raise RuntimeError("the job has not finished yet")
        return self._error is None

    @property
    def progress(self) -> Progress:
        return self._state.snapshot(self.ready() and self._error is None)

    @property
    def elapsed(self) -> float:
        return self._state.snapshot(False).elapsed

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait up to ``timeout`` seconds (forever with None); True when finished."""
        return self._done.wait(timeout)

    def result(self, timeout: Optional[float] = None) -> RunResult:
        """The RunResult; raises the job's error, or TimeoutError if not done in time."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.name} still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def cancel(self) -> bool:
        """Ask the job to stop; False if it had already finished.  ``wait()`` for it."""
        with self._lock:
            if self.ready():
                return False
            self._cancel_requested = True
            if self._runner is not None:
                self._runner.cancel()
        return True

    def __repr__(self) -> str:
        p = self.progress
        if not self.ready():
            state = f"{p.phase or 'starting'} {p.done}/{p.total}"
        elif isinstance(self._error, JobCancelledError):
            state = "cancelled"
        else:
            state = "done" if self._error is None else f"failed: {self._error}"
        return f"<JobHandle {self.name}: {state}, {p.elapsed:.1f} s>"

    # --- the job's thread ----------------------------------------------------------------
    def _runner_ready(self, runner: Any) -> None:
        with self._lock:
            self._runner = runner
            if self._cancel_requested:
                runner.cancel()

    def _run(self, job_class: type[Job], job_ref: JobRef, config: JobConfig,
             display: Optional[JobListener], temporary: Optional[str], report: bool) -> None:
        try:
            if self._cancel_requested:
                raise JobCancelledError("job cancelled before it started")
            result = run_job(job_class, job_ref, config, Listeners([self._state, display]),
                             ready=self._runner_ready)
            self._result = _finish(result, temporary, report)
        except BaseException as exc:  # handed to whoever calls result()
            _failed(exc, temporary)
            self._error = exc
        finally:
            self._done.set()


def run_async(job: JobSpec, inputs: Union[str, Sequence[str]], output: Optional[str] = None, *,
              job_name: Optional[str] = None, job_options: Optional[dict[str, Any]] = None,
              progress: Optional[bool] = None, verbose: bool = False, report: bool = False,
              **options: Any) -> JobHandle:
    """Start a job in the background and return its :class:`JobHandle` at once.  Options
    are :func:`run`'s; a bad option raises here, before anything starts."""
    options["report"] = report
    job_class, job_ref, config, temporary, report = _prepare(job, inputs, output, job_name,
                                                             job_options, options)
    handle = JobHandle(job_class.__name__)
    display = _progress_listener(progress, verbose)
    handle._thread = threading.Thread(
        target=handle._run, name=f"mapreduce-{job_class.__name__}", daemon=True,
        args=(job_class, job_ref, config, display, temporary, report))
    handle._thread.start()
    return handle


__all__ = ["run", "run_async", "RunResult", "JobHandle", "Progress", "make_config"]
