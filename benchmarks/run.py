"""The benchmark suite: our jobs against baselines on the same data, in the same run.

    python benchmarks/run.py                      # wordcount, terasort, latency, scale
    python benchmarks/run.py --quick              # small sizes, one run each: a smoke test
    python benchmarks/run.py --only wordcount,latency --repeat 1
    python benchmarks/run.py --out benchmarks/results/latest.md   (the default)

Workloads (see docs/performance.md for what each measures and why):

* ``wordcount`` -- 256 MB of Zipf text (16 MB with --quick).  ``benchmarks/jobs/wc_split.py``
  (plain and in-mapper-combining, each ``--mode disk`` and ``--mode memory``, 2 workers)
  against one-process ``collections.Counter``, a hand-written ``multiprocessing.Pool(2)``,
  GNU ``tr | sort | uniq -c``, and Dask / PySpark / mrjob when importable.  All outputs are
  compared as dicts word -> count.
* ``smallfiles`` -- about 2,400 files, 40 MiB of Zipf text in all (600 files, 4 MiB with
  --quick), log-normal sizes, every 8th file gzip and every 13th bzip2: ``wc_split.py``
  (plain and in-mapper combining, --mode disk) against a hand-written
  ``multiprocessing.Pool(2)`` over the same files (``baselines.py pool-files``); map task
  counts show the small files packed into splits.
* ``terasort`` -- 10M TeraGen-style 100-byte records, 1 GB (500k, 50 MB with --quick):
  ``jobs/terasort.py --sort-buffer 64MB`` against ``LC_ALL=C sort -S 256M --parallel=2 -s
  -k1.1,1.10``; outputs compared byte for byte; every worker's peak RSS against the bound
  3 x sort buffer + 150 MB.
* ``scale`` -- the same at 4 GB with ``--sort-buffer 32MB`` (skipped by --quick unless named
  in --only): the memory bound must still hold; merge passes are recorded.
* ``latency`` -- ``jobs/wordcount.py`` on ``sample_data/``, process start to exit (hyperfine
  if installed, else the median of 10 runs), 500 one-line map tasks (one file cut at each
  line) against one, and 500 one-line files (packed into one split).

Every program runs as its own process, measured with ``os.wait4`` by a small wrapper process
(see ``_WRAPPER``): wall time, CPU time (user + system, the process and all its children)
and the largest RSS of any of its processes.  For our jobs, ``_job.json`` adds the phase
times, counters and each worker's peak RSS.  With ``--repeat N`` the programs of a workload
run in N interleaved rounds and the median is reported.  Inputs are generated under
``benchmarks/data/`` (reused when present) and read once before timing, so every program
starts with a warm page cache.

Writes a Markdown report (``--out``, also printed) and the raw measurements next to it
(``.json``).  Exit status: 0 when every output agreed, 1 when one did not or a program
failed, 2 for bad options.  A missed performance target is reported, not an error.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if REPO not in sys.path:
    sys.path.insert(1, REPO)  # mapreduce itself, without `pip install .`

import checks  # noqa: E402
import datagen  # noqa: E402

DATA = os.path.join(HERE, "data")
RESULTS = os.path.join(HERE, "results")
WC_SPLIT = os.path.join(HERE, "jobs", "wc_split.py")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
TERASORT = os.path.join(REPO, "jobs", "terasort.py")
SAMPLE = os.path.join(REPO, "sample_data")
MiB = 1 << 20
WORKERS = 2
WORKLOADS = ["wordcount", "smallfiles", "terasort", "latency", "scale"]

#: Sizes: full and --quick.
SIZES = {
    False: {"text": 256 * MiB, "tera_rows": 10_000_000, "scale_rows": 40_000_000,
            "latency_runs": 10, "tiny_files": 500, "small_files": 2400,
            "small_bytes": 40 * MiB},
    True: {"text": 16 * MiB, "tera_rows": 500_000, "scale_rows": 2_000_000,
           "latency_runs": 5, "tiny_files": 500, "small_files": 600, "small_bytes": 4 * MiB},
}
TERA_SORT_BUFFER = "64MB"
SCALE_SORT_BUFFER = "32MB"


class BenchFailure(Exception):
    """A program of the suite failed (non-zero exit); the message says which and why."""


# --------------------------------------------------------------------------------------------
# measuring a process
# --------------------------------------------------------------------------------------------

def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["LC_ALL"] = "C"
    return env


#: A minimal process that runs a command and reports its resource use.  It exists because a
#: child's ``ru_maxrss`` starts at the high-water mark of the process that forked it (Linux
#: carries it across fork *and* exec), so measuring straight from this driver, which holds
#: generated data, would report the driver's peak for small programs.  The wrapper is a
#: fresh ``python -I -S`` (about 10 MiB), forks and execs the command, and writes wall time
#: (around fork..wait only), CPU (user + system of the command and all its descendants) and
#: the largest RSS of any of them to the file named by its first argument.
_WRAPPER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    json.dump({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
               "max_rss": ru.ru_maxrss * 1024}, f)
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def run_measured(label: str, cmd: Any, stdout_path: Optional[str] = None,
                 shell: bool = False) -> dict[str, Any]:
    """Run ``cmd`` to completion; wall s, CPU s and max RSS of it and its children."""
    if shell:
        cmd = ["/bin/bash", "-c", cmd]
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    fd, stats = tempfile.mkstemp(prefix="rusage-", suffix=".json")
    os.close(fd)
    try:
        with tempfile.TemporaryFile() as err:
            proc = subprocess.run([sys.executable, "-I", "-S", "-c", _WRAPPER, stats, *cmd],
                                  stdout=out, stderr=err, cwd=REPO, env=_env())
            if proc.returncode != 0:
                err.seek(0)
                tail = err.read().decode("utf-8", "replace").strip().splitlines()[-6:]
                raise BenchFailure(f"{label}: exit status {proc.returncode}: "
                                   + " | ".join(tail))
        with open(stats, encoding="utf-8") as f:
            return json.load(f)
    finally:
        os.remove(stats)
        if stdout_path:
            out.close()


def job_details(out_dir: str) -> dict[str, Any]:
    """Phase times, counters and per-worker peak RSS from an output's ``_job.json``."""
    with open(os.path.join(out_dir, "_job.json"), encoding="utf-8") as f:
        summary = json.load(f)
    tasks = [t for t in summary["tasks"] if t.get("status") == "committed"]
    per_worker: dict[int, int] = {}
    for t in tasks:
        pid = t.get("worker_pid")
        per_worker[pid] = max(per_worker.get(pid, 0), t.get("peak_rss_bytes") or 0)

    def phase(kind: str) -> float:
        return sum(p["end"] - p["start"] for p in summary["phases"]
                   if p["phase"].endswith(" " + kind))

    counters = summary["counters"].get("framework", {})
    return {"map_s": phase("map"), "reduce_s": phase("reduce"),
            "worker_peaks": sorted(per_worker.values(), reverse=True),
            "worker_peak_rss": max(per_worker.values(), default=0),
            "map_tasks": sum(1 for t in tasks if t["kind"] == "map"),
            "reduce_tasks": sum(1 for t in tasks if t["kind"] == "reduce"),
            "task_seconds": [t["end"] - t["start"] for t in tasks],
            "counters": counters}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median times over repetitions, the largest memory figures, the first run's rest."""
    merged = dict(runs[0])
    for key in ("wall_s", "cpu_s", "map_s", "reduce_s"):
        if key in merged:
            merged[key] = statistics.median(r[key] for r in runs)
    for key in ("max_rss", "worker_peak_rss"):
        if key in merged:
            merged[key] = max(r[key] for r in runs)
    if "worker_peaks" in merged:
        merged["worker_peaks"] = max((r["worker_peaks"] for r in runs), key=lambda p: p[:1])
    merged["walls"] = [r["wall_s"] for r in runs]
    merged["wall_min_s"] = min(merged["walls"])
    return merged


