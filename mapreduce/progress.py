"""Watching a job: the live progress display, ``--verbose`` lines and the end-of-job summary.

Three listeners (:class:`~mapreduce.events.JobListener`) turn the coordinator's events into
text on stderr (stdout is left to the job's output when it is printed):

* :class:`BarProgress` -- on a terminal (or in a notebook): one tqdm bar per phase with tasks
  done / total, an ETA, tasks running, records and bytes per second and spills.  tqdm, not
  hand-written terminal codes: it handles widths, redraw rates, non-ANSI consoles and
  Jupyter (where ``tqdm.std`` writes a widget-free text bar).
* :class:`LineProgress` -- when stderr is not a terminal (CI logs, files): quiet, timestamped
  lines, at most one per phase every ``interval`` seconds, plus each phase's end and every
  failed attempt.  Nothing that only makes sense to a live terminal (``\\r``, colours).
* ``--verbose`` adds the framework's decisions (:meth:`JobListener.note`: the split plan,
  each commit's spills and merge passes, retries, map re-runs) as timestamped lines to
  either display.

All of them write through a :class:`CourtesyStream`: when stderr cannot be written any more
(``... 2>&1 | head``), they stop printing and the job runs on to its commit.

:func:`format_summary` renders the end-of-job summary in the spirit of Hadoop's: where the
output, logs and report are, phase times, and counters grouped by group (``framework`` first).

Rates are computed from committed attempts (a task reports its records and bytes when it
ends), so they move in steps of one task; with the default split plan of about four tasks per
worker that is smooth enough to see a job move, and it costs the workers nothing.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional, TextIO

from tqdm.std import tqdm

from mapreduce.events import JobListener
from mapreduce.storage import filesystem_for, is_remote


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``; ``0`` -> ``0 B``: the one byte formatter of the summary, the
    report and ``bench`` (binary units spelled as such; tqdm's ``format_sizeof`` writes
    ``1.50kB`` for 1536, a decimal prefix on a binary divisor)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns


def human_count(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    return f"{n:.0f}"


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def plural(n: int, noun: str) -> str:
    """``1 task``, ``2 tasks``, ``0 tasks`` (nouns here take a plain ``s``)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


