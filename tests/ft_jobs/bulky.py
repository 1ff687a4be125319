"""A job whose intermediate data is about as large as its input (no combiner).

The mapper emits every line whole, keyed by its first word; the reducer outputs, per key, how
many lines had it and a CRC-32 of those lines in the order it received them (which the engine
keeps deterministic: map-task order, then emission order).  Used where the test needs the
shuffle to take disk space, e.g. to fill a small file system.
"""
import zlib

from mapreduce import Job


class Bulky(Job):
    def mapper(self, _, line):
        yield line.split(" ", 1)[0], line

    def reducer(self, key, lines):
        count, crc = 0, 0
        for line in lines:
            count += 1
            crc = zlib.crc32(line.encode("utf-8"), crc)
        yield key, [count, crc]
