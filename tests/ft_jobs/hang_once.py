"""Word count whose first map attempt to start hangs (sleeps 1000 s).

``FT_HANG_MARKER`` names a marker file: the map attempt that creates it (exclusively) writes
its pid into it and sleeps; every other attempt runs normally.  Same output as
``jobs/wordcount.py``.  Used with ``--task-timeout``: the hung attempt must be killed and
retried.
"""
import os
import re
import time

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class HangOnce(Job):
    def mapper_init(self):
        marker = os.environ.get("FT_HANG_MARKER")
        if not marker:
            return
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        time.sleep(1000)

    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)
