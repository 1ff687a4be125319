"""Word-count baselines the benchmark runs next to our jobs, each as its own process.

    python benchmarks/baselines.py counter INPUT OUT       # one process, collections.Counter
    python benchmarks/baselines.py pool INPUT OUT [-w 2]    # multiprocessing.Pool, byte ranges
    python benchmarks/baselines.py pool-files DIR OUT [-w 2]  # Pool, one file per job
    python benchmarks/baselines.py dask INPUT OUT [-w 2]    # only if dask is importable
    python benchmarks/baselines.py pyspark INPUT OUT [-w 2] # only if pyspark is importable

Every baseline tokenizes exactly like ``benchmarks/jobs/wc_split.py`` (``line.split()`` on
each line) and writes ``word TAB count`` lines sorted by word to ``OUT``.  (GNU
``tr | sort | uniq -c`` and mrjob are run by ``run.py`` directly.)

The Pool baseline is the hand-written program our framework should be compared with: the
parent cuts the file into ``4 * workers`` line-aligned byte ranges (a range starts after the
first newline at or after its nominal start, as our splits do), each worker reads its range
in one ``read``, decodes it, and counts ``line.split()`` of every line into a Counter, which
it returns pickled; the parent sums the Counters.

``pool-files`` is the same program for a directory of many small files (plain, ``.gz``,
``.bz2``): the parent lists the files (sorted walk), the workers take them 16 at a time
(``imap_unordered`` with a chunk size), open each through gzip/bz2 by suffix and return one
Counter per chunk of files.
"""
from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import subprocess
import sys


def write_counts(counts: dict, out: str) -> None:
    with open(out, "w", encoding="utf-8") as f:
        for word in sorted(counts):
            f.write(f"{word}\t{counts[word]}\n")


def count_counter(path: str) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            counts.update(line.split())
    return counts


def line_aligned_ranges(path: str, pieces: int) -> list[tuple[int, int]]:
    """``pieces`` byte ranges of ``path``, each starting at a line start."""
    size = os.path.getsize(path)
    starts = [0]
    with open(path, "rb") as f:
        for i in range(1, pieces):
            nominal = i * size // pieces
            f.seek(nominal - 1)
            f.readline()                     # to the end of the line holding byte nominal-1
            starts.append(max(f.tell(), starts[-1]))
    starts.append(size)
    return [(a, b) for a, b in zip(starts, starts[1:]) if b > a]


def _count_range(job: tuple[str, int, int]) -> collections.Counter:
    path, start, end = job
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(end - start).decode("utf-8")
    counts: collections.Counter = collections.Counter()
    for line in text.split("\n"):
        counts.update(line.split())
    return counts


def count_pool(path: str, workers: int) -> collections.Counter:
    ranges = line_aligned_ranges(path, 4 * workers)
    total: collections.Counter = collections.Counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for counts in pool.imap_unordered(_count_range, [(path, a, b) for a, b in ranges]):
            total.update(counts)
    return total


def _files_under(directory: str) -> list[str]:
    return sorted(os.path.join(root, name) for root, _dirs, names in os.walk(directory)
                  for name in names if not name.startswith(("_", ".")))


def _count_files(paths: list[str]) -> collections.Counter:
    import bz2
    import gzip

    counts: collections.Counter = collections.Counter()
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else bz2.open if path.endswith(".bz2") \
            else open
        with opener(path, "rb") as f:
            text = f.read().decode("utf-8")
        for line in text.split("\n"):
            counts.update(line.split())
    return counts


def count_pool_files(directory: str, workers: int) -> collections.Counter:
    files = _files_under(directory)
    chunks = [files[i:i + 16] for i in range(0, len(files), 16)]
    total: collections.Counter = collections.Counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for counts in pool.imap_unordered(_count_files, chunks):
            total.update(counts)
    return total


def count_dask(path: str, workers: int) -> dict:
    import dask.bag as db  # noqa: only when installed
    bag = db.read_text(path, blocksize="32MiB").map(str.split).flatten()
    return dict(bag.frequencies().compute(scheduler="processes", num_workers=workers))


def count_pyspark(path: str, workers: int) -> dict:
    from pyspark.sql import SparkSession  # noqa: only when installed
    spark = (SparkSession.builder.master(f"local[{workers}]").appName("wc-baseline")
             .getOrCreate())
    try:
        rdd = spark.sparkContext.textFile(path)
        pairs = rdd.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
        return dict(pairs.collect())
    finally:
        spark.stop()
        _reap_jvm()


def _reap_jvm() -> None:
    """Make the JVM exit now and wait for it.  PySpark leaves it to notice that the driver
    went away; unwaited, its CPU time would be missing from this program's (the benchmark
    counts a program's own CPU plus that of the children it waited for)."""
    from pyspark import SparkContext  # noqa: only when installed
    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if proc is None:
        return
    gateway.shutdown()
    SparkContext._gateway = SparkContext._jvm = None  # a later session starts a new JVM
    if proc.stdin is not None:
        proc.stdin.close()  # the gateway server exits at EOF on its stdin
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("method", choices=["counter", "pool", "pool-files", "dask",
                                                 "pyspark"])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("-w", "--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.method == "counter":
        counts = count_counter(args.input)
    elif args.method == "pool":
        counts = count_pool(args.input, args.workers)
    elif args.method == "pool-files":
        counts = count_pool_files(args.input, args.workers)
    elif args.method == "dask":
        counts = count_dask(args.input, args.workers)
    else:
        counts = count_pyspark(args.input, args.workers)
    write_counts(counts, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
