"""A job with side data: ``prepare()`` reads every input once, in the coordinator, and
returns the ten most common words (stop words) and the number of input lines; every task
sees that dict as ``self.side_data``.

The mapper drops stop words (counting them in ``side/stopped``) and emits each other word's
first two letters; the reducer yields ``[count, total input lines]`` per prefix.
"""
import collections
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class StopWordPrefixes(Job):
    REDUCERS = 2

    def prepare(self, inputs):
        counts = collections.Counter()
        lines = 0
        for path in inputs:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    lines += 1
                    counts.update(WORD_RE.findall(line.lower()))
        return {"stop": sorted(w for w, _ in counts.most_common(10)), "lines": lines}

    def mapper_init(self):
        self.stop = frozenset(self.side_data["stop"])

    def mapper(self, _, line):
        for word in WORD_RE.findall(line.lower()):
            if word in self.stop:
                self.increment_counter("side", "stopped")
            else:
                yield word[:2], 1

    def reducer(self, prefix, counts):
        yield prefix, [sum(counts), self.side_data["lines"]]
