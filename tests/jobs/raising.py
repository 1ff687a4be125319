"""A mapper that raises ValueError on any line containing ``BOOM`` (error-reporting test)."""
from mapreduce import Job


class Raising(Job):
    def mapper(self, _, line):
        if "BOOM" in line:
            explode(line)
        yield line, 1

    def reducer(self, key, values):
        yield key, sum(values)


def explode(line):
    raise ValueError(f"bad record: {line!r}")
