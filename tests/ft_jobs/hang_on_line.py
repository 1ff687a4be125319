"""Word count whose mapper hangs (sleeps 1000 s) on a line containing ``HANG``, in pure
Python (a sleep loop), so a task timeout can ask it where it is."""
import re
import time

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class HangOnLine(Job):
    def mapper(self, _, line):
        if "HANG" in line:
            deadline = time.monotonic() + 1000
            while time.monotonic() < deadline:
                time.sleep(0.05)
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def reducer(self, word, counts):
        yield word, sum(counts)
