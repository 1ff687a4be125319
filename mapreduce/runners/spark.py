"""The Spark runner: the same Job on Apache Spark (``--runner spark``).

Spark schedules, shuffles and recovers; every task runs the same task kernel as the local
runner (:mod:`mapreduce.kernel`), so hooks, combiner calls, encoding, partitioning, errors and
counters are those of the local runner::

    driver: the JobSession (option checks, input planning with the local runner's split
            size, the output directory policy, prepare(), later the job commit)
            sc.parallelize(splits, len(splits))          one Spark partition per input split
    step s, map:    mapPartitionsWithIndex: a fresh Job, its task context, kernel.run_map into
                    a DiskMapSink in a scratch directory of the executor (the local disk
                    shuffle's spills and map-side merge); the merged map output is streamed
                    to Spark partition by partition:
                        ((partition, key bytes, map task, position), value bytes)
                    under SORT_VALUES: ((partition, key bytes, value bytes), None)
    shuffle:        repartitionAndSortWithinPartitions(reducers, partition=record[0])
                    The sort key makes Spark's (unstable) sort reproduce the local runner's
                    stable order: a key's values in map-task order, then emission order
                    (or ascending encoded value under SORT_VALUES).
    step s, reduce: mapPartitionsWithIndex: kernel.run_reduce over the sorted partition
    intermediate step: its output (a run file in the task's scratch directory) is streamed
                    as (key bytes, value bytes); its partitions are the next step's map
                    tasks (one per partition, as in the local runner).
    final step:     every task writes WORK/committed/part-NNNNN (through a per-attempt name
                    and a rename, so a retried or speculative attempt is harmless); after the
                    Spark job succeeds the session's job commit moves the parts into OUT,
                    writes _job.json, then _SUCCESS.  A failed job leaves neither.

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
import errno
import functools
import hashlib
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable, Iterator, Optional

from mapreduce.codec import decode_key, decode_value, encode_key, encode_value
from mapreduce.diskshuffle import DiskMapSink, DiskPairSink
from mapreduce.errors import (MapReduceError, OutputError, TaskFailedError, UsageError,
                              user_traceback)
from mapreduce.events import JobListener
from mapreduce.job import Job
from mapreduce.kernel import run_map, run_reduce, set_task_context, split_records
from mapreduce.layout import part_name
from mapreduce.loader import JobRef, _module_name
from mapreduce.mrjob.job import DriverStep, spark_steps_in_driver
from mapreduce.options import BY_NAME, JobConfig
from mapreduce.output import TextPartWriter
from mapreduce.runfile import RunReader, read_partition
from mapreduce.session import JobResult, JobSession
from mapreduce.sidedata import load_side_data
from mapreduce.storage import configure as configure_storage
from mapreduce.storage import is_remote

_KEY = itemgetter(0)
_VALUE = itemgetter(1)
#: Records an intermediate step's task hands to Spark at a time (bounds its memory).
_BATCH = 1024
_ERROR_MARK = "MAPREDUCE_TASK_ERROR"
_ERROR_RE = re.compile(_ERROR_MARK + r"\[([A-Za-z0-9+/=]+)\]")
INSTALL_PYSPARK = "pip install 'mapreduce[spark]'"
INSTALL_JAVA = ("install Java 17 or later (e.g. apt-get install openjdk-17-jre-headless) "
                "or point JAVA_HOME at one")

#: Map outputs are merged on the executor as the local disk shuffle merges them.
DEFAULT_MERGE_FACTOR = BY_NAME["merge_factor"].default


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
    spelling: str             # how messages name options (--decode-errors / decode_errors)
    protocol: str
    job_options: dict
    committed_dir: str
    side_data: Any            # a pyspark Broadcast, or None
    counters: Any             # accumulator of {(group, name): int}
    tasks: Any                # accumulator of [task record]
    #: --storage-option, for the executors' own remote-store clients (input splits are
    #: read there, by ranged reads through the same storage layer as the driver plans with)
    storage_options: Optional[dict] = None
    output_compression: Optional[str] = None


_JOB_CLASSES: dict[tuple[str, str], type[Job]] = {}


def _job_class(plan: _StepPlan) -> type[Job]:
    """The job class on an executor, imported under the driver's module name."""
    key = (plan.module_name, plan.job_ref.class_name)
    cls = _JOB_CLASSES.get(key)
    if cls is not None:
        return cls
    from mapreduce.loader import import_job_module
    try:
        module = import_job_module(plan.module_name)
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


