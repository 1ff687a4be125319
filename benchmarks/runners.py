"""The same jobs on the local, Dask and Spark runners, in one run (docs/dask.md's table).

    python benchmarks/runners.py                          # word count 256 MB, TeraSort 1 GB
    python benchmarks/runners.py --wc-mb 64 --tera-rows 2000000 --repeat 2

Each job runs through the real command line (``python -m mapreduce run ... --workers 2``):
``--runner local``; ``--runner dask`` without ``--dask-scheduler`` (a LocalCluster of 2
single-threaded worker processes, started and stopped by the job, so its start-up is in the
time); ``--runner spark --spark-master local[2]`` (the JVM start included).  The runners are
interleaved (local, dask, spark, local, ...) so that load from elsewhere on the machine
falls on all of them alike.  Wall seconds, best and median of ``--repeat``; every runner's
part files must be byte-identical (checked, the run fails otherwise).  Inputs come from
benchmarks/datagen.py (reused between runs, in benchmarks/data/).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
sys.path.insert(0, HERE)

import datagen  # noqa: E402

MiB = 1 << 20


def available(runner: str) -> bool:
    module = {"local": "mapreduce", "dask": "distributed", "spark": "pyspark"}[runner]
    return importlib.util.find_spec(module) is not None


def run_job(job: str, inputs: list[str], out: str, runner: str, *options: str) -> float:
    cmd = [sys.executable, "-m", "mapreduce", "run", job, *inputs, "-o", out, "-q",
           "--workers", "2", "--runner", runner, *options]
    if runner == "spark":
        cmd += ["--spark-master", "local[2]"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{runner} failed on {job}:\n{proc.stderr}")
    return wall


def digest(out: str) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(out)):
        if name.startswith("part-"):
            with open(os.path.join(out, name), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def bench(name: str, job: str, inputs: list[str], runners: list[str], repeat: int,
          scratch: str, *options: str) -> list[tuple[str, float, float]]:
    times: dict[str, list[float]] = {r: [] for r in runners}
    digests: dict[str, str] = {}
    for i in range(repeat):
        for runner in runners:
            out = os.path.join(scratch, f"{name}-{runner}-{i}")
            times[runner].append(run_job(job, inputs, out, runner, *options))
            d = digest(out)
            if digests.setdefault("first", d) != d:
                raise SystemExit(f"{name}: {runner}'s output differs from the first runner's")
            shutil.rmtree(out)
            print(f"  {name} {runner} #{i + 1}: {times[runner][-1]:.1f} s", flush=True)
    return [(r, min(times[r]), statistics.median(times[r])) for r in runners]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wc-mb", type=int, default=256, help="word count input (MiB)")
    p.add_argument("--tera-rows", type=int, default=10_000_000,
                   help="TeraSort records of 100 bytes (default 10M = 1 GB)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--runners", default="local,dask,spark")
    args = p.parse_args()
    runners = [r for r in args.runners.split(",") if available(r)]
    os.makedirs(DATA, exist_ok=True)
    text, _ = datagen.zipf_text(os.path.join(DATA, f"zipf-{args.wc_mb}MB.txt"),
                                args.wc_mb * MiB)
    tera, _ = datagen.tera_records(os.path.join(DATA, f"tera-{args.tera_rows}.txt"),
                                   args.tera_rows)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mapreduce-runners-bench-") as scratch:
        for name, job, inputs, options in (
                (f"word count {args.wc_mb} MiB", "jobs/wordcount.py", [text], ()),
                (f"TeraSort {args.tera_rows * 100 / 1e9:g} GB", "jobs/terasort.py", [tera],
                 ("--sort-buffer", "64MB"))):
            for runner, best, median in bench(name, job, inputs, runners, args.repeat,
                                              scratch, *options):
                rows.append(f"| {name} | {runner} | {best:.1f} | {median:.1f} |")
    print("\n| job | runner | wall s, best | wall s, median |\n|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
