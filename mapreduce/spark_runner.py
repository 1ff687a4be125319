"""The Spark runner: the same Job on Apache Spark (``--runner spark``).

It reuses only the Job's pure pieces and lets Spark schedule, shuffle and recover::

    driver: JobTracker's option checks, output-dir policy and prepare() (nothing is run by it)
            expand_inputs -> plan_splits / plan_whole_files (same split size as the local runner)
            sc.parallelize(splits, len(splits))          one Spark partition per input split
    step s, map:    mapPartitionsWithIndex: fresh Job, task context (input_path/start/end),
                    mapper(_init/_final) -> the local SortBuffer / CombiningBuffer (same
                    encoding, partitioner, combiner calls and spill boundaries as the local
                    map side) whose spills are streamed to Spark instead of to a run file:
                        ((partition, key bytes, map task, sequence number), value bytes)
                    under SORT_VALUES: ((partition, key bytes, value bytes), None)
    shuffle:        repartitionAndSortWithinPartitions(reducers, partition=record[0])
                    The sort key makes Spark's (unstable) sort reproduce the local runner's
                    stable order: a key's values in map-task order, then emission order
                    (or ascending encoded value under SORT_VALUES).
    step s, reduce: mapPartitionsWithIndex: group by key bytes -> reducer(_init/_final)
    intermediate step: its output partitions, as (key bytes, value bytes), are the next
                    step's map tasks (one per partition, as in the local runner); nothing is
                    written to disk by us.
    final step:     every task writes OUT/_temporary/committed/part-NNNNN (through a per-
                    attempt name and a rename, so a retried or speculative attempt is
                    harmless); after the Spark job succeeds the driver renames the parts into
                    OUT, writes _job.json, then _SUCCESS.  A failed job leaves neither.

Counters go through two Spark accumulators (a dict of counters and a list of task records).
Spark only merges updates of successful tasks, but a map stage Spark recomputes after losing
shuffle files counts twice (Spark's documented accumulator semantics for transformations).

Code shipping: the ``mapreduce`` package is zipped (``mapreduce-<digest>.zip``) and the job
file copied under the very module name the driver imported it as (loader's
``_mapreduce_job_<stem>_<digest>``); both go to ``sc.addPyFile``, so executors need only
Python with pyspark, msgpack and lz4, and classes of the job module unpickle there.  Errors
inside a task are wrapped in ``_TaskError`` whose message carries a base64 JSON payload; the
driver finds it in Spark's exception text and raises the same one-line error the local
runner would, with the user's traceback as detail -- never a Java stack trace.

SparkContext: an active one is reused (spark-submit's, a test session's, a notebook's); one
the runner creates stays alive for the next job in the process and is stopped at exit (or by
:func:`stop_spark`).  pyspark is imported only inside this module's functions.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import errno
import functools
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any, Iterator, Optional

from mapreduce.codec import decode_key, decode_value, encode_key, encode_value
from mapreduce.errors import (MapReduceError, OutputError, SerializationError,
                              TaskFailedError, UsageError)
from mapreduce.inputs import plan_splits, plan_whole_files
from mapreduce.job import Job, identity_mapper
from mapreduce.layout import part_name
from mapreduce.loader import JobRef, _module_name
from mapreduce.lock import OutputLock
from mapreduce.output import TextPartWriter
from mapreduce.pool import user_traceback
from mapreduce.shuffle import MemoryShuffle, value_decoder
from mapreduce.sidedata import load_side_data
from mapreduce.task import (CombiningBuffer, SortBuffer, TaskSpec, UserCodeError,
                            _checked, _DirectCollector, _map_error, _not_iterable, _pairs,
                            _split_bytes, _split_records, not_a_pair, reduce_error)
from mapreduce.tracker import JobConfig, JobResult, JobTracker, _counter_tree

_KEY = itemgetter(0)
_VALUE = itemgetter(1)
#: Records an intermediate step's task hands to Spark at a time (bounds its memory).
_BATCH = 1024
_ERROR_MARK = "MAPREDUCE_TASK_ERROR"
_ERROR_RE = re.compile(_ERROR_MARK + r"\[([A-Za-z0-9+/=]+)\]")
INSTALL_PYSPARK = "pip install 'mapreduce[spark]'"
INSTALL_JAVA = ("install Java 17 or later (e.g. apt-get install openjdk-17-jre-headless) "
                "or point JAVA_HOME at one")

#: JobConfig fields that configure the local engine's own machinery.  Given a value other
#: than their default they are refused: Spark does that job (see docs/spark.md).
_LOCAL_ONLY = {
    "mode": ("--mode", "Spark's shuffle replaces both local shuffle modes"),
    "merge_factor": ("--merge-factor", "Spark merges its own shuffle files"),
    "task_timeout": ("--task-timeout", "use Spark's spark.task.reaper / speculation settings"),
    "max_attempts": ("--max-attempts", "set spark.task.maxFailures instead"),
    "skip_bad_records": ("--skip-bad-records", "it is a local-runner feature"),
    "work_dir": ("--work-dir", "intermediate data lives in Spark's spark.local.dir"),
    "keep_work": ("--keep-work", "there is no journal or task log to keep"),
}


# --- the error payload that crosses from executors to the driver -------------------------------
class _TaskError(Exception):
    """Raised in a Spark task; its message is one marker line the driver decodes."""


def _wrap_error(exc: BaseException, task: str) -> _TaskError:
    if isinstance(exc, MapReduceError):
        cause = exc.__cause__
        detail = user_traceback(cause) if exc.show_traceback and cause is not None else ""
        payload = {"type": type(exc).__name__, "message": str(exc), "detail": detail,
                   "exit_status": exc.exit_status}
    else:  # unexpected: a framework bug or an environment problem; keep everything
        payload = {"type": type(exc).__name__, "message": f"{type(exc).__name__}: {exc}",
                   "detail": "".join(traceback.format_exception(exc)), "exit_status": 1}
    payload["task"] = task
    blob = base64.b64encode(json.dumps(payload).encode("utf-8")).decode("ascii")
    return _TaskError(f"{_ERROR_MARK}[{blob}]")


def _python_error_line(text: str) -> str:
    """The last line of the Python traceback inside Spark's exception text, if any."""
    python_part = text.split("\n\tat ")[0]
    if "Traceback (most recent call last)" in python_part:
        python_part = python_part.rsplit("Traceback (most recent call last)", 1)[1]
    lines = [ln.strip() for ln in python_part.splitlines()
             if re.match(r"^\s*[\w.]+(Error|Exception|Exit|Interrupt)\b.*", ln)]
    if lines:
        return lines[-1]
    first = text.strip().splitlines()
    return first[0] if first else "unknown error"


