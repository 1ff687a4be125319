"""What one emitted ``(word, 1)`` pair costs: the bound on the plain word count job.

The plain word count's mapper yields one pair per token; the in-mapper job and the Pool
baseline call ``Counter.update(line.split())`` instead.  This measures, on the same lines in
one process, the per-token CPU cost of each layer, so the gap between the two jobs can be
split into what CPython itself charges and what the framework adds::

    python benchmarks/pair_cost.py [TEXT_FILE] [--mib 32]

Rows (each the best of ``--repeat`` runs, in ns per token):

* ``Counter.update(line.split())``: the Pool baseline's whole per-line work;
* ``for w in line.split(): pass``: splitting and iterating alone;
* ``consume mapper generator``: resuming the job's generator and unpacking each pair;
* ``generator + dict lookup + list append``: the least any grouping of values per key can
  cost in Python (what a combiner needs: every key's values, in order);
* ``CombiningBuffer.extend``: the framework's map-side path, spills and combiner included,
  called per line as a hand-written loop would;
* ``CombiningBuffer.map_records``: what ``run_map`` runs for a step with a combiner (the
  mapper call per line and its pairs, in C with the C core), spills and combiner included.

The framework's row minus the ``dict lookup + list append`` row is the framework's own
overhead; the latter minus ``Counter.update`` is the price of the pair-at-a-time API.

Timings on a shared machine move with its load, so ``--callgrind`` counts instructions
instead (needs valgrind; default 2 MiB of text): each row runs once in its own
``valgrind --tool=callgrind`` process, and the row's count minus that of a run that only
reads the lines, divided by the tokens, is its instructions per token -- the same number
on a busy machine as on a quiet one::

    python benchmarks/pair_cost.py --callgrind [--mib 2]
Defaults to the first 32 MiB of ``benchmarks/data/zipf-256MB.txt`` (made by ``run.py``).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import Counter
from itertools import repeat
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from mapreduce.core import describe  # noqa: E402
from mapreduce.job import Step  # noqa: E402
from mapreduce.kernel import CombiningBuffer  # noqa: E402


def mapper(_, line):
    for word in line.split():
        yield word, 1


def combiner(word, counts):
    yield word, sum(counts)


class _NullSink:
    counters: dict = {}

    def spill(self, parts) -> None:
        pass

    def finish(self) -> None:
        pass


def counter_update(lines: list[str]) -> None:
    counts: Counter = Counter()
    for line in lines:
        counts.update(line.split())


def split_only(lines: list[str]) -> None:
    for line in lines:
        for _ in line.split():
            pass


def consume(lines: list[str]) -> None:
    for line in lines:
        for _k, _v in mapper(None, line):
            pass


def dict_append(lines: list[str]) -> None:
    groups: dict = {}
    get = groups.get
    for line in lines:
        for k, v in mapper(None, line):
            group = get(k)
            if group is None:
                groups[k] = [v]
            else:
                group.append(v)


def framework(lines: list[str]) -> None:
    buf = CombiningBuffer(Step(combiner=combiner), 4, 64 << 20, False, _NullSink(), {})
    extend = buf.extend
    for line in lines:
        extend(mapper(None, line))
    buf.finish()


def framework_loop(lines: list[str]) -> None:
    buf = CombiningBuffer(Step(combiner=combiner), 4, 64 << 20, False, _NullSink(), {})
    buf.map_records(mapper, zip(repeat(None), lines))
    buf.finish()


ROWS: list[tuple[str, Callable[[list[str]], None]]] = [
    ("Counter.update(line.split())", counter_update),
    ("for w in line.split(): pass", split_only),
    ("consume mapper generator", consume),
    ("generator + dict lookup + list append", dict_append),
    ("CombiningBuffer.extend (with spills, combiner)", framework),
    ("CombiningBuffer.map_records (run_map's loop)", framework_loop),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("text", nargs="?",
                        default=os.path.join(HERE, "data", "zipf-256MB.txt"))
    parser.add_argument("--mib", type=int, default=None,
                        help="how much of the file to read (default 32, 2 with --callgrind)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions per token under valgrind instead of timing")
    parser.add_argument("--rows", default=None, help=argparse.SUPPRESS)  # one --callgrind run
    args = parser.parse_args()
    if args.mib is None:
        args.mib = 2 if args.callgrind else 32
    with open(args.text, encoding="utf-8") as f:
        lines = f.read(args.mib << 20).splitlines()
    tokens = sum(len(line.split()) for line in lines)
    if args.rows is not None:  # inside valgrind: run the chosen rows once, print nothing
        for i in filter(None, args.rows.split(",")):
            ROWS[int(i)][1](lines)
        return
    if args.callgrind:
        _callgrind(args, tokens)
        return
    print(f"{len(lines):,} lines, {tokens:,} tokens from {args.text}; "
          f"Python {sys.version.split()[0]}; best of {args.repeat}; {describe()}")
    for name, fn in ROWS:
        best = min(_timed(fn, lines) for _ in range(args.repeat))
        print(f"{name:50s} {best / tokens * 1e9:6.0f} ns/token")


def _instructions(args: argparse.Namespace, rows: str) -> int:
    """Instructions executed by this script running ``rows`` once under callgrind."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           sys.executable, os.path.abspath(__file__), args.text, "--mib", str(args.mib),
           "--rows", rows]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"pair_cost.py: valgrind failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def _callgrind(args: argparse.Namespace, tokens: int) -> None:
    print(f"{tokens:,} tokens from {args.text} ({args.mib} MiB); Python "
          f"{sys.version.split()[0]}; instructions per token (callgrind); {describe()}")
    base = _instructions(args, "")
    for i, (name, _fn) in enumerate(ROWS):
        print(f"{name:50s} {(_instructions(args, str(i)) - base) / tokens:6.0f} Ir/token",
              flush=True)


def _timed(fn: Callable[[list[str]], None], lines: list[str]) -> float:
    start = time.perf_counter()
    fn(lines)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
