"""A job file whose top-level code raises RuntimeError on line 9 while it is imported."""
from mapreduce import Job


class NeverRuns(Job):
    def mapper(self, _, line):
        yield line, 1

raise RuntimeError("configuration missing")  # line 9
