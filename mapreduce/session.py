"""The job session: everything about one job run that is true on every runner.

A runner (:mod:`mapreduce.runners`) decides where and how task attempts run; the session
owns the rest, through public methods every runner calls in this order::

    session = JobSession(job_class, job_ref, config, listener)  # checks the job and options
    session.plan()               # inputs -> files, split size, fingerprint; OUT made
    with session.locked():       # OUT/_LOCK (and, once made, the work directory's)
        state = session.open_output(resumable=...)   # the output policy table (below)
        ... run the tasks: session.splits(), session.reducers_of(s), session.side_data ...
        summary = session.publish(parts, session.summary(runner=..., ...))
    session.finish()             # remove the work directory (unless --keep-work)

* **Planning**: the inputs are expanded (never the job's own output or work directory),
  the work directory's place is checked (:mod:`mapreduce.workdir`), the split size chosen,
  and the job fingerprinted: job file, the options that shape output (the option table's
  ``shapes_output``), the output path, each input's path, size, mtime, inode and ctime.
* **The output directory policy** (:meth:`open_output`): what to do with an existing OUT and
  work directory -- run, continue (the runner's journal), nothing to do, or refuse -- and the
  old output ``--overwrite`` replaces (only at the commit).
* **Side data**: ``Job.prepare()`` runs once, in the coordinator; what it returns is stored
  in the work directory (:mod:`mapreduce.sidedata`).
* **The job commit** (:meth:`publish`, Hadoop's FileOutputCommitter v1): inputs checked
  again, the replaced output set aside, part files moved in (also across file systems),
  ``_job.json``, then ``_SUCCESS`` last.  Every step can be repeated.  To a remote store
  (no rename: docs/storage.md) the parts are uploaded instead, after the replaced output is
  deleted, ``_SUCCESS`` first; the work directory then lives on this machine.
* **``_job.json``** (:meth:`summary`): one builder, schema version :data:`SUMMARY_SCHEMA`,
  documented in docs/job-json.md; counters per step, and job-level counters whose
  ``OUTPUT_RECORDS`` / ``BYTES_WRITTEN`` are the final output's own.

It knows nothing of processes, pools, journals' records, Spark or Dask.
"""
from __future__ import annotations

import argparse
import atexit
import errno
import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Optional

from mapreduce.errors import (CorruptDataError, InputError, JobDefinitionError, MapReduceError,
                              OutputError, TaskFailedError, UsageError, user_traceback)
from mapreduce.events import JobListener
from mapreduce.inputs import (CombinedSplit, choose_split_size, expand_inputs, file_size, input_roots,
                              plan_splits, plan_whole_files)
from mapreduce.job import Job, Step
from mapreduce.journal import JOB_COMMITTED, read_journal
from mapreduce.layout import COMMIT_DIR, JOB_SUMMARY_FILE, SUCCESS_FILE, WorkLayout, part_name
from mapreduce.loader import JobRef
from mapreduce.lock import LOCK_FILE, OutputLock
from mapreduce.options import BY_NAME, OPTIONS, JobConfig, recorded_config
from mapreduce.output import OUTPUT_COMPRESSION_SUFFIXES, PROTOCOLS, ZSTD_OUTPUT_MISSING
from mapreduce.sidedata import SideDataRef, store_side_data
from mapreduce.storage import configure as configure_storage
from mapreduce.storage import describe_failure, filesystem_for, scheme_of
from mapreduce.taskdir import (STAGE_DIR, TaskDir, Upload, check_names, parse_setup,
                               resolve_upload, stage)
from mapreduce.workdir import WorkDir, check_placement, work_dir_path

#: The version of ``_job.json``'s layout (docs/job-json.md).  2: counters per step; the
#: job-level OUTPUT_RECORDS and BYTES_WRITTEN are the final output's.
SUMMARY_SCHEMA = 2
#: Where attempt logs are kept after the job commits (Hadoop keeps them as job history).
LOGS_DIR = "_logs"
#: Counters that describe the job's input (the first step's) and its output (the last
#: step's) at job level; every other counter is summed over the steps.
FIRST_STEP_COUNTERS = ("MAP_INPUT_RECORDS", "BYTES_READ")
LAST_STEP_COUNTERS = ("OUTPUT_RECORDS", "BYTES_WRITTEN")

TaskKey = tuple  # (step, kind, index)

# What open_output() decided.
RUN, RESUME, DONE = "run", "resume", "done"


