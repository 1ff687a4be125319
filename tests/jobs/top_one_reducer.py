"""Two steps: count words, then the three most frequent in a last step of one reduce task
(``Step(reducers=1)``), whatever ``--reducers`` says for the first."""
import re

from mapreduce import Job, Step

WORD_RE = re.compile(r"[\w']+")


class TopThree(Job):
    def steps(self):
        return [Step(mapper=self.words, combiner=self.count, reducer=self.count),
                Step(mapper=self.to_one_key, reducer=self.top, reducers=1)]

    def words(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def count(self, word, counts):
        yield word, sum(counts)

    def to_one_key(self, word, count):
        yield None, (count, word)

    def top(self, _, pairs):
        for count, word in sorted(pairs, key=lambda p: (-p[0], p[1]))[:3]:
            yield word, count
