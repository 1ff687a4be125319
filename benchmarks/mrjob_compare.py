"""mrjob's examples, unedited, on mapreduce next to mrjob's own local runner (not a test).

    python benchmarks/mrjob_compare.py [--size-mb 100] [--repeat 1] [--workers 2]
                                       [--only mr_word_freq_count,mr_wc]
                                       [--baseline DIR]

Needs mrjob installed (it is in the ``test`` extra).  The input is Zipf text from
``benchmarks/datagen.py`` (``benchmarks/data/zipf-<size>.txt``, made once).  For each example
in ``tests/mrjob_examples/`` the two commands alternate (mrjob, ours, ours, mrjob, ...)::

    python tests/mrjob_examples/X.py -r local --no-conf --num-cores W INPUT -o DIR
    python -m mapreduce run tests/mrjob_examples/X.py INPUT -o DIR --workers W -q

and the table gives each one's median wall time and CPU time (user + system of the command
and all the processes it waited for: on a shared machine the CPU ratio is the steadier one)
and the ratios.  ``--baseline DIR`` also runs ours from another checkout of mapreduce (its
directory put first on ``PYTHONPATH``; e.g. ``git archive <commit> | tar -x -C DIR``, with
the compiled core copied in), in the same rotation, for a before/after in one run.  The
outputs are compared as sorted lines (the two number their part files differently); a
difference is reported.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLES = os.path.join(ROOT, "tests", "mrjob_examples")
sys.path.insert(0, HERE)

from datagen import zipf_text  # noqa: E402  (benchmarks/ is not a package)

JOBS = ["mr_word_freq_count", "mr_wc", "mr_next_word_stats", "mr_count_lines_right"]


def _sorted_output(directory: str) -> list[bytes]:
    lines: list[bytes] = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("part-"):
            with open(os.path.join(directory, name), "rb") as f:
                lines.extend(f.read().splitlines())
    return sorted(lines)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(cmd: list[str], env: Optional[dict] = None, cwd: Optional[str] = None
          ) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the command and every process it waited for)."""
    start, cpu = time.perf_counter(), _cpu()
    proc = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.decode()[-2000:]}")
    return time.perf_counter() - start, _cpu() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default=",".join(JOBS))
    parser.add_argument("--data-dir", default=os.path.join(HERE, "data"),
                        help="where the generated input is kept (default benchmarks/data)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also run ours from this checkout of mapreduce (before/after)")
    args = parser.parse_args()
    base_env = None
    if args.baseline:
        if not os.path.isfile(os.path.join(args.baseline, "mapreduce", "__init__.py")):
            parser.error(f"--baseline {args.baseline}: no mapreduce/__init__.py there")
        base_env = dict(os.environ, PYTHONPATH=os.path.abspath(args.baseline),
                        PYTHONDONTWRITEBYTECODE="1")
    data_dir = args.data_dir
    os.makedirs(data_dir, exist_ok=True)
    path, _ = zipf_text(os.path.join(data_dir, f"zipf-{args.size_mb}mb.txt"),
                        args.size_mb << 20)
    print(f"input: {path} ({os.path.getsize(path) / 2**20:.1f} MiB), "
          f"{args.workers} workers/cores, {args.repeat} run(s) each")
    print(f"{'job':28} {'mrjob wall':>10} {'ours wall':>10} {'ratio':>6} {'mrjob CPU':>10} "
          f"{'ours CPU':>9} {'ratio':>6}  output"
          + (f"  {'base CPU':>9} {'ratio':>6} {'base/ours':>9}" if base_env else ""))
    tmp = tempfile.mkdtemp(prefix="mrjob-compare-")
    try:
        for job in args.only.split(","):
            script = os.path.join(EXAMPLES, job + ".py")
            theirs_out, ours_out = os.path.join(tmp, "theirs"), os.path.join(tmp, "ours")
            theirs_cmd = [sys.executable, script, "-r", "local", "--no-conf", "--num-cores",
                          str(args.workers), path, "-o", theirs_out]
            ours_cmd = [sys.executable, "-m", "mapreduce", "run", script, path, "-o",
                        ours_out, "--workers", str(args.workers), "-q"]
            base_out = os.path.join(tmp, "base")
            base_cmd = ours_cmd[:ours_cmd.index("-o") + 1] + [base_out] + \
                ours_cmd[ours_cmd.index("-o") + 2:]
            theirs, ours, base = [], [], []
            for i in range(args.repeat):
                order = [(theirs, theirs_cmd, theirs_out, None),
                         (ours, ours_cmd, ours_out, None)]
                if base_env:
                    order.append((base, base_cmd, base_out, base_env))
                for times, cmd, out, env in (order if i % 2 == 0 else order[::-1]):
                    shutil.rmtree(out, ignore_errors=True)
                    # In the temporary directory: `python -m` puts the current directory
                    # first on sys.path, which would hide --baseline's PYTHONPATH.
                    times.append(_time(cmd, env, cwd=tmp))
            same = _sorted_output(theirs_out) == _sorted_output(ours_out)
            if base_env:
                same = same and _sorted_output(base_out) == _sorted_output(ours_out)
            t, o = (statistics.median(w for w, _ in theirs),
                    statistics.median(w for w, _ in ours))
            tc, oc = (statistics.median(c for _, c in theirs),
                      statistics.median(c for _, c in ours))
            extra = ""
            if base_env:
                bc = statistics.median(c for _, c in base)
                extra = f"  {bc:8.1f}s {tc / bc:5.1f}x {bc / oc:8.1f}x"
            print(f"{job:28} {t:9.1f}s {o:9.1f}s {t / o:5.1f}x {tc:9.1f}s {oc:8.1f}s "
                  f"{tc / oc:5.1f}x  {'same lines' if same else 'DIFFERENT'}{extra}",
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