def _new_job(plan: _StepPlan, split: Any = None):
    configure_storage(plan.storage_options)
    job = _job_class(plan)()
    job.options = argparse.Namespace(**plan.job_options)
    # .value unpickles the side data: only now that the job module is importable here.
    job.side_data = plan.side_data.value if plan.side_data is not None else {}
    set_task_context(job, split)
    return job, job.engine_steps()[plan.step]


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


class _StepOutput:
    """The previous step's output partition, read as one map task's input."""

    def __init__(self, step: int, index: int, items: Iterator) -> None:
        self.step, self.index, self._items = step, index, items

    def records(self) -> Iterator[tuple[Any, Any]]:
        return ((decode_key(kb), decode_value(vb)) for kb, vb in self._items)

    def describe(self) -> str:
        return f"step {self.step} output {self.index}"


class _PartFile:
    """A final task's part file: written under an attempt name, renamed when complete."""

    def __init__(self, plan: _StepPlan, index: int) -> None:
        self.final = os.path.join(plan.committed_dir, part_name(index))
        self._writer = TextPartWriter(f"{self.final}.{_attempt_tag()}", plan.protocol,
                                      plan.output_compression)
        self.write = self._writer.write
        self.crc32: Optional[int] = None

    def finish(self) -> tuple[str, int]:
        size = self._writer.close()
        self.crc32 = self._writer.crc32
        os.replace(self._writer.path, self.final)  # same bytes whichever attempt wins
        return self.final, size


class _RunWriter:
    """An intermediate step's output, written as a run file in the task's scratch directory
    (then streamed to Spark): the kernel's writer interface over a DiskPairSink."""

    crc32 = None

    def __init__(self, path: str) -> None:
        self._sink = DiskPairSink(path)

    def write(self, key: Any, value: Any) -> None:
        self._sink.write(encode_key(key), encode_value(value))

    def finish(self) -> tuple[str, int]:
        return self._sink.finish()


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


def _stream_run(path: str) -> Iterator[tuple[bytes, bytes]]:
    yield from read_partition(path, 0)


@_guarded("map")
def _run_map(plan: _StepPlan, index: int, items: Iterator, where: list) -> Iterator:
    """A map task through the task kernel; its map output (a run file in a scratch
    directory of the executor, as the local disk shuffle writes it) is then streamed to
    Spark's shuffle, partition by partition, each record keyed for the stable order."""
    started = time.time()
    split = next(iter(items)) if plan.step == 0 else _StepOutput(plan.step - 1, index, items)
    job, step = _new_job(plan, split if plan.step == 0 else None)
    where.append(f"input {split.describe()}")
    n = 0 if plan.map_only else plan.reducers
    with tempfile.TemporaryDirectory(prefix="mapreduce-spark-task-") as scratch:
        prefix = os.path.join(scratch, "map.")
        writer: Any = None
        if not n:
            writer = _PartFile(plan, index) if plan.final else _RunWriter(prefix + "out.run")
        describe = f"step {plan.step} map task {index} (input {split.describe()})"
        outcome = run_map(job, step, split,
                          split_records(split, plan.decode_errors, plan.spelling, job),
                          partitions=n, sort_buffer=plan.sort_buffer,
                          sort_values=plan.sort_values,
                          sink=DiskMapSink(prefix, n, DEFAULT_MERGE_FACTOR, plan.sort_values)
                          if n else None, writer=writer, describe=describe)
        if n:
            with RunReader(outcome.map_output.location) as reader:
                for p in range(n):
                    if plan.sort_values:
                        for kb, vb in reader.iter_partition(p):
                            yield (p, kb, vb), None
                    else:
                        for seq, (kb, vb) in enumerate(reader.iter_partition(p)):
                            yield (p, kb, index, seq), vb
        elif not plan.final:
            yield from _stream_run(outcome.output)
    plan.counters.add(_tagged(plan.step, outcome.counters))
    plan.tasks.add([_task_record(plan, "map", index, started, outcome.counters, job._status,
                                 split.describe())])
    if plan.final and not n:
        yield index