def _driver_error(exc: BaseException, job_ref: JobRef) -> MapReduceError:
    """Turn what pyspark raised for a failed Spark job into one of our one-line errors."""
    text = str(exc)
    java = getattr(exc, "java_exception", None)
    if java is not None and _ERROR_MARK not in text:
        try:
            text += "\n" + str(java.toString())
        except Exception:  # the gateway may be gone; the Python text is all we have
            pass
    m = _ERROR_RE.search(text)
    if m is None:
        return MapReduceError(f"the Spark job failed: {_python_error_line(text)}")
    payload = json.loads(base64.b64decode(m.group(1)))
    error: MapReduceError
    if payload.get("exit_status") == 2 or payload["type"] == "_ExecutorImportError":
        error = MapReduceError(payload["message"])
    else:
        error = TaskFailedError(f"{payload['task']} failed: {payload['message']}")
    # Tracebacks name the executor's shipped copy of the job file: show the user's file.
    shipped = r'"[^"\n]*/' + re.escape(_module_name(job_ref.path)) + r'\.py"'
    error.detail = re.sub(shipped, lambda _: f'"{job_ref.path}"',  # type: ignore[attr-defined]
                          payload.get("detail", ""))
    return error


class _ExecutorImportError(MapReduceError):
    """The job file cannot be imported on an executor (a dependency missing there)."""

    retryable = False


# --- executor side -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _StepPlan:
    """Everything a task of one step needs; small and picklable (no job class in it)."""

    job_ref: JobRef
    module_name: str
    step: int
    final: bool
    map_only: bool
    reducers: int
    sort_values: bool
    sort_buffer: int
    decode_errors: str
    protocol: str
    job_options: dict
    committed_dir: str
    side_data: Any            # a pyspark Broadcast, or None
    counters: Any             # accumulator of {(group, name): int}
    tasks: Any                # accumulator of [task record]


_JOB_CLASSES: dict[tuple[str, str], type[Job]] = {}


