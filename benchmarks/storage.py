"""Word count of 256 MB read from a loopback S3 server versus the same file on local disk.

    python benchmarks/storage.py [--repeat 2] [--size-mb 256]

A benchmark, not a test (docs/storage.md quotes its numbers).  It starts moto's S3 server
(``moto[server]``, from the test extra) on 127.0.0.1 as a separate process, uploads the
Zipf text that ``benchmarks/ab.py`` uses (``benchmarks/datagen.py``), and runs
``benchmarks/jobs/wc_split.py`` (WordCountSplit, 2 workers) alternately over the local file
and over ``s3://bench/zipf.txt`` (local output), then once more with the output in S3 too.
Each run's wall time is printed; the outputs are checked to be byte-identical; the table
gives the medians and the S3/local ratio.  The S3 side pays for HTTP on loopback and for
moto, a Python server, answering every ranged GET: a real store serves them from many
machines, so this bounds the client's own overhead from above.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
AWS_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digest_local(out: str) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(out)):
        if name.startswith("part-"):
            with open(os.path.join(out, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--size-mb", type=int, default=256)
    args = ap.parse_args()

    import datagen
    import s3fs

    data = os.path.join(HERE, "data")
    os.makedirs(data, exist_ok=True)
    path = os.path.join(data, f"ab-zipf-{args.size_mb}MB.txt")
    datagen.zipf_text(path, args.size_mb << 20, seed=1)

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=dict(os.environ, **AWS_ENV))
    tmp = tempfile.mkdtemp(prefix="storage-bench-")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("moto server did not start")
                time.sleep(0.1)
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="bench", secret="bench")
        fs.mkdir("bench")
        started = time.monotonic()
        fs.put_file(path, "s3://bench/zipf.txt")
        print(f"uploaded {args.size_mb} MB in {time.monotonic() - started:.1f} s")

        env = dict(os.environ, **AWS_ENV, PYTHONPATH=REPO)
        job = os.path.join(HERE, "jobs", "wc_split.py")

        def run(source: str, out: str) -> tuple[float, str]:
            argv = [sys.executable, "-m", "mapreduce", "run", job, source, "-o", out,
                    "--workers", "2", "-q", "--job", "WordCountSplit",
                    "--work-dir", os.path.join(tmp, "work"),
                    "--storage-option", f"endpoint_url={endpoint}"]
            t0 = time.monotonic()
            subprocess.run(argv, cwd=REPO, env=env, check=True)
            wall = time.monotonic() - t0
            if out.startswith("s3://"):
                fs.invalidate_cache()
                h = hashlib.sha256()
                for p in sorted(fs.ls(out)):
                    if p.rsplit("/", 1)[1].startswith("part-"):
                        h.update(fs.cat_file(p))
                digest = h.hexdigest()
                fs.rm(out, recursive=True)
            else:
                digest = _digest_local(out)
                shutil.rmtree(out)
            return wall, digest

        times: dict[str, list[float]] = {"local": [], "s3 input": [], "s3 in+out": []}
        digests = set()
        for i in range(args.repeat):
            order = ["local", "s3 input"] if i % 2 == 0 else ["s3 input", "local"]
            for what in order:
                src = path if what == "local" else "s3://bench/zipf.txt"
                wall, digest = run(src, os.path.join(tmp, "out"))
                times[what].append(wall)
                digests.add(digest)
                print(f"{what:10s} run {i + 1}: {wall:7.2f} s", flush=True)
        wall, digest = run("s3://bench/zipf.txt", "s3://bench/out")
        times["s3 in+out"].append(wall)
        digests.add(digest)
        print(f"{'s3 in+out':10s} run 1: {wall:7.2f} s", flush=True)
        if len(digests) != 1:
            raise SystemExit("outputs differ between local and S3 runs")
        base = statistics.median(times["local"])
        print(f"\n{'input':12s} {'median s':>9s} {'vs local':>9s}")
        for what, walls in times.items():
            m = statistics.median(walls)
            print(f"{what:12s} {m:9.2f} {m / base:8.2f}x")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