def _batches(records: Iterator[tuple[bytes, bytes]], size: int = 4096
             ) -> Iterator[list[tuple[bytes, bytes]]]:
    batch: list = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@_guarded("reduce")
def _run_reduce(plan: _StepPlan, index: int, items: Iterator,
                where: list) -> Iterator:
    """A reduce task through the task kernel, over Spark's sorted partition."""
    started = time.time()
    job, step = _new_job(plan)
    records_in = [0]

    def stream() -> Iterator[tuple[bytes, bytes]]:
        if plan.sort_values:  # ((p, key bytes, value bytes), None)
            for k, _ in items:
                records_in[0] += 1
                yield k[1], k[2]
        else:                 # ((p, key bytes, map task, seq), value bytes)
            for k, vb in items:
                records_in[0] += 1
                yield k[1], vb

    with tempfile.TemporaryDirectory(prefix="mapreduce-spark-task-") as scratch:
        writer: Any = (_PartFile(plan, index) if plan.final
                       else _RunWriter(os.path.join(scratch, "reduce.out.run")))
        outcome = run_reduce(job, step, _batches(stream()), writer, partition=index,
                             sort_values=plan.sort_values)
        if not plan.final:
            yield from _stream_run(outcome.output)
    counters = outcome.counters
    counters[("framework", "REDUCE_INPUT_RECORDS")] = records_in[0]
    plan.counters.add(_tagged(plan.step, counters))
    plan.tasks.add([_task_record(plan, "reduce", index, started, counters, job._status,
                                 f"partition {index}")])
    if plan.final:
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
def _import_pyspark(who: str = "--runner spark"):
    """pyspark, or a one-line UsageError saying what to install (``who``: how the user asked
    for this runner, ``--runner spark`` or ``runner="spark"``)."""
    try:
        import pyspark
    except ImportError:
        raise UsageError(f"{who} needs pyspark: {INSTALL_PYSPARK}") from None
    return pyspark


def check_environment(who: str = "--runner spark", master: Optional[str] = None,
                      option: str = "--spark-master") -> None:
    """Everything Spark needs on this machine, checked before a job touches its output:
    pyspark importable, and Java 17+ unless a SparkContext is already running (then its JVM
    is up, whatever the PATH says now), whose master must then be ``master`` if one is
    asked for (``option``: how the user named it).  One-line UsageErrors."""
    _import_pyspark(who)
    from pyspark import SparkContext

    active = SparkContext._active_spark_context
    if active is None:
        check_java(who)
    elif master is not None and active.master != master and active is not _OWN_CONTEXT:
        raise _other_master(option, master, active.master)


def _other_master(option: str, master: str, active: str) -> UsageError:
    return UsageError(f"{option} {master} differs from the master of the SparkContext "
                      f"already running in this process ({active}); omit {option} or stop "
                      "that context first")


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


