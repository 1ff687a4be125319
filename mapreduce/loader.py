"""Loading a Job subclass from a job file given by path.

A job file is an ordinary Python file; it is imported under a private module name derived
from its absolute path, so two job files with the same base name do not collide and the
file's ``if __name__ == "__main__":`` block does not run.  Loaded classes are cached per
process: worker processes are forked from the coordinator, so they inherit the cache and
never import the job file a second time.

A :class:`JobRef` (path + class name) is what task descriptions carry instead of the class
itself, so tasks stay small and picklable.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Optional

from mapreduce.errors import JobDefinitionError
from mapreduce.job import Job


@dataclass(frozen=True)
class JobRef:
    """Where a job class comes from: an absolute file path and the class name."""

    path: str
    class_name: str


_CLASS_CACHE: dict[JobRef, type[Job]] = {}


def _module_name(path: str) -> str:
    digest = hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    stem = os.path.splitext(os.path.basename(path))[0]
    safe = "".join(c if c.isalnum() else "_" for c in stem)
    return f"_mapreduce_job_{safe}_{digest}"


def _import_file(path: str):
    if not os.path.exists(path):
        raise JobDefinitionError(f"job file does not exist: {path}")
    if os.path.isdir(path):
        raise JobDefinitionError(f"job file is a directory, expected a .py file: {path}")
    name = _module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise JobDefinitionError(f"cannot load job file {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # mrjob's module names mean mapreduce.mrjob while the file loads (and only then): a
    # job written for mrjob runs unedited, whether or not mrjob is installed.
    from mapreduce.mrjob import aliased
    try:
        with aliased():
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        where = f"{exc.filename or path}:{exc.lineno}" if exc.lineno else path
        error = JobDefinitionError(f"{where}: syntax error in job file: {exc.msg}")
        # The detail is Python's own rendering: the offending line and a caret under it.
        error.detail = "".join(  # type: ignore[attr-defined]
            traceback.format_exception_only(type(exc), exc)[:-1]).rstrip("\n")
        raise error from None
    except (Exception, SystemExit) as exc:  # the job file's own top-level code failed
        # (SystemExit: typically an unguarded ``MyJob.run()`` without ``if __name__ ...``.)
        del sys.modules[name]
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if os.path.abspath(f.filename) == path]
        where = f"{path}:{frames[-1].lineno}" if frames else path
        error = JobDefinitionError(
            f"{where}: job file raised {type(exc).__name__} while loading: {exc}")
        # The detail: the job file's own frames only, not the import machinery's.
        error.detail = "".join(traceback.format_list(frames)).rstrip("\n")  # type: ignore
        raise error from None
    return module


def import_job_module(name: str):
    """Import a job file's copy by module name (a Spark executor imports the driver's job
    file under the driver's module name), with mrjob's module names mapped as when loading
    by path: without it an executor where mrjob is installed would bind the real MRJob."""
    from mapreduce.mrjob import aliased
    with aliased():
        return importlib.import_module(name)


def job_classes_in(module) -> list[type[Job]]:
    """Job subclasses defined in (not merely imported into) ``module``, in file order."""
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, Job) and obj is not Job
             and obj.__module__ == module.__name__]
    return found


def load_job_class(path: str, class_name: Optional[str] = None,
                   pick: str = "--job NAME") -> tuple[type[Job], JobRef]:
    """Import ``path`` and return the Job subclass it defines (or the one named).

    Raises :class:`JobDefinitionError` with a one-line message for a missing file, a syntax
    error (file and line), a file without a Job subclass, or an ambiguous choice (which says
    to choose with ``pick``: the command line's ``--job NAME``, the API's ``job_name=``).
    """
    path = os.path.abspath(path)
    if class_name is not None:
        cached = _CLASS_CACHE.get(JobRef(path, class_name))
        if cached is not None:
            return cached, JobRef(path, class_name)
    module = _import_file(path)
    classes = job_classes_in(module)
    if class_name is not None:
        chosen = [c for c in classes if c.__name__ == class_name]
        if not chosen:
            names = ", ".join(c.__name__ for c in classes) or "none"
            raise JobDefinitionError(
                f"{path}: no Job subclass named {class_name!r} (defined: {names})")
        cls = chosen[0]
    elif not classes:
        raise JobDefinitionError(
            f"{path}: defines no subclass of mapreduce.Job (subclass Job and override "
            "mapper/reducer or steps())")
    elif len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise JobDefinitionError(
            f"{path}: defines several Job subclasses ({names}); pick one with {pick}")
    else:
        cls = classes[0]
    ref = JobRef(path, cls.__name__)
    _CLASS_CACHE[ref] = cls
    return cls, ref


def remember(ref: JobRef, cls: type[Job]) -> None:
    """Make ``resolve(ref)`` return ``cls`` in this process: a runner whose workers import
    the job under another name (a copy shipped to a Dask worker) says which class it is."""
    _CLASS_CACHE[ref] = cls


def register_job_class(cls: type[Job]) -> JobRef:
    """Make an already-imported class (e.g. one defined in ``__main__``) loadable by ref."""
    module = sys.modules.get(cls.__module__)
    path = os.path.abspath(getattr(module, "__file__", None) or f"<{cls.__module__}>")
    ref = JobRef(path, cls.__name__)
    _CLASS_CACHE[ref] = cls
    return ref


def resolve(ref: JobRef) -> type[Job]:
    """The class a ref names (from the per-process cache, importing the file if needed)."""
    cls = _CLASS_CACHE.get(ref)
    if cls is None:
        cls, _ = load_job_class(ref.path, ref.class_name)
    return cls
