"""Word count whose mapper forks once per worker process and lets the child return into the
task (the classic mistake: ``os.fork()`` without ``os._exit()`` in the child).  With
``FT_FORK`` unset it is plain word count."""
import os
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")
_forked = []


class ForkingMapper(Job):
    def mapper(self, _, line):
        if os.environ.get("FT_FORK") and not _forked:
            _forked.append(os.fork())  # the child returns here too and carries on
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def reducer(self, word, counts):
        yield word, sum(counts)