def check_java(who: str = "--runner spark") -> None:
    """Raise a one-line UsageError unless Java 17+ is where Spark will look for it (``who``:
    how the user asked for Spark, for the message)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = os.path.join(java_home, "bin", "java")
        if not os.access(java, os.X_OK):
            raise UsageError(f"{who} needs Java 17+, but JAVA_HOME={java_home} has "
                             f"no bin/java: {INSTALL_JAVA}")
    else:
        found = shutil.which("java")
        if found is None:
            raise UsageError(f"{who} needs Java 17+ and no java is on PATH: "
                             f"{INSTALL_JAVA}")
        java = found
    version = java_version(java)
    if version is None:
        raise UsageError(f"{who} needs Java 17+, but {java} -version failed: "
                         f"{INSTALL_JAVA}")
    if version < 17:
        raise UsageError(f"{who} needs Java 17+, found Java {version} at {java}: "
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


def spark_context(master: Optional[str], app_name: str = "mapreduce",
                  option: str = "--spark-master") -> Any:
    """The SparkContext to run on: the active one, or a new one on ``master``.

    A context that is already running is reused (spark-submit's, a notebook's, a test
    session's) and left running.  Without ``master`` a new context takes the master from
    the Spark configuration (``spark-submit --master``, ``spark-defaults.conf``), else
    ``local[*]``.  A context created here stays up for later jobs in the same process
    and is stopped at interpreter exit, or by :func:`stop_spark`.  ``option`` is how the
    user named the master (``--spark-master`` or ``spark_master``), for the message.
    """
    global _OWN_CONTEXT
    _import_pyspark()
    from pyspark import SparkConf, SparkContext

    active = SparkContext._active_spark_context
    if active is not None:
        if master is None or active.master == master:
            return active
        if active is not _OWN_CONTEXT:
            raise _other_master(option, master, active.master)
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
    """A zip of the installed mapreduce package (its .py files, subpackages included),
    named by its content's digest.  The compiled core is not shipped (a zip cannot load it;
    executors run the Python core, which gives the same bytes)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # mapreduce/
    files = sorted(os.path.relpath(os.path.join(root, name), package)
                   for root, _dirs, names in os.walk(package) for name in names
                   if name.endswith(".py") and "__pycache__" not in root)
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
def run(job_class: type[Job], job_ref: JobRef, config: JobConfig,
        listener: Optional[JobListener] = None,
        ready: Optional[Callable[[Any], None]] = None) -> JobResult:
    """Run a job on Spark; same output, _job.json and _SUCCESS as the local runner.  (The
    registry's entry point, see :mod:`mapreduce.runners`.)"""
    # pyspark and Java first: a machine without them fails before the session plans or
    # creates anything (no output directory left behind by a run that could never start).
    check_environment(config.spell_with("runner", "spark"), config.spark_master,
                      config.spell("spark_master"))
    _refuse_remote_output_on_a_cluster(config)
    # The session does what is the same for every runner: the job and option checks, input
    # planning (so both runners cut the input alike: map-only part files match), the output
    # directory policy (refuse / --overwrite), prepare(), the job commit and _job.json.
    with spark_steps_in_driver():  # mrjob's spark() steps: DriverSteps here, not refused
        session = JobSession(job_class, job_ref, config, listener)
    driver_steps = [s for s in session.steps if isinstance(s, DriverStep)]
    if driver_steps and len(driver_steps) != len(session.steps):
        raise UsageError(f"{job_ref.path}: {job_class.__name__} mixes Spark steps (spark()) "
                         "with MRStep steps, which --runner spark does not run yet; run "
                         "them as separate jobs")
    if driver_steps:
        # Options that shape the engine's own tasks and output mean nothing to a spark()
        # step, which reads and writes for itself: refused when set, never ignored.
        for name in _NOT_FOR_SPARK_STEPS:
            if getattr(config, name) != BY_NAME[name].default:
                raise UsageError(f"{config.spell(name)} does not apply to Spark steps "
                                 f"(spark() reads and writes its data itself); omit it "
                                 f"for {job_ref.path}")
    session.plan()
    try:
        with session.locked():
            summary = (_run_driver_steps(session, driver_steps) if driver_steps
                       else _run_locked(session))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise MapReduceError(f"disk full: {exc}; free some space and run the job "
                                 "again") from None
        raise OutputError(f"cannot write {exc.filename or session.output_dir}: "
                          f"{exc.strerror or exc}") from None
    return JobResult(session.output_dir, summary["counters"], summary,
                     time.time() - session.started, summary["phases"])


