"""A/B timing of two source trees of mapreduce on the same jobs, interleaved in one go.

    python benchmarks/ab.py OLD_TREE NEW_TREE [--repeat 3] [--only wordcount,wc_inmapper,terasort]

Each tree is a checkout of this repository (``git worktree add /tmp/old COMMIT``; build its C
core with ``python setup.py build_ext --inplace`` if it has one).  For every workload the two
trees' ``python -m mapreduce run ...`` alternate (old, new, new, old, ...), so the machine's
hour-to-hour speed swings hit both alike; each run's wall time and CPU time (the coordinator
and its workers, from ``os.wait4``) are recorded, the outputs of the two trees are checked to
be byte-identical, and the table gives medians and new/old ratios.  The inputs are made once
by ``benchmarks/datagen.py`` (as ``benchmarks/run.py`` makes them) in
``benchmarks/data/``.

Workloads: ``wordcount`` (256 MB of Zipf text, ``benchmarks/jobs/wc_split.py``'s plain job:
the per-pair path), ``wc_inmapper`` (the same text, in-mapper combining) and ``terasort``
(1 GB of TeraGen records, ``jobs/terasort.py --sort-buffer 64MB``); all with 2 workers.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

WORKLOADS = ("wordcount", "wc_inmapper", "terasort")


def _inputs(name: str) -> tuple[str, list[str]]:
    """(job path relative to a tree, input paths) for a workload, made if missing."""
    data = os.path.join(HERE, "data")
    os.makedirs(data, exist_ok=True)
    if name in ("wordcount", "wc_inmapper"):
        path = os.path.join(data, "ab-zipf-256MB.txt")
        if not os.path.exists(path):
            import datagen
            datagen.zipf_text(path, 256 << 20, seed=1)
        job = "benchmarks/jobs/wc_split.py"
        return job, [path]
    path = os.path.join(data, "ab-tera-10000000.txt")
    import datagen
    datagen.tera_records(path, 10_000_000)
    return "jobs/terasort.py", [path]


def _command(tree: str, name: str, out: str) -> list[str]:
    job, inputs = _inputs(name)
    argv = [sys.executable, "-m", "mapreduce", "run", os.path.join(tree, job), *inputs,
            "-o", out, "--workers", "2", "-q"]
    if name == "wordcount":
        argv += ["--job", "WordCountSplit"]
    if name == "wc_inmapper":
        argv += ["--job", "WordCountInMapper"]
    if name == "terasort":
        argv += ["--sort-buffer", "64MB"]
    return argv


def _run(tree: str, name: str) -> tuple[float, float, str]:
    out = tempfile.mkdtemp(prefix="ab-out-")
    try:
        env = dict(os.environ, PYTHONPATH=tree)
        started = time.monotonic()
        proc = subprocess.Popen(_command(tree, name, os.path.join(out, "o")), cwd=tree, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{tree}: {name} failed")
        digest = hashlib.sha256()
        for part in sorted(os.listdir(os.path.join(out, "o"))):
            if part.startswith("part-"):
                with open(os.path.join(out, "o", part), "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
        return wall, usage.ru_utime + usage.ru_stime, digest.hexdigest()
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    rows = []
    for name in names:
        _inputs(name)
        times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
        digests = set()
        for rep in range(args.repeat):
            order = ("old", "new") if rep % 2 == 0 else ("new", "old")
            for which in order:
                wall, cpu, digest = _run(getattr(args, which), name)
                times[which].append((wall, cpu))
                digests.add(digest)
                print(f"{name} {which} run {rep + 1}: wall {wall:.2f} s, cpu {cpu:.2f} s",
                      flush=True)
        if len(digests) != 1:
            raise SystemExit(f"{name}: the two trees' outputs differ")
        med = {w: (statistics.median(t[0] for t in times[w]),
                   statistics.median(t[1] for t in times[w])) for w in times}
        rows.append((name, med["old"], med["new"]))
    print("\n| workload | old wall s | new wall s | new/old | old CPU s | new CPU s | new/old |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, old, new in rows:
        print(f"| {name} | {old[0]:.2f} | {new[0]:.2f} | {new[0] / old[0]:.3f} | "
              f"{old[1]:.2f} | {new[1]:.2f} | {new[1] / old[1]:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
