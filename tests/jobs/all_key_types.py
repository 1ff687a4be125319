"""Every supported kind of key, counted: for each input line the mapper emits all of

``None, True, 1, 1.0, 2, 2.5, -3, "s", b"b", (1, "a"), [1, "a"], ("t", (2, None))``

with value 1.  ``True``, ``1`` and ``1.0`` are the same key, and so are ``(1, "a")`` and
``[1, "a"]``, so per input line the reducer sees key 1 three times and ``(1, "a")`` twice.
"""
from mapreduce import Job

KEYS = [None, True, 1, 1.0, 2, 2.5, -3, "s", b"b", (1, "a"), [1, "a"], ("t", (2, None))]


class AllKeyTypes(Job):
    def mapper(self, _, line):
        for key in KEYS:
            yield key, 1

    def combiner(self, key, counts):
        yield key, sum(counts)

    def reducer(self, key, counts):
        yield key, sum(counts)
