"""Word count whose reducer raises KeyError on the word ``boom`` (error-reporting test).

The other reduce tasks succeed, so a failed job must still leave no part files behind.
"""
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class RaisingReducer(Job):
    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def reducer(self, word, counts):
        if word == "boom":
            raise KeyError(word)
        yield word, sum(counts)
