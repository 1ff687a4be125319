"""Counters: ``increment_counter`` in two user groups, and ``set_status``.

Per line: ``lines/total`` += 1 and ``lines/empty`` += 1 for an empty line.  Per word:
``words/total`` += 1 and ``words/chars`` += len(word).  The reducer counts distinct words in
``words/distinct``.  Output is the word count.
"""
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class CountingJob(Job):
    def mapper(self, _, line):
        self.increment_counter("lines", "total")
        if not line:
            self.increment_counter("lines", "empty")
        for word in WORD_RE.findall(line):
            self.increment_counter("words", "total")
            self.increment_counter("words", "chars", len(word))
            yield word.lower(), 1
        self.set_status("mapping")

    def reducer(self, word, counts):
        self.increment_counter("words", "distinct")
        self.set_status("reducing")
        yield word, sum(counts)