def our_job(label: str, job: str, inputs: list[str], out: str, mode: str,
            extra: list[str] = (), job_name: Optional[str] = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "mapreduce", "run", job, *inputs, "-o", out, "--mode", mode,
           "--workers", str(WORKERS), "-q", "--overwrite", *extra]
    if job_name:
        cmd[5:5] = ["--job", job_name]
    m = run_measured(label, cmd)
    m.update(job_details(out))
    return m


def warm(paths: list[str]) -> None:
    """Read the inputs once so that no program pays for a cold page cache."""
    for path in paths:
        files = [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs] \
            if os.path.isdir(path) else [path]
        for name in files:
            with open(name, "rb") as f:
                while f.read(16 * MiB):
                    pass


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------

def mib(n: Optional[float]) -> str:
    return "-" if n is None else f"{n / MiB:,.0f} MiB"


def secs(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.1f}"


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(c: Any) -> str:
        return str(c).replace("|", "\\|")

    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(map(cell, header)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


THROUGHPUT_HEADER = ["program", "wall s", "fastest run s", "CPU s", "max RSS (any process)",
                     "largest worker peak RSS", "map s", "reduce s", "spill files",
                     "merge passes", "bytes spilled"]


def throughput_row(name: str, m: Optional[dict[str, Any]], note: str = "") -> list[Any]:
    if m is None:
        return [name, note or "skipped"] + ["-"] * (len(THROUGHPUT_HEADER) - 2)
    c = m.get("counters")
    return [name, secs(m["wall_s"]), secs(m["wall_min_s"]), secs(m["cpu_s"]), mib(m["max_rss"]),
            mib(m.get("worker_peak_rss")) if c is not None else "-",
            secs(m.get("map_s")), secs(m.get("reduce_s")),
            f"{c.get('SPILL_FILES', 0):,}" if c is not None else "-",
            f"{c.get('MERGE_PASSES', 0):,}" if c is not None else "-",
            mib(c.get("SPILLED_BYTES", 0)) if c is not None else "-"]


class Target:
    """A performance goal: ``value op limit``; wall-time ratios also show the CPU ratio."""

    def __init__(self, name: str, value: Optional[float], limit: float, shown: str,
                 op: str = "<=", cpu: str = "-", fastest: str = "-") -> None:
        self.name, self.value, self.limit, self.shown, self.op = name, value, limit, shown, op
        self.cpu, self.fastest = cpu, fastest

    @classmethod
    def ratio(cls, name: str, results: dict[str, Any], a: str, b: str,
              limit: float) -> "Target":
        ma, mb = results.get(a), results.get(b)
        if not ma or not mb:
            return cls(name + " wall", None, limit, "-")
        r = ma["wall_s"] / mb["wall_s"]
        return cls(name + " wall", r, limit, _x(r), cpu=_x(ma["cpu_s"] / mb["cpu_s"]),
                   fastest=_x(ma["wall_min_s"] / mb["wall_min_s"]))

    @property
    def status(self) -> str:
        if self.value is None:
            return "n/a"
        ok = self.value <= self.limit if self.op == "<=" else self.value < self.limit
        return "PASS" if ok else "MISS"

    def row(self) -> list[str]:
        limit = f"{self.op} {self.limit:g}" + (" s" if self.shown.endswith(" s") else "")
        return [self.name, self.shown, limit, self.status, self.fastest, self.cpu]


class Context:
    """One suite run: sizes, repetitions, a scratch directory, and what went wrong."""

    def __init__(self, quick: bool = False, repeat: Optional[int] = None,
                 sizes: Optional[dict[str, int]] = None) -> None:
        self.quick = quick
        self.sizes = dict(SIZES[quick], **(sizes or {}))
        self.repeat = repeat if repeat else (1 if quick else 3)
        os.makedirs(DATA, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="bench-out-", dir=DATA)
        self.failures: list[str] = []
        self.disagreements: list[str] = []

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def measure(self, label: str, fn: Callable[[], dict[str, Any]],
                repeat: Optional[int] = None) -> Optional[dict[str, Any]]:
        return self.measure_rounds([(label, fn)], repeat)[label]

    def measure_rounds(self, programs: list[tuple[str, Callable[[], dict[str, Any]]]],
                       repeat: Optional[int] = None) -> dict[str, Optional[dict[str, Any]]]:
        """Run every program once per round, ``repeat`` rounds (interleaved, so a slow
        stretch of the machine hits every program alike); per program the median run, or
        None when it failed (the failure is recorded and it is not run again)."""
        rounds = repeat or self.repeat
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in programs}
        failed: set[str] = set()
        for i in range(rounds):
            for name, fn in programs:
                if name in failed:
                    continue
                self.log(f"{name} (run {i + 1}/{rounds}, load {load()})")
                try:
                    result = fn()
                except BenchFailure as exc:
                    self.failures.append(str(exc))
                    self.log(f"FAILED: {exc}")
                    failed.add(name)
                    continue
                result["load"] = os.getloadavg()[0]
                runs[name].append(result)
        return {name: None if name in failed else median_of(runs[name])
                for name, _ in programs}


