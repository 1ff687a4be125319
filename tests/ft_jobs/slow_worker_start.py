"""Word count whose worker processes start slowly once a flag file exists.

Same output as ``jobs/wordcount.py``.  The job file is imported in the coordinator before the
worker pool forks, so it can wrap the pool's per-worker start-up hook there: a worker forked
while ``FT_SLOW_START_FLAG`` names an existing file sleeps ``FT_SLOW_START_SECONDS``
(default 1) before it asks to die with its parent.  This widens, deterministically, the window
that exists anyway between a worker's fork and that request, e.g. on a loaded machine.
Without the variables nothing changes.
"""
import os
import re
import time

import mapreduce.pool as _pool
from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")

_FLAG = os.environ.get("FT_SLOW_START_FLAG")
_original = getattr(_pool, "_die_with_parent", None)


def _slow_die_with_parent(*args) -> None:
    if _FLAG and os.path.exists(_FLAG):
        time.sleep(float(os.environ.get("FT_SLOW_START_SECONDS", "1")))
    _original(*args)


if _FLAG and _original is not None and not getattr(_pool, "_ft_slow_start", False):
    _pool._die_with_parent = _slow_die_with_parent
    _pool._ft_slow_start = True


class SlowWorkerStart(Job):
    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)
