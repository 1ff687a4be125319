"""Word count whose coordinator SIGKILLs itself in the middle of the job commit.

Same output as ``jobs/wordcount.py``.  The job file is imported in the coordinator process,
so it can wrap the job commit's file operations there (mapreduce.storage).  With ``FT_KILL_COMMIT=K`` and
``FT_OUT=OUT`` the coordinator kills itself with SIGKILL just before the K-th file operation of
the job commit that targets ``OUT`` (a directory or a store's URL; K = 1 .. number of parts: before moving that part file
into OUT; parts + 1: before writing ``_job.json``; parts + 2: before writing ``_SUCCESS``).
Worker processes (forked later) are never affected.  Without the variables nothing changes.
With ``FT_GATE`` set, map tasks wait for that file first (at most 60 s), as in ``gated.py``.
"""
import os
import re
import signal
import time

import mapreduce.storage as _storage
from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")

_KILL_AT = int(os.environ.get("FT_KILL_COMMIT", "0") or 0)
_OUT = os.environ.get("FT_OUT") or None
if _OUT and "://" not in _OUT:  # an output URL (s3://...) is compared as given
    _OUT = os.path.abspath(_OUT)
_COORDINATOR = os.getpid()
_seen = [0]


def _wrap(fn):
    def wrapper(self, *args, **kwargs):
        target = args[1] if fn.__name__ == "put" else args[0]
        if (os.getpid() == _COORDINATOR and _OUT is not None
                and (target.rsplit("/", 1)[0] if "://" in target
                     else os.path.dirname(os.path.abspath(target))) == _OUT):
            _seen[0] += 1
            if _seen[0] == _KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)
        return fn(self, *args, **kwargs)
    wrapper.__name__ = fn.__name__
    return wrapper


if _KILL_AT and _OUT and not getattr(_storage, "_ft_commit_killer", False):
    _storage.LocalFileSystem.put = _wrap(_storage.LocalFileSystem.put)
    _storage.LocalFileSystem.write_atomically = _wrap(_storage.LocalFileSystem.write_atomically)
    _storage.RemoteFileSystem.put = _wrap(_storage.RemoteFileSystem.put)
    _storage.RemoteFileSystem.write_atomically = _wrap(
        _storage.RemoteFileSystem.write_atomically)
    _storage._ft_commit_killer = True


class CommitKiller(Job):
    def mapper_init(self):
        gate = os.environ.get("FT_GATE")
        deadline = time.monotonic() + 60
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)

    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)
