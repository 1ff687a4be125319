"""Word count with the baselines' tokenization (``line.split()``), written two ways.

The benchmark compares these with ``collections.Counter`` and a hand-written
``multiprocessing.Pool`` program that split lines exactly the same way, so every output must
be the same dict word -> count.  (``jobs/wordcount.py`` uses a regex and lowercases, which
would make the comparison unfair and the outputs different.)

* ``WordCountSplit``: the textbook job.  The mapper emits ``(word, 1)`` for every token; the
  combiner sums each spill's counts before they are written; the reducer sums.
* ``WordCountInMapper``: in-mapper combining.  ``mapper_init`` creates a Counter, the mapper
  only updates it (``self.counts.update(line.split())``) and emits nothing, ``mapper_final``
  emits one ``(word, count)`` per distinct word of the whole map task; the reducer sums.
  This is what the Pool baseline does in each worker, so it is the like-for-like comparison.

    python -m mapreduce run benchmarks/jobs/wc_split.py --job WordCountSplit INPUT -o OUT
    python -m mapreduce run benchmarks/jobs/wc_split.py --job WordCountInMapper INPUT -o OUT
"""
from collections import Counter

from mapreduce import Job


class WordCountSplit(Job):
    def mapper(self, _, line):
        for word in line.split():
            yield word, 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)


class WordCountInMapper(Job):
    def mapper_init(self):
        self.counts = Counter()

    def mapper(self, _, line):
        self.counts.update(line.split())

    def mapper_final(self):
        yield from self.counts.items()

    def reducer(self, word, counts):
        yield word, sum(counts)