def _job_class(plan: _StepPlan) -> type[Job]:
    """The job class on an executor, imported under the driver's module name."""
    key = (plan.module_name, plan.job_ref.class_name)
    cls = _JOB_CLASSES.get(key)
    if cls is not None:
        return cls
    try:
        module = importlib.import_module(plan.module_name)
    except ModuleNotFoundError as exc:
        if exc.name != plan.module_name:
            raise _ExecutorImportError(
                f"job file {plan.job_ref.path} cannot be imported on a Spark executor: "
                f"No module named {exc.name!r} (install {exc.name!r} on every executor or "
                f"ship it with spark-submit --py-files)") from None
        # The shipped copy is missing (e.g. the file was added to another context): read
        # the job file itself, which works where the driver's path is visible.
        from mapreduce.loader import load_job_class
        cls, _ = load_job_class(plan.job_ref.path, plan.job_ref.class_name)
        _JOB_CLASSES[key] = cls
        return cls
    except Exception as exc:
        raise _ExecutorImportError(
            f"job file {plan.job_ref.path} cannot be imported on a Spark executor: "
            f"{type(exc).__name__}: {exc}") from None
    cls = getattr(module, plan.job_ref.class_name)
    _JOB_CLASSES[key] = cls
    return cls


def _new_job(plan: _StepPlan):
    job = _job_class(plan)()
    job.options = argparse.Namespace(**plan.job_options)
    # .value unpickles the side data: only now that the job module is importable here.
    job.side_data = plan.side_data.value if plan.side_data is not None else {}
    return job, job.steps()[plan.step]


def _attempt_tag() -> str:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return f"spark-{ctx.stageId()}-{ctx.taskAttemptId()}" if ctx is not None else "spark"


def _task_record(plan: _StepPlan, kind: str, index: int, started: float, counters: dict,
                 status: Optional[str], where: str) -> dict[str, Any]:
    c = {name: v for (group, name), v in counters.items() if group == "framework"}
    return {"kind": kind, "step": plan.step, "index": index, "attempt": _attempt_tag(),
            "status": "committed", "input": where, "start": started, "end": time.time(),
            "worker_pid": os.getpid(), "host": os.uname().nodename, "status_message": status,
            "records_in": c.get("MAP_INPUT_RECORDS" if kind == "map"
                                else "REDUCE_INPUT_RECORDS", 0),
            "records_out": c.get("MAP_OUTPUT_RECORDS" if kind == "map"
                                 else "REDUCE_OUTPUT_RECORDS", 0)}


def _bump(counters: dict, name: str, amount: int) -> None:
    key = ("framework", name)
    counters[key] = counters.get(key, 0) + amount


class _PendingSink:
    """A MapSink that keeps spills until the task hands them to Spark (streaming)."""

    def __init__(self) -> None:
        self.spills: list[list[list[tuple[bytes, bytes]]]] = []
        self.counters: dict = {}

    def spill(self, partitions: list[list[tuple[bytes, bytes]]]) -> None:
        self.spills.append(partitions)

    def finish(self) -> None:
        return None


class _Writer:
    def __init__(self, write: Any) -> None:
        self.write = write


class _StepOutput:
    """The previous step's output partition, read as one map task's input (describe only)."""

    def __init__(self, step: int, index: int) -> None:
        self.step, self.index = step, index

    def describe(self) -> str:
        return f"step {self.step} output {self.index}"


class _PartFile:
    """A final task's part file: written under an attempt name, renamed when complete."""

    def __init__(self, plan: _StepPlan, index: int) -> None:
        self.final = os.path.join(plan.committed_dir, part_name(index))
        self.writer = TextPartWriter(f"{self.final}.{_attempt_tag()}", plan.protocol)
        self.write = self.writer.write

    def close(self) -> int:
        size = self.writer.close()
        os.replace(self.writer.path, self.final)  # same bytes whichever attempt wins
        return size


