"""Every path in the output and work directories, and the atomic commit of a file.

Output directory (Hadoop's FileOutputCommitter layout)::

    OUT/part-00000 ...        final output, one per reducer (or per map task if map-only)
    OUT/_job.json             job summary, written after every part file
    OUT/_SUCCESS              written last; its presence means the output is complete
    OUT/_temporary/           the work directory (default; ``--work-dir`` moves it)

Work directory::

    step-S/map-NNNNN.out                 committed map output of step S, map task N
    step-S/map-NNNNN/attempt-A/          attempt A's private files (spills, output before commit)
    step-S/reduce-NNNNN/attempt-A/       reduce attempt's intermediate merges and output
    step-S/output-NNNNN.run              committed output of an intermediate (non-final) step
    committed/part-NNNNN                 a final-step task's committed output, awaiting job commit

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

    def map_attempt_dir(self, step: int, task: int, attempt: int) -> str:
        return os.path.join(self.step_dir(step), f"map-{task:05d}", f"attempt-{attempt}")

    def map_output(self, step: int, task: int) -> str:
        return os.path.join(self.step_dir(step), f"map-{task:05d}.out")

    def reduce_attempt_dir(self, step: int, partition: int, attempt: int) -> str:
        return os.path.join(self.step_dir(step), f"reduce-{partition:05d}", f"attempt-{attempt}")

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
