"""Word count whose mapper raises on every line containing the token ``POISON``.

For any other line it does exactly what ``jobs/wordcount.py`` does, so with the poisoned
lines skipped (``--skip-bad-records``) the output equals word count over the input with those
lines removed.
"""
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class BadRecords(Job):
    def mapper(self, _, line):
        if "POISON" in line:
            poisoned(line)
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)


def poisoned(line):
    raise ValueError(f"poisoned record {line[:40]!r}")
