"""The reduce loop's grouping by key: ``groupby`` over ``decoded_records`` against C's GroupBy.

    python benchmarks/reduce_loop.py [--records 1000000] [--per-key 1 10 1000] [--repeat 5]
    python benchmarks/reduce_loop.py --records 100000 --per-key 1 --only new   # for callgrind

Builds ``--records`` merged records (encoded ``str`` keys, ``--per-key`` records per key,
1-byte msgpack int values: a word count's reduce input) in batches of 2,400, and runs the
reduce loop over them with a reducer as cheap as it gets (``sum`` of the values; the key
decoded once per group, as ``run_reduce`` does):

* ``old``: what run_reduce did before ``_core.GroupBy`` --
  ``groupby(decoded_records(batches), itemgetter(0))``, ``map(itemgetter(1), group)``;
* ``new``: ``_core.GroupBy`` (``shuffle.grouped_values`` with the C core);
* ``twin``: ``shuffle.py_grouped_values``, the Python core's path now (``old`` plus a
  generator step per group), with the C core's value decoding.

The variants run alternately in one process (the machine's load hits them alike); the
table shows the best of ``--repeat`` runs in CPU (process) ns per record.  ``--only`` runs
one variant once (``none``: only the set-up), for ``valgrind --tool=callgrind``: the
difference in instructions between a variant and ``none`` at the same N, divided by N, is
the loop's cost per record.  Needs the C core built.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from itertools import groupby
from operator import itemgetter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from mapreduce import codec, shuffle  # noqa: E402
from mapreduce.core import native  # noqa: E402

if native is None:
    sys.exit("the C core is not active: pip install -e . (and leave MAPREDUCE_CORE unset)")

BATCH = 2400
_KEY, _VALUE = itemgetter(0), itemgetter(1)


def make_batches(records: int, per_key: int) -> list[list[tuple[bytes, bytes]]]:
    values = [codec.encode_value(i % 100) for i in range(100)]
    recs = []
    for i in range(records):
        if i % per_key == 0:
            kb = codec.encode_key(f"key{i // per_key:09d}")
        recs.append((kb, values[i % 100]))
    return [recs[i:i + BATCH] for i in range(0, len(recs), BATCH)]


def old(batches) -> int:
    decode_key, total = codec.decode_key, 0
    for kb, group in groupby(shuffle.decoded_records(iter(batches), False), _KEY):
        decode_key(kb)
        total += sum(map(_VALUE, group))
    return total


def new(batches) -> int:
    decode_key, total = codec.decode_key, 0
    for kb, values in native.GroupBy(iter(batches), shuffle._unpack_values,
                                     shuffle.DECODE_BATCH, shuffle.DECODE_BATCH_BYTES):
        decode_key(kb)
        total += sum(values)
    return total


def twin(batches) -> int:
    decode_key, total = codec.decode_key, 0
    for kb, values in shuffle.py_grouped_values(iter(batches), False):
        decode_key(kb)
        total += sum(values)
    return total


VARIANTS = {"old": old, "new": new, "twin": twin}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--per-key", type=int, nargs="+", default=[1, 10, 1000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=[*VARIANTS, "none"])
    args = ap.parse_args()
    if args.only:
        batches = make_batches(args.records, args.per_key[0])
        if args.only != "none":
            VARIANTS[args.only](batches)
        return
    print(f"{args.records:,} records, CPU ns per record, best of {args.repeat}")
    print("| values per key | old (groupby) | new (C GroupBy) | twin (Python core path) "
          "| new / old |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for per_key in args.per_key:
        batches = make_batches(args.records, per_key)
        best = dict.fromkeys(VARIANTS, float("inf"))
        want = None
        for _ in range(args.repeat):
            for name, fn in VARIANTS.items():
                t0 = time.process_time()
                got = fn(batches)
                best[name] = min(best[name], time.process_time() - t0)
                if want is None:
                    want = got
                assert got == want, (name, got, want)
        ns = {k: v / args.records * 1e9 for k, v in best.items()}
        print(f"| {per_key:,} | {ns['old']:.0f} | {ns['new']:.0f} | {ns['twin']:.0f} | "
              f"{ns['new'] / ns['old']:.2f} |")
        del batches


if __name__ == "__main__":
    main()
