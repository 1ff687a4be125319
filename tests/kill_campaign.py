"""A randomized kill campaign: kill coordinators and workers at random moments, resume, and
check that the output is byte-identical to a fault-free run.  Not part of the test run:

    python tests/kill_campaign.py --rounds 30 --seed 1 [--mode disk] [--size-mb 24]

Each round starts the job, then (with the seeded RNG) either SIGKILLs the coordinator after a
random delay, or SIGKILLs a random worker; a killed coordinator is resumed with ``--resume``,
and a resume may itself be killed again (up to 3 kills per round).  At the end of each round
the part files are compared with the reference run, and the journal-recovered tasks are
checked not to have been executed again.  Prints one line per round and a summary.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(ROOT, "jobs", "wordcount.py")
OPTS = ["--split-size", "512KB", "--sort-buffer", "256KB", "--merge-factor", "3", "-q",
        "--workers", "2"]


def make_input(path: str, size_mb: int, seed: int) -> None:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5000)]
    weights = [1 / (i + 1) for i in range(len(words))]
    with open(path, "w") as f:
        written = 0
        while written < size_mb << 20:
            line = " ".join(rng.choices(words, weights, k=12)) + "\n"
            f.write(line)
            written += len(line)


def command(inp: str, out: str, mode: str, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "mapreduce", "run", JOB, inp, "-o", out, "--mode", mode, *OPTS]
    return cmd + (["--resume"] if resume else [])


def same_output(a: str, b: str) -> bool:
    parts = sorted(f for f in os.listdir(a) if f.startswith("part-"))
    if parts != sorted(f for f in os.listdir(b) if f.startswith("part-")):
        return False
    return all(filecmp.cmp(os.path.join(a, p), os.path.join(b, p), shallow=False) for p in parts)


def one_round(rng: random.Random, inp: str, ref: str, out: str, mode: str,
              ref_seconds: float) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    kills = {"coordinator": 0, "worker": 0}
    resume = False
    for _ in range(10):
        proc = subprocess.Popen(command(inp, out, mode, resume), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if sum(kills.values()) < 3:
            time.sleep(rng.uniform(0.05, ref_seconds * 1.1))
            if proc.poll() is None:
                if rng.random() < 0.7:
                    proc.send_signal(signal.SIGKILL)
                    kills["coordinator"] += 1
                else:
                    children = psutil.Process(proc.pid).children()
                    if children:
                        rng.choice(children).kill()
                        kills["worker"] += 1
        _, err = proc.communicate(timeout=300)
        if proc.returncode == 0:
            break
        if proc.returncode != -signal.SIGKILL:
            return {"ok": False, "kills": kills, "why": err.decode()[-300:]}
        resume = True
    with open(os.path.join(out, "_job.json")) as f:
        summary = json.load(f)
    committed = [(t["step"], t["kind"], t["index"]) for t in summary["tasks"]
                 if t["status"] == "committed"]
    return {"ok": same_output(out, ref), "kills": kills, "runs": summary["runs"],
            "recovered": sum(1 for t in summary["tasks"] if t.get("recovered")),
            "duplicates": len(committed) - len(set(committed))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", default="disk", choices=["disk", "memory"])
    parser.add_argument("--size-mb", type=int, default=24)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="kill-campaign-")
    try:
        inp = os.path.join(tmp, "input.txt")
        make_input(inp, args.size_mb, args.seed)
        ref = os.path.join(tmp, "ref")
        started = time.time()
        subprocess.run(command(inp, ref, args.mode, False), cwd=ROOT, check=True)
        ref_seconds = time.time() - started
        print(f"reference run: {ref_seconds:.1f} s, input {args.size_mb} MB, mode {args.mode}")
        totals = {"rounds": 0, "identical": 0, "coordinator": 0, "worker": 0, "resumes": 0,
                  "recovered": 0, "duplicates": 0}
        for n in range(args.rounds):
            r = one_round(rng, inp, ref, os.path.join(tmp, "out"), args.mode, ref_seconds)
            totals["rounds"] += 1
            totals["identical"] += r["ok"]
            totals["coordinator"] += r["kills"]["coordinator"]
            totals["worker"] += r["kills"]["worker"]
            totals["resumes"] += r.get("runs", 1) - 1
            totals["recovered"] += r.get("recovered", 0)
            totals["duplicates"] += r.get("duplicates", 0)
            print(f"round {n + 1}: identical={r['ok']} kills={r['kills']} "
                  f"runs={r.get('runs')} recovered={r.get('recovered')} "
                  f"duplicate commits={r.get('duplicates')} {r.get('why', '')}", flush=True)
        print("summary:", json.dumps(totals))
        return 0 if totals["identical"] == totals["rounds"] and not totals["duplicates"] else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
