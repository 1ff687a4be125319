"""The local runner: task attempts in a pool of worker processes on this machine, with a
journal, retries and ``--resume``.  The inline runner (:mod:`mapreduce.runners.inline`) is the
same scheduler with the tasks run in the calling process.

It is handed a :class:`~mapreduce.session.JobSession` (everything about the job that is the
same on every runner), a shuffle back end and an executor (``submit`` / ``next_event``: the
:class:`~mapreduce.pool.WorkerPool`, or the inline one), and adds what is its own: planning
each step's task attempts, committing what each attempt returns, the journal, retries, and
``--resume``.  Disk and memory mode are the same code path with a different
:class:`~mapreduce.shuffle.Shuffle` plugged in.

Per step::

    inputs (text splits, or the previous step's committed outputs)
      -> map phase: one map task per split; a finished attempt's map output is renamed to
         its final name (tagged with the attempt) and a TASK_COMMITTED record is journaled
      -> reduce phase (unless map-only): reduce task r reads partition r of every map output
      -> the step's outputs: text part files (last step) or pair runs (the next step's input)

Attempts and retries (Hadoop's rules): every task runs as numbered attempts, each writing
only files of its own.  Only the coordinator commits, and only the first successful attempt
of a task; a later duplicate is discarded.  A failed attempt (the user code raised, the
worker died, or it passed ``--task-timeout``) is retried up to ``--max-attempts``.  Counters
come only from committed attempts.  A reducer that finds a map output corrupt or missing (a
fetch failure) is not charged for it: the map task that produced the file is charged,
un-committed and re-run, and the reducer runs again after it; a damaged output of a previous
step sends the step loop back to make it again.  A full disk fails the job at once with a
message saying to free space and ``--resume``.

Journal and resume: the journal (``WORK/journal``, see ``docs/journal-format.md``) starts with
the session's header (fingerprint, configuration, side data, what an --overwrite replaces).
Each commit is journaled after the file it names is durable, with its size (and a part
file's CRC-32) and the bad records it skipped.  ``--resume`` replays it, refuses a changed job
or input, deletes orphaned attempt files, verifies the committed files still needed, and runs
only what is missing.  In memory mode only final part files are durable, so a resumed
memory-mode job recomputes the rest.
"""
from __future__ import annotations

import errno
import os
import socket
import time
from typing import Any, Callable, Optional

from mapreduce.errors import (CorruptDataError, JobCancelledError, MapReduceError, OutputError,
                              TaskFailedError)
from mapreduce.journal import JOB_COMMITTED, RUN_START, TASK_COMMITTED, TASK_FAILED, Journal
from mapreduce.layout import commit_file, fsync_dir, part_name, remove_prefix, remove_tree
from mapreduce.output import file_crc32
from mapreduce.pool import TaskFailure, WorkerPool
from mapreduce.session import DONE, RESUME, JobResult, JobSession
from mapreduce.shuffle import MapOutput, Shuffle
from mapreduce.shuffles import make_shuffle
from mapreduce.sidedata import verify_side_data
from mapreduce.taskdir import STAGE_DIR, TASK_WD_DIR
from mapreduce.task import TaskResult, TaskSpec, TextOutput, run_task
from mapreduce.workdir import OWN_FILES

TaskKey = tuple  # (step, kind, index)

#: Longest a commit waits for its journal record to be made durable (group commit window).
GROUP_COMMIT_SECONDS = 0.05
#: How often the scheduler wakes up with nothing to do, to notice a cancel() request.
CANCEL_POLL_SECONDS = 0.2


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



