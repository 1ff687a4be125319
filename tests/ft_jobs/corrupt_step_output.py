"""Two-step job whose second step damages one of the first step's committed outputs once.

Step 0 counts words (like ``jobs/wordcount.py``); step 1 sums the counts per word length,
so the output is ``(length, occurrences of words of that length)``.  With
``FT_CORRUPT_GLOB`` (the step outputs, ``WORK/step-0/output-*.run``), ``FT_CORRUPT_INDEX``
and ``FT_CORRUPT_MARKER`` set, the first step-1 map attempt to start flips a byte inside the
data of the chosen step output (at most once: the marker is created exclusively and
receives the damaged path), before any step-1 task has read it when run with one worker.
"""
import glob
import os
import re

from mapreduce import Job, Step
from mapreduce.runfile import RunReader

WORD_RE = re.compile(r"[\w']+")


def flip_data_byte(path: str) -> None:
    with RunReader(path) as reader:
        infos = [reader.partition_info(p) for p in range(reader.num_partitions)]
    info = [i for i in infos if i.records][-1]
    offset = (info.offset + info.end) // 2
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))
        f.flush()
        os.fsync(f.fileno())


class CorruptStepOutput(Job):
    def steps(self):
        return [Step(mapper=self.mapper_words, combiner=self.sum_counts,
                     reducer=self.sum_counts),
                Step(mapper_init=self.damage_once, mapper=self.mapper_length,
                     reducer=self.sum_counts)]

    def mapper_words(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def sum_counts(self, key, counts):
        yield key, sum(counts)

    def damage_once(self):
        marker = os.environ.get("FT_CORRUPT_MARKER")
        if not marker:
            return
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return
        try:
            victims = sorted(glob.glob(os.environ["FT_CORRUPT_GLOB"]))
            victim = victims[int(os.environ.get("FT_CORRUPT_INDEX", "0")) % len(victims)]
            flip_data_byte(victim)
            os.write(fd, victim.encode("utf-8"))
        finally:
            os.close(fd)

    def mapper_length(self, word, count):
        yield len(word), count
