"""``python -m mapreduce report OUT``: a self-contained HTML page about a finished job.

Design
------
The page is built from ``OUT/_job.json`` alone (the summary the session writes at job commit,
see ``JobSession.summary``, docs/job-json.md), so it can be made at any time after the
job, on any machine, and without the work directory.  It is written to ``OUT/_report.html`` by
default: the leading underscore keeps it out of the inputs when ``OUT`` feeds another job.

* **Self-contained.**  One HTML file with inline CSS and inline SVG; no JavaScript, no
  fonts, images, scripts or styles from anywhere else, so it opens from ``file://`` on a
  machine with no network and can be mailed or attached to a ticket.  Tooltips are SVG
  ``<title>`` elements, which every browser shows on hover without script.
* **Sections**, in order: a header with the job and its headline numbers; the timeline (a
  Gantt chart: one lane per worker pid, one bar per task attempt, with phase bands and
  boundaries above a time axis in seconds from the run's start); phase durations and peak
  memory per worker side by side; counters grouped by group (``framework`` first, then the
  job's own groups); every attempt in a table; the configuration.
* **Runs.**  A job continued with ``--resume`` has attempts from several coordinator runs
  (tasks replayed from the journal keep their original run number and times).  Each run gets
  its own timeline with its own origin, because the gap between a killed run and its resume
  can be hours and would squash both into slivers on one axis.
* **Failed attempts** are recorded by the coordinator without a ``start`` (the worker never
  reported back).  Their start is estimated as the latest of: the start of the phase they
  ended in, and the end of the previous attempt on the same worker (a worker runs one
  attempt at a time); the bar is red and hatched and its tooltip says the start is an
  estimate.  An attempt that ran after an earlier attempt of the same task is a *retry*: it
  gets a dark outline and a dotted connector from the attempt before it.
* **Tolerant.**  Every field is optional and type-checked before use (a summary from the
  Spark runner may have no tasks, or tasks without ``worker_pid``/``peak_rss_bytes``);
  what is missing is shown as a dash or a sentence ("no task timeline recorded"), never an
  exception.  Every string taken from the JSON is escaped with :func:`html.escape` (job
  paths, counter names and error messages may hold ``<``, ``&`` and quotes).
* **Testable.**  :func:`render_report` is a pure function of the summary dict.  Each attempt's
  bar is a ``<rect>`` carrying ``data-attempt``, ``data-task`` and ``data-status``, and bar
  colours are exact (no opacity or gradients), so ``tests/test_report.py`` counts bars in the
  markup and, in headless Chromium, counts pixels of each bar colour in a screenshot.
* **Atomic.**  :func:`write_report` writes a temporary file next to the target and renames it,
  so a reader never sees half a page.

Errors are :class:`~mapreduce.errors.MapReduceError` subclasses (``InputError`` for an
unusable ``OUT``, ``OutputError`` for a target that cannot be written), so the CLI reports
them in its usual one line.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Optional

from mapreduce.errors import InputError, OutputError
from mapreduce.layout import JOB_SUMMARY_FILE
from mapreduce.progress import human_bytes

__all__ = ["write_report", "render_report", "add_report_parser", "run_report_command",
           "REPORT_FILE", "MAP_COLORS", "REDUCE_COLORS", "FAILED_COLOR", "LANE_COLORS"]

REPORT_FILE = "_report.html"

#: Bar fills, one per step (cycled): blues for map, greens for reduce.  Exact colours, no
#: opacity, so the browser test can find them pixel for pixel.
MAP_COLORS = ["#2563eb", "#0891b2", "#6366f1", "#1e40af"]
REDUCE_COLORS = ["#16a34a", "#ca8a04", "#0d9488", "#4d7c0f"]
#: Failed attempts: hatched stripes of these two colours.
FAILED_COLOR = "#dc2626"
FAILED_STRIPE = "#fecaca"
#: Attempts whose commit was discarded (their output was lost before a resume).
DISCARDED_COLOR = "#9ca3af"
UNKNOWN_COLOR = "#64748b"
#: The alternating lane backgrounds of the timeline's plot area.
LANE_COLORS = ["#f5f7fb", "#e9eef6"]

# Timeline geometry (SVG user units = CSS pixels; the page is laid out for 1280 px).
_SVG_W = 1200
_LABEL_W = 118
_PLOT_X0 = 126
_PLOT_X1 = _SVG_W - 14
_STRIP_Y = 2
_STRIP_H = 20
_LANES_Y = 28
_AXIS_H = 30


# --------------------------------------------------------------------------------------------
# small formatting helpers
# --------------------------------------------------------------------------------------------

def _e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> Optional[float]:
    """A finite number, or None (bools and strings are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> Optional[int]:
    n = _num(value)
    return int(n) if n is not None and n == int(n) else None


def _count(value: Any) -> str:
    n = _num(value)
    if n is None:
        return "—"
    return f"{int(n):,}" if n == int(n) else f"{n:,.3f}"


def _bytes(value: Any) -> str:
    n = _num(value)
    return "—" if n is None else human_bytes(n)


def _secs(value: Optional[float]) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.1f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, seconds = divmod(value, 60)
    if minutes < 60:
        return f"{int(minutes)} min {seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def _when(epoch: Optional[float]) -> str:
    if epoch is None:
        return "—"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(epoch))
    except (OverflowError, OSError, ValueError):
        return "—"


