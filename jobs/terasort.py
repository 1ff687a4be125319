"""TeraSort: sort text records by their first 10 characters into one globally ordered output.

Computes: the input lines in order of their 10-character key (``line[:10]``), ties kept in
input order, such that ``cat OUT/part-*`` (in name order) is one sorted file.  The result
equals, byte for byte, GNU ``LC_ALL=C sort -s -k1.1,1.10 INPUT...`` over the same files in
the same order, for keys without blanks (TeraGen's keys are '!'..'~').

Input: text lines, normally TeraGen's 100-byte records (``jobs/teragen.py``).
Output (``OUTPUT_PROTOCOL = "raw_value"``): the lines themselves, one per line, key dropped.

    python -m mapreduce run jobs/terasort.py tera-in/ -o tera-out --reducers 4 -q

How the total order works: ``prepare(inputs)`` runs once in the coordinator and samples up
to ``SAMPLE_SIZE`` (100k) keys: it reads the line starting at or after each of
``SAMPLE_SIZE`` evenly spaced byte offsets across all the input files (``os.pread``, a line
is counted once even if several offsets land in it; a ``.gz``/``.bz2`` file, which cannot be
entered in the middle, contributes its first lines, in proportion to its compressed size).
The sample depends only on the input bytes, so it is deterministic.  It returns
``{"samples": "\\n".join(sorted keys), "split_points": [...]}``: the sorted sample (one
string, cheap to ship to every task) and the ``REDUCERS - 1`` split points for the default
reducer count.  ``prepare`` does not see ``--reducers``, so ``total_order_split_points(n)``
-- the engine's built-in total-order partitioner (Hadoop's ``TotalOrderPartitioner``),
called once per map task -- derives the split points for the actual number of partitions
``n`` from the sample: point ``i`` (1 <= i < n) is ``sample[i * len(sample) // n]``, and the
engine sends a key to ``bisect_right(points, key)`` by comparing encoded key bytes, with no
Python call per record.  Equal keys always land in the same partition, whose reducer sees
them in input order (the shuffle is stable), hence ``sort -s``.  The reducer is the
engine's ``identity_reducer`` (Hadoop's TeraSort uses ``IdentityReducer``), which it does
not call: each merged key group goes straight to the part file.

Timing (2 workers, 2 cores, ``--sort-buffer 64MB``): 1 million rows (100 MB) in about 3.5 s,
10 million rows (1 GB) in 22 to 30 s depending on the machine's day, 2 to 2.5 times GNU sort
(``docs/performance.md``).
"""
from __future__ import annotations

import os

from mapreduce import Job, identity_reducer

KEY_CHARS = 10
_READ = 256          # bytes read per sampled offset (more when a line is longer)


def _compression(path: str):
    if path.endswith(".gz"):
        import gzip
        return gzip.open
    if path.endswith(".bz2"):
        import bz2
        return bz2.open
    return None


def _key_of(raw: bytes) -> str:
    """The sort key of one raw line (no newline), decoded as the engine decodes input."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw[:4 * KEY_CHARS].decode("utf-8", "replace")[:KEY_CHARS]


def _line_at(fd: int, offset: int, size: int) -> tuple[int, bytes] | None:
    """(start, line) of the first line starting at or after ``offset``; None past the end."""
    if offset == 0:
        start = 0
    else:
        pos = offset - 1          # the line starts at offset if the byte before is '\n'
        while True:
            chunk = os.pread(fd, _READ, pos)
            if not chunk:
                return None
            nl = chunk.find(b"\n")
            if nl >= 0:
                start = pos + nl + 1
                break
            pos += len(chunk)
        # Usually the chunk already holds the key too: one read per sample, not two.
        rest = chunk[nl + 1:]
        end = rest.find(b"\n")
        if end >= 0:
            return (start, rest[:end]) if start < size else None
        if len(rest) >= 4 * KEY_CHARS:
            return start, rest
    if start >= size:
        return None
    parts = []
    pos = start
    while True:
        chunk = os.pread(fd, _READ, pos)
        if not chunk:
            break
        nl = chunk.find(b"\n")
        if nl >= 0:
            parts.append(chunk[:nl])
            break
        parts.append(chunk)
        pos += len(chunk)
        if pos - start >= 4 * KEY_CHARS:  # enough for the key
            break
    return start, b"".join(parts)


def sample_keys(inputs: list[str], sample_size: int) -> list[str]:
    """Sorted keys of lines at ``sample_size`` evenly spaced byte offsets over ``inputs``."""
    sizes = [os.path.getsize(p) for p in inputs]
    total = sum(sizes)
    keys: list[str] = []
    if total == 0 or sample_size <= 0:
        return keys
    base = 0
    for path, size in zip(inputs, sizes):
        # the offsets (global g = k * total // sample_size) falling inside this file
        first_k = -(-base * sample_size // total)
        ks = range(first_k, sample_size)
        opener = _compression(path)
        if opener is not None:
            wanted = sum(1 for k in ks if k * total // sample_size < base + size)
            with opener(path, "rb") as f:
                for _, raw in zip(range(wanted), f):
                    keys.append(_key_of(raw.rstrip(b"\n")))
        elif size:
            seen = set()
            fd = os.open(path, os.O_RDONLY)
            try:
                for k in ks:
                    off = k * total // sample_size - base
                    if off >= size:
                        break
                    found = _line_at(fd, off, size)
                    if found is None:
                        break
                    start, raw = found
                    if start not in seen:
                        seen.add(start)
                        keys.append(_key_of(raw))
            finally:
                os.close(fd)
        base += size
    keys.sort()
    return keys


def split_points(samples: list[str], n: int) -> list[str]:
    """``n - 1`` keys cutting the sorted sample into ``n`` equal parts (empty sample: none)."""
    if not samples or n <= 1:
        return []
    return [samples[i * len(samples) // n] for i in range(1, n)]


class TeraSort(Job):
    REDUCERS = 4
    SAMPLE_SIZE = 100_000
    OUTPUT_PROTOCOL = "raw_value"

    def prepare(self, inputs):
        samples = sample_keys(inputs, self.SAMPLE_SIZE)
        return {"samples": "\n".join(samples),
                "sample_count": len(samples),
                "split_points": split_points(samples, self.REDUCERS)}

    def total_order_split_points(self, num_partitions):
        side = self.side_data
        if num_partitions == self.REDUCERS and "split_points" in side:
            return list(side["split_points"])
        text = side.get("samples", "")
        samples = text.split("\n") if side.get("sample_count") else []
        return split_points(samples, num_partitions)

    def mapper(self, _, line):
        yield line[:KEY_CHARS], line

    reducer = identity_reducer   # each line out under its key; the engine does not call it


if __name__ == "__main__":
    TeraSort.run()
