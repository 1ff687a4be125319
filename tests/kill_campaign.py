"""A randomized kill campaign: kill coordinators and workers at random moments, resume, and
check that the output is byte-identical to a fault-free run.  Not part of the test run:

    python tests/kill_campaign.py --rounds 30 --seed 1 [--mode disk] [--size-mb 24]

Each round starts the job, then (with the seeded RNG) SIGKILLs the coordinator after a
random delay, SIGKILLs a random worker, or (on a resume) lets the coordinator kill itself in
the middle of the job commit (the job is ``tests/ft_jobs/commit_killer.py``: word count that
SIGKILLs its coordinator before the K-th file operation of the commit); a killed coordinator
is resumed with ``--resume``, and a resume may itself be killed again (up to 3 kills per
round).  Between a kill and the resume, now and then a committed part file is damaged
(truncated, a byte flipped, a line appended: the resume must re-run its task) or the input is
rewritten with the same size and mtime (the resume must be refused, naming the input; the
round then runs the job again with ``--overwrite``).  At the end of each round the part files
are compared with the reference run, and no task may have committed twice.  Prints one line
per round and a summary.
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
JOB = os.path.join(ROOT, "tests", "ft_jobs", "commit_killer.py")
REDUCERS = 4
OPTS = ["--split-size", "512KB", "--sort-buffer", "256KB", "--merge-factor", "3", "-q",
        "--workers", "2", "--reducers", str(REDUCERS)]


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


def command(inp: str, out: str, mode: str, extra: str = "") -> list[str]:
    cmd = [sys.executable, "-m", "mapreduce", "run", JOB, inp, "-o", out, "--mode", mode, *OPTS]
    return cmd + ([extra] if extra else [])


def journal_commits(out: str) -> list[dict]:
    sys.path.insert(0, ROOT)
    from mapreduce.journal import TASK_COMMITTED, read_journal

    path = os.path.join(out, "_temporary", "journal")
    if not os.path.exists(path):
        return []
    return [r.payload for r in read_journal(path)[0] if r.type == TASK_COMMITTED]


def damage_a_part(rng: random.Random, out: str) -> bool:
    parts = [p for p in journal_commits(out) if "part" in p["output"]]
    if not parts:
        return False
    p = rng.choice(parts)
    path = p["output"]["part"]
    if not os.path.exists(path):
        path = os.path.join(out, f"part-{p['index']:05d}")
    size = os.path.getsize(path)
    how = rng.choice(["truncate", "flip", "append"])
    if how == "truncate":
        os.truncate(path, size // 2)
    elif how == "append":
        with open(path, "ab") as f:
            f.write(b'"w1"\t7\n')
    elif size:
        with open(path, "r+b") as f:
            f.seek(size // 2)
            b = f.read(1)
            f.seek(size // 2)
            f.write(bytes([b[0] ^ 0x10]))
    return True


def rewrite_same_bytes(path: str) -> None:
    st = os.stat(path)
    shutil.copyfile(path, path + ".new")
    os.utime(path + ".new", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(path + ".new", path)


def same_output(a: str, b: str) -> bool:
    parts = sorted(f for f in os.listdir(a) if f.startswith("part-"))
    if parts != sorted(f for f in os.listdir(b) if f.startswith("part-")):
        return False
    return all(filecmp.cmp(os.path.join(a, p), os.path.join(b, p), shallow=False) for p in parts)


def one_round(rng: random.Random, inp: str, ref: str, out: str, mode: str,
              ref_seconds: float) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    kills = {"coordinator": 0, "worker": 0, "commit": 0}
    faults = {"parts damaged": 0, "inputs changed": 0}
    extra = ""
    for _ in range(10):
        env = dict(os.environ)
        commit_kill = extra == "--resume" and sum(kills.values()) < 3 and rng.random() < 0.25
        if commit_kill:
            env.update(FT_KILL_COMMIT=str(rng.randint(1, REDUCERS + 2)), FT_OUT=out)
        proc = subprocess.Popen(command(inp, out, mode, extra), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if commit_kill:
            kills["commit"] += 1
        elif sum(kills.values()) < 3:
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
            return {"ok": False, "kills": kills, "faults": faults, "why": err.decode()[-300:]}
        extra = "--resume"
        if not os.path.exists(os.path.join(out, "_temporary", "journal")):
            continue
        roll = rng.random()
        if roll < 0.1:
            rewrite_same_bytes(inp)
            faults["inputs changed"] += 1
            refused = subprocess.run(command(inp, out, mode, "--resume"), cwd=ROOT,
                                     capture_output=True, text=True, timeout=300)
            if refused.returncode != 1 or "changed" not in refused.stderr:
                return {"ok": False, "kills": kills, "faults": faults,
                        "why": "a rewritten input was not refused: " + refused.stderr[-300:]}
            extra = "--overwrite"
        elif roll < 0.3 and damage_a_part(rng, out):
            faults["parts damaged"] += 1
    with open(os.path.join(out, "_job.json")) as f:
        summary = json.load(f)
    committed = [(t["step"], t["kind"], t["index"]) for t in summary["tasks"]
                 if t["status"] == "committed"]
    return {"ok": same_output(out, ref), "kills": kills, "faults": faults,
            "runs": summary["runs"],
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
        subprocess.run(command(inp, ref, args.mode), cwd=ROOT, check=True)
        ref_seconds = time.time() - started
        print(f"reference run: {ref_seconds:.1f} s, input {args.size_mb} MB, mode {args.mode}")
        totals = {"rounds": 0, "identical": 0, "coordinator": 0, "worker": 0, "commit": 0,
                  "resumes": 0, "recovered": 0, "duplicates": 0, "parts damaged": 0,
                  "inputs changed": 0}
        for n in range(args.rounds):
            r = one_round(rng, inp, ref, os.path.join(tmp, "out"), args.mode, ref_seconds)
            totals["rounds"] += 1
            totals["identical"] += r["ok"]
            for kind, count in list(r["kills"].items()) + list(r["faults"].items()):
                totals[kind] += count
            totals["resumes"] += r.get("runs", 1) - 1
            totals["recovered"] += r.get("recovered", 0)
            totals["duplicates"] += r.get("duplicates", 0)
            print(f"round {n + 1}: identical={r['ok']} kills={r['kills']} "
                  f"faults={r['faults']} "
                  f"runs={r.get('runs')} recovered={r.get('recovered')} "
                  f"duplicate commits={r.get('duplicates')} {r.get('why', '')}", flush=True)
        print("summary:", json.dumps(totals))
        return 0 if totals["identical"] == totals["rounds"] and not totals["duplicates"] else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