def _json_text(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + " …"


# --------------------------------------------------------------------------------------------
# the attempts, normalised
# --------------------------------------------------------------------------------------------

@dataclass
class _Attempt:
    row: int                     # position in the summary's task list
    kind: str
    step: Optional[int]
    index: Optional[int]
    tag: str                     # the attempt tag, "RUN-N"
    run: int
    status: str
    start: Optional[float]
    end: Optional[float]
    start_estimated: bool
    pid: Optional[int]
    raw: dict
    retry_of: Optional["_Attempt"] = None

    @property
    def task_id(self) -> str:
        step = "?" if self.step is None else self.step
        index = "?" if self.index is None else f"{self.index:05d}"
        return f"{step}-{self.kind}-{index}"

    @property
    def label(self) -> str:
        step = "" if self.step is None else f"step {self.step} "
        index = "?" if self.index is None else self.index
        return f"{step}{self.kind} task {index}"

    @property
    def duration(self) -> Optional[float]:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def _attempts(summary: dict, latest_run: int) -> list[_Attempt]:
    tasks = summary.get("tasks")
    found: list[_Attempt] = []
    for row, t in enumerate(tasks if isinstance(tasks, list) else []):
        if not isinstance(t, dict):
            continue
        kind = t.get("kind") if isinstance(t.get("kind"), str) else "task"
        run = _int(t.get("run"))
        found.append(_Attempt(
            row=row, kind=kind, step=_int(t.get("step")), index=_int(t.get("index")),
            tag=str(t.get("attempt", "")), run=run if run is not None else latest_run,
            status=str(t.get("status") or "unknown"), start=_num(t.get("start")),
            end=_num(t.get("end")), start_estimated=False, pid=_int(t.get("worker_pid")),
            raw=t))
    # Retries: attempts of one task (in one run) in the order they ended; each one after the
    # first is a retry of the one before it.
    by_task: dict[tuple, list[_Attempt]] = {}
    for a in found:
        by_task.setdefault((a.run, a.step, a.kind, a.index), []).append(a)
    for group in by_task.values():
        group.sort(key=lambda a: (a.end if a.end is not None else math.inf, a.row))
        for before, after in zip(group, group[1:]):
            after.retry_of = before
    return found


def _phases(summary: dict, latest_run: int) -> list[dict]:
    phases = summary.get("phases")
    found = []
    for p in phases if isinstance(phases, list) else []:
        if not isinstance(p, dict):
            continue
        run = _int(p.get("run"))
        found.append({"name": str(p.get("phase", "phase")), "start": _num(p.get("start")),
                      "end": _num(p.get("end")), "tasks": p.get("tasks"),
                      "run": run if run is not None else latest_run})
    return found


def _estimate_starts(attempts: list[_Attempt], phases: list[dict]) -> None:
    """Give attempts recorded without a start (failed ones) an estimated start."""
    for a in attempts:
        if a.start is not None or a.end is None:
            continue
        candidates = [p["start"] for p in phases
                      if p["run"] == a.run and p["start"] is not None and p["start"] <= a.end
                      and (p["end"] is None or a.end <= p["end"] + 1e-3)]
        if a.pid is not None:  # one attempt at a time per worker
            candidates += [b.end for b in attempts
                           if b is not a and b.pid == a.pid and b.run == a.run
                           and b.end is not None and b.end <= a.end]
        a.start = max(candidates) if candidates else a.end
        a.start_estimated = True


def _run_window(run: int, attempts: list[_Attempt], phases: list[dict], summary: dict,
                latest_run: int) -> tuple[Optional[float], Optional[float]]:
    times_start = [a.start for a in attempts if a.start is not None]
    times_start += [p["start"] for p in phases if p["start"] is not None]
    times_end = [a.end for a in attempts if a.end is not None]
    times_end += [p["end"] for p in phases if p["end"] is not None]
    if run == latest_run:  # the summary's start/end are those of the run that committed
        if _num(summary.get("start")) is not None:
            times_start.append(_num(summary.get("start")))
        if _num(summary.get("end")) is not None:
            times_end.append(_num(summary.get("end")))
    if not times_start and not times_end:
        return None, None
    t0 = min(times_start or times_end)
    t1 = max(times_end or times_start)
    return t0, max(t1, t0)


# --------------------------------------------------------------------------------------------
# the timeline (SVG)
# --------------------------------------------------------------------------------------------

def _bar_fill(a: _Attempt) -> str:
    if a.failed:
        return "url(#mr-hatch-failed)"
    if a.status == "discarded":
        return DISCARDED_COLOR
    step = a.step or 0
    if a.kind == "map":
        return MAP_COLORS[step % len(MAP_COLORS)]
    if a.kind == "reduce":
        return REDUCE_COLORS[step % len(REDUCE_COLORS)]
    return UNKNOWN_COLOR


def _nice_step(span: float, target_ticks: int = 10) -> float:
    raw = span / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def _tooltip(a: _Attempt, t0: float) -> str:
    t = a.raw
    retry = f" (retry after attempt {a.retry_of.tag})" if a.retry_of is not None else ""
    lines = [f"{a.label}, attempt {a.tag}{retry}", f"status: {a.status}"]
    if t.get("recovered"):
        lines[-1] += " (replayed from the journal of run %d)" % a.run
    lines.append(f"worker pid {a.pid}" if a.pid is not None else "worker pid not recorded")
    if a.start is not None and a.end is not None:
        start = f"start +{a.start - t0:.3f} s" + (" (estimated: not recorded for a failed "
                                                  "attempt)" if a.start_estimated else "")
        lines.append(f"{start}, end +{a.end - t0:.3f} s")
        if not a.start_estimated:
            lines.append(f"duration {_secs(a.duration)}")
    if "records_in" in t or "records_out" in t:
        lines.append(f"records in/out: {_count(t.get('records_in'))} / "
                     f"{_count(t.get('records_out'))}")
    if "bytes_in" in t or "bytes_out" in t:
        lines.append(f"bytes in/out: {_bytes(t.get('bytes_in'))} / {_bytes(t.get('bytes_out'))}")
    if "spills" in t:
        lines.append(f"spills: {_count(t.get('spills'))}")
    if "peak_rss_bytes" in t:
        lines.append(f"peak RSS: {_bytes(t.get('peak_rss_bytes'))}")
    if t.get("input"):
        lines.append(f"input: {t.get('input')}")
    if t.get("status_message"):
        lines.append(f"status message: {t.get('status_message')}")
    if t.get("error"):
        lines.append(f"error: {_json_text(t.get('error'), 600)}")
    return "\n".join(lines)


def _timeline_svg(run: int, attempts: list[_Attempt], phases: list[dict], t0: float,
                  t1: float) -> str:
    span = max(t1 - t0, 1e-3)
    plot_w = _PLOT_X1 - _PLOT_X0

    def x(t: float) -> float:
        return _PLOT_X0 + (t - t0) / span * plot_w

    # Lanes: one per worker pid, in the order the workers first started an attempt.
    lanes: dict[Optional[int], float] = {}
    for a in sorted(attempts, key=lambda a: (a.start, a.row)):
        lanes.setdefault(a.pid, a.start)  # type: ignore[arg-type]
    order = list(lanes)
    lane_h = max(14, min(28, 520 // max(1, len(order))))
    bar_h = lane_h - 6
    lanes_h = lane_h * len(order)
    height = _LANES_Y + lanes_h + _AXIS_H
    out = [f'<svg class="timeline" width="{_SVG_W}" height="{height}" '
           f'viewBox="0 0 {_SVG_W} {height}" role="img" '
           f'aria-label="timeline of run {run}: task attempts per worker">',
           '<defs><pattern id="mr-hatch-failed" patternUnits="userSpaceOnUse" width="8" '
           f'height="8" patternTransform="rotate(45)"><rect width="8" height="8" '
           f'fill="{FAILED_COLOR}"/><rect width="3" height="8" fill="{FAILED_STRIPE}"/>'
           '</pattern></defs>']
    # Phase bands in the strip above the lanes, labelled when there is room.
    for i, p in enumerate(ph for ph in phases if ph["start"] is not None):
        end = p["end"] if p["end"] is not None else t1
        px0, px1 = x(p["start"]), x(max(end, p["start"]))
        fill = "#dbeafe" if p["name"].endswith("map") else "#dcfce7" if \
            p["name"].endswith("reduce") else "#e5e7eb"
        out.append(f'<g class="phase"><title>{_e(p["name"])}: {_e(_secs(end - p["start"]))}'
                   f'</title><rect x="{px0:.2f}" y="{_STRIP_Y}" width="{max(px1 - px0, 1):.2f}" '
                   f'height="{_STRIP_H}" fill="{fill}" stroke="#ffffff" stroke-width="1"/>')
        if px1 - px0 > 7 * len(p["name"]):
            out.append(f'<text x="{(px0 + px1) / 2:.2f}" y="{_STRIP_Y + 14}" '
                       f'text-anchor="middle" class="phase-label">{_e(p["name"])}</text>')
        out.append("</g>")
    out.append(f'<text x="{_LABEL_W}" y="{_STRIP_Y + 14}" text-anchor="end" '
               'class="lane-label">phases</text>')
    # Lane backgrounds (the plot area) and labels.
    for i, pid in enumerate(order):
        y = _LANES_Y + i * lane_h
        out.append(f'<rect class="lane" x="{_PLOT_X0}" y="{y}" width="{plot_w}" '
                   f'height="{lane_h}" fill="{LANE_COLORS[i % 2]}"/>')
        name = f"worker {pid}" if pid is not None else "worker ?"
        n = sum(1 for a in attempts if a.pid == pid)
        out.append(f'<text x="{_LABEL_W}" y="{y + lane_h / 2 + 4:.1f}" text-anchor="end" '
                   f'class="lane-label"><title>{_e(name)}: {n} attempt'
                   f'{"s" if n != 1 else ""}</title>{_e(name)}</text>')
    # Time axis: grid lines through the lanes, tick labels below.
    step = _nice_step(span)
    decimals = max(0, -math.floor(math.log10(step)))
    axis_y = _LANES_Y + lanes_h
    out.append(f'<line x1="{_PLOT_X0}" y1="{axis_y}" x2="{_PLOT_X1}" y2="{axis_y}" '
               'stroke="#475569" stroke-width="1"/>')
    k = 0
    while k * step <= span * (1 + 1e-9):
        tx = x(t0 + k * step)
        out.append(f'<line x1="{tx:.2f}" y1="{_LANES_Y}" x2="{tx:.2f}" y2="{axis_y + 4}" '
                   'stroke="#cbd5e1" stroke-width="1"/>')
        out.append(f'<text x="{tx:.2f}" y="{axis_y + 16}" text-anchor="middle" '
                   f'class="tick">{k * step:.{decimals}f}</text>')
        k += 1
    out.append(f'<text x="{_PLOT_X1}" y="{axis_y + 28}" text-anchor="end" class="tick">'
               f'seconds since the start of run {run}</text>')
    # Phase boundaries across the lanes.
    bounds = sorted({round(t, 6) for p in phases for t in (p["start"], p["end"])
                     if t is not None})
    for t in bounds:
        bx = x(t)
        out.append(f'<line class="phase-boundary" x1="{bx:.2f}" y1="{_STRIP_Y}" '
                   f'x2="{bx:.2f}" y2="{axis_y}" stroke="#334155" stroke-width="1" '
                   'stroke-dasharray="4 3"/>')
    # Bars, one per attempt; then connectors from an attempt to its retry.
    centers: dict[int, tuple[float, float, float]] = {}
    for a in sorted(attempts, key=lambda a: a.row):
        lane = order.index(a.pid)
        y = _LANES_Y + lane * lane_h + (lane_h - bar_h) / 2
        bx0 = x(a.start)  # type: ignore[arg-type]
        bx1 = x(a.end) if a.end is not None else bx0
        width = max(bx1 - bx0, 8.0 if a.failed else 2.0)
        centers[a.row] = (bx0, bx0 + width, y + bar_h / 2)
        classes = ["attempt", a.kind, a.status] + (["retry"] if a.retry_of else []) + \
            (["estimated"] if a.start_estimated else [])
        stroke = ' stroke="#0f172a" stroke-width="1.5"' if a.retry_of else \
            ' stroke="#7f1d1d" stroke-width="1"' if a.failed else ""
        out.append(f'<g><title>{_e(_tooltip(a, t0))}</title>'
                   f'<rect class="{_e(" ".join(classes))}" data-attempt="{_e(a.tag)}" '
                   f'data-task="{_e(a.task_id)}" data-status="{_e(a.status)}" '
                   f'x="{bx0:.2f}" y="{y:.2f}" width="{width:.2f}" height="{bar_h}" '
                   f'fill="{_bar_fill(a)}"{stroke}/>')
        short = f"{'m' if a.kind == 'map' else 'r' if a.kind == 'reduce' else '?'}" \
                f"{'' if a.index is None else a.index}"
        if a.failed:
            short += " failed"
        elif a.retry_of is not None:
            short += " retry"
        if width >= 7 * len(short) + 6 and bar_h >= 12:
            out.append(f'<text x="{bx0 + 4:.2f}" y="{y + bar_h / 2 + 4:.2f}" '
                       f'class="bar-label{" on-failed" if a.failed else ""}">'
                       f'{_e(short)}</text>')
        out.append("</g>")
    for a in attempts:
        if a.retry_of is not None and a.retry_of.row in centers and a.row in centers:
            _, fx, fy = centers[a.retry_of.row]
            rx, _, ry = centers[a.row]
            out.append(f'<path class="retry-link" d="M{fx:.2f},{fy:.2f} C{fx + 12:.2f},'
                       f'{fy:.2f} {rx - 12:.2f},{ry:.2f} {rx:.2f},{ry:.2f}" fill="none" '
                       'stroke="#0f172a" stroke-width="1.2" stroke-dasharray="2 2"/>')
    out.append("</svg>")
    return "".join(out)


def _legend(attempts: list[_Attempt]) -> str:
    items = []
    steps = sorted({(a.kind, a.step or 0) for a in attempts if a.kind in ("map", "reduce")},
                   key=lambda ks: (ks[1], ks[0] != "map"))
    for kind, step in steps:
        colors = MAP_COLORS if kind == "map" else REDUCE_COLORS
        items.append((f'<span class="swatch" style="background:{colors[step % len(colors)]}">'
                      '</span>', f"step {step} {kind}"))
    if any(a.failed for a in attempts):
        items.append(('<span class="swatch swatch-failed"></span>',
                      "failed attempt (hatched; start estimated)"))
    if any(a.retry_of for a in attempts):
        items.append(('<span class="swatch swatch-retry"></span>',
                      "retry (outlined; dotted line from the attempt before)"))
    if any(a.status == "discarded" for a in attempts):
        items.append((f'<span class="swatch" style="background:{DISCARDED_COLOR}"></span>',
                      "discarded (output lost before a resume)"))
    items.append(('<span class="swatch swatch-boundary"></span>', "phase boundary"))
    return '<div class="legend">' + "".join(
        f'<span class="legend-item">{sw}{_e(text)}</span>' for sw, text in items) + "</div>"


def _timeline_section(summary: dict, attempts: list[_Attempt], phases: list[dict],
                      latest_run: int) -> str:
    placed = [a for a in attempts if a.start is not None or a.end is not None]
    parts = ['<section id="timeline"><h2>Timeline</h2>']
    if not placed:
        parts.append('<p class="empty">No task timeline recorded'
                     + (" (this summary has no per-attempt times)" if attempts else "")
                     + ".</p></section>")
        return "".join(parts)
    parts.append('<p class="hint">One lane per worker process, one bar per task attempt, '
                 'from its start to its end. Hover over a bar for its task, attempt, status, '
                 'duration, records and error.</p>')
    parts.append(_legend(placed))
    runs = sorted({a.run for a in placed})
    for run in runs:
        run_attempts = [a for a in placed if a.run == run]
        run_phases = [p for p in phases if p["run"] == run]
        t0, t1 = _run_window(run, run_attempts, run_phases, summary, latest_run)
        if t0 is None or t1 is None:
            continue
        for a in run_attempts:  # an attempt with only a start: show it as a thin bar
            if a.start is None:
                a.start = a.end
        if len(runs) > 1:
            what = "the run that finished the job" if run == latest_run else \
                "interrupted; its committed tasks were replayed by a later run"
            parts.append(f'<h3>Run {run} ({_e(what)})</h3>')
        parts.append(f'<div class="chart">{_timeline_svg(run, run_attempts, run_phases, t0, t1)}'
                     '</div>')
    missing = len(attempts) - len(placed)
    if missing:
        parts.append(f'<p class="hint">{missing} attempt{"s" if missing != 1 else ""} without '
                     'recorded times not shown (see the task table).</p>')
    parts.append("</section>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# the other sections (HTML tables)
# --------------------------------------------------------------------------------------------

def _table(headers: list[tuple[str, str]], rows: list[str], cls: str = "") -> str:
    head = "".join(f'<th class="{c}">{_e(h)}</th>' for h, c in headers)
    return (f'<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _phases_section(phases: list[dict], windows: dict[int, float]) -> str:
    parts = ['<section id="phases"><h2>Phases</h2>']
    timed = [p for p in phases if p["start"] is not None and p["end"] is not None]
    if not phases:
        parts.append('<p class="empty">No phases recorded.</p></section>')
        return "".join(parts)
    longest = max((p["end"] - p["start"] for p in timed), default=0.0) or 1.0
    rows = []
    for p in phases:
        duration = p["end"] - p["start"] if p in timed else None
        origin = windows.get(p["run"])
        offset = f"+{p['start'] - origin:.3f} s" if origin is not None and \
            p["start"] is not None else "—"
        bar = "" if duration is None else \
            f'<span class="hbar phase-bar" style="width:{max(duration / longest * 100, 0.5):.1f}%"></span>'
        rows.append(f'<tr><td>{_e(p["name"])}</td><td class="num">{_e(p["run"])}</td>'
                    f'<td class="num">{_count(p["tasks"])}</td><td class="num">{offset}</td>'
                    f'<td class="num">{_secs(duration)}</td><td class="barcell">{bar}</td></tr>')
    parts.append(_table([("phase", ""), ("run", "num"), ("tasks", "num"), ("start", "num"),
                         ("duration", "num"), ("", "barcell")], rows, "phases"))
    parts.append("</section>")
    return "".join(parts)


def _counters_section(summary: dict) -> str:
    counters = summary.get("counters")
    parts = ['<section id="counters"><h2>Counters</h2>']
    if not isinstance(counters, dict) or not counters:
        parts.append('<p class="empty">No counters recorded.</p></section>')
        return "".join(parts)
    groups = sorted(counters, key=lambda g: (g != "framework", str(g)))
    parts.append('<div class="counter-groups">')
    for group in groups:
        values = counters[group]
        title = "framework" if group == "framework" else f"user group: {group}"
        rows = []
        if isinstance(values, dict):
            for name in sorted(values, key=str):
                value = values[name]
                human = _bytes(value) if "BYTES" in str(name).upper() and \
                    _num(value) is not None else ""
                rows.append(f'<tr><td class="counter">{_e(name)}</td>'
                            f'<td class="num">{_count(value) if _num(value) is not None else _e(value)}</td>'
                            f'<td class="num muted">{_e(human)}</td></tr>')
        else:
            rows.append(f'<tr><td colspan="3">{_e(_json_text(values))}</td></tr>')
        parts.append(f'<div class="counter-group"><h3>{_e(title)}</h3>'
                     + _table([("counter", ""), ("value", "num"), ("", "num")], rows,
                              "counters") + "</div>")
    parts.append("</div></section>")
    return "".join(parts)


def _workers_section(attempts: list[_Attempt]) -> str:
    parts = ['<section id="memory"><h2>Peak memory per worker</h2>']
    workers: dict[Optional[int], dict[str, Any]] = {}
    for a in attempts:
        if a.pid is None and _num(a.raw.get("peak_rss_bytes")) is None:
            continue
        w = workers.setdefault(a.pid, {"attempts": 0, "failed": 0, "busy": 0.0, "peak": None})
        w["attempts"] += 1
        w["failed"] += a.failed
        if a.duration is not None and not a.start_estimated:
            w["busy"] += a.duration
        rss = _num(a.raw.get("peak_rss_bytes"))
        if rss is not None and (w["peak"] is None or rss > w["peak"]):
            w["peak"] = rss
    if not workers:
        parts.append('<p class="empty">No per-worker figures recorded.</p></section>')
        return "".join(parts)
    top = max((w["peak"] for w in workers.values() if w["peak"] is not None), default=0) or 1
    rows = []
    for pid, w in sorted(workers.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        bar = "" if w["peak"] is None else \
            f'<span class="hbar mem-bar" style="width:{max(w["peak"] / top * 100, 0.5):.1f}%"></span>'
        rows.append(f'<tr><td>{"worker " + _e(pid) if pid is not None else "worker ?"}</td>'
                    f'<td class="num">{w["attempts"]}</td><td class="num">{w["failed"]}</td>'
                    f'<td class="num">{_secs(w["busy"])}</td>'
                    f'<td class="num">{_bytes(w["peak"])}</td><td class="barcell">{bar}</td></tr>')
    parts.append(_table([("worker pid", ""), ("attempts", "num"), ("failed", "num"),
                         ("busy", "num"), ("peak RSS", "num"), ("", "barcell")], rows,
                        "workers"))
    parts.append('<p class="hint">Peak RSS is the largest high-water mark any attempt on the '
                 'worker reported (a forked worker starts with the coordinator\'s pages).</p>')
    parts.append("</section>")
    return "".join(parts)


def _tasks_section(attempts: list[_Attempt], windows: dict[int, float]) -> str:
    parts = ['<section id="tasks"><h2>Task attempts</h2>']
    if not attempts:
        parts.append('<p class="empty">No task attempts recorded.</p></section>')
        return "".join(parts)
    several_runs = len({a.run for a in attempts}) > 1
    kind_order = {"map": 0, "reduce": 1}
    rows = []
    for a in sorted(attempts, key=lambda a: (a.run, a.step if a.step is not None else -1,
                                             kind_order.get(a.kind, 2), a.index or 0,
                                             a.end if a.end is not None else math.inf)):
        t = a.raw
        origin = windows.get(a.run)
        start = "—" if a.start is None or origin is None else \
            f"{'~' if a.start_estimated else ''}+{a.start - origin:.3f} s"
        status = a.status + (" (replayed)" if t.get("recovered") else "") + \
            (" (retry)" if a.retry_of is not None else "")
        cls = "failed" if a.failed else "discarded" if a.status == "discarded" else ""
        cells = ([f'<td class="num">{_e(a.run)}</td>'] if several_runs else []) + [
            f'<td class="num">{_e(a.step) if a.step is not None else "—"}</td>',
            f"<td>{_e(a.kind)}</td>",
            f'<td class="num">{_e(a.index) if a.index is not None else "—"}</td>',
            f"<td>{_e(a.tag) or '—'}</td>",
            f'<td class="status">{_e(status)}</td>',
            f'<td class="num">{_e(a.pid) if a.pid is not None else "—"}</td>',
            f'<td class="num">{start}</td>',
            f'<td class="num">{_secs(None if a.start_estimated else a.duration)}</td>',
            f'<td class="num">{_count(t.get("records_in"))}</td>',
            f'<td class="num">{_count(t.get("records_out"))}</td>',
            f'<td class="num">{_bytes(t.get("bytes_in"))}</td>',
            f'<td class="num">{_bytes(t.get("bytes_out"))}</td>',
            f'<td class="num">{_count(t.get("spills"))}</td>',
            f'<td class="num">{_bytes(t.get("peak_rss_bytes"))}</td>',
            # Input and log share a column so the table fits a 1280 px window.
            f'<td class="path">{_e(t.get("input")) or "—"}'
            f'<div class="log">log: {_e(t.get("log")) or "—"}</div></td>']
        rows.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
        if t.get("error"):
            rows.append(f'<tr class="error-row"><td colspan="{len(cells)}"><span class="err">'
                        f'error:</span> {_e(t.get("error"))}</td></tr>')
    headers = ([("run", "num")] if several_runs else []) + [
        ("step", "num"), ("kind", ""), ("index", "num"), ("attempt", ""), ("status", ""),
        ("worker", "num"), ("start", "num"), ("duration", "num"), ("records in", "num"),
        ("records out", "num"), ("bytes in", "num"), ("bytes out", "num"), ("spills", "num"),
        ("peak RSS", "num"), ("input / log", "")]
    parts.append(_table(headers, rows, "tasks"))
    parts.append("</section>")
    return "".join(parts)


_KNOWN_KEYS = {"job", "mode", "runner", "workers", "reducers", "steps", "inputs", "output_dir",
               "work_dir", "config", "runs", "start", "end", "counters", "skipped_records",
               "phases", "tasks"}


def _runner(summary: dict) -> str:
    config = summary.get("config") if isinstance(summary.get("config"), dict) else {}
    return str(summary.get("runner") or config.get("runner") or "local")


def _config_section(summary: dict) -> str:
    job = summary.get("job") if isinstance(summary.get("job"), dict) else {}
    rows: list[tuple[str, str]] = []   # (label, already-escaped HTML)

    def add(label: str, value: Any) -> None:
        if value is None or value == "" or value == []:
            return
        rows.append((label, _e(value if isinstance(value, str) else _json_text(value))))

    add("job file", job.get("path"))
    add("job class", job.get("class"))
    add("fingerprint", job.get("fingerprint"))
    add("runner", _runner(summary))
    add("mode", summary.get("mode"))
    add("workers", summary.get("workers"))
    add("reducers", summary.get("reducers"))
    add("runs", summary.get("runs"))
    add("output directory", summary.get("output_dir"))
    add("work directory", summary.get("work_dir"))
    inputs = summary.get("inputs")
    if isinstance(inputs, list) and inputs:
        shown = "".join(f"<li>{_e(p)}</li>" for p in inputs[:50])
        more = f"<li>… and {len(inputs) - 50} more</li>" if len(inputs) > 50 else ""
        rows.append((f"inputs ({len(inputs)})", f'<ul class="plain">{shown}{more}</ul>'))
    steps = summary.get("steps")
    if isinstance(steps, list) and steps:
        described = []
        for i, st in enumerate(steps):
            hooks = [k for k, v in st.items() if v is True] if isinstance(st, dict) else []
            described.append(f"<li>step {i}: {_e(', '.join(hooks) or _json_text(st))}</li>")
        rows.append(("steps", f'<ul class="plain">{"".join(described)}</ul>'))
    config = summary.get("config")
    if isinstance(config, dict):
        for key in sorted(config, key=str):
            value = config[key]
            rows.append((f"--{str(key).replace('_', '-')}",
                         _e(value if isinstance(value, str) else _json_text(value))))
    for key in sorted(k for k in summary if k not in _KNOWN_KEYS):
        add(str(key), summary[key])
    body = "".join(f'<tr><th scope="row">{_e(label)}</th><td class="path">{value}</td></tr>'
                   for label, value in rows)
    parts = ['<section id="config"><h2>Configuration</h2>']
    parts.append(f'<div class="table-wrap"><table class="config">{body}</table></div>' if body
                 else '<p class="empty">No configuration recorded.</p>')
    skipped = summary.get("skipped_records")
    if isinstance(skipped, list) and skipped:
        items = "".join(f"<li>{_e(s)}</li>" for s in skipped[:100])
        parts.append(f"<h3>Skipped records ({len(skipped)})</h3><ul>{items}</ul>")
    parts.append("</section>")
    return "".join(parts)


def _header(summary: dict, attempts: list[_Attempt], phases: list[dict]) -> str:
    job = summary.get("job") if isinstance(summary.get("job"), dict) else {}
    name = job.get("class") or (os.path.basename(str(job["path"])) if job.get("path")
                                else "job")
    start, end = _num(summary.get("start")), _num(summary.get("end"))
    wall = end - start if start is not None and end is not None else None
    counters = summary.get("counters") if isinstance(summary.get("counters"), dict) else {}
    fw = counters.get("framework") if isinstance(counters.get("framework"), dict) else {}
    tasks = {(a.run, a.step, a.kind, a.index) for a in attempts}
    failed = sum(a.failed for a in attempts)
    workers = {a.pid for a in attempts if a.pid is not None}
    peaks = [_num(a.raw.get("peak_rss_bytes")) for a in attempts]
    peak = max((p for p in peaks if p is not None), default=None)
    cards = [("wall time (last run)", _secs(wall)),
             ("tasks / attempts", f"{len(tasks)} / {len(attempts)}" if attempts else "—"),
             ("failed attempts", str(failed) if attempts else "—"),
             ("worker processes", str(len(workers)) if workers else
              _count(summary.get("workers"))),
             ("largest peak RSS", _bytes(peak)),
             ("input read", _bytes(fw.get("BYTES_READ"))),
             ("output records", _count(fw.get("OUTPUT_RECORDS")))]
    card_html = "".join(f'<div class="card"><div class="card-value">{_e(v)}</div>'
                        f'<div class="card-label">{_e(k)}</div></div>' for k, v in cards)
    where = " · ".join(_e(x) for x in (
        f"runner {_runner(summary)}", f"mode {summary.get('mode', '—')}",
        f"finished {_when(end)}", f"{summary.get('runs', 1)} run(s)") if x)
    return (f'<header><h1>Job report: {_e(name)}</h1>'
            f'<p class="subtitle">{_e(job.get("path") or "")}</p>'
            f'<p class="meta">{where}</p><div class="cards">{card_html}</div></header>')


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#ffffff;color:#0f172a;font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue","DejaVu Sans",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:18px 20px 40px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:17px;margin:26px 0 8px;padding-bottom:4px;border-bottom:1px solid #e2e8f0}
h3{font-size:14px;margin:14px 0 6px;color:#334155}
.subtitle{margin:0;color:#475569;font-family:ui-monospace,"DejaVu Sans Mono",monospace;
font-size:12.5px;word-break:break-all}
.meta{margin:4px 0 10px;color:#475569}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #e2e8f0;border-radius:6px;padding:8px 12px;min-width:140px;
background:#f8fafc}
.card-value{font-size:18px;font-weight:600;font-variant-numeric:tabular-nums}
.card-label{font-size:12px;color:#64748b}
.hint{color:#64748b;font-size:12.5px;margin:4px 0}
.empty{color:#64748b;font-style:italic}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:6px 0 8px;font-size:12.5px;color:#334155}
.legend-item{display:inline-flex;align-items:center;gap:5px}
.swatch{display:inline-block;width:14px;height:10px;border-radius:2px}
.swatch-failed{background:repeating-linear-gradient(45deg,#dc2626 0 4px,#fecaca 4px 6px);
border:1px solid #7f1d1d}
.swatch-retry{background:#ffffff;border:1.5px solid #0f172a}
.swatch-boundary{width:0;height:12px;border-left:1px dashed #334155;border-radius:0}
.chart{overflow-x:auto}
svg.timeline{display:block;font-size:11px}
svg.timeline .lane-label{fill:#334155;font-size:11.5px}
svg.timeline .phase-label{fill:#1e293b;font-size:11px}
svg.timeline .tick{fill:#475569;font-size:10.5px}
svg.timeline .bar-label{fill:#ffffff;font-size:10px;font-weight:600;pointer-events:none}
svg.timeline .bar-label.on-failed{fill:#450a0a}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:12.5px}
th,td{padding:3px 8px;border-bottom:1px solid #eef2f7;text-align:left;vertical-align:top}
thead th{background:#f1f5f9;color:#334155;font-weight:600;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.path{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:11.5px;
word-break:break-all}
table.tasks td.path{min-width:200px;max-width:300px}
table.tasks .log{color:#64748b;font-size:11px}
table.tasks th,table.tasks td{padding:3px 6px}
.row{display:flex;flex-wrap:wrap;gap:0 36px;align-items:flex-start}
.row>section{flex:1 1 480px;min-width:0}
table.config th{width:180px;background:#f8fafc;font-weight:600;color:#334155}
td.barcell,th.barcell{width:200px}
.hbar{display:inline-block;height:10px;border-radius:2px;vertical-align:middle}
.phase-bar{background:#94a3b8}
.mem-bar{background:#a78bfa}
.muted{color:#64748b}
tr.failed td{background:#fef2f2}
tr.failed td.status{color:#b91c1c;font-weight:600}
tr.discarded td{color:#6b7280}
tr.error-row td{background:#fef2f2;color:#7f1d1d;font-family:ui-monospace,"DejaVu Sans Mono",
monospace;font-size:11.5px;white-space:pre-wrap;word-break:break-word}
.err{font-weight:700}
.counter-groups{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
td.counter{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
ul.plain{margin:0;padding-left:16px}
footer{margin-top:30px;color:#94a3b8;font-size:12px}
"""


def render_report(summary: dict) -> str:
    """The report page for a job summary (the parsed ``_job.json``), as one HTML string."""
    if not isinstance(summary, dict):
        summary = {}
    latest_run = _int(summary.get("runs")) or 1
    attempts = _attempts(summary, latest_run)
    phases = _phases(summary, latest_run)
    _estimate_starts(attempts, phases)
    windows: dict[int, float] = {}
    for run in sorted({a.run for a in attempts} | {p["run"] for p in phases} | {latest_run}):
        t0, _ = _run_window(run, [a for a in attempts if a.run == run],
                            [p for p in phases if p["run"] == run], summary, latest_run)
        if t0 is not None:
            windows[run] = t0
    job = summary.get("job") if isinstance(summary.get("job"), dict) else {}
    title = f"Job report: {job.get('class') or 'job'}"
    body = "".join([
        _header(summary, attempts, phases),
        _timeline_section(summary, attempts, phases, latest_run),
        '<div class="row">', _phases_section(phases, windows), _workers_section(attempts),
        "</div>",
        _counters_section(summary),
        _tasks_section(attempts, windows),
        _config_section(summary),
        '<footer>Written by <code>python -m mapreduce report</code> from _job.json.</footer>',
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


# --------------------------------------------------------------------------------------------
# reading _job.json, writing the page
# --------------------------------------------------------------------------------------------

def _load_summary(output_dir: str) -> dict:
    if not os.path.exists(output_dir):
        raise InputError(f"output directory does not exist: {output_dir}")
    if not os.path.isdir(output_dir):
        raise InputError(f"not a directory: {output_dir} (give a job's output directory)")
    path = os.path.join(output_dir, JOB_SUMMARY_FILE)
    if not os.path.isfile(path):
        raise InputError(f"{output_dir} is not a finished job's output directory: it has no "
                         f"{JOB_SUMMARY_FILE} (a job writes it only when it succeeds)")
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: not UTF-8 at byte {exc.start}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(summary, dict):
        raise InputError(f"{path} is not a job summary: expected a JSON object, "
                         f"found {type(summary).__name__}")
    return summary


def write_report(output_dir: str, html_path: Optional[str] = None) -> str:
    """Write the report page of the job whose output is ``output_dir``; return its path.

    ``html_path`` defaults to ``output_dir/_report.html``.  Raises ``InputError`` when
    ``output_dir`` holds no readable ``_job.json`` and ``OutputError`` when the page cannot
    be written.
    """
    page = render_report(_load_summary(output_dir)).encode("utf-8")
    target = os.path.abspath(html_path or os.path.join(output_dir, REPORT_FILE))
    if os.path.isdir(target):
        raise OutputError(f"cannot write the report to {target}: it is a directory")
    # Temp file next to the target, then rename: readers see the old page or the new one.
    tmp = os.path.join(os.path.dirname(target),
                       f".{os.path.basename(target)}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        with os.fdopen(fd, "wb") as f:
            f.write(page)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise OutputError(f"cannot write the report to {target}: "
                          f"{exc.strerror or exc}") from None
    return target


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on the CLI's subparsers (called by :func:`mapreduce.cli.build_parser`)."""
    p = subparsers.add_parser(
        "report", help="write an HTML report page of a finished job", allow_abbrev=False,
        description="Write a self-contained HTML page (no network needed to view it) about "
                    "the finished job whose output directory is OUT, from OUT/_job.json: a "
                    "timeline of every task attempt per worker, phase durations, counters, "
                    "per-task figures, peak memory per worker and the configuration.  Prints "
                    "the path of the page.")
    p.add_argument("output_dir", metavar="OUT", help="the job's output directory")
    p.add_argument("-o", "--output", dest="html_path", metavar="FILE",
                   help=f"where to write the page (default OUT/{REPORT_FILE})")
    return p


def run_report_command(args: argparse.Namespace) -> int:
    """The ``report`` subcommand: write the page and print its path."""
    print(write_report(args.output_dir, args.html_path))
    return 0