# --------------------------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------------------------

def wordcount(ctx: Context) -> dict[str, Any]:
    size = ctx.sizes["text"]
    path, reused = datagen.zipf_text(os.path.join(DATA, f"zipf-{size // MiB}MB.txt"), size)
    with open(path + ".meta.json", encoding="utf-8") as f:
        meta = json.load(f)
    ctx.log(f"wordcount input {path} ({'reused' if reused else 'generated'})")
    warm([path])
    out = os.path.join(ctx.work, "wc")
    os.makedirs(out, exist_ok=True)
    rows: list[list[Any]] = []
    outputs: dict[str, tuple[str, str]] = {}   # name -> (path, format)
    notes: list[str] = []
    start_load = load()

    programs: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    formats: dict[str, tuple[str, str]] = {}   # name -> (output path, format)
    order: list[tuple[str, Optional[str]]] = []  # table rows: (name, why skipped)

    def add(name: str, fn: Callable[[str], dict[str, Any]], fmt: str) -> None:
        target = os.path.join(out, name.replace(" ", "_").replace("/", "_").replace("|", ""))
        programs.append((name, lambda: fn(target)))
        formats[name] = (target, fmt)
        order.append((name, None))

    def command(name: str, cmd: list[str], fmt: str) -> None:
        add(name, lambda target: run_measured(name, cmd + [target]), fmt)

    py = sys.executable
    command("collections.Counter, 1 process",
            [py, os.path.join(HERE, "baselines.py"), "counter", path], "tsv")
    command(f"multiprocessing.Pool({WORKERS})",
            [py, os.path.join(HERE, "baselines.py"), "pool", path, "-w", str(WORKERS)], "tsv")
    gnu = (f"set -o pipefail; LC_ALL=C tr -s ' ' '\\n' < '{path}' | LC_ALL=C sort "
           f"--parallel={WORKERS} | uniq -c")
    add("GNU tr | sort | uniq -c",
        lambda target: run_measured("GNU tr | sort | uniq -c", gnu, stdout_path=target,
                                    shell=True), "uniq")
    for name, module in (("Dask bag", "dask"), ("PySpark", "pyspark")):
        if importlib.util.find_spec(module) is None:
            order.append((name, "not installed"))
            notes.append(f"{name} skipped: `{module}` is not importable.")
        else:
            command(name, [py, os.path.join(HERE, "baselines.py"), module, path,
                           "-w", str(WORKERS)], "tsv")
    if importlib.util.find_spec("mrjob") is None:
        order.append(("mrjob (local runner)", "not installed"))
        notes.append("mrjob skipped: `mrjob` is not importable.")
    else:
        add("mrjob (local runner)", lambda target: run_measured("mrjob", [
            py, os.path.join(HERE, "jobs", "mrjob_wc.py"), "-r", "local", "--num-cores",
            str(WORKERS), "--no-conf", path, "--output-dir", target]), "json")

    def ours(name: str, job_name: str, mode: str) -> None:
        add(name, lambda target: our_job(name, WC_SPLIT, [path], target, mode,
                                         job_name=job_name), "json")

    for job_name, label in (("WordCountSplit", "ours, plain"),
                            ("WordCountInMapper", "ours, in-mapper combining")):
        for mode in ("disk", "memory"):
            ours(f"{label}, --mode {mode}", job_name, mode)

    results = ctx.measure_rounds(programs)
    for name, why in order:
        rows.append(throughput_row(name, results.get(name), why or "failed"))
        if results.get(name) is not None:
            outputs[name] = formats[name]

    # Agreement: every output equals the Counter baseline's (or the first one that ran).
    agreement = []
    reference_name = next(iter(outputs), None)
    if reference_name:
        reference = checks.read_counts(*outputs[reference_name])
        for name, (target, fmt) in outputs.items():
            problem = checks.compare_counts(reference, checks.read_counts(target, fmt))
            if problem:
                ctx.disagreements.append(f"wordcount: {name} vs {reference_name}: {problem}")
            agreement.append((name, problem))
        bad = [n for n, p in agreement if p]
        summary = (f"all {len(outputs)} outputs agree ({len(reference):,} distinct words, "
                   f"{sum(reference.values()):,} tokens)" if not bad else
                   "DISAGREE: " + "; ".join(f"{n}: {p}" for n, p in agreement if p))
    else:
        summary = "no output to compare"
    shutil.rmtree(out, ignore_errors=True)

    targets = []
    pool = f"multiprocessing.Pool({WORKERS})"
    for label in ("ours, in-mapper combining", "ours, plain"):
        disk, memory = f"{label}, --mode disk", f"{label}, --mode memory"
        targets.append(Target.ratio(f"{label}: disk / Pool", results, disk, pool, 1.5))
        targets.append(Target.ratio(f"{label}: memory / disk (memory <= disk)", results,
                                    memory, disk, 1.0))
        targets.append(Target.ratio(f"{label}: disk / memory", results, disk, memory, 1.25))
    return {
        "name": "wordcount",
        "title": f"Word count, {meta['bytes'] / MiB:.0f} MiB of Zipf text "
                 f"({meta['tokens']:,} tokens, {meta['lines']:,} lines), {WORKERS} workers",
        "table": md_table(THROUGHPUT_HEADER, rows),
        "checks": [summary],
        "notes": notes + [f"load average (1/5 min) at start {start_load}, at end {load()}"],
        "targets": targets,
        "results": results,
    }


