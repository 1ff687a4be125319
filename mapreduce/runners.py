"""Assembling a job run: pick the shuffle back end for a mode and hand it to the tracker.

``disk`` and ``memory`` are the same JobTracker, WorkerPool and task code with a different
:class:`~mapreduce.shuffle.Shuffle` plugged in.  (A Spark runner will live here too; it reuses
only the Job's pure pieces.)
"""
from __future__ import annotations

from mapreduce.diskshuffle import DiskShuffle
from mapreduce.errors import UsageError
from mapreduce.job import Job
from mapreduce.loader import JobRef
from mapreduce.shuffle import MemoryShuffle, Shuffle
from mapreduce.tracker import JobConfig, JobResult, JobTracker

SHUFFLES: dict[str, type[Shuffle]] = {"disk": DiskShuffle, "memory": MemoryShuffle}


def make_shuffle(mode: str) -> Shuffle:
    try:
        return SHUFFLES[mode]()
    except KeyError:
        raise UsageError(f"--mode must be one of {', '.join(SHUFFLES)} (got {mode!r})") from None


def run_job(job_class: type[Job], job_ref: JobRef, config: JobConfig) -> JobResult:
    """Run a job to completion; raises a MapReduceError subclass on failure."""
    return JobTracker(job_class, job_ref, config, make_shuffle(config.mode)).run()
