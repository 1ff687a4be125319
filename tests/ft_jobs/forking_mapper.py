"""Word count whose mapper forks once per worker process.  ``FT_FORK=escape`` lets the child
return into the task (the classic mistake: ``os.fork()`` without ``os._exit()`` in the
child); ``FT_FORK=clean`` ends the child with ``os._exit(0)``, as it should.  With ``FT_FORK``
unset it is plain word count."""
import os
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")
_forked = []


class ForkingMapper(Job):
    def mapper(self, _, line):
        how = os.environ.get("FT_FORK")
        if how and not _forked:
            pid = os.fork()
            if pid == 0 and how == "clean":
                os._exit(0)
            _forked.append(pid)  # with "escape" the child returns here too and carries on
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def reducer(self, word, counts):
        yield word, sum(counts)
