"""Word count whose first reducer damages one committed map output before reading any.

Same output as ``jobs/wordcount.py``.  The damage is driven by environment variables so that
the fault-tolerance tests can pick it, and happens at most once per marker file:

* ``FT_CORRUPT_MODE``: ``flip`` (one byte of the map output's partition index, which every
  reader checks when it opens the file), ``flip-data`` (one byte inside the data blocks of
  the last partition), ``truncate`` (cut the file to half its size) or ``delete``.
* ``FT_CORRUPT_GLOB``: glob of the committed map outputs (``OUT/_temporary/step-0/map-*.out``).
* ``FT_CORRUPT_INDEX``: which of the sorted matches to damage (default 0), or ``all``.
* ``FT_CORRUPT_MARKER``: created exclusively by the one reducer that does the damage; it
  receives the damaged file's path (so the test knows which map task must be re-run).

The damage happens in ``reducer_init``, i.e. in a reduce task after every map task has
committed and before that reducer opens any map output ("before the reduce phase reads it").
"""
import glob
import os
import re

from mapreduce import Job
from mapreduce.runfile import RunReader

WORD_RE = re.compile(r"[\w']+")


def damage(path: str, mode: str) -> None:
    size = os.path.getsize(path)
    if mode == "delete":
        os.remove(path)
        return
    if mode == "truncate":
        os.truncate(path, size // 2)
        return
    with RunReader(path) as reader:
        last = reader.num_partitions - 1
        info = reader.partition_info(last)
    if mode == "flip":
        offset = info.end + 4  # inside the index (after the last data block), CRC-covered
    elif mode == "flip-data":
        offset = (info.offset + info.end) // 2  # inside the last partition's blocks
    else:
        raise ValueError(f"unknown FT_CORRUPT_MODE {mode!r}")
    assert 0 <= offset < size, (offset, size)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))
        f.flush()
        os.fsync(f.fileno())


class CorruptMapOutput(Job):
    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer_init(self):
        mode = os.environ.get("FT_CORRUPT_MODE")
        marker = os.environ.get("FT_CORRUPT_MARKER")
        if not mode or not marker:
            return
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return  # another reducer (or an earlier attempt) did it already
        try:
            victims = sorted(glob.glob(os.environ["FT_CORRUPT_GLOB"]))
            which = os.environ.get("FT_CORRUPT_INDEX", "0")
            if which != "all":
                victims = [victims[int(which) % len(victims)]]
            for victim in victims:
                damage(victim, mode)
            os.write(fd, "\n".join(victims).encode("utf-8"))
        finally:
            os.close(fd)

    def reducer(self, word, counts):
        yield word, sum(counts)
