"""Map-only job: each input line becomes the pair ``(len(line), line)``, in input order."""
from mapreduce import Job


class LineLengths(Job):
    def mapper(self, _, line):
        yield len(line), line
