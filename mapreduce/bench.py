"""``python -m mapreduce bench JOB INPUT...``: time a job in each shuffle mode, side by side.

Design
------
The question this command answers is "what does the disk shuffle cost me, for this job on
this input?", so it runs the *same* job on the *same* input with the *same* options once per
``--modes`` entry (``disk,memory`` by default), ``--repeat`` times each, and prints one table
with a column per mode and a ratio column (first mode / second mode).

* **In process.**  Every run calls :func:`mapreduce.runners.run_job` in this process, which
  is then the job's coordinator; its workers are forked children that the worker pool joins
  before ``run_job`` returns.  That makes the measurements exact without sampling:

  - *wall time*: ``time.perf_counter()`` around ``run_job`` (planning, the job's ``prepare``
    hook, worker start-up, every phase, the job commit).  Interpreter start-up and importing
    the job file are not included (they happen once, before the first run).
  - *CPU time*: the deltas of ``getrusage(RUSAGE_SELF)`` (the coordinator) plus
    ``getrusage(RUSAGE_CHILDREN)`` (the workers, which are counted there once joined), user +
    system.
  - *peak RSS*: per worker, the largest ``peak_rss_bytes`` any task of the run reported in
    ``_job.json`` (the worker's own high-water mark, read at the end of each task); for the
    coordinator, this process's high-water mark (``VmHWM``).  Before each run the high-water
    mark is reset (``/proc/self/clear_refs``, Linux), so every run reports its own peak and
    the workers, forked from a freshly reset coordinator, do not inherit an earlier run's
    peak.  Where the reset is not possible the coordinator figure is the process lifetime's
    peak and the table says so.
  - *phases*: from the summary's ``phases``.  Reduce tasks fetch and merge map outputs *as
    they reduce* (there is no separate copy phase and no barrier between merging and
    reducing), so there is no shuffle phase to time on its own: the table shows the map
    phase and the reduce phase (which includes the reduce-side merge), summed over the steps
    of a multi-step job, and the rest of the wall time as "setup + commit".
  - *counters*: ``SPILL_FILES``, ``MERGE_PASSES``, ``SPILLED_BYTES`` and ``SHUFFLE_BYTES``
    from the summary; they are the same in every repetition.

* **Median of repeats, interleaved.**  Runs alternate between modes (``disk memory``, then
  ``memory disk``, ...) so a warming page cache or a noisy neighbour does not favour one mode.
  Times are the median over the repetitions; peak RSS is the largest over them.

* **Outputs are checked.**  Each run writes into its own directory under a temporary
  directory (deleted at the end); the part files' names and bytes are hashed and every run
  must produce the same bytes: the engine promises output that does not depend on the mode.
  The table says whether they are identical; if they are not, the command exits 1.

* ``--json FILE`` writes every run's raw measurements, the medians and the ratios.

Errors are :class:`~mapreduce.errors.MapReduceError` subclasses, so the CLI reports them in
its usual one line (``mapreduce: error: ...``, exit 2 for a usage error).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Optional

from mapreduce.errors import MapReduceError, UsageError
from mapreduce.inputs import expand_inputs, file_size
from mapreduce.loader import load_job_class
from mapreduce.options import JobConfig, Spelling, add_run_options, check_options
from mapreduce.progress import human_bytes as format_bytes  # the one byte formatter
from mapreduce.runners import run_job
from mapreduce.shuffles import SHUFFLES

#: The run options bench takes (from the option table: same parsing, checks and help).
BENCH_OPTIONS = ("workers", "reducers", "sort_buffer", "merge_factor", "split_size")

__all__ = ["add_bench_parser", "run_bench_command", "measure_run", "format_bytes",
           "render_table", "output_digest"]

DEFAULT_MODES = "disk,memory"

#: The counters the table shows, in order, with their labels.
COUNTER_ROWS = [
    ("SPILL_FILES", "spill files (SPILL_FILES)", "count"),
    ("MERGE_PASSES", "merge passes (MERGE_PASSES)", "count"),
    ("SPILLED_BYTES", "bytes spilled (SPILLED_BYTES)", "bytes"),
    ("SHUFFLE_BYTES", "shuffle bytes (SHUFFLE_BYTES)", "bytes"),
]


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` on the CLI's subparsers (called by :func:`mapreduce.cli.build_parser`)."""
    p = subparsers.add_parser(
        "bench", help="time a job in each shuffle mode and compare", allow_abbrev=False,
        description="Run JOB over INPUT once per mode (--repeat times each, interleaved), "
                    "check that every run's output is byte-identical, and print wall time, "
                    "CPU time, peak RSS, phase times and spill/merge counters per mode, with "
                    "their ratios.  Outputs go to a temporary directory that is deleted.")
    p.add_argument("job", metavar="JOB", help="path of the job file")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="input files, directories or glob patterns (as for `run`)")
    p.add_argument("--job", dest="job_name", metavar="NAME",
                   help="which Job subclass to run when the file defines several")
    p.add_argument("--modes", default=DEFAULT_MODES, metavar="MODES",
                   help=f"comma-separated shuffle modes to compare (default {DEFAULT_MODES})")
    p.add_argument("--repeat", default="3", metavar="N",
                   help="runs per mode; times are the median (default 3)")
    add_run_options(p, BENCH_OPTIONS)
    p.add_argument("--json", dest="json_file", metavar="FILE",
                   help="also write every run's measurements as JSON to FILE")
    return p