def smallfiles(ctx: Context) -> dict[str, Any]:
    count, size = ctx.sizes["small_files"], ctx.sizes["small_bytes"]
    directory, reused = datagen.small_files(
        os.path.join(DATA, f"small-{count}-{size // MiB}MB"), count, size)
    with open(directory + ".meta.json", encoding="utf-8") as f:
        meta = json.load(f)
    ctx.log(f"smallfiles input {directory} ({'reused' if reused else 'generated'})")
    warm([directory])
    on_disk = sum(os.path.getsize(os.path.join(r, n))
                  for r, _, ns in os.walk(directory) for n in ns)
    out = os.path.join(ctx.work, "small")
    os.makedirs(out, exist_ok=True)
    start_load = load()
    py = sys.executable
    pool = f"multiprocessing.Pool({WORKERS}) over the files"
    targets_of = {pool: (os.path.join(out, "pool"), "tsv")}
    programs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        (pool, lambda: run_measured(pool, [py, os.path.join(HERE, "baselines.py"),
                                           "pool-files", directory, targets_of[pool][0],
                                           "-w", str(WORKERS)]))]
    for job_name, label in (("WordCountSplit", "ours, plain"),
                            ("WordCountInMapper", "ours, in-mapper combining")):
        name = f"{label}, --mode disk"
        target = os.path.join(out, job_name)
        targets_of[name] = (target, "json")
        programs.append((name, lambda job_name=job_name, name=name, target=target: our_job(
            name, WC_SPLIT, [directory], target, "disk", job_name=job_name)))
    results = ctx.measure_rounds(programs)
    rows = []
    for name, _fn in programs:
        m = results.get(name)
        row = throughput_row(name, m, "failed")
        rows.append(row + [str(m["map_tasks"]) if m and "map_tasks" in m else "-"])
    ran = {n: t for n, t in targets_of.items() if results.get(n) is not None}
    checks_done = []
    if pool in ran:
        reference = checks.read_counts(*ran[pool])
        for name, (target, fmt) in ran.items():
            problem = checks.compare_counts(reference, checks.read_counts(target, fmt))
            if problem:
                ctx.disagreements.append(f"smallfiles: {name} vs {pool}: {problem}")
        checks_done.append(f"{len(ran)} outputs compared with the Pool's "
                           f"({len(reference):,} distinct words)")
    shutil.rmtree(out, ignore_errors=True)
    targets = [Target.ratio("small files, ours plain: disk / Pool", results,
                            "ours, plain, --mode disk", pool, 1.5),
               Target.ratio("small files, ours in-mapper: disk / Pool", results,
                            "ours, in-mapper combining, --mode disk", pool, 1.5)]
    return {
        "name": "smallfiles",
        "title": f"Many small files: {meta['count']:,} files, {meta['text_bytes'] / MiB:.0f} "
                 f"MiB of text ({on_disk / MiB:.1f} MiB on disk, {meta['compressed']} of them "
                 f".gz/.bz2), {WORKERS} workers",
        "table": md_table(THROUGHPUT_HEADER + ["map tasks"], rows),
        "checks": checks_done,
        "notes": [f"load average (1/5 min) at start {start_load}, at end {load()}"],
        "targets": targets,
        "results": results,
    }


