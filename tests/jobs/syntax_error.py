"""A job file with a syntax error on line 8 (the ``def`` missing its colon)."""
from mapreduce import Job


class Broken(Job):
    REDUCERS = 1

    def mapper(self, _, line)
        yield line, 1