def _guarded(kind: str):
    """Run a task generator, turning any failure into a _TaskError the driver decodes."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(plan: _StepPlan, index: int, items: Iterator) -> Iterator:
            where = [f"partition {index}"] if kind == "reduce" else []
            try:
                yield from fn(plan, index, items, where)
            except Exception as exc:
                name = f"step {plan.step} {kind} task {index}"
                raise _wrap_error(exc, f"{name} ({where[0]})" if where else name) from None
        return run
    return wrap


@_guarded("map")
def _run_map(plan: _StepPlan, index: int, items: Iterator, where: list) -> Iterator:
    started = time.time()
    job, step = _new_job(plan)
    if plan.step == 0:
        split = next(iter(items))  # one input split per Spark partition
        job.input_path = split.path
        job.input_start = getattr(split, "start", 0)
        job.input_end = getattr(split, "end", None)
        records: Iterator = _split_records(split, plan.decode_errors)
    else:
        split = _StepOutput(plan.step - 1, index)
        records = ((decode_key(kb), decode_value(vb)) for kb, vb in items)
    where.append(f"input {split.describe()}")
    n = 0 if plan.map_only else plan.reducers
    spec = TaskSpec("map", plan.job_ref, plan.step, index, _attempt_tag(), n, plan.sort_buffer,
                    plan.sort_values, plan.decode_errors, split=split)
    counters: dict = {}
    pending: list = []          # encoded pairs of an intermediate map-only step
    part: Optional[_PartFile] = None
    sink = _PendingSink()
    if n:
        partitioner = job.partitioner if type(job)._overrides("partitioner") else None
        # As in task.run_map_task: map-side combining unless SORT_VALUES needs the sort path.
        buffer_class = (CombiningBuffer if step.combiner is not None and not plan.sort_values
                        else SortBuffer)
        collector: Any = buffer_class(step, n, plan.sort_buffer, plan.sort_values, sink,
                                      counters, partitioner)
    else:
        if plan.final:
            part = _PartFile(plan, index)
            write = part.write
        else:
            def write(k: Any, v: Any) -> None:
                pending.append((encode_key(k), encode_value(v)))
        collector = _DirectCollector(_Writer(write))
    extend = collector.extend
    mapper = step.mapper or identity_mapper
    seq = 0

    def drain() -> Iterator:
        nonlocal seq
        if pending:
            yield from pending
            pending.clear()
        for parts in sink.spills:
            for p, run in enumerate(parts):
                if plan.sort_values:
                    for kb, vb in run:
                        yield (p, kb, vb), None
                else:
                    for kb, vb in run:
                        yield (p, kb, index, seq), vb
                        seq += 1
        sink.spills.clear()

    i = -1
    method = "combiner_init"
    output_bytes = 0
    out = None
    try:
        if step.combiner_init is not None and n:
            extend(_pairs(step.combiner_init()))
        method = "mapper_init"
        if step.mapper_init is not None:
            extend(_pairs(step.mapper_init()))
        method = "mapper"
        for i, (key, value) in enumerate(records):
            out = mapper(key, value)
            if out is not None:
                extend(out)
            if sink.spills or len(pending) >= _BATCH:
                yield from drain()
        records_in = i + 1
        method = "mapper_final"
        if step.mapper_final is not None:
            extend(_pairs(step.mapper_final()))
        method = "map output"
        if n:
            collector.finish()
        elif part is not None:
            output_bytes = part.close()
        yield from drain()
    except MapReduceError as exc:
        if not isinstance(exc, (SerializationError, UserCodeError)):
            raise
        raise _map_error(spec, collector, method, i, exc) from exc
    except Exception as exc:
        if collector.running is None and method == "map output":
            raise
        mistake = _not_iterable(exc, out) if method == "mapper" and \
            collector.running is None else None
        if mistake is not None:  # as in task.run_map_task
            raise _map_error(spec, collector, method, i, mistake) from None
        raise _map_error(spec, collector, method, i, exc) from exc
    _bump(counters, "MAP_INPUT_RECORDS", records_in)
    _bump(counters, "MAP_OUTPUT_RECORDS", collector.records)
    input_bytes = _split_bytes(split) if plan.step == 0 else 0
    _bump(counters, "BYTES_READ", input_bytes)
    if not n:
        _bump(counters, "OUTPUT_RECORDS", collector.records)
        if part is not None:
            _bump(counters, "BYTES_WRITTEN", output_bytes)
    for key, amount in job._take_counters().items():
        counters[key] = counters.get(key, 0) + amount
    plan.counters.add(counters)
    plan.tasks.add([_task_record(plan, "map", index, started, counters, job._status,
                                 split.describe())])
    if part is not None:
        yield index


@_guarded("reduce")
def _run_reduce(plan: _StepPlan, index: int, items: Iterator,
                where: list) -> Iterator:
    started = time.time()
    job, step = _new_job(plan)
    counters: dict = {}
    pending: list = []
    part: Optional[_PartFile] = None
    if plan.final:
        part = _PartFile(plan, index)
        write = part.write
    else:
        def write(k: Any, v: Any) -> None:
            pending.append((encode_key(k), encode_value(v)))
    records_in = 0

    def stream() -> Iterator[tuple[bytes, bytes]]:
        nonlocal records_in
        if plan.sort_values:  # ((p, key bytes, value bytes), None)
            for k, _ in items:
                records_in += 1
                yield k[1], k[2]
        else:                 # ((p, key bytes, map task, seq), value bytes)
            for k, vb in items:
                records_in += 1
                yield k[1], vb

    reducer = step.reducer
    decode_v = value_decoder(plan.sort_values)
    groups = records_out = 0
    key: Any = None
    method = "reducer_init"
    out = None
    try:
        if step.reducer_init is not None:
            for k, v in _checked(step.reducer_init()):
                write(k, v)
                records_out += 1
        method = "reducer"
        for kb, group in groupby(stream(), _KEY):
            key = decode_key(kb)
            groups += 1
            out = reducer(key, map(decode_v, map(_VALUE, group)))
            if out is not None:
                for pair in out:  # checked as in task.run_reduce_task
                    try:
                        k, v = pair
                    except (TypeError, ValueError):
                        raise not_a_pair(pair, out) from None
                    if pair.__class__ is str:
                        raise not_a_pair(pair, out)
                    write(k, v)
                    records_out += 1
                    if len(pending) >= _BATCH:
                        yield from pending
                        pending.clear()
            if pending:
                yield from pending
                pending.clear()
        if step.reducer_final is not None:
            method = "reducer_final"
            for k, v in _checked(step.reducer_final()):
                write(k, v)
                records_out += 1
        output_bytes = part.close() if part is not None else 0
        yield from pending
    except Exception as exc:
        if method == "reducer":
            exc = _not_iterable(exc, out) or exc
        error = reduce_error(exc, method, key, index)
        if error is exc:
            raise
        raise error from exc
    _bump(counters, "REDUCE_INPUT_RECORDS", records_in)
    _bump(counters, "REDUCE_INPUT_GROUPS", groups)
    _bump(counters, "REDUCE_OUTPUT_RECORDS", records_out)
    _bump(counters, "OUTPUT_RECORDS", records_out)
    if part is not None:
        _bump(counters, "BYTES_WRITTEN", output_bytes)
    for name, amount in job._take_counters().items():
        counters[name] = counters.get(name, 0) + amount
    plan.counters.add(counters)
    plan.tasks.add([_task_record(plan, "reduce", index, started, counters, job._status,
                                 f"partition {index}")])
    if part is not None:
        yield index


def _partition_of_record(key: tuple) -> int:
    """Spark's partition function: the partition the map side computed (record key[0])."""
    return key[0]