def _refuse_remote_output_on_a_cluster(config: JobConfig) -> None:
    """Remote output (s3://...) is committed from the job's work directory on the driver
    (docs/storage.md): executors on ``local[N]`` share it, executors on other machines do
    not, and would fail every final task.  Refused before anything runs, in one line."""
    if not is_remote(str(config.output_dir)):
        return
    from pyspark import SparkContext
    active = SparkContext._active_spark_context
    master = config.spark_master or (active.master if active is not None else None) or ""
    if master and not master.startswith("local"):
        raise UsageError(f"output {config.output_dir}: {config.spell_with('runner', 'spark')} "
                         "writes output to a "
                         f"remote store only with a local[N] master, not {master} (the "
                         "final tasks write into the driver's work directory); write to a "
                         "path every executor shares and copy it (docs/storage.md)")


def _run_locked(session: JobSession) -> dict[str, Any]:
    config, job_class, job_ref = session.config, session.job_class, session.job_ref
    layout = session.layout
    # Not resumable: Spark recovers tasks itself, and keeps no journal.  A killed Spark
    # run's work directory has no journal and is cleared by the next run.
    session.open_output(resumable=False)
    sc = None
    broadcast = None
    try:
        side = load_side_data(session.side_data)
        sc = spark_context(config.spark_master, job_class.__name__,
                           config.spell("spark_master"))
        _ship(sc, job_ref)
        if side:
            # Arrays come back memory-mapped from the side-data store: pickle real arrays.
            broadcast = sc.broadcast({k: (v.copy() if type(v).__name__ == "memmap" else v)
                                      for k, v in side.items()})
        counters = sc.accumulator({}, _CounterParam())
        tasks = sc.accumulator([], _RecordParam())
        splits = session.splits()
        session.listener.note(session.describe_plan(len(splits), splits))
        os.makedirs(layout.committed_dir(), exist_ok=True)
        spark_started = time.time()
        data = sc.parallelize(splits, len(splits))
        steps = session.steps
        for s, step in enumerate(steps):
            plan = _StepPlan(job_ref, _module_name(job_ref.path), s, s == len(steps) - 1,
                             step.map_only, session.reducers_of(s), session.sort_values,
                             config.sort_buffer, config.decode_errors, config.spelling,
                             session.output_protocol, session.job_options,
                             layout.committed_dir(), broadcast, counters, tasks,
                             config.storage_options, config.output_compression)
            mapped = data.mapPartitionsWithIndex(functools.partial(_run_map, plan),
                                                 preservesPartitioning=step.map_only)
            if step.map_only:
                data = mapped
                continue
            shuffled = mapped.repartitionAndSortWithinPartitions(
                session.reducers_of(s), _partition_of_record)
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
        task_records = sorted(tasks.value, key=lambda t: (t["step"], t["kind"] != "map",
                                                          t["index"]))
        # Per-task counters are not kept by Spark's accumulator: per step, from the records.
        by_step = _step_counters(counters.value, task_records)

        def summary() -> dict[str, Any]:
            return session.summary(runner="spark", tasks=task_records,
                                   task_counters=by_step, phases=phases,
                                   extra={"spark_master": sc.master,
                                          "spark_application_id": sc.applicationId})

        # The job commit every runner shares: checks the inputs, replaces an --overwrite'd
        # old output only now, moves the parts in, _job.json, then _SUCCESS.
        result = session.publish(written, summary)
        session.listener.job_finished(result)
        return result
    finally:
        session.work.remove()  # parts are in OUT by now, or the job failed
        if broadcast is not None:
            try:
                broadcast.destroy()
            except Exception:  # a stopped context has nothing left to free
                pass


#: Options a job made of Spark steps refuses when set (see run()).
_NOT_FOR_SPARK_STEPS = ("reducers", "split_size", "sort_buffer", "decode_errors",
                        "output_compression")