class CourtesyStream:
    """A text stream (stderr) whose writes never fail: progress is a courtesy, the job's
    output is the product.

    When the reader goes away (``... 2>&1 | head -3``: EPIPE; Python ignores SIGPIPE, so
    that is what a write sees) or the stream breaks otherwise (closed, EIO), the first failed
    write silences this stream for good and the job runs on.  If the stream has a file
    descriptor, it is pointed at /dev/null as well, so that no later write to it fails
    either: another line of ours, a library's warning, or the interpreter's final flush of
    ``sys.stderr`` (whose failure would turn the exit status into 120).  Everything else
    (``isatty``, ``fileno``, ``encoding`` for tqdm) is the wrapped stream's.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.silenced = False

    def write(self, text: str) -> int:
        if not self.silenced:
            try:
                return self.stream.write(text)
            except (OSError, ValueError):  # ValueError: "I/O operation on closed file"
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.silenced:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self._silence()

    def _silence(self) -> None:
        self.silenced = True
        try:
            fd = self.stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
        except (AttributeError, OSError, ValueError):
            return  # no descriptor (a notebook's stream): staying quiet is all we can do
        try:
            os.dup2(null, fd)
        except OSError:
            pass
        finally:
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def courteous(stream: Optional[TextIO] = None) -> CourtesyStream:
    """``stream`` (default: the current ``sys.stderr``) as a :class:`CourtesyStream`."""
    stream = sys.stderr if stream is None else stream
    return stream if isinstance(stream, CourtesyStream) else CourtesyStream(stream)


class _PhaseTally:
    """Running totals of one phase, from task events."""

    def __init__(self, name: str, total: int, workers: int) -> None:
        self.name, self.total, self.workers = name, total, workers
        self.started = time.monotonic()
        self.done = self.failed = self.submitted = 0
        self.records = self.bytes = self.spills = 0

    def task_started(self) -> None:
        self.submitted += 1

    def task_finished(self, task: dict[str, Any]) -> None:
        if task.get("status") == "committed":
            self.done += 1
            self.records += task.get("records_in", 0)
            self.bytes += task.get("bytes_in", 0)
            self.spills += task.get("spills", 0)
        else:
            self.failed += 1

    @property
    def running(self) -> int:
        # Submitted attempts queue in the pool until a worker is free.
        return max(0, min(self.workers, self.submitted - self.done - self.failed))

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def rates(self) -> str:
        parts = [f"{human_count(self.records / self.elapsed)} rec/s",
                 f"{human_bytes(self.bytes / self.elapsed)}/s"]
        if self.spills:
            parts.append(f"{self.spills} spill{'s' if self.spills != 1 else ''}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)


class _Display(JobListener):
    """What both displays share: phase tallies, verbose notes, failure lines."""

    def __init__(self, stream: TextIO, verbose: bool = False) -> None:
        self.stream = stream
        self.verbose = verbose
        self.workers = 1
        self.phase: Optional[_PhaseTally] = None

    def write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def job_started(self, info: dict[str, Any]) -> None:
        self.workers = info.get("workers", 1)
        resumed = f", run {info['run']} (resumed)" if info.get("run", 1) > 1 else ""
        self.write(f"{_stamp()} mapreduce: running {info['name']}: "
                   f"{plural(info['map_tasks'], 'map task')} over "
                   f"{human_bytes(info['input_bytes'])}, {plural(info['steps'], 'step')}, "
                   f"{plural(info['reducers'], 'reducer')}, {plural(info['workers'], 'worker')}, "
                   f"{info['mode']} shuffle{resumed}")

    def phase_started(self, phase: str, total: int) -> None:
        self.phase = _PhaseTally(phase, total, self.workers)

    def task_started(self, phase: str, task: dict[str, Any]) -> None:
        if self.phase is not None:
            self.phase.task_started()

    def task_finished(self, phase: str, task: dict[str, Any]) -> None:
        if self.phase is not None:
            self.phase.task_finished(task)
        if task.get("status") != "committed":
            self.write(f"{_stamp()} mapreduce: {phase} task {task['index']} attempt "
                       f"{task['attempt']} failed: {task.get('error', '?')}"
                       + (f" (log: {task['log']})" if task.get("log") else ""))

    def note(self, message: str) -> None:
        if self.verbose:
            self.write(f"{_stamp()} mapreduce: {message}")


class BarProgress(_Display):
    """A tqdm bar per phase (a terminal or a notebook)."""

    def __init__(self, stream: TextIO, verbose: bool = False) -> None:
        super().__init__(stream, verbose)
        self.bar: Optional[tqdm] = None

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)  # above the bar, which is redrawn
        else:
            super().write(line)

    def phase_started(self, phase: str, total: int) -> None:
        super().phase_started(phase, total)
        columns, rows = _screen(self.stream)
        sized = columns > 0 and rows > 0  # a pty nobody sized reports 0 x 0: tqdm draws nothing
        self.bar = tqdm(total=total, desc=phase, unit="task", file=self.stream, leave=True,
                        dynamic_ncols=sized, ncols=None if sized else 100,
                        nrows=None if sized else 24, mininterval=0.2)

    def task_started(self, phase: str, task: dict[str, Any]) -> None:
        super().task_started(phase, task)
        self._refresh(0)

    def task_finished(self, phase: str, task: dict[str, Any]) -> None:
        super().task_finished(phase, task)
        self._refresh(1 if task.get("status") == "committed" else 0)

    def _refresh(self, advance: int) -> None:
        if self.bar is None or self.phase is None:
            return
        self.bar.set_postfix_str(f"{self.phase.running} running, {self.phase.rates()}",
                                 refresh=False)
        self.bar.update(advance)  # redraws at most every mininterval

    def phase_finished(self, phase: dict[str, Any]) -> None:
        if self.bar is not None:
            self._refresh(0)
            self.bar.refresh()
            self.bar.close()
            self.bar = None


class LineProgress(_Display):
    """Timestamped lines, no terminal control codes (logs, CI, files)."""

    def __init__(self, stream: TextIO, verbose: bool = False, interval: float = 10.0) -> None:
        super().__init__(stream, verbose)
        self.interval = interval
        self.last_line = 0.0

    def phase_started(self, phase: str, total: int) -> None:
        super().phase_started(phase, total)
        self.last_line = time.monotonic()
        if total:
            self.write(f"{_stamp()} mapreduce: {phase}: {plural(total, 'task')}")

    def task_finished(self, phase: str, task: dict[str, Any]) -> None:
        super().task_finished(phase, task)
        p = self.phase
        if p is not None and time.monotonic() - self.last_line >= self.interval \
                and p.done < p.total:
            self.last_line = time.monotonic()
            self.write(f"{_stamp()} mapreduce: {phase}: {p.done}/{plural(p.total, 'task')} done "
                       f"({100 * p.done // max(p.total, 1)}%), {p.running} running, "
                       f"{p.rates()}")

    def phase_finished(self, phase: dict[str, Any]) -> None:
        p = self.phase
        if p is not None and p.total:
            self.write(f"{_stamp()} mapreduce: {p.name}: done, {plural(p.done, 'task')} in "
                       f"{phase['end'] - phase['start']:.2f} s ({p.rates()})")


def make_progress(quiet: bool = False, verbose: bool = False,
                  stream: Optional[TextIO] = None) -> Optional[JobListener]:
    """The display for this stream: bars on a terminal, lines otherwise, none when quiet.

    ``--quiet`` silences progress and summary but not ``--verbose`` notes (asking for both
    means: only the decisions, as lines).
    """
    stream = courteous(stream)
    if quiet:
        return _NotesOnly(stream) if verbose else None
    if _is_interactive(stream):
        return BarProgress(stream, verbose)
    return LineProgress(stream, verbose)


def _screen(stream: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return 0, 0  # not a terminal (a notebook's stream): use a fixed width
    return size.columns, size.lines


def _is_interactive(stream: TextIO) -> bool:
    if os.environ.get("MAPREDUCE_PROGRESS") in ("bar", "lines"):  # tests and odd terminals
        return os.environ["MAPREDUCE_PROGRESS"] == "bar"
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    return "ipykernel" in sys.modules  # a notebook: its stderr is no TTY but shows \r bars


class _NotesOnly(JobListener):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def note(self, message: str) -> None:
        print(f"{_stamp()} mapreduce: {message}", file=self.stream, flush=True)


def format_summary(summary: dict[str, Any], wall_seconds: float) -> str:
    """The end-of-job summary (Hadoop's "Counters: N" block, plus where things are)."""
    out = summary.get("output_dir", "?")
    if is_remote(out):  # a store's listing: one request (two with logs)
        fs, out = filesystem_for(out)
        listed = {e.name: e for e in fs.list(out)}
        parts = sorted(f for f in listed if f.startswith("part-"))
        size = sum(listed[f].size for f in parts)
        logs = fs.join(out, "_logs")
        n_logs = len(fs.list(logs)) if "_logs" in listed else 0
        report_line = f"  report:  python -m mapreduce report {out}"
    else:
        parts = sorted(f for f in os.listdir(out) if f.startswith("part-")) \
            if os.path.isdir(out) else []
        size = sum(os.path.getsize(os.path.join(out, f)) for f in parts)
        logs = os.path.join(out, "_logs")
        n_logs = len(os.listdir(logs)) if os.path.isdir(logs) else 0
        report = os.path.join(out, "_report.html")
        report_line = (f"  report:  {report}" if os.path.exists(report) else
                       f"  report:  python -m mapreduce report {out}")
    job = summary.get("job", {})
    lines = [f"mapreduce: job {job.get('class', '?')} succeeded in {wall_seconds:.2f} s"
             + (f" (run {summary['runs']}, resumed)" if summary.get("runs", 1) > 1 else ""),
             f"  output:  {out} ({plural(len(parts), 'part file')}, {human_bytes(size)})"]
    lines.append(f"  logs:    {logs} ({plural(n_logs, 'attempt log')})" if n_logs else
                 "  logs:    none (no task attempt printed or logged anything)")
    if summary.get("work_dir") and os.path.isdir(summary["work_dir"]):
        lines.append(f"  work:    {summary['work_dir']} (kept)")
    lines.append(report_line)
    phases = summary.get("phases", [])
    if phases:
        lines.append("  phases:")
        width = max(len(p["phase"]) for p in phases)
        for p in phases:
            tasks = "task " if p["tasks"] == 1 else "tasks"  # the columns stay aligned
            lines.append(f"    {p['phase']:<{width}}  {p['tasks']:>5} {tasks}  "
                         f"{p['end'] - p['start']:8.2f} s")
    counters = summary.get("counters", {})
    groups = sorted(counters, key=lambda g: (g != "framework", g))
    total = sum(len(counters[g]) for g in groups)
    if total:
        lines.append(f"  counters: {total}")
        for group in groups:
            lines.append(f"    {group}")
            for name, value in counters[group].items():
                lines.append(f"      {name}={value}")
    return "\n".join(lines)


__all__ = ["BarProgress", "CourtesyStream", "LineProgress", "courteous", "format_summary",
           "human_bytes", "human_count", "make_progress"]
