"""What TeraSort's identity reducer, total-order partitioner and C sort save, per record.

Whole TeraSort runs (``run.py --only terasort``) on a shared machine swing by more than
these savings, so this measures the kernel pieces they change, in one process, on the same
in-memory TeraSort records, the variants alternating, CPU time (``time.process_time``)::

    python benchmarks/identity_paths.py [--records 300000] [--repeat 5]

On a loaded machine CPU times swing too; instruction counts do not.  Each row alone, under
callgrind (the difference between two rows, divided by ``--records``, is the saving)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python benchmarks/identity_paths.py --records 50000 --only "reduce: identity_reducer"

Rows (best of ``--repeat``, ns per record):

* map side, ``SortBuffer.extend`` over the TeraSort mapper's pairs plus the spill's sort
  (into a sink that keeps nothing), partitioned by a ``partitioner`` hook doing
  ``bisect_right`` on str keys (jobs/terasort.py before issue 18) against
  ``total_order_split_points`` (bisect over encoded bytes in the buffer's loop), each with
  ``list.sort`` and with the C core's ``sort_records``;
* map side as a map task runs it (issue 18, the C sort buffer): the same, with the total
  order, into a run file (``DiskMapSink``, one spill), ``kernel.SortBuffer`` against
  ``kernel.NativeSortBuffer`` (the C sort buffer);
* reduce side, ``run_reduce`` over the sorted records into a ``raw_value`` part file,
  with a hand-written identity reducer against ``identity_reducer``, and that with the
  part file's ``write_raw_lines`` (the lines made in C, issue 18's C sort buffer round).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from bisect import bisect_right
from types import SimpleNamespace
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from mapreduce import kernel  # noqa: E402
from mapreduce.codec import encode_key, encode_value  # noqa: E402
from mapreduce.core import describe, native  # noqa: E402
from mapreduce.diskshuffle import DiskMapSink  # noqa: E402
from mapreduce.job import Job, Step, identity_reducer  # noqa: E402
from mapreduce.output import TextPartWriter  # noqa: E402

PARTITIONS = 4


class _NullSink:
    counters: dict = {}

    def spill(self, parts):
        pass

    def finish(self):
        return None


def lines(n: int) -> list[str]:
    rng = random.Random(18)
    chars = [chr(c) for c in range(33, 127)]
    return ["".join(rng.choices(chars, k=10)) + " " + "x" * 89 for _ in range(n)]


def mapper(_, line):
    yield line[:10], line


def map_side(records: list[str], points: list[str], hook: bool, sort) -> Callable[[], None]:
    encoded = [encode_key(p) for p in points]

    def partitioner(key, n):  # what jobs/terasort.py did per record
        return bisect_right(points, key)

    def run() -> None:
        kernel.sort_records = sort
        buf = kernel.SortBuffer(Step(), PARTITIONS, 1 << 40, False, _NullSink(), {},
                                partitioner if hook else None, None if hook else encoded)
        extend = buf.extend
        for line in records:
            extend(mapper(None, line))
        buf.finish()
    return run


def map_to_disk(records: list[str], points: list[str], cls, path: str) -> Callable[[], None]:
    """The map side as TeraSort's map task runs it: the total order, one spill written to
    a run file (DiskMapSink), with the Python buffer (C sort_records) or the C buffer."""
    encoded = [encode_key(p) for p in points]

    def run() -> None:
        kernel.sort_records = native.sort_records
        prefix = os.path.join(path, cls.__name__) + os.sep
        sink = DiskMapSink(prefix, PARTITIONS, 16, False)
        buf = cls(Step(), PARTITIONS, 1 << 40, False, sink, {}, None, encoded)
        extend = buf.extend
        for line in records:
            extend(mapper(None, line))
        os.remove(buf.finish().location)
    return run


def explicit_reducer(key, values):
    for value in values:
        yield key, value


def reduce_side(batches: list[list[tuple[bytes, bytes]]], reducer, path: str,
                raw_lines: bool = False) -> Callable[[], None]:
    def run() -> None:
        writer = TextPartWriter(path, "raw_value")
        # raw_lines: the writer offers write_raw_lines, as a task's part file does, so the
        # identity reducer's lines are made in C (_core.raw_value_lines)
        sink = SimpleNamespace(write=writer.write, write_values=writer.write_values,
                               write_raw_lines=writer.write_raw_lines if raw_lines else None,
                               finish=lambda: (path, writer.close()))
        kernel.run_reduce(Job(), Step(reducer=reducer), iter(batches), sink,
                          partition=0, sort_values=False)
    return run


def best(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", metavar="ROW",
                        help="run only the row named ROW (or the one whose name contains "
                             "it), once (for counting instructions under callgrind: see "
                             "docs/performance.md)")
    args = parser.parse_args(argv)
    records = lines(args.records)
    keys = sorted(line[:10] for line in records[::100])
    points = [keys[i * len(keys) // PARTITIONS] for i in range(1, PARTITIONS)]
    pairs = sorted(((encode_key(line[:10]), encode_value(line)) for line in records),
                   key=lambda r: r[0])
    batches = [pairs[i:i + 4096] for i in range(0, len(pairs), 4096)]
    py_sort = kernel.py_sort_records
    c_sort = native.sort_records if native is not None else None
    out = tempfile.mkdtemp(prefix="identity-bench-")
    rows = {
        "map: partitioner hook, list.sort": map_side(records, points, True, py_sort),
        "map: total_order_split_points, list.sort": map_side(records, points, False, py_sort),
    }
    if c_sort is not None:
        rows["map: partitioner hook, C sort_records"] = map_side(records, points, True, c_sort)
        rows["map: total_order_split_points, C sort_records"] = map_side(records, points,
                                                                        False, c_sort)
    if c_sort is not None:
        rows["map to disk: SortBuffer, C sort_records"] = map_to_disk(
            records, points, kernel.SortBuffer, out)
        rows["map to disk: NativeSortBuffer (C sort buffer)"] = map_to_disk(
            records, points, kernel.NativeSortBuffer, out)
    rows["reduce: explicit identity reducer"] = reduce_side(
        batches, explicit_reducer, os.path.join(out, "a"))
    rows["reduce: identity_reducer"] = reduce_side(batches, identity_reducer,
                                                  os.path.join(out, "b"))
    if native is not None:
        rows["reduce: identity_reducer, C raw_value lines"] = reduce_side(
            batches, identity_reducer, os.path.join(out, "c"), raw_lines=True)
    if args.only:
        rows = ({name: fn for name, fn in rows.items() if args.only == name}
                or {name: fn for name, fn in rows.items() if args.only in name})
        if len(rows) != 1:
            parser.error(f"--only {args.only!r} must name exactly one row")
        args.repeat = 1
    results: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.repeat):  # the variants alternate: each round runs every row once
        for name, fn in rows.items():
            results[name].append(best(fn, 1))
    print(f"{args.records:,} TeraSort records, {PARTITIONS} partitions, best of "
          f"{args.repeat}, CPU time; {describe()}")
    for name, times in results.items():
        print(f"{name:<48} {min(times) / args.records * 1e9:8.0f} ns/record")
    same = True
    if not args.only:
        outputs = set()
        for name in os.listdir(out):
            if os.path.isfile(os.path.join(out, name)):
                with open(os.path.join(out, name), "rb") as f:
                    outputs.add(f.read())
        same = len(outputs) == 1
        print("reduce outputs byte-identical:", same)
    shutil.rmtree(out)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
