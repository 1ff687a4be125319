"""TeraValidate: check that TeraSort's output is globally sorted, and checksum it.

Computes: whether the concatenation of the input files (in input order) is ordered by the
10-character record key, how many records there are, and an order-independent checksum of
them (so it can be compared with the checksum of TeraGen's output).

Input: TeraSort's output directory (``part-*``; ``_SUCCESS``/``_job.json`` are skipped because
their names start with ``_``).
Output (one part file, ``REDUCERS = 1``, json protocol), in this order::

    "records"   N                  number of records
    "checksum"  "0123456789abcdef" sum of zlib.crc32(record) mod 2**64, 16 hex digits
    "splits"    S                  map tasks (input splits) seen
    "errors"    [...]              problems found (at most MAX_ERRORS messages), [] if none
    "ok"        true | false       no errors

where ``record`` is a line without its newline, as UTF-8 bytes.

    python -m mapreduce run jobs/teravalidate.py tera-out/ -o tera-check --overwrite -q

Design (Hadoop's): each map task summarises its split -- first key, last key, record count,
checksum, and the order violations inside the split (``mapper`` / ``mapper_final``).  All
map tasks emit their summary under the *same* key, so the single reducer receives the
summaries in input order (for one key the engine delivers values in the order the mappers
emitted them over the input, whatever the split size or worker count), i.e. in file order
and, within a file, split order.  The reducer then checks the boundary between consecutive
non-empty splits (``last[i] <= first[i+1]``) -- so whole part files in the wrong order, as
well as misordered lines, are reported -- and sums counts and checksums.  Empty splits (an
empty part file, or a split holding no line start) summarise to count 0 and are skipped.

Records whose length is not ``RECORD_LENGTH`` (99 characters, TeraGen's record without
its newline) are reported as malformed, which catches truncated files; set
``RECORD_LENGTH = None`` in a subclass to validate other line data.
"""
from __future__ import annotations

import zlib

from mapreduce import Job

KEY_CHARS = 10
_M64 = (1 << 64) - 1


def record_checksum(line: str) -> int:
    """One record's share of the checksum (the line without its newline)."""
    return zlib.crc32(line.encode("utf-8", "surrogateescape"))


class TeraValidate(Job):
    REDUCERS = 1
    RECORD_LENGTH: int | None = 99
    MAX_ERRORS = 20

    def mapper_init(self):
        self._first = None
        self._last = None
        self._count = 0
        self._sum = 0
        self._errors: list[str] = []
        self._error_count = 0

    def _error(self, message: str) -> None:
        self._error_count += 1
        if len(self._errors) < self.MAX_ERRORS:
            self._errors.append(message)

    def mapper(self, _, line):
        key = line[:KEY_CHARS]
        if self._count == 0:
            self._first = key
        elif key < self._last:
            self._error(f"record {self._count + 1} of the split: key {key!r} sorts before "
                        f"the previous key {self._last!r}")
        if self.RECORD_LENGTH is not None and len(line) != self.RECORD_LENGTH:
            self._error(f"record {self._count + 1} of the split (key {key!r}) is "
                        f"{len(line)} characters long, not {self.RECORD_LENGTH}")
        self._last = key
        self._count += 1
        self._sum += record_checksum(line)
        # nothing to emit per record: the split's summary is emitted by mapper_final

    def mapper_final(self):
        yield "split", (self._first, self._last, self._count, self._sum & _M64,
                        self._error_count, self._errors)

    def reducer(self, _, summaries):
        records = 0
        checksum = 0
        errors: list[str] = []
        error_count = 0
        splits = 0
        prev_last = None
        prev_split = None
        for i, (first, last, count, total, n_err, errs) in enumerate(summaries):
            splits += 1
            for e in errs:
                if len(errors) < self.MAX_ERRORS:
                    errors.append(f"split {i}: {e}")
            error_count += n_err
            if count == 0:
                continue
            if prev_last is not None and first < prev_last:
                error_count += 1
                if len(errors) < self.MAX_ERRORS:
                    errors.append(f"split {i} starts with key {first!r}, which sorts before "
                                  f"the last key {prev_last!r} of split {prev_split}")
            prev_last, prev_split = last, i
            records += count
            checksum = (checksum + total) & _M64
        if error_count > len(errors):
            errors.append(f"... {error_count - len(errors)} more errors")
        yield "records", records
        yield "checksum", f"{checksum:016x}"
        yield "splits", splits
        yield "errors", errors
        yield "ok", error_count == 0


if __name__ == "__main__":
    TeraValidate.run()
