"""Two-step job: the most frequent words.

Step 1 counts words (like jobs/wordcount.py).  Step 2 maps each ``(word, count)`` pair to
the single key ``None`` with value ``(count, word)``, so one reducer sees every pair and
yields ``(count, word)`` pairs, most frequent first (ties by word), limited to TOP pairs.
"""
import re

from mapreduce import Job, Step

WORD_RE = re.compile(r"[\w']+")
TOP = 20


class TopWords(Job):
    def steps(self):
        return [
            Step(mapper=self.mapper_words, combiner=self.reducer_count,
                 reducer=self.reducer_count),
            Step(mapper=self.mapper_to_one_key, reducer=self.reducer_top),
        ]

    def mapper_words(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def reducer_count(self, word, counts):
        yield word, sum(counts)

    def mapper_to_one_key(self, word, count):
        yield None, (count, word)

    def reducer_top(self, _, pairs):
        ranked = sorted(pairs, key=lambda p: (-p[0], p[1]))
        for count, word in ranked[:TOP]:
            yield count, word
