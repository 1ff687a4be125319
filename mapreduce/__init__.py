"""mapreduce: a MapReduce framework for Python whose shuffle goes through disk.

Write a job by subclassing :class:`Job`; run it with ``python -m mapreduce run JOB INPUT... -o
OUT`` or ``MyJob.run()``.  This module only re-exports the public names.
"""
from mapreduce.errors import MapReduceError
from mapreduce.job import Job, Step

__all__ = ["Job", "Step", "MapReduceError"]
__version__ = "0.1.0"
