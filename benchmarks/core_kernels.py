"""What each kernel of the C core costs next to its pure-Python twin, per record.

    python benchmarks/core_kernels.py [--records 200000] [--repeat 5]

Runs both implementations in one process on the same TeraSort-shaped records (10-byte str
keys, 100-byte msgpack values), alternately, and prints the best of ``--repeat`` runs in ns
per record (or per key).  Needs the C core built (``pip install -e .``).  Rows:

* ``encode_key str`` / ``encode_key tuple``: ``codec.encode_key`` on str keys and on
  ``(str, int, float)`` tuples;
* ``decode_key str``: the reduce loop's once-per-group decode;
* ``sort records``: a stable sort of one spill partition by key bytes (``list.sort`` with
  ``itemgetter(0)`` against ``_core.sort_records``; not wired yet, see docs/core.md);
* ``pack blocks``: records to run-file block payloads (``RunWriter``'s per-record work,
  without LZ4 and the file);
* ``unpack blocks``: block payloads back to ``(key, value)`` records;
* ``merge 8 runs``: ``merge_blocks`` over 8 sorted runs of 2,400-record blocks;
* ``decode values``: the reduce loop's batched value decoding (``decoded_records``).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from itertools import chain
from operator import itemgetter
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import msgpack  # noqa: E402

from mapreduce import codec, shuffle  # noqa: E402

try:
    from mapreduce import _core  # noqa: E402
except ImportError:
    sys.exit("the C core is not built: pip install -e . (or python setup.py build_ext --inplace)")

_core.set_reference(codec.py_encode_key, codec.py_decode_key)
BLOCK = 2400  # TeraSort records in a 256 KiB block


def _py_pack(records):
    flat = list(chain.from_iterable(records))
    return [msgpack.packb(flat[i:i + 2 * BLOCK], use_bin_type=True)
            for i in range(0, len(flat), 2 * BLOCK)]


def _c_pack(records):
    packer = _core.BlockPacker(1 << 40)
    out = []
    for i in range(0, len(records), BLOCK):
        packer.add_pairs(records[i:i + BLOCK])
        out.append(packer.flush()[0])
    return out


def _py_unpack(payloads):
    for data in payloads:
        it = iter(msgpack.unpackb(data, use_list=True))
        list(zip(it, it))


def _c_unpack(payloads):
    for data in payloads:
        _core.unpack_pairs(data, BLOCK)


def _runs(records, k):
    """k sorted runs of blocks whose records lie in memory in run order, as they do when
    read from a run file (sorting the originals would scatter them: a cache miss each)."""
    runs = [sorted(records[i::k], key=itemgetter(0)) for i in range(k)]
    runs = [msgpack.unpackb(msgpack.packb(list(chain.from_iterable(run)), use_bin_type=True))
            for run in runs]
    runs = [list(zip(flat[::2], flat[1::2])) for flat in runs]
    return [[run[j:j + BLOCK] for j in range(0, len(run), BLOCK)] for run in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rnd = random.Random(1)
    keys = ["".join(chr(rnd.randint(33, 126)) for _ in range(10)) for _ in range(args.records)]
    tuples = [(k, i, i / 7) for i, k in enumerate(keys)]
    records = [(codec.py_encode_key(k), codec.encode_value(k + " " + "x" * 88)) for k in keys]
    encoded = [r[0] for r in records]
    payloads = _c_pack(records)
    runs = _runs(records, 8)
    batches = [records[i:i + BLOCK] for i in range(0, len(records), BLOCK)]

    def merge(impl):
        return lambda: sum(map(len, impl([iter(r) for r in runs], False)))

    def decode(native):
        def run():
            old = shuffle.native
            shuffle.native = native
            try:
                for _ in shuffle.decoded_records(iter(batches), False):
                    pass
            finally:
                shuffle.native = old
        return run

    rows: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("encode_key str", lambda: list(map(codec.py_encode_key, keys)),
         lambda: list(map(_core.encode_key, keys))),
        ("encode_key tuple", lambda: list(map(codec.py_encode_key, tuples)),
         lambda: list(map(_core.encode_key, tuples))),
        ("decode_key str", lambda: list(map(codec.py_decode_key, encoded)),
         lambda: list(map(_core.decode_key, encoded))),
        ("sort records", lambda: list(records).sort(key=itemgetter(0)),
         lambda: _core.sort_records(list(records), False)),
        ("pack blocks", lambda: _py_pack(records), lambda: _c_pack(records)),
        ("unpack blocks", lambda: _py_unpack(payloads), lambda: _c_unpack(payloads)),
        ("merge 8 runs", merge(shuffle.py_merge_blocks), merge(_core.Merge)),
        ("decode values", decode(None), decode(_core)),
    ]
    print(f"{args.records:,} TeraSort-shaped records; Python {sys.version.split()[0]}; "
          f"best of {args.repeat}, implementations alternating; ns per record")
    print(f"{'kernel':20s} {'python':>8s} {'c':>8s} {'c/python':>9s}")
    for name, py, c in rows:
        best = {"python": float("inf"), "c": float("inf")}
        for _ in range(args.repeat):
            for label, fn in (("python", py), ("c", c)):
                start = time.perf_counter()
                fn()
                best[label] = min(best[label], time.perf_counter() - start)
        p, q = (best[x] / args.records * 1e9 for x in ("python", "c"))
        print(f"{name:20s} {p:8.0f} {q:8.0f} {q / p:8.2f}x")


if __name__ == "__main__":
    main()