def _run_driver_steps(session: JobSession, steps: list) -> dict[str, Any]:
    """mrjob's Spark steps, one driver process each (:mod:`mapreduce.runners.spark_driver`):
    the first reads the inputs (joined by commas, as mrjob passes them), each later one the
    previous step's output directory; the last one's part files become the job's."""
    from mapreduce.runners.spark_driver import run_spark_step

    config, layout = session.config, session.layout
    session.open_output(resumable=False)
    try:
        master = _driver_master(config.spark_master)
        env = dict(os.environ, PYSPARK_SUBMIT_ARGS=_submit_args(master))
        python = _executor_python(_DictConf({}), master)
        if python is not None:
            env["PYSPARK_PYTHON"] = python
        session.listener.note(f"{len(steps)} Spark step(s) (spark()), each in a driver "
                              f"process on master {master}")
        input_path = ",".join(session.files)
        phases = []
        for s in range(len(steps)):
            started = time.time()
            output_path = os.path.join(layout.work_dir, f"spark-step-{s}")
            error = run_spark_step({"job_path": session.job_ref.path,
                                    "class_name": session.job_ref.class_name,
                                    "job_options": session.job_options, "step": s,
                                    "input": input_path, "output": output_path}, env)
            if error is not None:
                failed = TaskFailedError(f"step {s} (spark()) failed: {error['message']}")
                failed.detail = error["detail"]  # type: ignore[attr-defined]
                raise failed
            phases.append({"phase": f"step {s} spark()", "start": started,
                           "end": time.time(), "tasks": 1})
            input_path = output_path
        parts = _spark_parts(input_path, session.job_ref.path, len(steps) - 1)
        os.makedirs(layout.committed_dir(), exist_ok=True)
        for i, part in enumerate(parts):
            os.replace(part, layout.committed_part(i))

        def summary() -> dict[str, Any]:
            return session.summary(runner="spark", tasks=[], task_counters={},
                                   phases=phases, extra={"spark_master": master})

        result = session.publish(list(range(len(parts))), summary)
        session.listener.job_finished(result)
        return result
    finally:
        session.work.remove()


def _driver_master(master: Optional[str]) -> str:
    """The master a Spark step's own SparkContext gets: --spark-master, else the master of
    the context running in this process (a test session's, a notebook's), else
    ``local[*]`` (spark-submit's default)."""
    if master:
        return master
    try:
        from pyspark import SparkContext
        active = SparkContext._active_spark_context
    except ImportError:
        active = None
    return active.master if active is not None else "local[*]"


def _submit_args(master: str) -> str:
    """PYSPARK_SUBMIT_ARGS for a driver process: what spark-submit would be given (the
    master, and the runner's quiet logging)."""
    conf = {}
    quiet_spark_conf(_DictConf(conf))
    args = ["--master", master]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    # pyspark splits PYSPARK_SUBMIT_ARGS with shlex (java_gateway.launch_gateway)
    return " ".join(shlex.quote(a) for a in args) + " pyspark-shell"


class _DictConf:
    """The few SparkConf calls this module makes, over a dict (a driver process's settings,
    passed as spark-submit arguments; it reads the rest of its configuration itself)."""

    def __init__(self, conf: dict) -> None:
        self.conf = conf

    def contains(self, key: str) -> bool:
        return key in self.conf

    def get(self, key: str, default: Any = None) -> Any:
        return self.conf.get(key, default)

    def setIfMissing(self, key: str, value: str) -> None:
        self.conf.setdefault(key, value)


def _spark_parts(directory: str, job_path: str, step: int) -> list[str]:
    """The part files ``saveAsTextFile`` left in ``directory``, in name order."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith("part-"))
    except FileNotFoundError:
        raise TaskFailedError(f"step {step} (spark()) of {job_path} wrote nothing to its "
                              "output_path") from None
    return [os.path.join(directory, n) for n in names]


def _tagged(step: int, counters: dict) -> dict:
    """A task's counters for the accumulator: each tagged with the task's step."""
    return {(step, group, name): value for (group, name), value in counters.items()}


def _step_counters(counters: dict, tasks: list[dict[str, Any]]) -> dict[tuple, dict]:
    """Counters keyed like committed tasks' (one pseudo-task per step), for the session's
    per-step summary: the accumulator sums them per (step, group, name)."""
    by_step: dict[tuple, dict] = {}
    for (step, group, name), value in counters.items():
        by_step.setdefault((step, "all", 0), {})[(group, name)] = value
    return by_step


__all__ = ["run", "spark_context", "stop_spark", "check_environment", "check_java",
           "java_version", "quiet_spark_conf"]
