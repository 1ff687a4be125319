"""The JobTracker: the one stateful object of a job run.

It plans the tasks of every step, hands them to an injected executor (a
:class:`~mapreduce.pool.WorkerPool`), commits what each task returns, and at the end commits
the job's output.  The shuffle back end is injected too (:mod:`mapreduce.shuffle`,
:mod:`mapreduce.diskshuffle`), so disk and memory mode are the same code path.

Per step::

    inputs (text splits, or the previous step's committed outputs)
      -> map phase: one map task per split; each committed map output is renamed to its
         final name in the work dir (only the coordinator commits, so only one attempt can)
      -> reduce phase (unless map-only): reduce task r reads partition r of every map output
      -> the step's outputs: text part files (last step) or pair runs (the next step's input)

Job commit (Hadoop's FileOutputCommitter, "v1"): final tasks commit their part files into
``WORK/committed/``; when every task of the last step has committed, the coordinator renames
them into the output directory, writes ``_job.json``, then ``_SUCCESS`` last, and removes the
work directory.  A failed job leaves no ``_SUCCESS`` and no part files in the output directory.

A task attempt that fails ends the job with :class:`~mapreduce.errors.TaskFailedError`, whose
message names the task and its split or partition and whose ``detail`` carries the user's
traceback.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from mapreduce.errors import OutputError, TaskFailedError, UsageError
from mapreduce.inputs import choose_split_size, expand_inputs, plan_splits
from mapreduce.job import Job
from mapreduce.layout import (JOB_SUMMARY_FILE, SUCCESS_FILE, WorkLayout, commit_file,
                              part_name, remove_tree, write_file_atomically)
from mapreduce.loader import JobRef
from mapreduce.pool import TaskFailure, WorkerPool
from mapreduce.shuffle import MapOutput, Shuffle
from mapreduce.task import TaskResult, TaskSpec, TextOutput, run_task


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


def _add_counters(total: dict, more: dict) -> None:
    for key, amount in more.items():
        total[key] = total.get(key, 0) + amount


class JobTracker:
    def __init__(self, job_class: type[Job], job_ref: JobRef, config: JobConfig,
                 shuffle: Shuffle) -> None:
        self.job_class = job_class
        self.job_ref = job_ref
        self.config = config
        self.shuffle = shuffle
        self.steps = job_class().steps()
        if not self.steps:
            raise UsageError(f"{job_ref.path}: steps() returned no steps")
        self.reducers = config.reducers if config.reducers is not None else job_class.REDUCERS
        if self.reducers < 1:
            raise UsageError(f"--reducers must be at least 1 (got {self.reducers})")
        self.output_dir = os.path.abspath(config.output_dir)
        self.layout = WorkLayout(os.path.abspath(
            config.work_dir or os.path.join(self.output_dir, "_temporary")))
        self.counters: dict[tuple[str, str], int] = {}
        self.tasks: list[dict[str, Any]] = []
        self.phases: list[dict[str, Any]] = []
        self._final_parts: list[int] = []

    # --- output directory ---------------------------------------------------------------
    def _prepare_output(self, files: list[str]) -> None:
        out = self.output_dir
        if os.path.exists(out) and not os.path.isdir(out):
            raise OutputError(f"output path exists and is not a directory: {out}")
        if os.path.isdir(out) and os.listdir(out):
            if not self.config.overwrite:
                raise OutputError(f"output directory is not empty: {out} (pass --overwrite "
                                  "to replace it)")
            for f in files:
                if os.path.abspath(f).startswith(out + os.sep):
                    raise OutputError(f"refusing to --overwrite {out}: it contains input file {f}")
            if out in (os.path.abspath(os.sep), os.path.expanduser("~"), os.getcwd()):
                raise OutputError(f"refusing to --overwrite {out}: not a job output directory")
            remove_tree(out)
        try:
            os.makedirs(out, exist_ok=True)
            os.makedirs(self.layout.work_dir, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output directory {out}: {exc.strerror}") from None
        if not os.access(out, os.W_OK):
            raise OutputError(f"output directory is not writable: {out}")

    # --- running phases ---------------------------------------------------------------------
    def _run_phase(self, pool: WorkerPool, name: str, specs: list[TaskSpec]) -> list[TaskResult]:
        started = time.time()
        for spec in specs:
            pool.submit(spec.index, run_task, spec)
        # Task indexes are 0..n-1 within a phase, so they double as positions.
        results: list[Optional[TaskResult]] = [None] * len(specs)
        while pool.pending:
            event = pool.next_event()
            if event is None:
                continue
            status, index, payload = event
            if status != "ok":
                raise self._task_failed(specs[index], payload)
            results[index] = payload
            self._record_task(specs[index], payload)
        self.phases.append({"phase": name, "start": started, "end": time.time(),
                            "tasks": len(specs)})
        return results  # type: ignore[return-value]

    def _task_failed(self, spec: TaskSpec, failure: TaskFailure) -> TaskFailedError:
        error = TaskFailedError(f"{spec.describe()} failed: {failure.message}")
        error.detail = failure.detail  # type: ignore[attr-defined]
        return error

    def _record_task(self, spec: TaskSpec, result: TaskResult) -> None:
        _add_counters(self.counters, result.counters)
        c = {name: v for (group, name), v in result.counters.items() if group == "framework"}
        self.tasks.append({
            "kind": result.kind, "step": result.step, "index": result.index,
            "attempt": result.attempt, "start": result.started, "end": result.finished,
            "worker_pid": result.pid, "peak_rss_bytes": result.peak_rss,
            "input": spec.split.describe() if spec.kind == "map" else f"partition {spec.index}",
            "records_in": c.get("MAP_INPUT_RECORDS" if spec.kind == "map"
                                else "REDUCE_INPUT_RECORDS", 0),
            "records_out": c.get("MAP_OUTPUT_RECORDS" if spec.kind == "map"
                                 else "REDUCE_OUTPUT_RECORDS", 0),
            "bytes_in": result.input_bytes if spec.kind == "map" else c.get("SHUFFLE_BYTES", 0),
            "bytes_out": result.output_bytes or sum(
                (result.map_output.partition_bytes if result.map_output else [])),
            "spills": c.get("SPILL_FILES", 0),
            "status": result.status,
        })

    def _output_target(self, step: int, attempt_dir: str, part: int) -> Any:
        if step == len(self.steps) - 1:
            return TextOutput(os.path.join(attempt_dir, part_name(part)))
        return self.shuffle.pair_sink(attempt_dir)

    def _commit_output(self, step: int, index: int, location: Any, label: str) -> Any:
        if step == len(self.steps) - 1:
            commit_file(location, self.layout.committed_part(index))
            self._final_parts.append(index)
            return None
        return self.shuffle.step_input(
            self.shuffle.commit_step_output(location, self.layout.step_output(step, index)),
            label)

    def _run_step(self, pool: WorkerPool, s: int, inputs: list[Any]) -> list[Any]:
        step = self.steps[s]
        partitions = 0 if step.map_only else self.reducers
        sort_values = bool(self.job_class.SORT_VALUES)
        cfg = self.config
        specs = []
        for i, split in enumerate(inputs):
            attempt_dir = self.layout.map_attempt_dir(s, i, 0)
            specs.append(TaskSpec(
                "map", self.job_ref, s, i, 0, partitions, cfg.sort_buffer, sort_values,
                cfg.decode_errors, split=split,
                sink=(self.shuffle.map_sink(attempt_dir, partitions, cfg.merge_factor,
                                            sort_values) if partitions else None),
                output=None if partitions else self._output_target(s, attempt_dir, i)))
        results = self._run_phase(pool, f"step {s} map", specs)
        if step.map_only:
            return [self._commit_output(s, r.index, r.output, f"step {s} output {r.index}")
                    for r in results]
        map_outputs: list[MapOutput] = [
            self.shuffle.commit_map_output(r.map_output, self.layout.map_output(s, r.index))
            for r in results]
        specs = []
        for p in range(partitions):
            attempt_dir = self.layout.reduce_attempt_dir(s, p, 0)
            source = self.shuffle.reduce_source(map_outputs, p, attempt_dir, cfg.merge_factor,
                                                sort_values)
            source.counters[("framework", "SHUFFLE_BYTES")] = sum(
                o.partition_bytes[p] for o in map_outputs)
            source.counters[("framework", "REDUCE_INPUT_RECORDS")] = sum(
                o.partition_records[p] for o in map_outputs)
            specs.append(TaskSpec("reduce", self.job_ref, s, p, 0, partitions, cfg.sort_buffer,
                                  sort_values, cfg.decode_errors, source=source,
                                  output=self._output_target(s, attempt_dir, p)))
        results = self._run_phase(pool, f"step {s} reduce", specs)
        outputs = [self._commit_output(s, r.index, r.output, f"step {s} output {r.index}")
                   for r in results]
        return outputs

    # --- the job ------------------------------------------------------------------------------
    def run(self) -> JobResult:
        started = time.time()
        files = expand_inputs(self.config.inputs)
        total = sum(os.path.getsize(f) for f in files)
        split_size = self.config.split_size or choose_split_size(total, self.config.workers)
        inputs: list[Any] = plan_splits(files, split_size)
        self._prepare_output(files)
        with WorkerPool(self.config.workers) as pool:
            for s in range(len(self.steps)):
                previous_step_dir = self.layout.step_dir(s - 1) if s else None
                inputs = self._run_step(pool, s, inputs)
                if previous_step_dir:
                    remove_tree(previous_step_dir)  # its outputs were this step's input
        summary = self._commit_job(files, started)
        return JobResult(self.output_dir, _counter_tree(self.counters), summary,
                         time.time() - started, self.phases)

    def _commit_job(self, files: list[str], started: float) -> dict[str, Any]:
        for index in sorted(self._final_parts):
            commit_file(self.layout.committed_part(index),
                        os.path.join(self.output_dir, part_name(index)))
        summary = {
            "job": {"path": self.job_ref.path, "class": self.job_ref.class_name},
            "mode": self.shuffle.name,
            "workers": self.config.workers,
            "reducers": self.reducers,
            "steps": [st.describe() for st in self.steps],
            "inputs": files,
            "output_dir": self.output_dir,
            "config": {"sort_buffer": self.config.sort_buffer,
                       "merge_factor": self.config.merge_factor,
                       "split_size": self.config.split_size,
                       "decode_errors": self.config.decode_errors},
            "start": started,
            "end": time.time(),
            "counters": _counter_tree(self.counters),
            "phases": self.phases,
            "tasks": self.tasks,
        }
        write_file_atomically(os.path.join(self.output_dir, JOB_SUMMARY_FILE),
                              json.dumps(summary, indent=2, default=str).encode("utf-8"))
        write_file_atomically(os.path.join(self.output_dir, SUCCESS_FILE), b"")
        remove_tree(self.layout.work_dir)
        return summary
