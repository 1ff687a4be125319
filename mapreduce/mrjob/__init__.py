"""mrjob compatibility: run a job written for mrjob unchanged.

``from mapreduce.mrjob import MRJob, MRStep`` for a script that knows it runs here; a job
file written for mrjob (``from mrjob.job import MRJob``, ``from mrjob.step import MRStep``,
``from mrjob.protocol import ...``, ``from mrjob.compat import jobconf_from_env``) runs
unedited with ``python -m mapreduce run mr_job.py INPUT -o OUT``:

How the mapping works.  While mapreduce's loader imports a job file (and only then), the
names ``mrjob``, ``mrjob.job``, ``mrjob.step``, ``mrjob.protocol``, ``mrjob.compat``,
``mrjob.util`` and ``mrjob.py2`` in ``sys.modules`` are these modules (:func:`aliased`), so
the file's imports -- and those of helper modules it imports for the first time -- bind
this package's classes.  Afterwards ``sys.modules`` is put back exactly as it was: an
installed mrjob is never modified, imported or shadowed for any other code, and a process
that imports the real ``mrjob`` later gets the real one.

What it never touches: an installed mrjob's files and modules; ``mrjob.conf`` files (never
read); the job's code (run as written, through wrappers: ``mapreduce/mrjob/job.py``).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import sys
from typing import Iterator

from mapreduce.mrjob.job import MRJob
from mapreduce.mrjob.step import MRStep

#: mrjob's module names and the modules of this package that stand for them.
_MODULES = {
    "mrjob": "mapreduce.mrjob",
    "mrjob.job": "mapreduce.mrjob.job",
    "mrjob.step": "mapreduce.mrjob.step",
    "mrjob.protocol": "mapreduce.mrjob.protocol",
    "mrjob.compat": "mapreduce.mrjob.compat",
    "mrjob.util": "mapreduce.mrjob.util",
    "mrjob.py2": "mapreduce.mrjob.py2",
}


class _OnlyOurs(importlib.abc.MetaPathFinder):
    """While aliased: ``import mrjob.emr`` (a module this package does not stand for) is
    an ImportError saying so, not a second copy of one of ours under mrjob's name."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.startswith("mrjob.") and name not in _MODULES:
            raise ImportError(f"{name} is not part of mapreduce's mrjob compatibility layer "
                              f"(it provides {', '.join(sorted(_MODULES))})", name=name)
        return None


@contextlib.contextmanager
def aliased() -> Iterator[None]:
    """Within the block, ``import mrjob.<x>`` gives this package's modules; afterwards
    ``sys.modules`` holds again exactly what it held before, for those names."""
    absent = object()  # (None is a value: it blocks an import)
    saved = {name: sys.modules.get(name, absent) for name in _MODULES}
    stray = [n for n in sys.modules if n.startswith("mrjob.") and n not in _MODULES]
    hidden = {n: sys.modules.pop(n) for n in stray}  # e.g. the real mrjob.runner
    for name, ours in _MODULES.items():
        sys.modules[name] = importlib.import_module(ours)
    finder = _OnlyOurs()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name, module in saved.items():
            if module is absent:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for n in [n for n in sys.modules if n.startswith("mrjob.") and n not in _MODULES]:
            sys.modules.pop(n, None)  # a real mrjob submodule imported inside: not ours
        sys.modules.update(hidden)


__all__ = ["MRJob", "MRStep", "aliased"]