def _x(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _terasort(ctx: Context, name: str, rows_count: int, sort_buffer: str,
              repeat: Optional[int] = None) -> dict[str, Any]:
    from mapreduce.options import parse_size
    size_mb = rows_count * 100 // 1_000_000
    path, reused = datagen.tera_records(os.path.join(DATA, f"tera-{rows_count}.txt"),
                                        rows_count)
    ctx.log(f"{name} input {path} ({'reused' if reused else 'generated'})")
    warm([path])
    out = os.path.join(ctx.work, name)
    os.makedirs(out, exist_ok=True)
    tmpdir = os.path.join(out, "sort-tmp")
    os.makedirs(tmpdir, exist_ok=True)
    start_load = load()
    gnu_out = os.path.join(out, "gnu-sorted.txt")
    gnu_name = f"GNU sort -S 256M --parallel={WORKERS} -s"
    ours_name = f"ours, jobs/terasort.py --sort-buffer {sort_buffer}"
    ours_out = os.path.join(out, "ours")
    programs = [(gnu_name, lambda: run_measured(gnu_name, [
        "sort", "-S", "256M", f"--parallel={WORKERS}", "-s", "-k1.1,1.10", "-T", tmpdir,
        "-o", gnu_out, path]))]
    have_job = os.path.exists(TERASORT)
    if have_job:
        programs.append((ours_name, lambda: our_job(
            ours_name, TERASORT, [path], ours_out, "disk",
            extra=["--sort-buffer", sort_buffer])))
    measured = ctx.measure_rounds(programs, repeat)
    gnu, ours = measured[gnu_name], measured.get(ours_name)
    rows = [throughput_row(gnu_name, gnu, "failed")]
    checks_text, notes, targets = [], [], []
    bound = 3 * parse_size(sort_buffer, "--sort-buffer") + 150 * MiB
    if not have_job:
        rows.append(throughput_row(ours_name, None, "jobs/terasort.py not found"))
        notes.append("jobs/terasort.py does not exist yet: only the baseline ran.")
    else:
        rows.append(throughput_row(ours_name, ours, "failed"))
        if ours is not None and gnu is not None:
            diff = checks.first_difference(checks.part_files(ours_out), [gnu_out])
            if diff is None:
                checks_text.append(f"ours == GNU sort -s, byte for byte "
                                   f"({os.path.getsize(gnu_out):,} bytes)")
            else:
                checks_text.append(f"DIFFER from GNU sort -s at byte offset {diff:,}")
                ctx.disagreements.append(f"{name}: ours differs from GNU sort at byte {diff}")
        if ours is not None:
            peaks = ours["worker_peaks"]
            targets.append(Target(f"{name}: every worker's peak RSS <= 3 x {sort_buffer} "
                                  f"+ 150 MB = {bound / MiB:.0f} MiB",
                                  max(peaks, default=0) / MiB, bound / MiB,
                                  "largest " + mib(max(peaks, default=0))))
            notes.append("worker peak RSS: " + ", ".join(mib(p) for p in peaks)
                         + f"; {ours['map_tasks']} map tasks, {ours['reduce_tasks']} reduce "
                         f"tasks; MERGE_PASSES={ours['counters'].get('MERGE_PASSES', 0)}")
    targets.append(Target.ratio(f"{name}: ours / GNU sort", measured, ours_name, gnu_name,
                                2.0))
    shutil.rmtree(out, ignore_errors=True)
    notes.append(f"load average (1/5 min) at start {start_load}, at end {load()}")
    return {
        "name": name,
        "title": f"TeraSort, {rows_count:,} records of 100 bytes ({size_mb:,} MB), "
                 f"{WORKERS} workers",
        "table": md_table(THROUGHPUT_HEADER, rows),
        "checks": checks_text,
        "notes": notes,
        "targets": targets,
        "results": {gnu_name: gnu, ours_name: ours},
    }


def terasort(ctx: Context) -> dict[str, Any]:
    return _terasort(ctx, "terasort", ctx.sizes["tera_rows"], TERA_SORT_BUFFER)


def scale(ctx: Context) -> dict[str, Any]:
    return _terasort(ctx, "scale", ctx.sizes["scale_rows"], SCALE_SORT_BUFFER, repeat=1)


def latency(ctx: Context) -> dict[str, Any]:
    runs = ctx.sizes["latency_runs"]
    out = os.path.join(ctx.work, "latency")
    os.makedirs(out, exist_ok=True)
    py = sys.executable
    start_load = load()
    warm([SAMPLE])

    def cli(inputs: list[str], target: str) -> list[str]:
        return [py, "-m", "mapreduce", "run", WORDCOUNT, *inputs, "-o", target,
                "--workers", str(WORKERS), "-q", "--overwrite"]

    def timed(label: str, cmd: list[str], n: int) -> Optional[dict[str, Any]]:
        if shutil.which("hyperfine"):
            report = os.path.join(out, "hyperfine.json")
            try:
                run_measured(label, ["hyperfine", "-N", "--warmup", "1", "--runs", str(n),
                                     "--export-json", report, subprocess.list2cmdline(cmd)])
            except BenchFailure as exc:
                ctx.failures.append(str(exc))
                return None
            with open(report, encoding="utf-8") as f:
                times = json.load(f)["results"][0]["times"]
            return {"wall_s": statistics.median(times), "walls": times, "tool": "hyperfine"}
        run_measured(label, cmd)  # warm-up, not counted
        m = ctx.measure(label, lambda: run_measured(label, cmd), repeat=n)
        if m is not None:
            m["tool"] = f"median of {n} runs"
        return m

    rows = []
    bare = timed("python -c pass", [py, "-c", "pass"], runs)
    imports = timed("python -c 'import mapreduce.cli'", [py, "-c", "import mapreduce.cli"], runs)
    wc = timed("wordcount on sample_data/", cli([SAMPLE], os.path.join(out, "wc")), runs)
    tiny_dir, _ = datagen.tiny_files(os.path.join(DATA, f"tiny-{ctx.sizes['tiny_files']}"),
                                     ctx.sizes["tiny_files"])
    warm([tiny_dir])
    one = os.path.join(tiny_dir, sorted(os.listdir(tiny_dir))[0])
    tiny1 = ctx.measure("wordcount, 1 tiny file", lambda: our_job(
        "tiny 1", WORDCOUNT, [one], os.path.join(out, "t1"), "disk"))
    n_files = len(os.listdir(tiny_dir))
    # N map tasks of one line each: the files' lines, padded to one width, in one file cut
    # at that width (the files themselves are packed into one split).
    width = 48
    lines_file = os.path.join(out, "tiny-lines.txt")
    with open(lines_file, "w", encoding="ascii") as f:
        for name in sorted(os.listdir(tiny_dir)):
            with open(os.path.join(tiny_dir, name), encoding="ascii") as g:
                f.write(g.read().rstrip("\n").ljust(width - 1) + "\n")
    tinyn = ctx.measure(f"wordcount, {n_files} one-line map tasks", lambda: our_job(
        "tiny n", WORDCOUNT, [lines_file], os.path.join(out, "tn"), "disk",
        ["--split-size", str(width)]))
    packed = ctx.measure(f"wordcount, {n_files} tiny files", lambda: our_job(
        "tiny files", WORDCOUNT, [tiny_dir], os.path.join(out, "tf"), "disk"))

    def spread(m: Optional[dict[str, Any]]) -> str:
        if not m:
            return "-"
        return f"{secs(min(m['walls']))} .. {secs(max(m['walls']))}"

    for label, m in (("`python -c pass` (interpreter start)", bare),
                     ("`python -c 'import mapreduce.cli'`", imports),
                     ("wordcount on sample_data/ (239 KiB), end to end", wc)):
        rows.append([label, secs(m["wall_s"]) if m else "failed", spread(m),
                     m["tool"] if m else "-", "-", "-"])
    for label, m in (("wordcount, 1 one-line file", tiny1),
                     (f"wordcount, {n_files} one-line map tasks (one file, --split-size "
                      f"{width})", tinyn),
                     (f"wordcount, {n_files} one-line files (packed into splits)", packed)):
        rows.append([label, secs(m["wall_s"]) if m else "failed", spread(m),
                     f"median of {ctx.repeat} runs" if ctx.repeat > 1 else "1 run",
                     f"{m['map_tasks']} / {m['reduce_tasks']}" if m else "-",
                     f"{secs(m['map_s'])} / {secs(m['reduce_s'])}" if m else "-"])
    per_task = None
    notes = []
    if tiny1 and tinyn and n_files > 1:
        per_task = (tinyn["wall_s"] - tiny1["wall_s"]) / (n_files - 1)
        inside = statistics.mean(tinyn["task_seconds"])
        notes.append(f"per map task: {per_task * 1000:.1f} ms of wall time "
                     f"(({n_files} tasks - 1 task) / {n_files - 1}); a task spends "
                     f"{inside * 1000:.1f} ms on average inside its worker (start to end, "
                     f"{WORKERS} workers in parallel)")
    shutil.rmtree(out, ignore_errors=True)
    notes.append(f"load average (1/5 min) at start {start_load}, at end {load()}")
    targets = [Target("latency: wordcount on sample_data/, process start to exit",
                      wc["wall_s"] if wc else None, 0.5,
                      f"{secs(wc['wall_s'])} s" if wc else "-", op="<"),
               Target(f"{n_files} tiny map tasks, wall", tinyn["wall_s"] if tinyn else None,
                      5.0, f"{secs(tinyn['wall_s'])} s" if tinyn else "-", op="<")]
    return {
        "name": "latency",
        "title": f"Latency and per-task overhead, {WORKERS} workers, --mode disk",
        "table": md_table(["command", "wall s", "fastest .. slowest", "how",
                           "map / reduce tasks", "map s / reduce s"], rows),
        "checks": [],
        "notes": notes,
        "targets": targets,
        "results": {"python": bare, "import": imports, "wordcount": wc, "tiny1": tiny1,
                    "tiny_n": tinyn, "tiny_files": packed, "per_task_s": per_task},
    }


RUNNERS = {"wordcount": wordcount, "smallfiles": smallfiles, "terasort": terasort,
           "latency": latency, "scale": scale}


# --------------------------------------------------------------------------------------------
# machine and report
# --------------------------------------------------------------------------------------------

def _command(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil
        ram = f"{psutil.virtual_memory().total / (1 << 30):.1f} GiB"
        physical = psutil.cpu_count(logical=False)
    except Exception:  # pragma: no cover - psutil is a dependency
        ram, physical = "unknown", None
    versions = []
    for pkg in ("msgpack", "lz4", "psutil", "numpy", "dask", "pyspark", "mrjob"):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    commit = _command(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if _command(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " + uncommitted changes"
    disk = shutil.disk_usage(DATA)
    try:  # the core the jobs' processes load (they import the repository through _env())
        core = subprocess.run([sys.executable, "-c", "from mapreduce.core import describe; "
                               "print(describe())"], env=_env(), capture_output=True,
                              text=True, timeout=60).stdout.strip() or "core: unknown"
    except (OSError, subprocess.SubprocessError):
        core = "core: unknown"
    return {
        "core": core,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs"
               + (f" ({physical} physical)" if physical else ""),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(versions),
        "tools": "; ".join(x for x in (_command(["sort", "--version"]).splitlines()[:1]
                                       + [_command(["hyperfine", "--version"])
                                          if shutil.which("hyperfine") else
                                          "hyperfine not installed"]) if x),
        "commit": commit,
        "disk": f"{disk.free / (1 << 30):.0f} GiB free of {disk.total / (1 << 30):.0f} GiB "
                f"where benchmarks/data/ lives",
    }


def render(sections: list[dict[str, Any]], machine: dict[str, str], args: argparse.Namespace,
           ctx: Context, started: float, load_start: str) -> str:
    lines = ["# Benchmark results", ""]
    cmd = "python benchmarks/run.py" + " ".join([""] + sys.argv[1:])
    quick = " (quick: small sizes, not representative)" if args.quick else ""
    lines += [f"- command: `{cmd}`{quick}",
              f"- date: {machine['date']}; total time {(time.time() - started) / 60:.1f} min; "
              f"runs per measurement: {ctx.repeat} (times are medians; scale: 1)",
              f"- machine: {machine['cpu']}, {machine['ram']} RAM, {machine['os']}; "
              f"{machine['disk']}",
              f"- software: {machine['python']}; {machine['packages']}; {machine['tools']}",
              f"- code: git commit {machine['commit']}; mapreduce "
              f"{machine.get('core', 'core: unknown')}",
              f"- load average (1/5 min): {load_start} at start, {load()} at end "
              f"(other processes on the machine add noise)", ""]
    all_targets = []
    for s in sections:
        lines += [f"## {s['title']}", "", s["table"], ""]
        for c in s["checks"]:
            lines.append(f"- outputs: {c}")
        for n in s["notes"]:
            lines.append(f"- {n}")
        lines.append("")
        all_targets += s["targets"]
    if all_targets:
        lines += ["## Targets", "",
                  md_table(["target", "measured (medians)", "goal", "status",
                            "ratio of the fastest runs", "ratio of CPU times"],
                           [t.row() for t in all_targets]), ""]
    if ctx.failures or ctx.disagreements:
        lines += ["## Problems", ""] + [f"- {p}" for p in ctx.failures + ctx.disagreements]
        lines.append("")
    lines += ["Columns: wall and CPU time are for the whole program, process start to exit "
              "(CPU = user + system of all its processes); wall and CPU are medians of the "
              "runs, \"fastest run\" the shortest wall time (the least disturbed by other "
              "load; targets are judged on the medians); max RSS is the largest resident "
              "set of any one of its processes (for ours usually the coordinator in memory "
              "mode); worker peak RSS, phase times and counters come from our `_job.json`.  "
              "The reduce phase includes the shuffle: reduce tasks fetch and merge map "
              "outputs as they reduce.", ""]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Run the benchmark suite and write a Markdown report.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and one run each (a smoke test, not a measurement)")
    parser.add_argument("--only", metavar="LIST",
                        help=f"comma-separated workloads ({','.join(WORKLOADS)}); default: all "
                             "(without scale when --quick)")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="runs per measurement, median reported (default 3; 1 with --quick)")
    parser.add_argument("--out", default=os.path.join(RESULTS, "latest.md"), metavar="FILE",
                        help="Markdown report (default benchmarks/results/latest.md); the raw "
                             "measurements go to the same name with .json")
    args = parser.parse_args(argv)
    if args.only:
        selected = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in selected if w not in WORKLOADS]
        if unknown or not selected:
            parser.error(f"--only: unknown workload {', '.join(unknown) or '(none)'} "
                         f"(choose from {', '.join(WORKLOADS)})")
    else:
        selected = [w for w in WORKLOADS if not (args.quick and w == "scale")]
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")

    os.makedirs(DATA, exist_ok=True)
    started, load_start = time.time(), load()
    machine = machine_info()
    ctx = Context(args.quick, args.repeat)
    sections = []
    try:
        for name in WORKLOADS:
            if name in selected:
                ctx.log(f"=== {name}")
                sections.append(RUNNERS[name](ctx))
    finally:
        shutil.rmtree(ctx.work, ignore_errors=True)
    report = render(sections, machine, args, ctx, started, load_start)
    print(report)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(report)
    raw = {"machine": machine, "argv": sys.argv[1:], "repeat": ctx.repeat,
           "failures": ctx.failures, "disagreements": ctx.disagreements,
           "workloads": {s["name"]: {"results": s["results"],
                                     "targets": [vars(t) for t in s["targets"]]}
                         for s in sections}}
    with open(os.path.splitext(out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(raw, f, indent=2, default=str)
    ctx.log(f"report written to {os.path.relpath(out)}")
    return 1 if ctx.failures or ctx.disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
