"""The JobTracker: the one stateful object of a job run.

It plans the tasks of every step, hands them to an injected executor (a
:class:`~mapreduce.pool.WorkerPool`), commits what each task attempt returns, journals every
commit, retries failed attempts, and at the end commits the job's output.  The shuffle back
end is injected too (:mod:`mapreduce.shuffle`, :mod:`mapreduce.diskshuffle`), so disk and
memory mode are the same code path.

Per step::

    inputs (text splits, or the previous step's committed outputs)
      -> map phase: one map task per split; a finished attempt's map output is renamed to
         its final name (tagged with the attempt) and a TASK_COMMITTED record is journaled
      -> reduce phase (unless map-only): reduce task r reads partition r of every map output
      -> the step's outputs: text part files (last step) or pair runs (the next step's input)

Attempts and retries (Hadoop's rules): every task runs as numbered attempts, each writing
only under its own attempt directory.  Only the coordinator commits, and only the first
successful attempt of a task; a later duplicate is discarded.  A failed attempt (the user code
raised, the worker died, or it passed ``--task-timeout``) is retried up to
``--max-attempts``.  Counters come only from committed attempts.  A reducer that finds a map
output corrupt or missing (a fetch failure) is not charged for it in vain: the map task that
produced the file is un-committed and re-run, and the reducer runs again after it.  A full
disk fails the job at once with a message saying to free space and ``--resume``.

Journal and resume: the journal (``WORK/journal``, see ``docs/journal-format.md``) starts with
a fingerprint of the job file, the options that shape output, and the inputs (path, size,
mtime).  Each commit is journaled after the file it names is durable.  ``--resume`` replays
it, refuses a changed job or input, deletes orphaned attempt files, verifies the committed
map outputs still needed (a full checksum read), and runs only what is missing.  In memory
mode only final part files are durable, so a resumed memory-mode job recomputes the rest.

Job commit (Hadoop's FileOutputCommitter, "v1"): final tasks commit their part files into
``WORK/committed/``; when every task of the last step has committed, the coordinator renames
them into the output directory, writes ``_job.json``, then ``_SUCCESS`` last, and removes the
work directory (unless ``--keep-work``).  A failed job leaves no ``_SUCCESS`` and no part
files in the output directory.
"""
from __future__ import annotations

import argparse
import errno
import hashlib
import inspect
import json
import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from mapreduce.errors import (CorruptDataError, InputError, JobCancelledError, MapReduceError,
                              OutputError, TaskFailedError, UsageError)
from mapreduce.events import JobListener
from mapreduce.inputs import (choose_split_size, expand_inputs, input_roots, plan_splits,
                              plan_whole_files)
from mapreduce.job import Job
from mapreduce.journal import (JOB_COMMITTED, RUN_START, TASK_COMMITTED, TASK_FAILED, Journal,
                               read_journal)
from mapreduce.layout import (COMMIT_DIR, JOB_SUMMARY_FILE, SUCCESS_FILE, WorkLayout,
                              commit_file, fsync_dir, move_file, part_name, remove_prefix,
                              remove_tree, write_file_atomically)
from mapreduce.loader import JobRef
from mapreduce.lock import LOCK_FILE, OutputLock
from mapreduce.output import PROTOCOLS, file_crc32
from mapreduce.pool import TaskFailure, WorkerPool, user_traceback
from mapreduce.shuffle import MapOutput, Shuffle
from mapreduce.sidedata import SideDataRef, store_side_data, verify_side_data
from mapreduce.task import TaskResult, TaskSpec, TextOutput, run_task
from mapreduce.workdir import OWN_FILES, WorkDir, check_placement, work_dir_path

TaskKey = tuple  # (step, kind, index)

#: Longest a commit waits for its journal record to be made durable (group commit window).
GROUP_COMMIT_SECONDS = 0.05
#: How often the scheduler wakes up with nothing to do, to notice a cancel() request.
CANCEL_POLL_SECONDS = 0.2
#: Where attempt logs are kept after the job commits (Hadoop keeps them as job history).
LOGS_DIR = "_logs"

@dataclass
class JobConfig:
    """Everything that decides what a job run does (the CLI builds one from argv)."""

    inputs: list[str]
    output_dir: str
    mode: str = "disk"
    workers: int = 2
    reducers: Optional[int] = None
    sort_buffer: int = 64 << 20
    merge_factor: int = 10
    split_size: Optional[int] = None
    overwrite: bool = False
    work_dir: Optional[str] = None
    decode_errors: str = "strict"
    max_attempts: int = 4
    task_timeout: Optional[float] = None
    skip_bad_records: int = 0
    resume: bool = False
    keep_work: bool = False
    job_options: dict = field(default_factory=dict)   # the job's own options (configure_args)
    runner: str = "local"                 # "local" (this engine) or "spark" (runners.py)
    spark_master: Optional[str] = None    # --spark-master; None means local[*]


@dataclass
class JobResult:
    output_dir: str
    counters: dict[str, dict[str, int]]
    summary: dict[str, Any]
    wall_seconds: float
    phases: list[dict[str, Any]] = field(default_factory=list)