# --- accumulators --------------------------------------------------------------------------------
class _CounterParam:
    """Accumulator of ``{(group, name): int}`` (pyspark's AccumulatorParam protocol)."""

    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, a: dict, b: dict) -> dict:
        for k, v in b.items():
            a[k] = a.get(k, 0) + v
        return a


class _RecordParam:
    """Accumulator of a list of task records."""

    def zero(self, value: list) -> list:
        return []

    def addInPlace(self, a: list, b: list) -> list:
        a.extend(b)
        return a


# --- environment checks and the SparkContext -----------------------------------------------------
def _import_pyspark():
    try:
        import pyspark
    except ImportError:
        raise UsageError(f"--runner spark needs pyspark: {INSTALL_PYSPARK}") from None
    return pyspark


def java_version(java: str) -> Optional[int]:
    """The major version ``java -version`` reports (8 for 1.8), or None if unparsable."""
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check_java() -> None:
    """Raise a one-line UsageError unless Java 17+ is where Spark will look for it."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = os.path.join(java_home, "bin", "java")
        if not os.access(java, os.X_OK):
            raise UsageError(f"--runner spark needs Java 17+, but JAVA_HOME={java_home} has "
                             f"no bin/java: {INSTALL_JAVA}")
    else:
        found = shutil.which("java")
        if found is None:
            raise UsageError(f"--runner spark needs Java 17+ and no java is on PATH: "
                             f"{INSTALL_JAVA}")
        java = found
    version = java_version(java)
    if version is None:
        raise UsageError(f"--runner spark needs Java 17+, but {java} -version failed: "
                         f"{INSTALL_JAVA}")
    if version < 17:
        raise UsageError(f"--runner spark needs Java 17+, found Java {version} at {java}: "
                         f"{INSTALL_JAVA}")


_OWN_CONTEXT: Any = None   # the SparkContext this module created, if any
_SHIPPED: dict[int, set[str]] = {}   # id(SparkContext) -> files added with addPyFile

_LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex{0}
# Task failures are reported by mapreduce as one line; Spark would log them with stack traces.
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = off
logger.tsm.name = org.apache.spark.scheduler.TaskSetManager
logger.tsm.level = off
logger.python.name = org.apache.spark.api.python
logger.python.level = error
# pyspark's "shell" logger: at the root's level Spark does not announce "Setting default
# log level" on start-up.
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = warn
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = error
"""


