"""Word count whose map tasks wait for a gate file before reading their split.

``FT_GATE`` names the gate: every map attempt polls for it (at most ``FT_GATE_MAX`` seconds,
default 60, so a forgotten gate cannot hang a test forever) before doing anything.  Lets a
test hold a job in its map phase for as long as it needs (e.g. while a second job tries the
same output directory).  Same output as ``jobs/wordcount.py``.
"""
import os
import re
import time

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class Gated(Job):
    def mapper_init(self):
        gate = os.environ.get("FT_GATE")
        if not gate:
            return
        deadline = time.monotonic() + float(os.environ.get("FT_GATE_MAX", "60"))
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)

    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)