def _int_option(text: Optional[str], option: str, default: int, minimum: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{option}: invalid integer {text!r}") from None
    if value < minimum:
        raise UsageError(f"{option} must be at least {minimum} (got {value})")
    return value


def parse_modes(text: str) -> list[str]:
    """``"disk,memory"`` -> ``["disk", "memory"]``; unknown or repeated modes are errors."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes:
        raise UsageError(f"--modes: no mode given (choose from {', '.join(SHUFFLES)})")
    for mode in modes:
        if mode not in SHUFFLES:
            raise UsageError(f"--modes: unknown mode {mode!r} (choose from "
                             f"{', '.join(SHUFFLES)})")
    if len(set(modes)) != len(modes):
        raise UsageError(f"--modes: a mode is listed twice ({text!r})")
    return modes


# --------------------------------------------------------------------------------------------
# measuring one run
# --------------------------------------------------------------------------------------------

def _reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0); False when impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_self() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def output_digest(output_dir: str) -> dict[str, Any]:
    """sha256 over the part files' names and bytes (in name order), their count and size."""
    digest = hashlib.sha256()
    parts = sorted(f for f in os.listdir(output_dir) if f.startswith("part-"))
    size = 0
    for name in parts:
        digest.update(name.encode() + b"\0")
        with open(os.path.join(output_dir, name), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        digest.update(b"\0")
    return {"sha256": digest.hexdigest(), "parts": len(parts), "bytes": size}


def _phase_seconds(phases: list[dict[str, Any]], kind: str) -> float:
    return sum(p["end"] - p["start"] for p in phases
               if str(p.get("phase", "")).endswith(" " + kind))


def measure_run(job_class: type, job_ref: Any, config: JobConfig) -> dict[str, Any]:
    """Run one job in this process and return what it cost (see the module docstring)."""
    reset = _reset_peak_rss()
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = run_job(job_class, job_ref, config)
    wall = time.perf_counter() - t0
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = result.summary
    tasks = [t for t in summary.get("tasks", []) if t.get("status") == "committed"]
    counters = summary.get("counters", {}).get("framework", {})
    phases = summary.get("phases", [])
    map_s = _phase_seconds(phases, "map")
    reduce_s = _phase_seconds(phases, "reduce")
    return {
        "mode": config.mode,
        "wall_s": wall,
        "cpu_s": (_cpu(self1) - _cpu(self0)) + (_cpu(child1) - _cpu(child0)),
        "coordinator_cpu_s": _cpu(self1) - _cpu(self0),
        "workers_cpu_s": _cpu(child1) - _cpu(child0),
        "map_s": map_s,
        "reduce_s": reduce_s,
        "other_s": max(0.0, wall - map_s - reduce_s),
        "worker_peak_rss": max((t.get("peak_rss_bytes") or 0 for t in tasks), default=0),
        "coordinator_peak_rss": _peak_rss_self(),
        "peak_rss_reset": reset,
        "map_tasks": sum(1 for t in tasks if t.get("kind") == "map"),
        "reduce_tasks": sum(1 for t in tasks if t.get("kind") == "reduce"),
        "counters": {name: counters.get(name, 0) for name, _, _ in COUNTER_ROWS},
        "phases": phases,
        "output": output_digest(result.output_dir),
    }


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------

def render_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = [str(cells[0]).ljust(widths[0])]
        out += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summarize(modes: list[str], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per mode: medians of the times, max of the peaks, the (constant) counters."""
    out: dict[str, Any] = {}
    for mode in modes:
        rs = runs[mode]
        out[mode] = {
            **{k: _median(rs, k) for k in ("wall_s", "cpu_s", "coordinator_cpu_s",
                                          "workers_cpu_s", "map_s", "reduce_s", "other_s")},
            "wall_min_s": min(r["wall_s"] for r in rs),
            "wall_max_s": max(r["wall_s"] for r in rs),
            "worker_peak_rss": max(r["worker_peak_rss"] for r in rs),
            "coordinator_peak_rss": max(r["coordinator_peak_rss"] for r in rs),
            "map_tasks": rs[0]["map_tasks"], "reduce_tasks": rs[0]["reduce_tasks"],
            "counters": rs[0]["counters"],
        }
    return out


def build_table(modes: list[str], stats: dict[str, Any], repeat: int) -> str:
    ratio = len(modes) >= 2
    header = ["", *modes] + ([f"{modes[0]}/{modes[1]}"] if ratio else [])

    def row(label: str, key: str, kind: str, with_ratio: bool = True) -> list[str]:
        values = [stats[m][key] if key in stats[m] else stats[m]["counters"][key]
                  for m in modes]
        if kind == "s":  # 3 decimals for short runs, 2 from 10 s, 1 from 100 s
            digits = 3 if max(values) < 10 else 2 if max(values) < 100 else 1
            cells = [f"{v:.{digits}f}" for v in values]
        elif kind == "bytes":
            cells = [format_bytes(v) for v in values]
        else:
            cells = [f"{v:,}" for v in values]
        if ratio:
            cells.append(_ratio(values[0], values[1]) if with_ratio else "")
        return [label, *cells]

    rows = [
        row("wall time (s)", "wall_s", "s"),
    ]
    if repeat > 1:
        digits = 3 if max(stats[m]["wall_max_s"] for m in modes) < 10 else 1
        rows.append(["  fastest .. slowest run (s)",
                     *[f"{stats[m]['wall_min_s']:.{digits}f}..{stats[m]['wall_max_s']:.{digits}f}"
                       for m in modes]] + ([""] if ratio else []))
    rows += [
        row("  map phase (s)", "map_s", "s"),
        row("  reduce phase, incl. merge (s)", "reduce_s", "s"),
        row("  setup + commit (s)", "other_s", "s"),
        row("CPU time, all processes (s)", "cpu_s", "s"),
        row("  coordinator (s)", "coordinator_cpu_s", "s"),
        row("  workers (s)", "workers_cpu_s", "s"),
        row("peak RSS, largest worker", "worker_peak_rss", "bytes"),
        row("peak RSS, coordinator", "coordinator_peak_rss", "bytes"),
        row("map / reduce tasks", "map_tasks", "count", with_ratio=False),
    ]
    # "map / reduce tasks" shows both numbers in one cell.
    rows[-1][1:1 + len(modes)] = [f"{stats[m]['map_tasks']} / {stats[m]['reduce_tasks']}"
                                  for m in modes]
    for name, label, kind in COUNTER_ROWS:
        rows.append(row(label, name, kind, with_ratio=(kind == "bytes")))
    return render_table(header, rows)


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------

def _input_size(paths: list[str]) -> tuple[int, int]:
    files = expand_inputs(paths)
    return len(files), sum(file_size(f) for f in files)


def run_bench_command(args: argparse.Namespace) -> int:
    """``bench``: parse the options, run every mode ``--repeat`` times, print the table."""
    modes = parse_modes(args.modes)
    repeat = _int_option(args.repeat, "--repeat", 3, 1)
    options = check_options({name: getattr(args, name) for name in BENCH_OPTIONS
                             if getattr(args, name) is not None}, Spelling.CLI)
    reducers = options.get("reducers")
    if args.json_file:
        parent = os.path.dirname(os.path.abspath(args.json_file))
        if not os.path.isdir(parent):
            raise UsageError(f"--json: directory does not exist: {parent}")

    job_class, job_ref = load_job_class(args.job, args.job_name)
    n_files, n_bytes = _input_size(list(args.inputs))

    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    tmp = tempfile.mkdtemp(prefix="mapreduce-bench-")
    try:
        for rep in range(repeat):
            order = modes if rep % 2 == 0 else list(reversed(modes))
            for mode in order:
                out = os.path.join(tmp, f"{mode}-{rep + 1}")
                config = JobConfig(inputs=list(args.inputs), output_dir=out, mode=mode,
                                   **options)
                print(f"mapreduce bench: run {rep + 1}/{repeat}, --mode {mode} ...",
                      file=sys.stderr, flush=True)
                runs[mode].append(measure_run(job_class, job_ref, config))
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    stats = summarize(modes, runs)
    digests = {(m, r["output"]["sha256"]) for m in modes for r in runs[m]}
    identical = len({d for _, d in digests}) == 1
    first = runs[modes[0]][0]["output"]
    reducers_used = reducers if reducers is not None else job_class.REDUCERS
    used = JobConfig(inputs=[], output_dir="", **options)  # the defaults filled in
    workers, sort_buffer = used.workers, used.sort_buffer
    merge_factor, split_size = used.merge_factor, used.split_size

    lines = [
        f"{job_class.__name__} ({os.path.relpath(job_ref.path)}) on {n_files} input "
        f"file{'s' if n_files != 1 else ''}, {format_bytes(n_bytes)}",
        f"{workers} workers, {reducers_used} reducers, sort buffer {format_bytes(sort_buffer)}, "
        f"merge factor {merge_factor}"
        + (f", split size {format_bytes(split_size)}" if split_size else "")
        + f"; {repeat} run{'s' if repeat != 1 else ''} per mode, interleaved"
        + ("; times are medians" if repeat > 1 else ""),
        "",
        build_table(modes, stats, repeat),
        "",
    ]
    if identical:
        what = {1: f"every run of --mode {modes[0]}", 2: "both modes"}.get(
            len(modes), f"all {len(modes)} modes")
        lines.append(f"outputs: byte-identical in {what} ({first['parts']} part files, "
                     f"{format_bytes(first['bytes'])}, sha256 {first['sha256'][:16]})")
    else:
        by_mode = "; ".join(f"{m}: " + ", ".join(sorted({r['output']['sha256'][:16]
                                                         for r in runs[m]})) for m in modes)
        lines.append(f"outputs: DIFFER between runs ({by_mode})")
    lines.append("notes: the reduce phase includes the shuffle (reduce tasks fetch and merge "
                 "map outputs as they reduce); CPU = coordinator + workers (getrusage self + "
                 "children)" + ("" if all(r["peak_rss_reset"] for m in modes for r in runs[m])
                                else "; coordinator peak RSS is this process's lifetime peak"))
    print("\n".join(lines))

    if args.json_file:
        report = {
            "job": {"path": job_ref.path, "class": job_class.__name__},
            "inputs": list(args.inputs), "input_files": n_files, "input_bytes": n_bytes,
            "config": {"workers": workers, "reducers": reducers_used,
                       "sort_buffer": sort_buffer, "merge_factor": merge_factor,
                       "split_size": split_size, "repeat": repeat, "modes": modes},
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count()},
            "outputs_identical": identical,
            "summary": stats,
            "ratios": ({f"{modes[0]}/{modes[1]}": {
                k: (stats[modes[0]][k] / stats[modes[1]][k]) if stats[modes[1]][k] else None
                for k in ("wall_s", "cpu_s", "map_s", "reduce_s")}} if len(modes) > 1 else {}),
            "runs": runs,
        }
        try:
            with open(args.json_file, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
                f.write("\n")
        except OSError as exc:
            raise MapReduceError(f"--json: cannot write {args.json_file}: "
                                 f"{exc.strerror}") from None
    if not identical:
        print("mapreduce: error: the modes' outputs differ (see above)", file=sys.stderr)
        return 1
    return 0
