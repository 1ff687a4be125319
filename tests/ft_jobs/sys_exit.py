"""Word count whose mapper calls ``sys.exit(3)`` on a line containing ``EXIT``."""
import re
import sys

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class SysExit(Job):
    def mapper(self, _, line):
        if "EXIT" in line:
            sys.exit(3)
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def reducer(self, word, counts):
        yield word, sum(counts)
