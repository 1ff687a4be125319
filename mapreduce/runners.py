"""Assembling a job run: pick the shuffle back end for a mode and hand it to the tracker.

``disk`` and ``memory`` are the same JobTracker, WorkerPool and task code with a different
:class:`~mapreduce.shuffle.Shuffle` plugged in.  ``JobConfig.runner == "spark"`` hands the job
to :mod:`mapreduce.spark_runner` instead, which reuses only the Job's pure pieces and lets
Spark schedule, shuffle and recover; it is imported only when asked for, so the local runner
never needs pyspark or Java.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from mapreduce.diskshuffle import DiskShuffle
from mapreduce.errors import UsageError
from mapreduce.events import JobListener
from mapreduce.job import Job
from mapreduce.loader import JobRef
from mapreduce.shuffle import MemoryShuffle, Shuffle
from mapreduce.tracker import JobConfig, JobResult, JobTracker

#: The runners ``--runner`` accepts.
RUNNERS = ("local", "spark")

SHUFFLES: dict[str, type[Shuffle]] = {"disk": DiskShuffle, "memory": MemoryShuffle}


def make_shuffle(mode: str) -> Shuffle:
    try:
        return SHUFFLES[mode]()
    except KeyError:
        raise UsageError(f"--mode must be one of {', '.join(SHUFFLES)} (got {mode!r})") from None


def run_job(job_class: type[Job], job_ref: JobRef, config: JobConfig,
            listener: Optional[JobListener] = None,
            tracker_ready: Optional[Callable[[Any], None]] = None) -> JobResult:
    """Run a job to completion; raises a MapReduceError subclass on failure.

    ``listener`` receives the run's events (progress displays, the async handle);
    ``tracker_ready`` is called with the coordinator object before it starts, so that a
    caller on another thread can ``cancel()`` it."""
    if config.runner == "spark":
        from mapreduce.spark_runner import run_spark_job  # needs pyspark: import on demand
        return run_spark_job(job_class, job_ref, config)
    if config.runner != "local":
        raise UsageError(f"--runner must be one of {', '.join(RUNNERS)} (got {config.runner!r})")
    if config.spark_master is not None:
        raise UsageError("--spark-master only applies to --runner spark")
    tracker = JobTracker(job_class, job_ref, config, make_shuffle(config.mode), listener)
    if tracker_ready is not None:
        tracker_ready(tracker)
    return tracker.run()
