"""A mapper that yields a dict as its key, which cannot be a key (serialization error test)."""
from mapreduce import Job


class BadKey(Job):
    def mapper(self, _, line):
        yield {"line": line}, 1

    def reducer(self, key, values):
        yield key, sum(values)
