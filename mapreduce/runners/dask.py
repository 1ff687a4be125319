"""The Dask runner: the same Job on a Dask cluster (``--runner dask``), no JVM needed.

Dask only runs task attempts; everything else is the local runner's.  The coordinator is
:class:`~mapreduce.runners.local.LocalRunner` (planning, commits, the journal, retries,
fetch failures, ``--resume``, the job commit and ``_job.json``) with an executor that submits
each attempt to Dask instead of a local worker pool::

    coordinator (this process)                      Dask workers (threads of worker processes)
      TaskSpec per attempt  --client.submit-->        _run_attempt: the job class (the
                                                      shipped copy), the attempt's own file
                                                      names, task.run_task -> the kernel
      commit (rename), journal  <--future done--      ("ok", TaskResult) | ("error", failure)

The shuffle goes through run files in the job's work directory (``OUT/_temporary`` or
``--work-dir``), written and read by the workers exactly as the local disk shuffle does:
Dask moves only task descriptions and small results, never records, and Dask's own shuffle
is not used.  So the work directory, the inputs and the output must be on storage every
worker can read and write at the same path (this machine's disk for a LocalCluster or
workers on this machine; a shared filesystem such as NFS for a real cluster).

Attempts and retries: Dask is asked for no retries of its own (``retries=0``); a failed
attempt comes back as a failure and the coordinator runs a new attempt (new attempt tag, new
file names), up to ``--max-attempts``, exactly as on the local runner.  When a worker dies
in the middle of a task, Dask's scheduler reruns the task on another worker by itself (up to
its ``distributed.scheduler.allowed-failures``; beyond that the future fails with
KilledWorker, which counts as one failed attempt here).  Every execution of a submitted
attempt writes under its own suffix of the attempt's file prefix, so two executions of the
same attempt never share a file; only the coordinator commits (renames) an output, only the
first finished attempt of a task is committed and a later duplicate is deleted
(first writer wins), and counters come from committed attempts only: a rerun task is never
counted twice.

Code shipping: ``mapreduce`` itself (with msgpack and lz4) must be installed on the workers,
the same version as here (checked before the job starts: one line naming the worker and what
to install).  The job file is shipped to every worker by a worker plugin under the module name
the coordinator imported it as, so classes of the job module unpickle there and workers need
not see the job file's path.  A package the job imports that a worker lacks fails the job with
one line naming the job file, the module and the worker.

Logs: a worker that runs one task at a time (``--nthreads 1``, as a LocalCluster made here)
writes what the task prints to the attempt's log, kept in ``OUT/_logs`` as on the local
runner; a worker with several threads leaves prints on its own stderr.

``--resume`` means what it means on the local runner: the journal in the work directory
lists the committed attempts and a rerun runs only what is missing, on whatever cluster it
is given.  ``--task-timeout`` is refused: Dask cannot stop a task in a worker's thread.

The client: ``dask_client=`` (Python) is the caller's own and is left open; else a
``Client(--dask-scheduler)``, else a ``LocalCluster`` of ``--workers`` single-threaded
processes, both closed when the job ends.  The registry imports this module only for
``--runner dask``, so the other runners never need ``distributed``.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import queue
import sys
import uuid
from typing import Any, Callable, Iterator, Optional

from mapreduce.errors import MapReduceError, UsageError
from mapreduce.job import Job
from mapreduce.loader import JobRef, _module_name, import_job_module, load_job_class, remember
from mapreduce.options import JobConfig
from mapreduce.pool import TaskFailure, failure_from
from mapreduce.runners.local import LocalRunner
from mapreduce.session import JobResult, JobSession
from mapreduce.shuffles import make_shuffle
from mapreduce.storage import configure as configure_storage
from mapreduce.storage import storage_options
from mapreduce.task import TaskSpec

try:  # workers always have distributed; here it is only needed to run on Dask
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # run() says what to install
    WorkerPlugin = object  # type: ignore[assignment,misc]

INSTALL = "pip install 'mapreduce[dask]'"
#: How long to wait for the scheduler to answer before giving up (seconds).
CONNECT_TIMEOUT = 10
#: What every worker must be able to import (mapreduce's own dependencies).
_WORKER_NEEDS = ("mapreduce", "msgpack", "lz4")


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError(f"--runner dask needs distributed: {INSTALL}") from None
    return distributed


# --- worker side -----------------------------------------------------------------------------
class _WorkerImportError(MapReduceError):
    """The job file cannot be imported on a worker (a package missing there)."""

    retryable = False


def _worker_name() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _job_class(ref: JobRef) -> type[Job]:
    """The job class on a worker: the shipped copy (imported under the coordinator's module
    name), else the job file itself if the worker sees its path."""
    name = _module_name(ref.path)
    try:
        # mrjob's module names mapped while it imports, as in Spark's executors
        module = sys.modules.get(name) or import_job_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise _WorkerImportError(
                f"job file {ref.path} cannot be imported on Dask worker {_worker_name()}: "
                f"No module named {exc.name!r} (install {exc.name!r} on every worker)"
                ) from None
        return load_job_class(ref.path, ref.class_name)[0]
    except Exception as exc:
        raise _WorkerImportError(
            f"job file {ref.path} cannot be imported on Dask worker {_worker_name()}: "
            f"{type(exc).__name__}: {exc}") from None
    return getattr(module, ref.class_name)


def _own_names(spec: TaskSpec, token: str) -> TaskSpec:
    """The spec with every file name of the attempt moved under ``PREFIX<token>.``: two
    executions of one attempt (Dask reruns a task whose worker it lost) never share a file,
    and the coordinator's cleanup of PREFIX still covers them."""
    import dataclasses

    marker = f"{os.sep}{spec.kind}-{spec.index:05d}.{spec.attempt}."

    def moved(obj: Any) -> Any:
        if not dataclasses.is_dataclass(obj):
            return obj
        changes = {f: getattr(obj, f).replace(marker, f"{marker}{token}.", 1)
                   for f in ("prefix", "path")
                   if isinstance(getattr(obj, f, None), str) and marker in getattr(obj, f)}
        return dataclasses.replace(obj, **changes) if changes else obj

    return dataclasses.replace(spec, sink=moved(spec.sink), source=moved(spec.source),
                               output=moved(spec.output))