@dataclass
class JobResult:
    output_dir: str
    counters: dict[str, dict[str, int]]
    summary: dict[str, Any]
    wall_seconds: float
    phases: list[dict[str, Any]] = field(default_factory=list)


def counter_tree(flat: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    tree: dict[str, dict[str, int]] = {}
    for (group, name), value in sorted(flat.items()):
        tree.setdefault(group, {})[name] = value
    return tree


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def summary_text(value: Any, level: int = 0) -> str:
    """``_job.json``'s text: objects indented two spaces a level, every list one item a line.

    Not ``json.dumps(indent=2)``: with ``indent`` the json module drops to its pure-Python
    encoder, which took 1.2 s (a third of the end of the job) for the 2,005 tasks of a job
    with 2,000 tiny map tasks.  Here each list item (a task, a phase, an input) is one call
    of the C encoder; only the few objects above them are walked in Python.
    """
    pad = "  " * (level + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(key if isinstance(key, str) else str(key))}: "
                 f"{summary_text(item, level + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, list) and value:
        return ("[\n" + ",\n".join(pad + json.dumps(item, default=str) for item in value)
                + "\n" + "  " * level + "]")
    return json.dumps(value, default=str)


def journal_finished(path: str) -> bool:
    """Does the journal record a committed job (a kept work directory of a finished job)?"""
    try:
        records, _torn = read_journal(path)
    except CorruptDataError:
        return False  # not trustworthy: --resume reports it, --overwrite discards it
    return any(r.type == JOB_COMMITTED for r in records)


class JobSession:
    """One job run's runner-independent state and policies (see the module docstring)."""

    def __init__(self, job_class: type[Job], job_ref: JobRef, config: JobConfig,
                 listener: Optional[JobListener] = None) -> None:
        self.job_class = job_class
        self.job_ref = job_ref
        self.config = config
        self.listener = listener or JobListener()
        # The job's own options first: steps() may depend on them (e.g. --iterations).
        self.job_options = dict(job_class.default_options(), **config.job_options)
        for dest, run_option in job_class.run_options_for_tasks().items():
            self.job_options[dest] = getattr(config, run_option)  # mrjob's pass_arg_through
        try:
            job_class.check_definition()  # never silently ignore a hook we do not run
        except JobDefinitionError as exc:
            raise UsageError(f"{job_ref.path}: {exc}") from None
        planner = job_class()
        planner.options = argparse.Namespace(**self.job_options)
        self.steps: list[Step] = planner.engine_steps()
        self._plan_task_dir(planner)
        self.input_format = planner.engine_input_format()
        self.output_protocol = job_class.engine_output_protocol()
        if not self.steps:
            raise UsageError(f"{job_ref.path}: steps() returned no steps")
        self.reducers = config.reducers if config.reducers is not None else job_class.REDUCERS
        if type(self.reducers) is not int or self.reducers < 1:
            raise UsageError(f"{job_ref.path}: REDUCERS must be an int of at least 1 (got "
                             f"{self.reducers!r})")
        self.sort_values = bool(job_class.SORT_VALUES)
        if self.input_format not in ("lines", "whole_file"):
            raise UsageError(f"{job_ref.path}: INPUT_FORMAT must be 'lines' or 'whole_file' "
                             f"(got {self.input_format!r})")
        if self.output_protocol not in PROTOCOLS:
            raise UsageError(f"{job_ref.path}: OUTPUT_PROTOCOL must be one of "
                             f"{', '.join(PROTOCOLS)} (got {self.output_protocol!r})")
        if config.output_compression == "zst":
            try:
                import zstandard  # noqa: F401  (an optional extra: refused now, not in a task)
            except ImportError:
                raise UsageError(ZSTD_OUTPUT_MISSING) from None
        # The storage options (credentials, an endpoint) go to the remote stores of this
        # process and of the workers it forks, and nowhere else (never _job.json).
        configure_storage(config.storage_options)
        # Where the output goes, through the filesystem seam (an unknown URL scheme is refused
        # here, before anything runs).
        self.fs, output = filesystem_for(config.output_dir, "output")
        #: Output in a remote store (no rename, no lock, no fsync): the commit uploads
        #: (docs/storage.md) and the work directory stays on this machine.
        self.remote = not self.fs.local
        self.output_dir = output if self.remote else os.path.abspath(output)
        self.work = WorkDir(work_dir_path(self.output_dir, config.work_dir), self.output_dir)
        self.layout = WorkLayout(self.work.path)
        self._uploaded_logs: set[str] = set()
        self.replaced: list[str] = []   # --overwrite: entries of OUT the commit replaces
        self.side_data: Optional[SideDataRef] = None
        #: The task working directory (files, --cmdenv, --setup), once staged; None: none.
        self.task_dir: Optional[TaskDir] = None
        self.files: list[str] = []
        self.input_bytes = 0
        self.split_size = 0
        self.fingerprint: dict[str, Any] = {}
        self.started = time.time()

    # --- planning ------------------------------------------------------------------------------
    def reducers_of(self, s: int) -> int:
        """Reduce tasks of step ``s``: its own ``Step(reducers=N)``, else --reducers or the
        job's REDUCERS; 0 for a map-only step."""
        step = self.steps[s]
        if step.map_only:
            return 0
        return step.reducers if step.reducers is not None else self.reducers

    def plan(self) -> None:
        """Expand the inputs, choose the split size, fingerprint the job, check where the
        work directory goes, and make sure the output directory exists and is writable."""
        out = self.output_dir
        inputs = self._spool_stdin(list(self.config.inputs))
        # The job's own output and work directory are never its input (-o inside an input
        # directory: the previous run's part files must not be read by the next).
        self.files = expand_inputs(inputs, exclude=[out, self.work.path])
        if self._wants_task_dir():
            # Tasks run in their own working directory: a relative input path must still
            # name the same file there.
            self.files = [f if scheme_of(f) else os.path.abspath(f) for f in self.files]
        check_placement(self.config.work_dir, self.work.path, out,
                        input_roots(inputs), self.files, self.config.spell("work_dir"))
        total = self.input_bytes = sum(file_size(f) for f in self.files)
        self.split_size = self.config.split_size or choose_split_size(total,
                                                                      self.config.workers)
        self.fingerprint = self._fingerprint()
        if self.remote:
            self._check_remote_output()
            return
        if os.path.exists(out) and not os.path.isdir(out):
            raise OutputError(f"output path exists and is not a directory: {out}")
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output directory {out}: {exc.strerror}") from None
        if not os.access(out, os.W_OK):
            raise OutputError(f"output directory is not writable: {out}")

    def _spool_stdin(self, inputs: list[str]) -> list[str]:
        """Input ``-`` is standard input (as with mrjob): copied once to a temporary file
        (removed when this process exits), which is then planned and split like any file.
        Standard input cannot be read twice, so such a job cannot be resumed."""
        if "-" not in inputs:
            return inputs
        if self.config.resume:
            raise UsageError(f"input - (standard input) cannot be read again: a job reading "
                             f"it cannot {self.config.spell_on('resume')}")
        spool = tempfile.mkdtemp(prefix="mapreduce-stdin-")
        atexit.register(shutil.rmtree, spool, True)
        path = os.path.join(spool, "stdin")
        with open(path, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        return [path if arg == "-" else arg for arg in dict.fromkeys(inputs)]

    def _check_remote_output(self) -> None:
        """Before anything runs: the output's store answers, its bucket exists, and the
        output URL is not a file (each refusal one line naming the URL)."""
        out = self.output_dir
        scheme, rest = out.split("://", 1)
        root = f"{scheme}://{rest.split('/', 1)[0]}"
        try:
            if root != out and not self.fs.exists(root):
                raise OutputError(f"cannot write output {out}: no such bucket {root}")
            if self.fs.exists(out) and not self.fs.info(out).is_dir:
                raise OutputError(f"output path exists and is not a directory: {out}")
        except OutputError:
            raise
        except Exception as exc:  # the store's own errors: denied, unreachable, ...
            raise OutputError(f"cannot write output {out}: {describe_failure(exc)}") from None

    def _remote_entries(self) -> list[str]:
        """The names in the remote output directory (none if it does not exist)."""
        try:
            return [e.name for e in self.fs.list(self.output_dir)]
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise OutputError(f"cannot list output {self.output_dir}: "
                              f"{describe_failure(exc)}") from None

    def splits(self) -> list[Any]:
        """The first step's map tasks' inputs: line-aligned byte ranges, or whole files."""
        if self.input_format == "whole_file":
            return plan_whole_files(self.files)
        return plan_splits(self.files, self.split_size)

    def describe_plan(self, tasks: int, splits: Optional[list[Any]] = None) -> str:
        how = ("one map task per file (INPUT_FORMAT = 'whole_file')"
               if self.input_format == "whole_file"
               else f"split size {self.split_size} bytes")
        packed = [len(s.parts) for s in splits if isinstance(s, CombinedSplit)] \
            if splits else []
        if packed:
            how += (f"; {sum(packed)} small files packed into {len(packed)} "
                    f"split{'s' if len(packed) != 1 else ''}")
        size = self.input_bytes
        n = len(self.files)
        return (f"planned {tasks} map task{'s' if tasks != 1 else ''} over {n} input "
                f"file{'s' if n != 1 else ''} ({size} bytes; {how})")

    def _fingerprint(self) -> dict[str, Any]:
        options = {o.name: getattr(self.config, o.name) for o in OPTIONS if o.shapes_output}
        options.update(reducers=self.reducers, split_size=self.split_size,
                       job_options=self.job_options)
        parts = {"job_file": self.job_ref.path, "job_class": self.job_ref.class_name,
                 "job_sha256": self._job_digest(), "options": options,
                 "output": (self.output_dir if self.remote
                            else os.path.realpath(self.output_dir)),
                 "inputs": [filesystem_for(path)[0].identity(path) for path in self.files]}
        parts = json.loads(json.dumps(parts, default=repr))  # as the journal will hold it
        parts["fingerprint"] = hashlib.sha256(
            json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()
        return parts

    def _job_digest(self) -> str:
        """What identifies the job's code: its file's hash, or for a class defined where
        there is no file (a notebook cell, ``python -c``) the hash of its source."""
        if os.path.isfile(self.job_ref.path):
            return _file_sha256(self.job_ref.path)
        try:
            source = inspect.getsource(self.job_class)
        except (OSError, TypeError):
            source = self.job_class.__qualname__
        return hashlib.sha256(source.encode("utf-8")).hexdigest()

    def refuse_changed(self, old: dict[str, Any], finished: bool = False) -> None:
        """Raise OutputError naming what differs between fingerprint ``old`` (journaled, or
        in a finished output's ``_job.json``) and this job's."""
        new = self.fingerprint
        if old.get("fingerprint") == new["fingerprint"]:
            return
        why = "the job or its inputs changed"
        if old.get("job_sha256") != new["job_sha256"] or old.get("job_class") != new["job_class"]:
            why = (f"job file {self.job_ref.path} changed" if old.get("job_file") ==
                   new["job_file"] else f"it was made by job {old.get('job_file')} "
                   f"({old.get('job_class')}), not {self.job_ref.path}")
        elif old.get("options") != new["options"]:
            changed = []
            for k, v in new["options"].items():
                was = old["options"].get(k)
                if was == v:
                    continue
                name = "job options" if k == "job_options" else \
                    "split size" if k == "split_size" else self.config.spell(k)
                changed.append(f"{name} was {was!r}, now {v!r}")
            why = "options changed (" + "; ".join(changed) + ")"
        elif old.get("output", new["output"]) != new["output"]:
            why = f"it holds the job of output {old['output']}, not {new['output']}"
        elif old.get("inputs") != new["inputs"]:
            before = {i[0]: i[1:] for i in old.get("inputs", [])}
            after = {i[0]: i[1:] for i in new["inputs"]}
            diff = sorted(set(before) ^ set(after)) or [p for p in after if before[p] != after[p]]
            why = (f"input {diff[0]} changed (added, removed, or its size, modification time, "
                   "inode or change time differ)")
        what = "finished job" if finished else "job"
        raise OutputError(f"cannot {self.config.spell_on('resume')} the {what} in "
                          f"{self.output_dir}: {why}; run with "
                          f"{self.config.spell_on('overwrite')} to run it again")

    # --- the output directory ------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the output directory's lock (and the work directory's, taken by
        :meth:`open_output`) for the body."""
        if self.remote:  # a store has no lock: the work directory's (on this machine) serves
            try:
                yield
            finally:
                self.work.unlock()
            return
        with OutputLock(self.output_dir):
            try:
                yield
            finally:
                self.work.unlock()

    def open_output(self, resumable: bool) -> str:
        """Decide what this run does with OUT and the work directory.

        Returns RUN (a fresh job: the work directory is made and side data stored), RESUME
        (an unfinished job is to be continued: the runner reads its journal; only when
        ``resumable``) or DONE (OUT already holds this very job's finished output and
        ``--resume`` was asked: nothing to do).

        =====================  ==================  ====================  ====================
        what is there          plain run           --resume              --overwrite
        =====================  ==================  ====================  ====================
        nothing                run                 run                   run
        an unfinished job      refuse              continue it           discard it, run
        finished output        refuse              nothing to do, if     run; the old output
                                                   the fingerprint is    stays until the new
                                                   the same, else refuse job commits
        other files            refuse              refuse                as finished output
        =====================  ==================  ====================  ====================

        A work directory with no journal (a job killed before it wrote one) committed
        nothing and is cleared.  Only a work directory this user's mapreduce made is ever
        used or deleted (:class:`~mapreduce.workdir.WorkDir`).
        """
        out = self.output_dir
        config = self.config
        if self.remote:
            entries = sorted(self._remote_entries())
        else:
            work_name = os.path.relpath(self.work.path, out)
            entries = sorted(e for e in os.listdir(out) if e not in (LOCK_FILE, work_name))
        if self.work.exists:
            self.work.check_ours()
            self.work.lock()
        journal_path = self.layout.journal
        has_journal = os.path.exists(journal_path)
        if self.work.exists and not has_journal:
            self.work.remove()  # killed before its journal existed: it committed nothing
        finished_journal = has_journal and journal_finished(journal_path)
        unfinished = has_journal and not finished_journal
        if config.resume:
            if unfinished and resumable:
                self.work.check_serves_output()
                return RESUME
            if SUCCESS_FILE in entries:
                self._check_finished_output()
                if COMMIT_DIR in entries:  # a commit killed after _SUCCESS
                    self.fs.remove_tree(self.fs.join(out, COMMIT_DIR))
                if finished_journal:
                    self.work.remove()
                return DONE
            if entries:
                raise OutputError(f"nothing to resume in {out}: no journal at {journal_path}")
            # nothing was committed yet: --resume simply runs the job
        elif entries or unfinished:
            if not config.overwrite:
                if unfinished:
                    raise OutputError(
                        f"output directory {out} holds an unfinished job: pass "
                        f"{config.spell_on('resume')} to continue it or "
                        f"{config.spell_on('overwrite')} to start over")
                raise OutputError(f"output directory is not empty: {out} (pass "
                                  f"{config.spell_on('overwrite')} to replace it)")
            self._check_overwritable()
            # The old output stays, complete and readable, until this job commits: the job
            # commit replaces exactly these entries (see publish).  A previous job's work
            # directory and an old commit's leftovers are not output: they go now.
            self.work.remove()
            if COMMIT_DIR in entries:
                self.fs.remove_tree(self.fs.join(out, COMMIT_DIR))
            self.replaced = [e for e in entries if e != COMMIT_DIR]
        elif finished_journal:
            self.work.remove()  # a kept (--keep-work) journal of an output since removed
        self.work.create()
        self.work.lock()
        # prepare() runs once per job: its result is stored (and journaled by runners that
        # resume), so tasks of every run see the same side data (e.g. the same split points).
        self.side_data = store_side_data(self._prepare(),
                                         os.path.join(self.layout.work_dir, "side"))
        self.stage_task_dir()
        return RUN

    def journal_header(self) -> dict[str, Any]:
        """What a runner's journal starts with: the fingerprint, the configuration, the side
        data's place and digests, and what an --overwrite replaces."""
        header = dict(self.fingerprint)
        header["config"] = json.loads(json.dumps(self._public_config(), default=repr))
        header["side_data"] = asdict(self.side_data) if self.side_data else None
        header["replaces"] = self.replaced
        return header

    def _public_config(self) -> dict[str, Any]:
        """The configuration, without what must never be written down: the storage options
        (credentials) are left out of the journal and _job.json; only their keys show."""
        config = recorded_config(self.config)
        config["storage_options"] = sorted(config.get("storage_options") or {})
        return config

    def restore(self, header: dict[str, Any]) -> None:
        """Take the state a journal header recorded (on --resume)."""
        self.refuse_changed(header)
        self.replaced = list(header.get("replaces", []))
        side = header.get("side_data")
        self.side_data = SideDataRef(**side) if side else None
        self.stage_task_dir()

    def _check_overwritable(self) -> None:
        out = self.output_dir
        flag = self.config.spell_on("overwrite")
        if self.remote:
            for f in self.files:
                if f.startswith(out.rstrip("/") + "/"):
                    raise OutputError(f"refusing to {flag} {out}: it contains input file {f}")
            return
        real_out = os.path.realpath(out)
        for f in self.files:
            if os.path.realpath(f).startswith(real_out + os.sep):
                raise OutputError(f"refusing to {flag} {out}: it contains input file {f}")
        if real_out in (os.path.realpath(p) for p in (os.sep, os.path.expanduser("~"),
                                                       os.getcwd())):
            raise OutputError(f"refusing to {flag} {out}: not a job output directory")

    def _check_finished_output(self) -> None:
        """``--resume`` over a finished output: fine if it is this very job's, else refuse
        with what changed (as for an unfinished job)."""
        try:
            old = self.finished_summary()["job"]
        except (OSError, ValueError, KeyError, TypeError):
            raise OutputError(f"cannot resume in {self.output_dir}: it holds a finished "
                              f"output without a readable {JOB_SUMMARY_FILE}; run with "
                              f"{self.config.spell_on('overwrite')} to run the job again"
                              ) from None
        parts = old.get("fingerprint_parts") or {"fingerprint": old.get("fingerprint")}
        self.refuse_changed(parts, finished=True)

    def finished_summary(self) -> dict[str, Any]:
        """The ``_job.json`` of a finished output (open_output returned DONE)."""
        return json.loads(self.fs.read_bytes(self.fs.join(self.output_dir, JOB_SUMMARY_FILE)))

    # --- the task working directory (mapreduce/taskdir.py) -----------------------------------
    def _plan_task_dir(self, planner: Job) -> None:
        """Resolve and check, at start, what every task's working directory holds: the job's
        own uploads (``upload_files()``: mrjob's FILES, DIRS, ARCHIVES, add_file_arg), then
        ``--files`` / ``--dirs`` / ``--archives``, ``--cmdenv`` and ``--setup`` (whose
        ``path#name`` are uploads too).  A missing path is one line naming it."""
        config = self.config
        uploads: list[Upload] = []
        for kind, spec, where in planner.upload_files():
            uploads.append(resolve_upload(kind, spec, f"{self.job_ref.path}: {where}"))
        for kind, name in (("file", "files"), ("dir", "dirs"), ("archive", "archives")):
            for spec in getattr(config, name) or ():
                uploads.append(resolve_upload(kind, spec, config.spell(name)))
        self._task_env: dict[str, str] = dict(config.cmdenv or {})
        self._task_setup: list[str] = []
        for command in config.setup or ():
            command, more = parse_setup(command, config.spell("setup"))
            self._task_setup.append(command)
            uploads.extend(more)
        check_names(uploads)
        self._uploads = uploads
        takes = BY_NAME["files"].only
        if uploads and config.runner not in takes:
            raise UsageError(f"{uploads[0].where}: files for the task's working directory are "
                             f"not supported on {config.spell_with('runner', config.runner)} "
                             f"(run it with {' or '.join(takes)})")

    def _wants_task_dir(self) -> bool:
        return bool(self._uploads or self._task_env or self._task_setup)

    def stage_task_dir(self) -> None:
        """Copy (unpack) the uploads into the work directory, once per run."""
        self.task_dir = stage(self._uploads, os.path.join(self.layout.work_dir, STAGE_DIR),
                              self._task_env, self._task_setup)

    def _prepare(self) -> dict:
        """Run the job's coordinator-side ``prepare`` hook (e.g. sampling split points)."""
        job = self.job_class()
        job.options = argparse.Namespace(**self.job_options)
        try:
            side = job.prepare(list(self.files))
        except MapReduceError:
            raise
        except (Exception, SystemExit) as exc:
            error = TaskFailedError(f"{self.job_ref.path}: prepare() raised "
                                    f"{type(exc).__name__}: {exc}")
            error.detail = user_traceback(exc)  # type: ignore[attr-defined]
            raise error from None
        if side is not None and not isinstance(side, dict):
            raise TaskFailedError(f"{self.job_ref.path}: prepare() must return a dict or None, "
                                  f"not {type(side).__name__}")
        return side or {}

    # --- the job commit ------------------------------------------------------------------------
    def publish(self, parts: list[int], summary: Callable[[], dict[str, Any]],
                journal: Any = None) -> dict[str, Any]:
        """The job commit: put the committed part files in OUT and declare it complete.

        1. Check every input is still the file the job read (path, size, mtime, inode,
           ctime): a job whose input changed under it fails here, naming the input, instead
           of committing output that mixes old and new data.
        2. ``--overwrite``: move the old output's entries aside (into ``OUT/_committing``),
           ``_SUCCESS`` first and durably, so that from here on OUT never claims to be
           complete and nothing old is mixed into the new output.
        3. Move each part file (``WORK/committed/part-NNNNN``) into OUT (a rename; across
           file systems a copy into ``OUT/_committing``, fsync, rename), then the attempt
           logs; fsync OUT.
        4. Write ``_job.json`` (``summary()``), then ``_SUCCESS`` last; tell the runner's
           ``journal`` (JOB_COMMITTED); remove ``OUT/_committing``.

        Every step can be done again: a coordinator killed in the middle leaves part files
        without ``_SUCCESS`` (a reader must check ``_SUCCESS``, as with Hadoop and Spark)
        and ``--resume`` finishes the commit.
        """
        out = self.output_dir
        staging = self.fs.join(out, COMMIT_DIR)
        self._check_inputs_unchanged()
        if self.remote:
            self._upload_parts(parts)
        else:
            self._set_aside_replaced(staging)
            for index in parts:
                src = self.layout.committed_part(index)
                if os.path.exists(src):  # else moved already by a run killed mid-commit
                    self.fs.put(src, os.path.join(out, self.final_part_name(index)), staging)
        self._keep_logs()
        self.fs.sync_dir(out)  # every part's rename is durable before _SUCCESS
        result = summary()
        self.fs.write_atomically(self.fs.join(out, JOB_SUMMARY_FILE),
                                 summary_text(result).encode("utf-8"))
        self.fs.write_atomically(self.fs.join(out, SUCCESS_FILE), b"")
        if journal is not None:
            journal()
        if not self.remote:
            self.fs.remove_tree(staging)
        self.listener.note(f"committed {len(parts)} part file{'s' if len(parts) != 1 else ''} "
                           f"to {out}")
        return result

    def _upload_parts(self, parts: list[int]) -> None:
        """The job commit's middle to a remote store (docs/storage.md; Hadoop's S3A staging
        committer, with the job's own work directory as the staging area).

        There is no rename to set the old output aside, so ``--overwrite`` deletes it here,
        ``_SUCCESS`` first: from then on OUT never claims to be complete.  Then each part is
        uploaded to its final name (an object appears only once its upload completes).  The
        local part files stay until the job has committed, so a commit killed midway is
        done again, whole, by ``--resume``: the deletion finds nothing or this job's own
        uploads, which are uploaded again."""
        out = self.output_dir
        try:
            for name in sorted(self.replaced, key=lambda e: e != SUCCESS_FILE):
                self.fs.remove(self.fs.join(out, name))
            for index in parts:
                self.fs.put(self.layout.committed_part(index),
                            self.fs.join(out, self.final_part_name(index)), "")
        except OSError as exc:
            if getattr(exc, "filename", None) or exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise OutputError(f"cannot write output {out}: {describe_failure(exc)}; run the "
                              f"same command with {self.config.spell_on('resume')} to "
                              "finish the commit") from None

    def final_part_name(self, index: int) -> str:
        """Part file ``index``'s name in OUT: ``part-00000``, or ``part-00000.gz`` with
        ``--output-compression gz`` (the suffix tells a reader, and this framework's
        inputs, how to decompress it)."""
        comp = self.config.output_compression
        return part_name(index) + (OUTPUT_COMPRESSION_SUFFIXES[comp] if comp else "")

    def _check_inputs_unchanged(self) -> None:
        for fs in {id(fs): fs for fs in (filesystem_for(i[0])[0]
                                         for i in self.fingerprint["inputs"])}.values():
            fs.refresh()
        for identity in self.fingerprint["inputs"]:
            path = identity[0]
            try:
                now = filesystem_for(path)[0].identity(path)
            except OSError:
                now = None
            if now != identity:
                raise InputError(f"input {path} changed while the job ran (it is gone, or its "
                                 "size, modification time, inode or change time differ): the "
                                 "output would mix old and new data, so it is not committed; "
                                 f"run the job again with {self.config.spell_on('overwrite')}")

    def _set_aside_replaced(self, staging: str) -> None:
        """Move the entries of OUT that this job replaces (``--overwrite``) into
        ``staging/replaced``; an entry found there already was moved by a commit that was
        killed, and the same name in OUT is then this job's own."""
        if not self.replaced:
            return
        trash = os.path.join(staging, "replaced")
        self.fs.makedirs(trash)
        for name in sorted(self.replaced, key=lambda e: e != SUCCESS_FILE):
            src = os.path.join(self.output_dir, name)
            if os.path.lexists(src) and not os.path.lexists(os.path.join(trash, name)):
                self.fs.rename(src, os.path.join(trash, name))
                if name == SUCCESS_FILE:
                    self.fs.sync_dir(self.output_dir)  # OUT stops claiming completeness first
        self.fs.sync_dir(self.output_dir)

    def _keep_logs(self) -> None:
        """Move the attempt logs (what user code printed or logged, and failures' tracebacks)
        from the work directory to ``OUT/_logs`` so they outlive it.  An attempt that printed
        nothing leaves no file (one killed mid-task may leave an empty one, dropped here)."""
        source = os.path.join(self.layout.work_dir, "logs")
        target = self.fs.join(self.output_dir, LOGS_DIR)
        names = set(os.listdir(source)) if os.path.isdir(source) else set()
        for name in names:
            path = os.path.join(source, name)
            if os.path.getsize(path) == 0:
                os.remove(path)
                continue
            if self.remote:  # uploaded; the local copy goes with the work directory
                self.fs.put(path, self.fs.join(target, name), "")
                self._uploaded_logs.add(name)
                continue
            os.makedirs(target, exist_ok=True)
            # shutil.move, not os.replace: --work-dir may be on another filesystem
            shutil.move(path, os.path.join(target, name))

    def kept_log(self, log: str) -> str:
        """Where attempt log ``log`` is once the job committed ("" if it printed nothing)."""
        if not log:
            return ""
        if self.remote:
            name = os.path.basename(log)
            return (self.fs.join(self.fs.join(self.output_dir, LOGS_DIR), name)
                    if name in self._uploaded_logs else "")
        moved = os.path.join(self.output_dir, LOGS_DIR, os.path.basename(log))
        return moved if os.path.exists(moved) else ""

    def summary(self, *, runner: str, tasks: list[dict[str, Any]],
                task_counters: dict[TaskKey, dict], phases: list[dict[str, Any]],
                runs: int = 1, skipped: Optional[list[str]] = None,
                extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """``_job.json`` (docs/job-json.md), the same on every runner.  ``task_counters``
        holds each committed task's counters (by ``(step, kind, index)``)."""
        per_step: list[dict[tuple[str, str], int]] = [{} for _ in self.steps]
        for (s, _kind, _index), counters in task_counters.items():
            for key, amount in counters.items():
                per_step[s][key] = per_step[s].get(key, 0) + amount
        job_level: dict[tuple[str, str], int] = {}
        last = len(self.steps) - 1
        for s, counters in enumerate(per_step):
            for key, amount in counters.items():
                if key[0] == "framework" and (
                        key[1] in FIRST_STEP_COUNTERS and s != 0
                        or key[1] in LAST_STEP_COUNTERS and s != last):
                    continue
                job_level[key] = job_level.get(key, 0) + amount
        for task in tasks:
            if task.get("log"):
                task["log"] = self.kept_log(task["log"])
        summary = {
            "schema": SUMMARY_SCHEMA,
            "job": {"path": self.job_ref.path, "class": self.job_ref.class_name,
                    "fingerprint": self.fingerprint["fingerprint"],
                    "fingerprint_parts": self.fingerprint},
            "runner": runner,
            "mode": self.config.mode,
            "output_protocol": self.output_protocol,
            "workers": self.config.workers,
            "reducers": self.reducers,
            "steps": [dict(st.describe(), reducers=self.reducers_of(s),
                           counters=counter_tree(per_step[s]))
                      for s, st in enumerate(self.steps)],
            "inputs": self.files,
            "output_dir": self.output_dir,
            "work_dir": self.layout.work_dir,
            "config": {k: v for k, v in self._public_config().items()
                       if k not in ("inputs", "output_dir", "spelling")},
            "runs": runs,
            "start": self.started,
            "end": time.time(),
            "counters": counter_tree(job_level),
            "skipped_records": skipped or [],
            "phases": phases,
            "tasks": tasks,
        }
        summary.update(extra or {})
        return summary

    def finish(self) -> None:
        """After the commit: remove the work directory, unless --keep-work."""
        if not self.config.keep_work:
            self.work.remove()


__all__ = ["JobSession", "JobResult", "counter_tree", "summary_text", "SUMMARY_SCHEMA",
           "RUN", "RESUME", "DONE", "LOGS_DIR"]
