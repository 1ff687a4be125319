"""Line count with mapper_init/mapper_final: the mapper *returns* None (it yields nothing).

Each map task counts its lines in ``self.n`` and emits ``("lines", n)`` from mapper_final,
even when its split is empty, so an empty input gives ``"lines"<TAB>0``.
"""
from mapreduce import Job


class LineCount(Job):
    REDUCERS = 1

    def mapper_init(self):
        self.n = 0

    def mapper(self, _, line):
        self.n += 1
        return None

    def mapper_final(self):
        yield "lines", self.n

    def reducer(self, key, counts):
        yield key, sum(counts)