@contextlib.contextmanager
def _task_log(path: Optional[str]) -> Iterator[None]:
    """What the task prints goes to its attempt log, when the worker runs one task at a
    time (sys.stdout is the process's: with several threads it would mix tasks' output)."""
    try:
        from distributed import get_worker
        single = get_worker().state.nthreads == 1
    except (ImportError, ValueError, AttributeError):
        single = False
    if not path or not single:
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8", errors="replace") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


def _run_attempt(fn: Callable[[TaskSpec], Any], spec: TaskSpec, log: Optional[str],
                 storage: Optional[dict[str, Any]] = None) -> tuple[str, Any]:
    """One attempt on a worker: ("ok", TaskResult) or ("error", TaskFailure).  A failure is a
    result, not an exception: Dask does not retry it or log it, the coordinator decides.
    ``storage``: the job's --storage-option values, so a worker process reads remote inputs
    with the same endpoint and credentials as the coordinator (as Spark's executors do)."""
    try:
        configure_storage(storage)
        remember(spec.job, _job_class(spec.job))
        spec = _own_names(spec, uuid.uuid4().hex[:8])
        with _task_log(log):
            return "ok", fn(spec)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit() in a job's code too: the attempt failed
        return "error", failure_from(exc)


class _ShipJob(WorkerPlugin):
    """A worker plugin that puts the job file on every worker (present and future, e.g. one
    a nanny restarts after a crash) under the coordinator's module name.  Registered under a
    fixed name per job module, so a later run replaces it, and an edited job file is
    imported afresh (its old module is dropped)."""

    def __init__(self, module: str, source: bytes) -> None:
        self.module, self.source = module, source

    def setup(self, worker: Any) -> None:
        directory = os.path.join(worker.local_directory, "mapreduce-jobs")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{self.module}.py")
        tmp = f"{path}.{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(self.source)
        os.replace(tmp, path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        sys.modules.pop(self.module, None)
        importlib.invalidate_caches()


def _package_digest() -> str:
    """A digest of the installed mapreduce package's Python sources (here or on a worker)."""
    package = _package_dir()
    files = sorted(os.path.relpath(os.path.join(root, name), package)
                   for root, _dirs, names in os.walk(package) for name in names
                   if name.endswith(".py"))
    digest = hashlib.sha256()
    for name in files:
        with open(os.path.join(package, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()[:16]


def _package_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # mapreduce/


def _probe() -> tuple[str, str]:
    """Run on each worker: its mapreduce's digest and where it is installed."""
    return _package_digest(), _package_dir()


# --- coordinator side ------------------------------------------------------------------------
class DaskExecutor:
    """The WorkerPool interface (``submit`` / ``next_event`` / ``pending``) over Dask
    futures: each finished future is an event, in the order they finish."""

    def __init__(self, client: Any, lost: Callable[[BaseException], MapReduceError]) -> None:
        self._client = client
        self._lost = lost  # the error for a scheduler that went away
        self._futures: dict[Any, Any] = {}       # future -> task id
        self._done: "queue.Queue[Any]" = queue.Queue()
        self._storage = storage_options()  # the session configured them before this

    def submit(self, task_id: Any, fn: Callable[[Any], Any], arg: Any,
               log_path: Optional[str] = None) -> None:
        s, kind, index = task_id
        if self._client.status != "running":
            raise self._lost(RuntimeError(f"the client is {self._client.status}"))
        try:
            future = self._client.submit(
                _run_attempt, fn, arg, log_path, self._storage, pure=False, retries=0,
                key=f"mapreduce-step{s}-{kind}-{index:05d}-{arg.attempt}-"
                    f"{uuid.uuid4().hex[:8]}")
        except Exception as exc:  # the client lost its scheduler
            raise self._lost(exc) from None
        self._futures[future] = task_id
        future.add_done_callback(self._done.put)  # called on the client's thread

    @property
    def pending(self) -> int:
        return len(self._futures)

    def next_event(self, timeout: Optional[float] = None) -> Optional[tuple]:
        try:
            future = self._done.get(timeout=timeout)
        except queue.Empty:
            return None
        task_id = self._futures.pop(future, None)
        if task_id is None:
            return self.next_event(0)  # cancelled by us: not an event
        try:
            status, payload = future.result()
        except Exception as exc:  # Dask's own failure: a lost worker, a dead scheduler
            if self._client.status != "running":
                raise self._lost(exc) from None  # no attempt can run: stop, keep the journal
            return "error", task_id, _dask_failure(exc)
        finally:
            future.release()
        return status, task_id, payload

    def __enter__(self) -> "DaskExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        futures, self._futures = list(self._futures), {}
        if futures:
            try:
                self._client.cancel(futures)
            except Exception:  # the scheduler may be gone: nothing left to cancel
                pass


def _dask_failure(exc: BaseException) -> TaskFailure:
    name = type(exc).__name__
    if name == "KilledWorker":
        return TaskFailure(f"the Dask workers running it died ({exc})", "", worker_died=True)
    if isinstance(exc, ModuleNotFoundError):
        return TaskFailure(f"a Dask worker cannot import {exc.name!r}: install it on every "
                           "worker", "", retryable=False)
    return TaskFailure(f"Dask could not run it: {name}: {exc}", "")


def _refused_at_once(config: JobConfig) -> None:
    """A plain TCP address nobody listens on fails now, not after Dask's connect retries."""
    import socket
    from urllib.parse import urlsplit

    address = config.dask_scheduler or ""
    try:
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return  # Dask's own parser says what is wrong with it
    if parts.scheme != "tcp" or not host or port is None:
        return
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except ConnectionRefusedError:
        raise MapReduceError(f"cannot reach the Dask scheduler at {address} "
                             f"({config.spell('dask_scheduler')}): connection refused; is "
                             "`dask scheduler` running there?") from None
    except OSError:
        return  # a timeout or a name lookup failure: Dask's connect reports it


def _connect(config: JobConfig) -> tuple[Any, Callable[[], None], str]:
    """The client to run on, how to let go of it, and the scheduler's address."""
    distributed = _import_distributed()
    if config.dask_client is not None:
        client = config.dask_client
        if not isinstance(client, distributed.Client):
            raise UsageError(f"{config.spell('dask_client')}: expected a distributed.Client, "
                             f"got {type(client).__name__}")
        if client.status != "running":
            raise UsageError(f"{config.spell('dask_client')}: the client is {client.status}")
        return client, lambda: None, client.scheduler.address
    if config.dask_scheduler:
        _refused_at_once(config)
        try:
            client = distributed.Client(config.dask_scheduler, timeout=CONNECT_TIMEOUT,
                                        set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise MapReduceError(
                f"cannot reach the Dask scheduler at {config.dask_scheduler} "
                f"({config.spell('dask_scheduler')}): {exc}") from None
        return client, client.close, config.dask_scheduler
    import logging
    # A LocalCluster of single-threaded worker processes: the local runner's shape.  Its
    # web server on a free port (":0"): 8787 may be taken by another cluster on the machine.
    cluster = distributed.LocalCluster(n_workers=config.workers, threads_per_worker=1,
                                       processes=True, dashboard_address=":0",
                                       silence_logs=logging.ERROR)
    client = distributed.Client(cluster, set_as_default=False)

    def close() -> None:
        client.close()
        cluster.close()
    return client, close, cluster.scheduler_address


def _check_workers(client: Any, address: str) -> None:
    """Every worker can import mapreduce (this version) and its dependencies."""
    if not client.scheduler_info().get("workers"):
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT * 3)
        except TimeoutError:
            raise MapReduceError(f"the Dask scheduler at {address} has no workers (waited "
                                 f"{CONNECT_TIMEOUT * 3} s): start some with `dask worker "
                                 f"{address}`") from None
    # A builtin (eval) runs where mapreduce itself may be missing: our own function could
    # not even be unpickled there.
    missing: dict[str, list[str]] = {}
    for name in _WORKER_NEEDS:
        expr = f"__import__('importlib.util').util.find_spec({name!r}) is not None"
        for worker, found in client.run(eval, expr, on_error="return").items():
            if found is not True:  # False, or the exception finding it raised
                missing.setdefault(worker, []).append(name)
    for worker, names in sorted(missing.items()):
        raise MapReduceError(f"Dask worker {worker} (scheduler {address}) cannot import "
                             f"{', '.join(names)}: {INSTALL} on every worker")
    here = _package_digest()
    for worker, (digest, where) in sorted(client.run(_probe).items()):
        if digest != here:
            raise MapReduceError(
                f"Dask worker {worker} runs another version of mapreduce ({where}) than this "
                f"process ({_package_dir()}): "
                "install the same one on every worker and restart them")


@contextlib.contextmanager
def _quiet_client() -> Iterator[None]:
    import logging

    loggers = [logging.getLogger(name) for name in ("distributed.client", "distributed.batched",
                                                    "distributed.core", "distributed.comm")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _ship_job(client: Any, ref: JobRef) -> None:
    with open(ref.path, "rb") as f:
        source = f.read()
    module = _module_name(ref.path)
    client.register_plugin(_ShipJob(module, source), name=f"mapreduce-{module}")


def run(job_class: type[Job], job_ref: JobRef, config: JobConfig, listener: Any = None,
        ready: Optional[Callable[[Any], None]] = None) -> JobResult:
    """The registry's entry point (see :mod:`mapreduce.runners`)."""
    if not os.path.isfile(job_ref.path):
        raise UsageError(f"--runner dask ships the job's file to the workers, and "
                         f"{job_ref.class_name} has none ({job_ref.path}): define it in a "
                         ".py file (not in a notebook cell or an interactive session)")
    client, close, address = _connect(config)

    def lost(exc: BaseException) -> MapReduceError:
        first = (str(exc).splitlines() or [""])[0]
        return MapReduceError(f"lost the Dask scheduler at {address} ({type(exc).__name__}: "
                              f"{first}); what was committed is kept: run the same command "
                              f"with {config.spell_on('resume')} to finish the job")

    # Our own client's complaints (a traceback per failed reconnect, also while closing)
    # would bury the one line the job fails with; a caller's client logs as its owner set.
    with _quiet_client() if config.dask_client is None else contextlib.nullcontext():
        try:
            _check_workers(client, address)
            _ship_job(client, job_ref)
            session = JobSession(job_class, job_ref, config, listener)
            threads = sum(w.get("nthreads", 1)
                          for w in client.scheduler_info().get("workers", {}).values())
            if threads != config.workers:  # --verbose: the split size may not fit the cluster
                session.listener.note(
                    f"the Dask cluster at {address} has {threads} worker threads; the split "
                    f"size is planned for {config.spell('workers')} {config.workers}")
            runner = LocalRunner(session, make_shuffle("disk"),
                                 executor=lambda workers, timeout: DaskExecutor(client, lost))
            runner.name = "dask"
            runner.summary_extra = {"dask_scheduler": address}
            if ready is not None:
                ready(runner)
            return runner.run()
        finally:
            close()


__all__ = ["run", "DaskExecutor"]