def _scratch_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"mapreduce-spark-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


def quiet_spark_conf(conf: Any) -> Any:
    """Settings that keep Spark's console output to warnings (used for contexts we make)."""
    digest = hashlib.sha256(_LOG4J.encode()).hexdigest()[:12]
    log4j = os.path.join(_scratch_dir(), f"log4j2-{digest}.properties")
    if not os.path.exists(log4j):
        tmp = f"{log4j}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(_LOG4J)
        os.replace(tmp, log4j)
    conf.setIfMissing("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
    conf.setIfMissing("spark.ui.showConsoleProgress",
                      "true" if sys.stderr.isatty() else "false")
    return conf


def spark_context(master: Optional[str], app_name: str = "mapreduce") -> Any:
    """The SparkContext to run on: the active one, or a new one on ``master``.

    A context that is already running is reused (spark-submit's, a notebook's, a test
    session's) and left running.  Without ``master`` a new context takes the master from
    the Spark configuration (``spark-submit --master``, ``spark-defaults.conf``), else
    ``local[*]``.  A context created here stays up for later jobs in the same process
    and is stopped at interpreter exit, or by :func:`stop_spark`.
    """
    global _OWN_CONTEXT
    _import_pyspark()
    from pyspark import SparkConf, SparkContext

    active = SparkContext._active_spark_context
    if active is not None:
        if master is None or active.master == master:
            return active
        if active is not _OWN_CONTEXT:
            raise UsageError(f"--spark-master {master} differs from the master of the "
                             f"SparkContext already running in this process ({active.master}); "
                             "omit --spark-master or stop that context first")
        stop_spark()
    check_java()  # before Spark launches a JVM, so the user never sees a launch failure
    conf = SparkConf()
    master = master or conf.get("spark.master", None) or "local[*]"
    conf.setMaster(master)
    if not conf.contains("spark.app.name"):
        conf.setAppName(f"mapreduce {app_name}")
    quiet_spark_conf(conf)
    python = _executor_python(conf, master)
    # pyspark 4 takes the Python its workers run from PYSPARK_PYTHON alone, read once when
    # the context is made (pyspark/core/context.py; spark.pyspark.python is not read there):
    # set it for that moment, so a job started from a virtualenv runs its workers in it.
    saved = os.environ.get("PYSPARK_PYTHON")
    if python is not None:
        os.environ["PYSPARK_PYTHON"] = python
    try:
        sc = SparkContext(conf=conf, gateway=_launch_gateway(conf))
    except Exception as exc:
        raise MapReduceError(f"cannot start Spark on master {master}: "
                             f"{_python_error_line(str(exc))}") from None
    finally:
        if saved is None:
            os.environ.pop("PYSPARK_PYTHON", None)
        else:
            os.environ["PYSPARK_PYTHON"] = saved
    if _OWN_CONTEXT is None:
        import atexit
        atexit.register(stop_spark)
    _OWN_CONTEXT = sc
    return sc


def _executor_python(conf: Any, master: str) -> Optional[str]:
    """The Python Spark's workers should run: ``PYSPARK_PYTHON`` if the user set it, else
    ``spark.pyspark.python`` if set, else for a local master this very interpreter (the
    workers run on this machine, and the job's packages are installed here); on a cluster
    the cluster's own default (None: see docs/spark.md)."""
    if os.environ.get("PYSPARK_PYTHON"):
        return None
    if conf.contains("spark.pyspark.python"):
        return conf.get("spark.pyspark.python")
    return sys.executable if master.startswith("local") else None


#: JVM console lines that say nothing to a mapreduce user.
_JVM_NOISE = ("WARNING: Using incubator modules",)


def _launch_gateway(conf: Any) -> Any:
    """Start Spark's driver JVM with its stderr filtered (Java's own start-up notices)."""
    import threading

    from pyspark.java_gateway import launch_gateway

    read_fd, write_fd = os.pipe()

    def pump() -> None:
        with os.fdopen(read_fd, "rb") as lines:
            for line in lines:
                text = line.decode("utf-8", "replace")
                if not text.startswith(_JVM_NOISE):
                    sys.stderr.write(text)
                    sys.stderr.flush()

    threading.Thread(target=pump, name="spark-jvm-stderr", daemon=True).start()
    try:
        return launch_gateway(conf, popen_kwargs={"stderr": write_fd})
    finally:
        os.close(write_fd)  # the JVM holds its own copy


def stop_spark() -> None:
    """Stop the SparkContext the runner created, if it is still running."""
    global _OWN_CONTEXT
    sc, _OWN_CONTEXT = _OWN_CONTEXT, None
    if sc is not None:
        _SHIPPED.pop(id(sc), None)
        try:
            sc.stop()
        except Exception:  # stopping at exit: the JVM may already be gone
            pass


def _package_zip() -> str:
    """A zip of the installed mapreduce package, named by its content's digest."""
    package = os.path.dirname(os.path.abspath(__file__))
    files = sorted(f for f in os.listdir(package) if f.endswith(".py"))
    digest = hashlib.sha256()
    for name in files:
        with open(os.path.join(package, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read() + b"\0")
    path = os.path.join(_scratch_dir(), f"mapreduce-{digest.hexdigest()[:16]}.zip")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name in files:
                # a fixed timestamp: the same package gives the same zip
                info = zipfile.ZipInfo(f"mapreduce/{name}", date_time=(1980, 1, 1, 0, 0, 0))
                with open(os.path.join(package, name), "rb") as f:
                    z.writestr(info, f.read())
        os.replace(tmp, path)
    return path


def _job_copy(job_ref: JobRef) -> str:
    """The job file copied under the module name the driver imported it as."""
    with open(job_ref.path, "rb") as f:
        source = f.read()
    directory = os.path.join(_scratch_dir(), "job-" + hashlib.sha256(
        job_ref.path.encode("utf-8", "surrogateescape") + b"\0" + source).hexdigest()[:16])
    path = os.path.join(directory, _module_name(job_ref.path) + ".py")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(source)
        os.replace(tmp, path)
    return path


def _ship(sc: Any, job_ref: JobRef) -> None:
    shipped = _SHIPPED.setdefault(id(sc), set())
    for path in (_package_zip(), _job_copy(job_ref)):
        if path not in shipped:
            sc.addPyFile(path)
            shipped.add(path)


# --- the driver ----------------------------------------------------------------------------------
def _check_options(config: JobConfig) -> None:
    if config.resume:
        raise UsageError("--resume does not apply to --runner spark: Spark recovers failed "
                         "tasks itself; --resume is a local-runner feature")
    defaults = {f.name: f.default for f in dataclasses.fields(JobConfig)}
    for name, (option, why) in _LOCAL_ONLY.items():
        if getattr(config, name) != defaults[name]:
            raise UsageError(f"{option} does not apply to --runner spark ({why})")


def run_spark_job(job_class: type[Job], job_ref: JobRef, config: JobConfig) -> JobResult:
    """Run a job on Spark; same output, _job.json and _SUCCESS as the local runner."""
    started = time.time()
    _check_options(config)
    _import_pyspark()
    # The JobTracker is used only for what is the same for every runner: its checks of the
    # job and options, the output directory policy (refuse / --overwrite) and prepare().
    tracker = JobTracker(job_class, job_ref, config, MemoryShuffle())
    # The local runner's planning, so both cut the input alike (map-only part files match).
    files, split_size, fingerprint = tracker.plan_inputs_and_output()
    out = tracker.output_dir
    try:
        with OutputLock(out):
            summary = _run_locked(tracker, job_class, job_ref, config, files, split_size,
                                  fingerprint, started)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise MapReduceError(f"disk full: {exc}; free some space and run the job "
                                 "again") from None
        raise OutputError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return JobResult(out, summary["counters"], summary, time.time() - started,
                     summary["phases"])


def _run_locked(tracker: JobTracker, job_class: type[Job], job_ref: JobRef,
                config: JobConfig, files: list[str], split_size: int,
                fingerprint: dict[str, Any], started: float) -> dict[str, Any]:
    layout = tracker.layout
    tracker._open_output(files, fingerprint)  # refuses a non-empty OUT; runs prepare()
    # Nothing is journaled: Spark recovers tasks, and a killed Spark run whose work dir has
    # no journal is cleared by the next run as one that committed nothing.
    if tracker.journal is not None:
        tracker.journal.close()
        tracker.journal = None
    try:
        os.remove(layout.journal)
    except FileNotFoundError:
        pass
    sc = None
    broadcast = None
    try:
        side = load_side_data(tracker.side_data)
        sc = spark_context(config.spark_master, job_class.__name__)
        _ship(sc, job_ref)
        if side:
            # Arrays come back memory-mapped from the side-data store: pickle real arrays.
            broadcast = sc.broadcast({k: (v.copy() if type(v).__name__ == "memmap" else v)
                                      for k, v in side.items()})
        counters = sc.accumulator({}, _CounterParam())
        tasks = sc.accumulator([], _RecordParam())
        if job_class.INPUT_FORMAT == "whole_file":
            splits: list[Any] = plan_whole_files(files)
        else:
            splits = plan_splits(files, split_size)
        os.makedirs(layout.committed_dir(), exist_ok=True)
        spark_started = time.time()
        data = sc.parallelize(splits, len(splits))
        steps = tracker.steps
        for s, step in enumerate(steps):
            plan = _StepPlan(job_ref, _module_name(job_ref.path), s, s == len(steps) - 1,
                             step.map_only, tracker.reducers, tracker.sort_values,
                             config.sort_buffer, config.decode_errors,
                             job_class.OUTPUT_PROTOCOL, tracker.job_options,
                             layout.committed_dir(), broadcast, counters, tasks)
            mapped = data.mapPartitionsWithIndex(functools.partial(_run_map, plan),
                                                 preservesPartitioning=step.map_only)
            if step.map_only:
                data = mapped
                continue
            shuffled = mapped.repartitionAndSortWithinPartitions(
                tracker.reducers, _partition_of_record)
            data = shuffled.mapPartitionsWithIndex(functools.partial(_run_reduce, plan))
        try:
            written = sorted(data.collect())
        except KeyboardInterrupt:
            sc.cancelAllJobs()
            raise
        except Exception as exc:
            raise _driver_error(exc, job_ref) from None
        n_out = data.getNumPartitions()
        if written != list(range(n_out)):  # cannot happen unless Spark lost a result
            raise MapReduceError(f"Spark returned part files {written}, expected 0..{n_out - 1}")
        phases = [{"phase": "spark job", "start": spark_started, "end": time.time(),
                   "tasks": len(tasks.value)}]
        summary = {
            "job": {"path": job_ref.path, "class": job_ref.class_name,
                    "fingerprint": fingerprint["fingerprint"],
                    "fingerprint_parts": fingerprint},
            "runner": "spark",
            "spark_master": sc.master,
            "spark_application_id": sc.applicationId,
            "reducers": tracker.reducers,
            "steps": [st.describe() for st in steps],
            "inputs": files,
            "output_dir": tracker.output_dir,
            "config": {k: v for k, v in dataclasses.asdict(config).items()
                       if k not in ("inputs", "output_dir")},
            "start": started,
            "end": time.time(),
            "counters": _counter_tree(counters.value),
            "phases": phases,
            "tasks": sorted(tasks.value, key=lambda t: (t["step"], t["kind"] != "map",
                                                         t["index"])),
        }
        # The local runner's job commit: checks the inputs, replaces an --overwrite'd old
        # output only now, moves the parts in, _job.json, then _SUCCESS.
        return tracker.publish(written, fingerprint, lambda: summary)
    finally:
        tracker.work.remove()  # parts are in OUT by now, or the job failed
        tracker.work.unlock()
        if broadcast is not None:
            try:
                broadcast.destroy()
            except Exception:  # a stopped context has nothing left to free
                pass


__all__ = ["run_spark_job", "spark_context", "stop_spark", "check_java", "java_version",
           "quiet_spark_conf"]
