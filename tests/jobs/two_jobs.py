"""Two Job subclasses in one file: ``--job`` must pick one.

``CountLines`` emits ``("lines", total)``; ``CountChars`` emits ``("chars", total)``
(characters per line, line endings excluded).
"""
from mapreduce import Job


class CountLines(Job):
    REDUCERS = 1

    def mapper(self, _, line):
        yield "lines", 1

    def reducer(self, key, values):
        yield key, sum(values)


class CountChars(Job):
    REDUCERS = 1

    def mapper(self, _, line):
        yield "chars", len(line)

    def reducer(self, key, values):
        yield key, sum(values)