class LocalRunner:
    """Runs a job's task attempts through an executor and commits them (module docstring).

    ``executor`` makes the executor for the run from ``(workers, task_timeout)``; by default
    a :class:`~mapreduce.pool.WorkerPool`.  ``max_attempts`` overrides ``--max-attempts``
    (the inline runner runs each task once)."""

    name = "local"
    #: Runner-specific entries for _job.json (the Dask runner's scheduler address).
    summary_extra: dict[str, Any] = {}

    def __init__(self, session: JobSession, shuffle: Shuffle,
                 executor: Callable[[int, Optional[float]], Any] = WorkerPool,
                 max_attempts: Optional[int] = None) -> None:
        self.session = session
        self.listener = session.listener
        self.config = session.config
        self.shuffle = shuffle
        self.make_executor = executor
        self.max_attempts = max_attempts or self.config.max_attempts
        self._cancelled = False
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
        # Group commit state (see _flush_journal).
        self._pending_records: list[tuple[int, dict]] = []
        self._unsynced_dirs: set[str] = set()
        self._last_flush = time.monotonic()
        # State of the step being run.
        self.step_inputs: list[Any] = []
        self.map_outputs: dict[int, MapOutput] = {}
        self.step_outputs: dict[int, Any] = {}

    # The session's view of the job, under the names the scheduler uses.
    @property
    def steps(self) -> list:
        return self.session.steps

    @property
    def layout(self):
        return self.session.layout

    @property
    def output_dir(self) -> str:
        return self.session.output_dir

    @property
    def side_data(self):
        return self.session.side_data

    # --- the run ------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask a running job to stop (thread-safe: it only sets a flag).  The scheduler stops
        within CANCEL_POLL_SECONDS, kills its workers and raises JobCancelledError; what was
        committed stays journaled, so ``--resume`` finishes the job later."""
        self._cancelled = True

    def run(self) -> JobResult:
        session = self.session
        session.plan()
        try:
            with session.locked():
                summary = self._run_locked()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise MapReduceError(f"disk full: {exc}; free some space and run the same "
                                     f"command with {self.config.spell_on('resume')} to "
                                     "finish the job") from None
            raise OutputError(f"cannot write {exc.filename or session.output_dir}: "
                              f"{exc.strerror or exc}") from None
        finally:
            if self.journal is not None:
                self.journal.close()
                self.journal = None
        return JobResult(session.output_dir, summary["counters"], summary,
                         time.time() - session.started, self.phases)

    def _run_locked(self) -> dict[str, Any]:
        session = self.session
        state = session.open_output(resumable=True)
        if state == DONE:
            return session.finished_summary()  # already complete: nothing to do
        if state == RESUME:
            self._resume_journal()
        else:
            self.journal = Journal.create(self.layout.journal, session.journal_header())
            self.journal.append(RUN_START, {"run": 1, "pid": os.getpid(),
                                            "time": time.time(),
                                            "host": socket.gethostname()})
        self._check_skipped()  # the limit holds across runs: skipped records are journaled
        inputs = session.splits()
        if state == RESUME:
            self._check_same_splits(inputs)
        self.listener.job_started({
            "name": session.job_class.__name__, "job_path": session.job_ref.path,
            "output_dir": self.output_dir, "work_dir": self.layout.work_dir,
            "mode": self.shuffle.name, "workers": self.config.workers,
            "reducers": session.reducers, "steps": len(self.steps),
            "inputs": len(session.files),
            "input_bytes": session.input_bytes,
            "map_tasks": len(inputs), "run": self.run_number})
        self.listener.note(session.describe_plan(len(inputs), inputs))
        if self.run_number > 1:
            self.listener.note(f"resuming (run {self.run_number}): {len(self.committed)} "
                               "tasks committed by earlier runs are kept")
        with self.make_executor(self.config.workers, self.config.task_timeout) as pool:
            try:
                self._run_steps(pool, inputs)
            except MapReduceError:
                # E.g. the Dask executor lost its scheduler: keep what committed (the renames
                # are done; only their records may still be queued) for --resume.
                self._flush_journal()
                raise
        self._check_skipped()
        last = len(self.steps) - 1
        parts = sorted(i for (s, _kind, i), p in self.committed.items()
                       if s == last and "part" in p["output"])
        summary = session.publish(parts, lambda: session.summary(
            runner=self.name, tasks=self.tasks, task_counters=self.task_counters,
            phases=self.phases, runs=self.run_number, skipped=self.skipped,
            extra=self.summary_extra),
            journal=self._journal_committed)
        self.listener.job_finished(summary)
        if not self.config.keep_work:
            if self.journal is not None:
                self.journal.close()
                self.journal = None
        session.finish()
        return summary

    def _journal_committed(self) -> None:
        if self.journal is not None:
            self.journal.append(JOB_COMMITTED, {"run": self.run_number, "time": time.time()})

    def _resume_journal(self) -> None:
        try:
            self.journal, records, _torn = Journal.resume(self.layout.journal)
        except CorruptDataError as exc:
            raise OutputError(f"{exc}; the journal cannot be trusted: run with "
                              f"{self.config.spell_on('overwrite')} to start the job over"
                              ) from None
        self.session.restore(records[0].payload)
        try:
            verify_side_data(self.side_data)
        except CorruptDataError as exc:
            raise OutputError(f"cannot resume the job in {self.output_dir}: {exc.reason} "
                              f"({exc.path}); run with {self.config.spell_on('overwrite')} "
                              "to start over") from None
        runs = [r.payload["run"] for r in records if r.type == RUN_START]
        self.run_number = max(runs, default=0) + 1
        for record in records:
            if record.type == TASK_COMMITTED:
                self._replay_commit(record.payload)
        self._verify_committed_parts()
        self.journal.append(RUN_START, {"run": self.run_number, "pid": os.getpid(),
                                        "time": time.time(), "host": socket.gethostname()})
        self._remove_orphans()

    def _check_same_splits(self, inputs: list[Any]) -> None:
        """On --resume: each journaled map task of the first step read the split this run
        planned for its index (the journal records the split's description).  The
        fingerprint fixes the inputs and the split size, but not how the planner cuts them:
        a journal from a version that planned differently (before small files were packed,
        say) must not have its map outputs taken for other inputs' output."""
        for (s, kind, index), p in self.committed.items():
            if s or kind != "map":
                continue
            was = p.get("task", {}).get("input")
            now = inputs[index].describe() if index < len(inputs) else None
            if was != now:
                raise OutputError(
                    f"cannot {self.config.spell_on('resume')} the job in {self.output_dir}: "
                    f"its map task {index} read {was}, but this version plans "
                    f"{now or 'fewer map tasks'}; run with "
                    f"{self.config.spell_on('overwrite')} to run it again")

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
                # logs, and the task working directory's staged files (restaged each run)
                dirs[:] = [d for d in dirs if d not in ("logs", STAGE_DIR, TASK_WD_DIR)]
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
                              self.session.output_protocol,
                              self.config.output_compression)
        return self.shuffle.pair_sink(prefix)

    def _make_spec(self, key: TaskKey, attempt: int) -> TaskSpec:
        s, kind, index = key
        cfg = self.config
        tag = self._tag(attempt)
        prefix = self.layout.attempt_prefix(s, kind, index, tag)
        partitions = self.session.reducers_of(s)
        sort_values = self.session.sort_values
        common = dict(job=self.session.job_ref, step=s, index=index, attempt=tag,
                      num_partitions=partitions, sort_buffer=cfg.sort_buffer,
                      sort_values=sort_values, decode_errors=cfg.decode_errors,
                      side_data=self.side_data, job_options=self.session.job_options,
                      task_dir=self.session.task_dir,
                      spelling=cfg.spelling)
        if kind == "map":
            return TaskSpec(
                "map", **common, skip_bad_records=cfg.skip_bad_records,
                split=self.step_inputs[index],
                sink=(self.shuffle.map_sink(prefix, partitions, cfg.merge_factor,
                                            sort_values) if partitions else None),
                output=None if partitions else self._output_target(s, prefix, index))
        outputs = [self.map_outputs[i] for i in range(len(self.step_inputs))]
        source = self.shuffle.reduce_source(outputs, index, prefix, cfg.merge_factor,
                                            sort_values)
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
        # (A Dask worker with several threads writes no attempt log: nothing to point at.)
        where = f" (log: {log})" if log and os.path.exists(log) else ""
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
                    f"job cancelled during {name}; run it again with "
                    f"{self.config.spell_on('resume')} to finish it")
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
                    f"and run the same command with {self.config.spell_on('resume')} to "
                    "finish the job")
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
                    if self._charge(map_key) >= self.max_attempts:
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
            if charged >= self.max_attempts or not failure.retryable:
                self._flush_journal()  # keep what committed before failing the job
                raise self._task_failed(spec, failure, charged, log)
            listener.note(f"retrying {spec.name}: attempt {charged + 1} of at most "
                          f"{self.max_attempts}")
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
                f"{self.config.spell('skip_bad_records')}={self.config.skip_bad_records}; "
                f"first: {skipped[0]}")

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
            path = os.path.join(self.output_dir, self.session.final_part_name(index))
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
        n_out = len(inputs) if step.map_only else self.session.reducers_of(s)
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
            reduces = [(s, "reduce", p) for p in range(n_out)
                       if (s, "reduce", p) not in self.committed]
            maps = [(s, "map", i) for i in range(len(inputs))
                    if reduces and (s, "map", i) not in self.committed]
            self._execute(pool, f"step {s} map", maps)
            self._execute(pool, f"step {s} reduce", reduces)
        return [self.shuffle.step_input(self.step_outputs.get(i), f"step {s} output {i}")
                for i in range(n_out)]

    # --- the job ------------------------------------------------------------------------------
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
                if self._charge(producer) >= self.max_attempts:
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



__all__ = ["LocalRunner", "StepInputLost", "run"]


def run(job_class: Any, job_ref: Any, config: Any, listener: Any = None,
        ready: Optional[Callable[[Any], None]] = None) -> JobResult:
    """The registry's entry point (see :mod:`mapreduce.runners`)."""
    runner = LocalRunner(JobSession(job_class, job_ref, config, listener),
                         make_shuffle(config.mode))
    if ready is not None:
        ready(runner)
    return runner.run()
