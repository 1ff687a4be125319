"""The runners: where and how a job's task attempts run.  One module each, one line each in
:data:`REGISTRY`.

Every runner gets a :class:`~mapreduce.session.JobSession` (the job, its inputs, the output
policy, side data, the job commit and ``_job.json``, the same on every runner) and runs the
job's tasks through the task kernel (:mod:`mapreduce.kernel`); it owns only the scheduling:

* ``local``: worker processes on this machine, a journal, retries, ``--resume``
  (:mod:`mapreduce.runners.local`);
* ``inline``: the local scheduler with every task run in the calling process, one at a time,
  once -- ``breakpoint()`` and ``print`` work (mrjob's ``-r inline``);
* ``spark``: Apache Spark schedules, shuffles and recovers (:mod:`mapreduce.runners.spark`);
* ``dask``: the local scheduler with each attempt run as a Dask task, the shuffle through
  run files on storage the workers share (:mod:`mapreduce.runners.dask`).

Adding a runner (docs/design.md says it step by step): a module with
``run(job_class, job_ref, config, listener, ready) -> JobResult``, a line in REGISTRY, its name
in :data:`mapreduce.options.RUNNER_NAMES`, and, in the option table, the options it does not
take.  Runner modules are imported only when asked for, so the local runner never needs
pyspark, Java or distributed.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Optional

from mapreduce.errors import UsageError
from mapreduce.events import JobListener
from mapreduce.job import Job
from mapreduce.loader import JobRef
from mapreduce.options import RUNNER_NAMES, JobConfig, check_runner
from mapreduce.session import JobResult

#: Runner name -> the module that runs a job there.
REGISTRY: dict[str, str] = {
    "local": "mapreduce.runners.local",
    "inline": "mapreduce.runners.inline",
    "spark": "mapreduce.runners.spark",
    "dask": "mapreduce.runners.dask",
}
assert tuple(REGISTRY) == RUNNER_NAMES, "the option table lists the runners in REGISTRY"

def run_job(job_class: type[Job], job_ref: JobRef, config: JobConfig,
            listener: Optional[JobListener] = None,
            ready: Optional[Callable[[Any], None]] = None) -> JobResult:
    """Run a job to completion on ``config.runner``; raises a MapReduceError on failure.

    ``listener`` receives the run's events (progress displays, the async handle); ``ready``
    is called with the object whose ``cancel()`` stops the job, before it starts, so that a
    caller on another thread can cancel it."""
    if config.runner not in REGISTRY:
        raise UsageError(f"{config.spell('runner')} must be one of {', '.join(REGISTRY)} "
                         f"(got {config.runner!r})")
    check_runner(config)
    module = importlib.import_module(REGISTRY[config.runner])
    return module.run(job_class, job_ref, config, listener, ready)


__all__ = ["run_job", "REGISTRY"]