def _counter_tree(flat: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
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


def _input_identity(path: str) -> list:
    """What identifies an input file's bytes for the fingerprint: path, size, modification
    time, inode and change time.  A rewrite that keeps size and mtime (``cp -p``, ``rsync
    -t``, an in-place edit with the mtime put back) still changes the inode or the ctime."""
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def _journal_finished(path: str) -> bool:
    """Does the journal record a committed job (a kept work directory of a finished job)?"""
    try:
        records, _torn = read_journal(path)
    except CorruptDataError:
        return False  # not trustworthy: --resume reports it, --overwrite discards it
    return any(r.type == JOB_COMMITTED for r in records)


class StepInputLost(Exception):
    """Internal: step s needs an output of step s-1 that is damaged or gone (``task`` made
    it); the step loop goes back to step s-1 to make it again."""

    def __init__(self, task: tuple, path: str) -> None:
        super().__init__(f"{path} (made by {task}) is damaged or gone")
        self.task = task
        self.path = path


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class JobTracker:
    def __init__(self, job_class: type[Job], job_ref: JobRef, config: JobConfig,
                 shuffle: Shuffle, listener: Optional[JobListener] = None) -> None:
        self.job_class = job_class
        self.listener = listener or JobListener()
        self._cancelled = False
        self.job_ref = job_ref
        self.config = config
        self.shuffle = shuffle
        # The job's own options first: steps() may depend on them (e.g. --iterations).
        self.job_options = dict(job_class.default_options(), **config.job_options)
        planner = job_class()
        planner.options = argparse.Namespace(**self.job_options)
        self.steps = planner.steps()
        if not self.steps:
            raise UsageError(f"{job_ref.path}: steps() returned no steps")
        self.reducers = config.reducers if config.reducers is not None else job_class.REDUCERS
        if self.reducers < 1:
            raise UsageError(f"--reducers must be at least 1 (got {self.reducers})")
        self.sort_values = bool(job_class.SORT_VALUES)
        if job_class.INPUT_FORMAT not in ("lines", "whole_file"):
            raise UsageError(f"{job_ref.path}: INPUT_FORMAT must be 'lines' or 'whole_file' "
                             f"(got {job_class.INPUT_FORMAT!r})")
        if job_class.OUTPUT_PROTOCOL not in PROTOCOLS:
            raise UsageError(f"{job_ref.path}: OUTPUT_PROTOCOL must be one of "
                             f"{', '.join(PROTOCOLS)} (got {job_class.OUTPUT_PROTOCOL!r})")
        self.output_dir = os.path.abspath(config.output_dir)
        self.work = WorkDir(work_dir_path(self.output_dir, config.work_dir), self.output_dir)
        self.layout = WorkLayout(self.work.path)
        self.journal: Optional[Journal] = None
        self.run_number = 1
        self.committed: dict[TaskKey, dict] = {}      # key -> journaled commit payload
        self.task_counters: dict[TaskKey, dict] = {}  # committed attempts' counters only
        self.tasks: list[dict[str, Any]] = []          # every attempt, for _job.json
        self.recovered: dict[TaskKey, dict] = {}      # the task record of a replayed commit
        self.phases: list[dict[str, Any]] = []
        # Bad records skipped (--skip-bad-records) by each committed task, journaled with
        # its commit, so the limit holds across --resume and a re-run task is not counted
        # twice.
        self.skipped_by_task: dict[TaskKey, list[str]] = {}
        self.attempts: dict[TaskKey, int] = {}        # attempts started per task in this run
        # Failed attempts that count against a task's --max-attempts: a reducer's fetch
        # failure (a bad map output) is charged to the map task, not to the reducer.
        self.charged: dict[TaskKey, int] = {}
        self.replaced: list[str] = []  # --overwrite: entries of OUT the commit replaces
        self.side_data: Optional[SideDataRef] = None
        # Group commit state (see _flush_journal).
        self._pending_records: list[tuple[int, dict]] = []
        self._unsynced_dirs: set[str] = set()
        self._last_flush = time.monotonic()
        # State of the step being run.
        self.step_inputs: list[Any] = []
        self.map_outputs: dict[int, MapOutput] = {}
        self.step_outputs: dict[int, Any] = {}

    # --- fingerprint, output directory, journal ---------------------------------------------
    def _fingerprint(self, files: list[str], split_size: int) -> dict[str, Any]:
        options = {"mode": self.shuffle.name, "reducers": self.reducers,
                   "sort_buffer": self.config.sort_buffer,
                   "merge_factor": self.config.merge_factor, "split_size": split_size,
                   "decode_errors": self.config.decode_errors,
                   "skip_bad_records": self.config.skip_bad_records,
                   "job_options": self.job_options}
        parts = {"job_file": self.job_ref.path, "job_class": self.job_ref.class_name,
                 "job_sha256": self._job_digest(), "options": options,
                 "output": os.path.realpath(self.output_dir),
                 "inputs": [_input_identity(path) for path in files]}
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

    def _refuse_changed(self, old: dict[str, Any], new: dict[str, Any],
                        finished: bool = False) -> None:
        if old.get("fingerprint") == new["fingerprint"]:
            return
        why = "the job or its inputs changed"
        if old.get("job_sha256") != new["job_sha256"] or old.get("job_class") != new["job_class"]:
            why = (f"job file {self.job_ref.path} changed" if old.get("job_file") ==
                   new["job_file"] else f"it was made by job {old.get('job_file')} "
                   f"({old.get('job_class')}), not {self.job_ref.path}")
        elif old.get("options") != new["options"]:
            changed = [f"--{k.replace('_', '-')} was {old['options'].get(k)!r}, now {v!r}"
                       for k, v in new["options"].items() if old["options"].get(k) != v]
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
        raise OutputError(f"cannot --resume the {what} in {self.output_dir}: {why}; run with "
                          "--overwrite to run it again")

    def _open_output(self, files: list[str], fingerprint: dict[str, Any]) -> bool:
        """Decide what this run does with OUT and the work directory, and open the journal.

        True when there is a job to run (or a job commit to finish); False when OUT already
        holds this very job's finished output and ``--resume`` was asked (nothing to do).

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
        work_name = os.path.relpath(self.work.path, out)
        entries = sorted(e for e in os.listdir(out) if e not in (LOCK_FILE, work_name))
        if self.work.exists:
            self.work.check_ours()
            self.work.lock()
        journal_path = self.layout.journal
        has_journal = os.path.exists(journal_path)
        if self.work.exists and not has_journal:
            self.work.remove()  # killed before its journal existed: it committed nothing
        finished_journal = has_journal and _journal_finished(journal_path)
        unfinished = has_journal and not finished_journal
        if self.config.resume:
            if unfinished:
                self.work.check_serves_output()
                return self._resume_journal(fingerprint)
            if SUCCESS_FILE in entries:
                self._check_finished_output(fingerprint)
                remove_tree(os.path.join(out, COMMIT_DIR))  # a commit killed after _SUCCESS
                if finished_journal:
                    self.work.remove()
                return False
            if entries:
                raise OutputError(f"nothing to resume in {out}: no journal at {journal_path}")
            # nothing was committed yet: --resume simply runs the job
        elif entries or unfinished:
            if not self.config.overwrite:
                if unfinished:
                    raise OutputError(f"output directory {out} holds an unfinished job: pass "
                                      "--resume to continue it or --overwrite to start over")
                raise OutputError(f"output directory is not empty: {out} (pass --overwrite "
                                  "to replace it)")
            self._check_overwritable(files)
            # The old output stays, complete and readable, until this job commits: the job
            # commit replaces exactly these entries (see _commit_job).  A previous job's
            # work directory and an old commit's leftovers are not output: they go now.
            self.work.remove()
            remove_tree(os.path.join(out, COMMIT_DIR))
            self.replaced = [e for e in entries if e != COMMIT_DIR]
        elif finished_journal:
            self.work.remove()  # a kept (--keep-work) journal of an output since removed
        self.work.create()
        self.work.lock()
        # prepare() runs once per job: its result is journaled and reused by --resume, so
        # tasks of every run see the same side data (e.g. the same split points).
        self.side_data = store_side_data(self._prepare(files),
                                         os.path.join(self.layout.work_dir, "side"))
        header = dict(fingerprint)
        header["config"] = json.loads(json.dumps(asdict(self.config), default=repr))
        header["side_data"] = asdict(self.side_data) if self.side_data else None
        header["replaces"] = self.replaced
        self.journal = Journal.create(journal_path, header)
        self.journal.append(RUN_START, {"run": 1, "pid": os.getpid(), "time": time.time(),
                                        "host": socket.gethostname()})
        return True

    def _check_overwritable(self, files: list[str]) -> None:
        out = self.output_dir
        real_out = os.path.realpath(out)
        for f in files:
            if os.path.realpath(f).startswith(real_out + os.sep):
                raise OutputError(f"refusing to --overwrite {out}: it contains input file {f}")
        if real_out in (os.path.realpath(p) for p in (os.sep, os.path.expanduser("~"),
                                                       os.getcwd())):
            raise OutputError(f"refusing to --overwrite {out}: not a job output directory")

    def _check_finished_output(self, fingerprint: dict[str, Any]) -> None:
        """``--resume`` over a finished output: fine if it is this very job's, else refuse
        with what changed (as for an unfinished job)."""
        try:
            with open(os.path.join(self.output_dir, JOB_SUMMARY_FILE), encoding="utf-8") as f:
                old = json.load(f)["job"]
        except (OSError, ValueError, KeyError, TypeError):
            raise OutputError(f"cannot --resume in {self.output_dir}: it holds a finished "
                              f"output without a readable {JOB_SUMMARY_FILE}; run with "
                              "--overwrite to run the job again") from None
        parts = old.get("fingerprint_parts") or {"fingerprint": old.get("fingerprint")}
        self._refuse_changed(parts, fingerprint, finished=True)

    def _resume_journal(self, fingerprint: dict[str, Any]) -> bool:
        try:
            self.journal, records, _torn = Journal.resume(self.layout.journal)
        except CorruptDataError as exc:
            raise OutputError(f"{exc}; the journal cannot be trusted: run with --overwrite to "
                              "start the job over") from None
        header = records[0].payload
        self._refuse_changed(header, fingerprint)
        self.replaced = list(header.get("replaces", []))
        side = header.get("side_data")
        self.side_data = SideDataRef(**side) if side else None
        try:
            verify_side_data(self.side_data)
        except CorruptDataError as exc:
            raise OutputError(f"cannot --resume the job in {self.output_dir}: {exc.reason} "
                              f"({exc.path}); run with --overwrite to start over") from None
        runs = [r.payload["run"] for r in records if r.type == RUN_START]
        self.run_number = max(runs, default=0) + 1
        for record in records:
            if record.type == TASK_COMMITTED:
                self._replay_commit(record.payload)
        self._verify_committed_parts()
        self.journal.append(RUN_START, {"run": self.run_number, "pid": os.getpid(),
                                        "time": time.time(), "host": socket.gethostname()})
        self._remove_orphans()
        return True

    def _replay_commit(self, p: dict[str, Any]) -> None:
        """Take one journaled commit as made (a later commit of the same task wins)."""
        key = (p["step"], p["kind"], p["index"])
        previous = self.recovered.get(key)
        if previous is not None:  # re-run after an earlier run found its output broken
            previous["status"] = "discarded"
        self.committed[key] = p
        self.task_counters[key] = {(g, n): v for g, n, v in p["counters"]}
        self._set_skipped(key, p.get("skipped", []))
        task = dict(p["task"], recovered=True)
        self.recovered[key] = task
        self.tasks.append(task)

    def _remove_orphans(self) -> None:
        """Delete every file in the work dir that no journaled commit names: the files of
        the attempts that were running when the last coordinator died."""
        keep = {self.layout.journal} | {os.path.join(self.layout.work_dir, f)
                                        for f in OWN_FILES}
        if self.side_data is not None:
            keep |= {os.path.join(self.side_data.directory, name)
                     for name in os.listdir(self.side_data.directory)}
        for p in self.committed.values():
            out = p["output"]
            keep.add(out.get("path") or out.get("part"))
        for root, dirs, files in os.walk(self.layout.work_dir):
            if root == self.layout.work_dir:
                dirs[:] = [d for d in dirs if d != "logs"]
            for name in files:
                path = os.path.join(root, name)
                if path not in keep:
                    os.remove(path)
        for name in os.listdir(self.layout.work_dir):
            step_dir = os.path.join(self.layout.work_dir, name)
            if name.startswith("step-"):
                for entry in os.listdir(step_dir):
                    if os.path.isdir(os.path.join(step_dir, entry)):
                        remove_tree(os.path.join(step_dir, entry))

    # --- specs, commits, failures -------------------------------------------------------------
    def _tag(self, attempt: int) -> str:
        return f"{self.run_number}-{attempt}"

    def _output_target(self, step: int, prefix: str, part: int) -> Any:
        if step == len(self.steps) - 1:
            return TextOutput(f"{prefix}{part_name(part)}",
                              self.job_class.OUTPUT_PROTOCOL)
        return self.shuffle.pair_sink(prefix)

    def _make_spec(self, key: TaskKey, attempt: int) -> TaskSpec:
        s, kind, index = key
        cfg = self.config
        tag = self._tag(attempt)
        prefix = self.layout.attempt_prefix(s, kind, index, tag)
        partitions = 0 if self.steps[s].map_only else self.reducers
        common = dict(job=self.job_ref, step=s, index=index, attempt=tag,
                      num_partitions=partitions, sort_buffer=cfg.sort_buffer,
                      sort_values=self.sort_values, decode_errors=cfg.decode_errors,
                      side_data=self.side_data, job_options=self.job_options)
        if kind == "map":
            return TaskSpec(
                "map", **common, skip_bad_records=cfg.skip_bad_records,
                split=self.step_inputs[index],
                sink=(self.shuffle.map_sink(prefix, partitions, cfg.merge_factor,
                                            self.sort_values) if partitions else None),
                output=None if partitions else self._output_target(s, prefix, index))
        outputs = [self.map_outputs[i] for i in range(len(self.step_inputs))]
        source = self.shuffle.reduce_source(outputs, index, prefix, cfg.merge_factor,
                                            self.sort_values)
        source.counters[("framework", "SHUFFLE_BYTES")] = sum(
            o.partition_bytes[index] for o in outputs)
        source.counters[("framework", "REDUCE_INPUT_RECORDS")] = sum(
            o.partition_records[index] for o in outputs)
        return TaskSpec("reduce", **common, source=source,
                        output=self._output_target(s, prefix, index))

    def _task_record(self, spec: TaskSpec, status: str, result: Optional[TaskResult] = None,
                     failure: Optional[TaskFailure] = None, log: str = "") -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": spec.kind, "step": spec.step, "index": spec.index, "attempt": spec.attempt,
            "run": self.run_number, "status": status, "log": log,
            "input": spec.split.describe() if spec.kind == "map" else f"partition {spec.index}",
        }
        if result is not None:
            c = {name: v for (group, name), v in result.counters.items() if group == "framework"}
            mo = result.map_output
            record.update({
                "start": result.started, "end": result.finished, "worker_pid": result.pid,
                "peak_rss_bytes": result.peak_rss, "status_message": result.status,
                "records_in": c.get("MAP_INPUT_RECORDS" if spec.kind == "map"
                                    else "REDUCE_INPUT_RECORDS", 0),
                "records_out": c.get("MAP_OUTPUT_RECORDS" if spec.kind == "map"
                                     else "REDUCE_OUTPUT_RECORDS", 0),
                "bytes_in": (result.input_bytes if spec.kind == "map"
                             else c.get("SHUFFLE_BYTES", 0)),
                "bytes_out": result.output_bytes or (sum(mo.partition_bytes) if mo else 0),
                "spills": c.get("SPILL_FILES", 0),
            })
        if failure is not None:
            record.update({"error": failure.message, "worker_pid": failure.pid,
                           "end": time.time()})
        return record

    def _commit(self, key: TaskKey, spec: TaskSpec, result: TaskResult, log: str) -> None:
        s, kind, index = key
        last = s == len(self.steps) - 1
        durable = self.shuffle.durable
        if kind == "map" and result.map_output is not None:
            final = self.shuffle.commit_map_output(
                result.map_output, self.layout.map_output(s, index, spec.attempt))
            self.map_outputs[index] = final
            output = {"path": final.location if durable else None,
                      "records": final.partition_records, "bytes": final.partition_bytes,
                      "size": os.path.getsize(final.location) if durable else None}
            self._unsynced_dirs.add(self.layout.step_dir(s))
        elif last:
            part = self.layout.committed_part(index)
            self._unsynced_dirs.add(commit_file(result.output, part, sync_dir=False))
            # Size and CRC-32 of the part file: --resume checks them before trusting it.
            output = {"part": part, "size": result.output_bytes, "crc32": result.output_crc32}
        else:
            location = self.shuffle.commit_step_output(result.output,
                                                       self.layout.step_output(s, index))
            self.step_outputs[index] = location
            output = {"path": location if durable else None,
                      "size": os.path.getsize(location) if durable else None}
            self._unsynced_dirs.add(self.layout.step_dir(s))
        remove_prefix(self.layout.attempt_prefix(s, kind, index, spec.attempt))
        task = self._task_record(spec, "committed", result, log=log)
        self.tasks.append(task)
        self.task_counters[key] = result.counters
        self._set_skipped(key, result.extra.get("skipped", []))
        payload = {"run": self.run_number, "step": s, "kind": kind, "index": index,
                   "attempt": spec.attempt, "output": output, "task": task,
                   "counters": [[g, n, v] for (g, n), v in sorted(result.counters.items())],
                   "skipped": result.extra.get("skipped", [])}
        self.committed[key] = payload
        # Journaled even when the output itself is not durable (memory mode; path None): a
        # resume then keeps the task's counters if nothing needs its output again, and
        # re-runs it (see _restore_step) if something does.
        self._pending_records.append((TASK_COMMITTED, payload))

    def _flush_journal(self) -> None:
        """Group commit: make the renames durable (one fsync per directory), then append
        the records naming them with one write and one fsync.  Until this runs, a crash
        merely loses the records, so those tasks run again on --resume: never wrong, and
        batching turns hundreds of fsyncs per second of tiny tasks into a few."""
        for directory in sorted(self._unsynced_dirs):
            fsync_dir(directory)
        self._unsynced_dirs.clear()
        if self._pending_records and self.journal is not None:
            self.journal.append_many(self._pending_records)
        self._pending_records = []
        self._last_flush = time.monotonic()

    def _uncommit_map(self, s: int, index: int) -> None:
        key = (s, "map", index)
        self._drop(key)
        output = self.map_outputs.pop(index, None)
        if output is not None and isinstance(output.location, str):
            try:
                os.remove(output.location)
            except FileNotFoundError:
                pass

    def _task_failed(self, spec: TaskSpec, failure: TaskFailure, attempts: int,
                     log: str) -> TaskFailedError:
        where = f" (log: {log})" if log else ""
        error = TaskFailedError(f"{spec.describe()} failed after {attempts} attempt"
                                f"{'s' if attempts != 1 else ''}: {failure.message}{where}")
        detail = failure.detail.rstrip("\n")
        # The log ends with the traceback the worker printed (the detail already): show only
        # what the task printed before it, if anything.
        tail = _tail(log).replace(detail, "").replace(failure.message, "").strip("\n")
        if tail.strip():
            detail += f"\n--- last lines the attempt printed ({log}) ---\n{tail}"
        error.detail = detail  # type: ignore[attr-defined]
        return error

    # --- the scheduler -------------------------------------------------------------------------
    def _execute(self, pool: WorkerPool, name: str, todo: list[TaskKey]) -> None:
        """Run ``todo`` to commit, with retries and map re-runs on fetch failures."""
        started = time.time()
        attempts = self.attempts  # per task for the whole run: attempt tags never repeat
        inflight: dict[TaskKey, tuple[TaskSpec, str]] = {}
        waiting_for_map: dict[int, list[TaskKey]] = {}

        listener = self.listener
        listener.phase_started(name, len(todo))

        def submit(key: TaskKey) -> None:
            if key[1] == "reduce":
                missing = [i for i in range(len(self.step_inputs)) if i not in self.map_outputs]
                if missing:  # a map is being re-run after a fetch failure: wait for it
                    waiting_for_map.setdefault(missing[0], []).append(key)
                    return
            attempts[key] = attempts.get(key, 0) + 1
            spec = self._make_spec(key, attempts[key])
            log = self.layout.attempt_log(key[0], key[1], key[2], spec.attempt)
            inflight[key] = (spec, log)
            pool.submit(key, run_task, spec, log)
            listener.task_started(name, {"kind": key[1], "step": key[0], "index": key[2],
                                         "attempt": spec.attempt})

        for key in todo:
            submit(key)
        os.makedirs(self.layout.attempts_dir(todo[0][0]) if todo else self.layout.work_dir,
                    exist_ok=True)
        while pool.pending or waiting_for_map:
            if not pool.pending:  # cannot happen: a waited-for map is always in flight
                raise AssertionError(f"reduce tasks wait for maps never run: {waiting_for_map}")
            if self._cancelled:
                self._flush_journal()  # keep what committed; the pool kills the rest on exit
                raise JobCancelledError(
                    f"job cancelled during {name}; run it again with --resume (resume=True from "
                    "Python) to finish it")
            wait = CANCEL_POLL_SECONDS
            if self._pending_records or self._unsynced_dirs:
                wait = max(0.0, min(wait, self._last_flush + GROUP_COMMIT_SECONDS
                                    - time.monotonic()))
            event = pool.next_event(wait)
            if wait is not None and time.monotonic() >= self._last_flush + GROUP_COMMIT_SECONDS:
                self._flush_journal()
            if event is None:
                continue
            status, key, payload = event
            if status != "ok" and payload.fork_escaped:
                # Whatever the task's output is, a copy of the task ran on beside it.
                self._flush_journal()
                where = inflight[key][0].describe() if key in inflight else \
                    f"step {key[0]} {key[1]} task {key[2]}"
                raise TaskFailedError(f"{where} failed: {payload.message}")
            spec, log = inflight.pop(key)
            if status == "ok":
                if key in self.committed:  # a late duplicate: only one attempt commits
                    remove_prefix(self.layout.attempt_prefix(*key, spec.attempt))
                    continue
                self._commit(key, spec, payload, log)
                listener.task_finished(name, self.tasks[-1])
                self._note_commit(self.tasks[-1])
                self._check_skipped()
                for waiting in waiting_for_map.pop(key[2], []) if key[1] == "map" else []:
                    submit(waiting)
                continue
            failure: TaskFailure = payload
            self.tasks.append(self._task_record(spec, "failed", failure=failure, log=log))
            listener.task_finished(name, self.tasks[-1])  # displays always show failures
            remove_prefix(self.layout.attempt_prefix(*key, spec.attempt))
            self._pending_records.append((TASK_FAILED, {
                "run": self.run_number, "step": key[0], "kind": key[1], "index": key[2],
                "attempt": spec.attempt, "message": failure.message}))
            if failure.disk_full:
                self._flush_journal()  # keep what committed before failing the job
                raise MapReduceError(
                    f"{spec.describe()} failed: disk full ({failure.message}); free some space "
                    "and run the same command with --resume to finish the job")
            lost = self._lost_step_input(key, failure)
            if lost is not None:
                # The previous step's output this map reads is damaged: not this task's
                # fault.  Make it again (the step loop goes back), then run this step on.
                self._flush_journal()
                raise lost
            bad_map = self._bad_map_output(key, failure)
            if bad_map is not None:
                # A fetch failure is the map output's fault, not the reducer's (Hadoop's
                # rule): the map task is charged for it and re-run, the reducer runs again.
                map_key = (key[0], "map", bad_map)
                if map_key in self.committed and \
                        self.map_outputs[bad_map].location == failure.corrupt_path:
                    # Charged once per damaged commit, however many reducers report it.
                    if self._charge(map_key) >= self.config.max_attempts:
                        self._flush_journal()
                        raise TaskFailedError(
                            f"step {key[0]} map task {bad_map}: its output was found damaged "
                            f"{self.charged[map_key]} times: {failure.message}")
                    listener.note(f"map output {failure.corrupt_path} is unreadable: re-running "
                                  f"step {key[0]} map task {bad_map}, then the reduce again")
                    self._uncommit_map(key[0], bad_map)
                    submit(map_key)
                submit(key)  # waits for the map re-run if it is not committed yet
                continue
            charged = self._charge(key)
            if charged >= self.config.max_attempts or not failure.retryable:
                self._flush_journal()  # keep what committed before failing the job
                raise self._task_failed(spec, failure, charged, log)
            listener.note(f"retrying {spec.name}: attempt {charged + 1} of at most "
                          f"{self.config.max_attempts}")
            submit(key)
        self._flush_journal()
        self.phases.append({"phase": name, "start": started, "end": time.time(),
                            "tasks": len(todo), "run": self.run_number})
        listener.phase_finished(self.phases[-1])

    def _charge(self, key: TaskKey) -> int:
        """Count a failed attempt against ``key``'s --max-attempts; the count so far."""
        self.charged[key] = self.charged.get(key, 0) + 1
        return self.charged[key]

    def _lost_step_input(self, key: TaskKey, failure: TaskFailure) -> Optional["StepInputLost"]:
        """A map task of step s > 0 that failed because the step-(s-1) output it reads is
        damaged or gone: which task of step s-1 must make it again."""
        s, kind, index = key
        if kind != "map" or s == 0 or not failure.corrupt_path:
            return None
        if getattr(self.step_inputs[index], "path", None) != failure.corrupt_path:
            return None
        producer = (s - 1, "map" if self.steps[s - 1].map_only else "reduce", index)
        return StepInputLost(producer, failure.corrupt_path)

    def _check_skipped(self) -> None:
        """Fail as soon as the committed attempts have skipped more bad records than
        --skip-bad-records allows (not only at the end: the rest of the job would be
        wasted work)."""
        # Only tasks that skipped something are in the dict: cheap after every commit.
        if sum(map(len, self.skipped_by_task.values())) > self.config.skip_bad_records:
            skipped = self.skipped
            self._flush_journal()
            raise TaskFailedError(
                f"{len(skipped)} bad records were skipped, more than "
                f"--skip-bad-records={self.config.skip_bad_records}; first: {skipped[0]}")

    def _set_skipped(self, key: TaskKey, records: list[str]) -> None:
        if records:
            self.skipped_by_task[key] = records
        else:
            self.skipped_by_task.pop(key, None)

    @property
    def skipped(self) -> list[str]:
        """Every bad record the committed tasks skipped, in task order."""
        return [r for key in sorted(self.skipped_by_task) for r in self.skipped_by_task[key]]

    def _note_commit(self, task: dict[str, Any]) -> None:
        """A --verbose line for a committed attempt: what it read, spilled and wrote."""
        counters = self.task_counters.get((task["step"], task["kind"], task["index"]), {})
        merges = counters.get(("framework", "MERGE_PASSES"), 0)
        spills = task.get("spills", 0)
        self.listener.note(
            f"step {task['step']} {task['kind']} task {task['index']} attempt {task['attempt']} "
            f"committed in {task['end'] - task['start']:.2f} s: {task['records_in']} records "
            f"in, {task['records_out']} out, {spills} spill{'s' if spills != 1 else ''}, "
            f"{merges} merge pass{'es' if merges != 1 else ''}, "
            f"{task['bytes_out']} bytes out")

    def _bad_map_output(self, key: TaskKey, failure: TaskFailure) -> Optional[int]:
        """The map task whose output a failed reducer found corrupt or missing, if any."""
        if key[1] != "reduce" or not failure.corrupt_path:
            return None
        for index, output in self.map_outputs.items():
            if output.location == failure.corrupt_path:
                return index
        # An older commit of a map that has been re-run since: find it by its name.
        base = os.path.basename(failure.corrupt_path)
        if base.startswith("map-") and base.endswith(".out"):
            try:
                return int(base[4:9])
            except ValueError:
                return None
        return None

    # --- steps -----------------------------------------------------------------------------
    def _restore_step(self, s: int, inputs: list[Any]) -> None:
        """Rebuild the state of step ``s`` from journaled commits, dropping broken ones:
        every committed file still needed is checked (size, and a full read of its block
        checksums or its CRC-32) before it is trusted."""
        self.step_inputs = inputs
        self.map_outputs, self.step_outputs = {}, {}
        for (step, kind, index), p in list(self.committed.items()):
            if step != s:
                continue
            out = p["output"]
            if kind == "map" and "records" in out:
                if self._run_file_intact(out):
                    self.map_outputs[index] = MapOutput(out["path"], out["records"], out["bytes"])
                else:
                    self._uncommit_map(s, index)
            elif "path" in out:
                if self._run_file_intact(out):
                    self.step_outputs[index] = out["path"]
                else:
                    self._drop((step, kind, index))

    def _verify_committed_parts(self) -> None:
        """On --resume: check every committed part file (size and CRC-32, in the work
        directory or already in OUT) and run the task that made a damaged one again."""
        for key, p in list(self.committed.items()):
            if "part" in p["output"]:
                broken = self._part_damage(key[2], p["output"])
                if broken:
                    self.listener.note(f"committed part file {broken}: running step {key[0]} "
                                       f"{key[1]} task {key[2]} again")
                    self._drop(key)

    def _run_file_intact(self, out: dict[str, Any]) -> bool:
        path = out.get("path")
        if not path:
            return False  # memory mode: it died with the coordinator that made it
        size = out.get("size")
        try:
            if size is not None and os.path.getsize(path) != size:
                return False
        except OSError:
            return False
        return self.shuffle.verify(path)

    def _part_damage(self, index: int, out: dict[str, Any]) -> Optional[str]:
        """Why a committed part file cannot be trusted (None if it can).  It is in the work
        directory, or already in OUT if a job commit was killed after moving it."""
        path = out["part"]
        if not os.path.exists(path):
            path = os.path.join(self.output_dir, part_name(index))
            if not os.path.exists(path):
                return f"{out['part']} is missing"
        if out.get("size") is None:
            return None  # journaled by an older version: nothing to check against
        size, crc = file_crc32(path)
        if size != out["size"]:
            return f"{path} has {size} bytes, {out['size']} were committed"
        if out.get("crc32") is not None and crc != out["crc32"]:
            return f"{path} fails its CRC-32 check ({crc:08x}, committed {out['crc32']:08x})"
        return None

    def _drop(self, key: TaskKey) -> None:
        """Forget a commit (its output is lost or broken): the task will run again."""
        self.committed.pop(key, None)
        self.task_counters.pop(key, None)
        self.skipped_by_task.pop(key, None)
        task = self.recovered.pop(key, None)
        if task is not None:  # a replayed commit whose output is gone: keep it as history
            task["status"] = "discarded"

    def _step_needed(self, s: int, outputs: int) -> bool:
        """Does step s still have to run (or hand its outputs to a step that does)?"""
        out_kind = "map" if self.steps[s].map_only else "reduce"
        if any((s, out_kind, i) not in self.committed for i in range(outputs)):
            return True
        if s == len(self.steps) - 1:
            return False
        return any((s + 1, "map", i) not in self.committed for i in range(outputs))

    def _run_step(self, pool: WorkerPool, s: int, inputs: list[Any]) -> list[Any]:
        step = self.steps[s]
        n_out = len(inputs) if step.map_only else self.reducers
        if not self._step_needed(s, n_out):
            # Complete, and the next step has consumed its output: only the labels matter.
            return [self.shuffle.step_input(self.committed[(s, "map" if step.map_only
                                                             else "reduce", i)]["output"]
                                            .get("path"), f"step {s} output {i}")
                    for i in range(n_out)]
        self._restore_step(s, inputs)
        if step.map_only:
            self._execute(pool, f"step {s} map",
                          [(s, "map", i) for i in range(len(inputs))
                           if (s, "map", i) not in self.committed])
        else:
            reduces = [(s, "reduce", p) for p in range(self.reducers)
                       if (s, "reduce", p) not in self.committed]
            maps = [(s, "map", i) for i in range(len(inputs))
                    if reduces and (s, "map", i) not in self.committed]
            self._execute(pool, f"step {s} map", maps)
            self._execute(pool, f"step {s} reduce", reduces)
        return [self.shuffle.step_input(self.step_outputs.get(i), f"step {s} output {i}")
                for i in range(n_out)]

    # --- the job ------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask a running job to stop (thread-safe: it only sets a flag).  The scheduler stops
        within CANCEL_POLL_SECONDS, kills its workers and raises JobCancelledError; what was
        committed stays journaled, so ``--resume`` finishes the job later."""
        self._cancelled = True

    def plan_inputs_and_output(self) -> tuple[list[str], int, dict[str, Any]]:
        """Expand the inputs, choose the split size, fingerprint the job, check where the
        work directory goes, and make sure the output directory exists and is writable.
        Shared with the Spark runner, so that both runners cut the input alike and refuse
        the same outputs."""
        out = self.output_dir
        # The job's own output and work directory are never its input (-o inside an input
        # directory: the previous run's part files must not be read by the next).
        files = expand_inputs(self.config.inputs, exclude=[out, self.work.path])
        check_placement(self.config.work_dir, self.work.path, out,
                        input_roots(self.config.inputs), files)
        total = sum(os.path.getsize(f) for f in files)
        split_size = self.config.split_size or choose_split_size(total, self.config.workers)
        fingerprint = self._fingerprint(files, split_size)
        if os.path.exists(out) and not os.path.isdir(out):
            raise OutputError(f"output path exists and is not a directory: {out}")
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output directory {out}: {exc.strerror}") from None
        if not os.access(out, os.W_OK):
            raise OutputError(f"output directory is not writable: {out}")
        return files, split_size, fingerprint

    def run(self) -> JobResult:
        started = time.time()
        files, split_size, fingerprint = self.plan_inputs_and_output()
        out = self.output_dir
        try:
            with OutputLock(out):
                try:
                    summary = self._run_locked(files, split_size, fingerprint, started)
                finally:
                    self.work.unlock()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise MapReduceError(f"disk full: {exc}; free some space and run the same "
                                     "command with --resume to finish the job") from None
            raise OutputError(f"cannot write {exc.filename or out}: "
                              f"{exc.strerror or exc}") from None
        finally:
            if self.journal is not None:
                self.journal.close()
        return JobResult(out, summary["counters"], summary, time.time() - started, self.phases)

    def _run_locked(self, files: list[str], split_size: int, fingerprint: dict[str, Any],
                    started: float) -> dict[str, Any]:
        if not self._open_output(files, fingerprint):
            with open(os.path.join(self.output_dir, JOB_SUMMARY_FILE), encoding="utf-8") as f:
                return json.load(f)  # already complete: nothing to do
        self._check_skipped()  # the limit holds across runs: skipped records are journaled
        if self.job_class.INPUT_FORMAT == "whole_file":
            inputs: list[Any] = plan_whole_files(files)
            how = "one map task per file (INPUT_FORMAT = 'whole_file')"
        else:
            inputs = plan_splits(files, split_size)
            how = f"split size {split_size} bytes"
        input_bytes = sum(os.path.getsize(f) for f in files)
        self.listener.job_started({
            "name": self.job_class.__name__, "job_path": self.job_ref.path,
            "output_dir": self.output_dir, "work_dir": self.layout.work_dir,
            "mode": self.shuffle.name, "workers": self.config.workers,
            "reducers": self.reducers, "steps": len(self.steps), "inputs": len(files),
            "input_bytes": input_bytes, "map_tasks": len(inputs), "run": self.run_number})
        self.listener.note(f"planned {len(inputs)} map tasks over {len(files)} input "
                           f"file{'s' if len(files) != 1 else ''} ({input_bytes} bytes; {how})")
        if self.run_number > 1:
            self.listener.note(f"resuming (run {self.run_number}): {len(self.committed)} "
                               "tasks committed by earlier runs are kept")
        with WorkerPool(self.config.workers, self.config.task_timeout) as pool:
            self._run_steps(pool, inputs)
        self._check_skipped()
        return self._commit_job(files, fingerprint, started)

    def _run_steps(self, pool: WorkerPool, inputs: list[Any]) -> None:
        """Run the steps in order.  When step s finds an output of step s-1 it reads damaged
        or gone, the loop goes back: the task that made it is run again (and whatever it
        needs in turn), then step s goes on with what it has committed."""
        inputs_of = {0: inputs}
        s = 0
        while s < len(self.steps):
            try:
                inputs_of[s + 1] = self._run_step(pool, s, inputs_of[s])
            except StepInputLost as lost:
                producer = lost.task
                if self._charge(producer) >= self.config.max_attempts:
                    raise TaskFailedError(
                        f"step {producer[0]} {producer[1]} task {producer[2]}: its output "
                        f"{lost.path} was found damaged {self.charged[producer]} times") from None
                self.listener.note(f"step {s} found {lost.path} damaged: running step "
                                   f"{producer[0]} {producer[1]} task {producer[2]} again")
                self._drop(producer)
                try:
                    os.remove(lost.path)
                except FileNotFoundError:
                    pass
                s = producer[0]
                continue
            if s:
                remove_tree(self.layout.step_dir(s - 1))  # consumed by step s
            s += 1

    def _prepare(self, files: list[str]) -> dict:
        """Run the job's coordinator-side ``prepare`` hook (e.g. sampling split points)."""
        job = self.job_class()
        job.options = argparse.Namespace(**self.job_options)
        try:
            side = job.prepare(list(files))
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

    def _keep_logs(self) -> None:
        """Move the attempt logs (what user code printed or logged, and failures' tracebacks)
        from the work directory to ``OUT/_logs`` so they outlive it, and point each task
        record at its log's new place.  An attempt that printed nothing leaves no file (an
        attempt killed mid-task may leave an empty one, dropped here): its record names no
        log."""
        source = os.path.join(self.layout.work_dir, "logs")
        target = os.path.join(self.output_dir, LOGS_DIR)
        names = set(os.listdir(source)) if os.path.isdir(source) else set()
        for name in names:
            path = os.path.join(source, name)
            if os.path.getsize(path) == 0:
                os.remove(path)
                continue
            os.makedirs(target, exist_ok=True)
            # shutil.move, not os.replace: --work-dir may be on another filesystem
            shutil.move(path, os.path.join(target, name))
        for task in self.tasks:
            if task.get("log"):
                moved = os.path.join(target, os.path.basename(task["log"]))
                task["log"] = moved if os.path.exists(moved) else ""

    def _counters(self) -> dict[tuple[str, str], int]:
        total: dict[tuple[str, str], int] = {}
        for counters in self.task_counters.values():
            for key, amount in counters.items():
                total[key] = total.get(key, 0) + amount
        return total

    def _commit_job(self, files: list[str], fingerprint: dict[str, Any],
                    started: float) -> dict[str, Any]:
        last = len(self.steps) - 1
        parts = sorted(i for (s, kind, i), p in self.committed.items()
                       if s == last and "part" in p["output"])

        def summary() -> dict[str, Any]:
            return {
                "job": {"path": self.job_ref.path, "class": self.job_ref.class_name,
                        "fingerprint": fingerprint["fingerprint"],
                        "fingerprint_parts": fingerprint},
                "mode": self.shuffle.name,
                "runner": "local",
                "output_protocol": self.job_class.OUTPUT_PROTOCOL,
                "workers": self.config.workers,
                "reducers": self.reducers,
                "steps": [st.describe() for st in self.steps],
                "inputs": files,
                "output_dir": self.output_dir,
                "work_dir": self.layout.work_dir,
                "config": {k: v for k, v in asdict(self.config).items()
                           if k not in ("inputs", "output_dir")},
                "runs": self.run_number,
                "start": started,
                "end": time.time(),
                "counters": _counter_tree(self._counters()),
                "skipped_records": self.skipped,
                "phases": self.phases,
                "tasks": self.tasks,
            }

        result = self.publish(parts, fingerprint, summary)
        self.listener.note(f"committed {len(parts)} part file{'s' if len(parts) != 1 else ''} "
                           f"to {self.output_dir}")
        self.listener.job_finished(result)
        if not self.config.keep_work:
            if self.journal is not None:
                self.journal.close()
                self.journal = None
            self.work.remove()
        return result

    def publish(self, parts: list[int], fingerprint: dict[str, Any],
                summary: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The job commit: put the committed part files in OUT and declare it complete.

        1. Check every input is still the file the job read (path, size, mtime, inode,
           ctime): a job whose input changed under it fails here, naming the input, instead
           of committing output that mixes old and new data.
        2. ``--overwrite``: move the old output's entries aside (into ``OUT/_committing``),
           ``_SUCCESS`` first and durably, so that from here on OUT never claims to be
           complete and nothing old is mixed into the new output.
        3. Move each part file into OUT (a rename; across file systems a copy into
           ``OUT/_committing``, fsync, rename), then the attempt logs; fsync OUT.
        4. Write ``_job.json``, then ``_SUCCESS`` last; journal JOB_COMMITTED; remove
           ``OUT/_committing``.

        Every step can be done again: a coordinator killed in the middle leaves part files
        without ``_SUCCESS`` (a reader must check ``_SUCCESS``, as with Hadoop and Spark)
        and ``--resume`` finishes the commit.  Shared with the Spark runner.
        """
        out = self.output_dir
        staging = os.path.join(out, COMMIT_DIR)
        self._check_inputs_unchanged(fingerprint)
        self._set_aside_replaced(staging)
        for index in parts:
            src = self.layout.committed_part(index)
            if os.path.exists(src):  # else moved already by a run that was killed mid-commit
                move_file(src, os.path.join(out, part_name(index)), staging, sync_dir=False)
        self._keep_logs()
        fsync_dir(out)  # every part's rename is durable before _SUCCESS
        result = summary()
        write_file_atomically(os.path.join(out, JOB_SUMMARY_FILE),
                              json.dumps(result, indent=2, default=str).encode("utf-8"))
        write_file_atomically(os.path.join(out, SUCCESS_FILE), b"")
        if self.journal is not None:
            self.journal.append(JOB_COMMITTED, {"run": self.run_number, "time": time.time()})
        remove_tree(staging)
        return result

    def _check_inputs_unchanged(self, fingerprint: dict[str, Any]) -> None:
        for identity in fingerprint["inputs"]:
            path = identity[0]
            try:
                now = _input_identity(path)
            except OSError:
                now = None
            if now != identity:
                raise InputError(f"input {path} changed while the job ran (it is gone, or its "
                                 "size, modification time, inode or change time differ): the "
                                 "output would mix old and new data, so it is not committed; "
                                 "run the job again with --overwrite")

    def _set_aside_replaced(self, staging: str) -> None:
        """Move the entries of OUT that this job replaces (``--overwrite``) into
        ``staging/replaced``; an entry found there already was moved by a commit that was
        killed, and the same name in OUT is then this job's own."""
        if not self.replaced:
            return
        trash = os.path.join(staging, "replaced")
        os.makedirs(trash, exist_ok=True)
        for name in sorted(self.replaced, key=lambda e: e != SUCCESS_FILE):
            src = os.path.join(self.output_dir, name)
            if os.path.lexists(src) and not os.path.lexists(os.path.join(trash, name)):
                os.rename(src, os.path.join(trash, name))
                if name == SUCCESS_FILE:
                    fsync_dir(self.output_dir)  # OUT stops claiming completeness first
        fsync_dir(self.output_dir)


__all__ = ["JobTracker", "JobConfig", "JobResult"]
