"""mapreduce: a MapReduce framework for Python whose shuffle goes through disk.

Write a job by subclassing :class:`Job`; run it with ``python -m mapreduce run JOB INPUT... -o
OUT``, ``MyJob.run()``, or from Python with :func:`run` / :func:`run_async`.  This module only
re-exports the public names.  The runners are imported on first use (PEP 562 ``__getattr__``):
``import mapreduce`` stays cheap for a job file, a worker or a Spark executor that only needs
:class:`Job`.
"""
from typing import Any

from mapreduce import job as _job
from mapreduce.errors import MapReduceError
from mapreduce.info import __version__ as __version__
from mapreduce.job import Job, Step, identity_mapper, identity_reducer

_API = ("run", "run_async", "RunResult", "JobHandle", "Progress")

__all__ = ["Job", "Step", "MapReduceError", "identity_mapper", "identity_reducer", *_API]


def _script_main(job_class: type, argv: Any) -> int:
    """``MyJob.run()``: the command line for one job class.  Registered with the Job layer
    from here (the entry layer) so that ``job.py`` never imports the CLI above it."""
    from mapreduce.cli import run_job_class_main
    return run_job_class_main(job_class, argv)


_job.set_script_main(_script_main)


def _api_run(*args: Any, **kwargs: Any) -> Any:
    """``mapreduce.run``, registered with the Job layer for the mrjob compatibility
    layer's ``make_runner()`` (which sits below the API)."""
    from mapreduce.api import run
    return run(*args, **kwargs)


_job.set_api_run(_api_run)


def __getattr__(name: str) -> Any:
    if name in _API:
        from mapreduce import api
        return getattr(api, name)
    raise AttributeError(f"module 'mapreduce' has no attribute {name!r}")
