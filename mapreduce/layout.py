"""Every path in the output and work directories, and the atomic commit of a file.

Output directory (Hadoop's FileOutputCommitter layout)::

    OUT/part-00000 ...        final output, one per reducer (or per map task if map-only)
    OUT/_job.json             job summary, written after every part file
    OUT/_SUCCESS              written last; its presence means the output is complete
    OUT/_temporary/           the work directory (default; ``--work-dir`` moves it)

Work directory::

    journal                              the coordinator's append-only progress log
    logs/step-S-KIND-NNNNN-attempt-T.log stdout+stderr of one task attempt
    step-S/map-NNNNN.T.out               committed map output of step S, map task N (by attempt T)
    step-S/map-NNNNN/attempt-T/          attempt T's private files (spills, output before commit)
    step-S/reduce-NNNNN/attempt-T/       reduce attempt's intermediate merges and output
    step-S/output-NNNNN.run              committed output of an intermediate (non-final) step
    committed/part-NNNNN                 a final-step task's committed output, awaiting job commit

An attempt tag T is ``RUN-N``: the coordinator run (1, then +1 per ``--resume``) and the
attempt number within that run, so a file written by an attempt of an earlier, killed run can
never be mistaken for one of the current run.  A map output's final name carries the tag of
the attempt that committed it, so a reducer's "this file is corrupt" names exactly one commit.

Invariant: a file under a final name is complete and durable.  Writers write under the
attempt directory, fsync, and :func:`commit_file` renames into place (``os.replace`` is atomic
on POSIX) and fsyncs the directory so the rename itself survives a crash.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

SUCCESS_FILE = "_SUCCESS"
JOB_SUMMARY_FILE = "_job.json"
DEFAULT_WORK_SUBDIR = "_temporary"


def part_name(index: int) -> str:
    return f"part-{index:05d}"


@dataclass(frozen=True)
class WorkLayout:
    """Paths under one job's work directory (picklable; passed to tasks)."""

    work_dir: str

    def step_dir(self, step: int) -> str:
        return os.path.join(self.work_dir, f"step-{step}")

    @property
    def journal(self) -> str:
        return os.path.join(self.work_dir, "journal")

    def attempt_dir(self, step: int, kind: str, index: int, tag: str) -> str:
        return os.path.join(self.step_dir(step), f"{kind}-{index:05d}", f"attempt-{tag}")

    def attempt_log(self, step: int, kind: str, index: int, tag: str) -> str:
        return os.path.join(self.work_dir, "logs",
                            f"step-{step}-{kind}-{index:05d}-attempt-{tag}.log")

    def map_output(self, step: int, task: int, tag: str) -> str:
        return os.path.join(self.step_dir(step), f"map-{task:05d}.{tag}.out")

    def step_output(self, step: int, index: int) -> str:
        return os.path.join(self.step_dir(step), f"output-{index:05d}.run")

    def committed_dir(self) -> str:
        return os.path.join(self.work_dir, "committed")

    def committed_part(self, index: int) -> str:
        return os.path.join(self.committed_dir(), part_name(index))


def fsync_dir(path: str) -> None:
    """Make a rename or create in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp_path: str, final_path: str) -> None:
    """Atomically move a complete, fsynced file to its final name."""
    os.makedirs(os.path.dirname(final_path), exist_ok=True)
    os.replace(tmp_path, final_path)
    fsync_dir(os.path.dirname(final_path))


def write_file_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp name, fsync and rename."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    commit_file(tmp, path)


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
