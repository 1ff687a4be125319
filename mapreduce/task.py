"""A task of the local and inline runners: a picklable description and the function that
runs it, in a worker process or in the calling process.

A :class:`TaskSpec` carries everything a task needs (the job's :class:`~mapreduce.loader.JobRef`,
its step, its input split or shuffle source, its sinks and limits); :func:`run_task` makes a
fresh Job for it, opens its input and output, hands them to the task kernel
(:mod:`mapreduce.kernel`, the one implementation of a map or reduce task) and returns a small
:class:`TaskResult`.  Tasks never touch the journal or other tasks' state: the coordinator
commits what a task returns.
"""
from __future__ import annotations

import argparse
import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from mapreduce.codec import encode_key, encode_value
from mapreduce.job import Job, Step
from mapreduce.kernel import run_map, run_reduce, set_task_context, split_records
from mapreduce.loader import JobRef, resolve
from mapreduce.options import Spelling
from mapreduce.output import TextPartWriter
from mapreduce.shuffle import MapOutput, MapSink, PairSink, ReduceSource
from mapreduce.sidedata import SideDataRef, load_side_data
from mapreduce.taskdir import TaskDir, task_directory

@dataclass
class TextOutput:
    """A final-step task writes a text part file here (a temp name in its attempt dir)."""

    path: str
    protocol: str = "json"   # the job's OUTPUT_PROTOCOL
    compression: Optional[str] = None  # --output-compression


@dataclass
class TaskSpec:
    kind: str                      # "map" or "reduce"
    job: JobRef
    step: int
    index: int                     # map task number, or reduce partition
    attempt: str                   # the attempt tag, "RUN-N" (see mapreduce.layout)
    num_partitions: int            # reducers of this step; 0 for a map-only step
    sort_buffer: int
    sort_values: bool
    decode_errors: str = "strict"
    skip_bad_records: int = 0      # map: tolerate this many records whose mapper raises
    spelling: str = Spelling.CLI   # how messages name options (the user's: flag or keyword)
    side_data: Optional[SideDataRef] = None        # where what Job.prepare() returned is
    task_dir: Optional[TaskDir] = None   # files, --cmdenv, --setup: the working directory
    job_options: dict = field(default_factory=dict)  # the job's own command-line options
    split: Any = None              # map: TextSplit or StepInput
    sink: Optional[MapSink] = None  # map with reducers: where spills go
    source: Optional[ReduceSource] = None  # reduce: where records come from
    output: Any = None             # TextOutput (final step) or PairSink (intermediate step)

    @property
    def name(self) -> str:
        return f"step {self.step} {self.kind} task {self.index}"

    def describe(self) -> str:
        if self.kind == "map":
            return f"{self.name} (input {describe_split(self.split)})"
        return f"{self.name} (partition {self.index})"


@dataclass
class TaskResult:
    kind: str
    step: int
    index: int
    attempt: str
    counters: dict
    status: Optional[str]
    map_output: Optional[MapOutput]
    output: Any                    # temp part path, or a PairSink location
    output_bytes: int
    input_bytes: int
    started: float
    finished: float
    pid: int
    peak_rss: int                  # bytes; the worker process's peak so far
    extra: dict = field(default_factory=dict)
    output_crc32: Optional[int] = None  # CRC-32 of a text part file (None: a run file)


def describe_split(split: Any) -> str:
    return split.describe()



def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# --- output writers -------------------------------------------------------------------------
class _TextWriter:
    def __init__(self, target: TextOutput) -> None:
        self._writer = TextPartWriter(target.path, target.protocol, target.compression)
        self.write = self._writer.write
        self.write_values = self._writer.write_values
        self.write_raw_lines = self._writer.write_raw_lines

    def finish(self) -> tuple[Any, int]:
        return self._writer.path, self._writer.close()

    @property
    def crc32(self) -> Optional[int]:
        """The part file's CRC-32 (journaled, checked on --resume)."""
        return self._writer.crc32


class _PairWriter:
    crc32 = None  # run files carry a CRC per block, checked on every read

    def __init__(self, sink: PairSink) -> None:
        self._sink = sink

    def write(self, key: Any, value: Any) -> None:
        self._sink.write(encode_key(key), encode_value(value))

    def write_values(self, key: Any, values: Any) -> int:
        """Every value under one key (the identity reducer): the key is encoded once."""
        write, kb = self._sink.write, encode_key(key)
        n = 0
        for value in values:
            write(kb, encode_value(value))
            n += 1
        return n

    def finish(self) -> tuple[Any, int]:
        return self._sink.finish()


def _open_output(target: Any):
    return _TextWriter(target) if isinstance(target, TextOutput) else _PairWriter(target)




def make_job(ref: JobRef, step: int, job_options: dict, side_data: Any, split: Any = None
             ) -> tuple[Job, Step]:
    """A fresh Job instance for one task, with its options, side data and task context."""
    job = resolve(ref)()
    job.options = argparse.Namespace(**job_options)
    job.side_data = load_side_data(side_data) if isinstance(side_data, SideDataRef) \
        else (side_data or {})
    set_task_context(job, split)
    return job, job.engine_steps()[step]


def run_map_task(spec: TaskSpec) -> TaskResult:
    started = time.time()
    job, step = make_job(spec.job, spec.step, spec.job_options, spec.side_data, spec.split)
    writer = None if spec.num_partitions else _open_output(spec.output)
    records = split_records(spec.split, spec.decode_errors, spec.spelling, job)
    outcome = run_map(job, step, spec.split, records,
                      partitions=spec.num_partitions, sort_buffer=spec.sort_buffer,
                      sort_values=spec.sort_values, sink=spec.sink, writer=writer,
                      skip_bad_records=spec.skip_bad_records, describe=spec.describe(),
                      spelling=spec.spelling)
    input_bytes = outcome.counters.get(("framework", "BYTES_READ"), 0)
    return TaskResult("map", spec.step, spec.index, spec.attempt, outcome.counters,
                      job._status, outcome.map_output, outcome.output, outcome.output_bytes,
                      input_bytes, started, time.time(), os.getpid(), _peak_rss(),
                      {"skipped": outcome.skipped}, outcome.output_crc32)


def run_reduce_task(spec: TaskSpec) -> TaskResult:
    started = time.time()
    job, step = make_job(spec.job, spec.step, spec.job_options, spec.side_data)
    outcome = run_reduce(job, step, spec.source.open_batches(), _open_output(spec.output),
                         partition=spec.index, sort_values=spec.sort_values)
    counters = outcome.counters
    for name, amount in spec.source.counters.items():
        counters[name] = counters.get(name, 0) + amount
    return TaskResult("reduce", spec.step, spec.index, spec.attempt, counters, job._status,
                      None, outcome.output, outcome.output_bytes, 0, started, time.time(),
                      os.getpid(), _peak_rss(), {}, outcome.output_crc32)


def run_task(spec: TaskSpec) -> TaskResult:
    """Run one task (in a worker process, or in the calling process for --runner inline),
    in its own working directory when the job has one (:mod:`mapreduce.taskdir`)."""
    with task_directory(spec.task_dir, f"{spec.step}-{spec.kind}-{spec.index}-{spec.attempt}"):
        return run_map_task(spec) if spec.kind == "map" else run_reduce_task(spec)


__all__ = ["TaskSpec", "TaskResult", "TextOutput", "run_task", "make_job"]
