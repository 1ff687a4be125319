"""Every path in the output and work directories, and the atomic commit of a file.

Output directory (Hadoop's FileOutputCommitter layout)::

    OUT/part-00000 ...        final output, one per reducer (or per map task if map-only)
    OUT/_job.json             job summary, written after every part file
    OUT/_SUCCESS              written last; its presence means the output is complete
    OUT/_logs/                what task attempts printed (kept after the job)
    OUT/_temporary/           the work directory (default; ``--work-dir DIR`` puts it in a
                              private directory inside DIR: see mapreduce.workdir)
    OUT/_committing/          only during the job commit (see COMMIT_DIR)

Work directory::

    journal                              the coordinator's append-only progress log
    logs/step-S-KIND-NNNNN-attempt-T.log stdout+stderr of one task attempt
    step-S/map-NNNNN.T.out               committed map output of step S, map task N (by attempt T)
    step-S/attempts/KIND-NNNNN.T.*       attempt T's private files: spills, merges, its output
                                         before commit (a name prefix, not a directory: creating
                                         and removing a directory per attempt costs more than a
                                         tiny task)
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

SUCCESS_FILE = "_SUCCESS"
JOB_SUMMARY_FILE = "_job.json"
DEFAULT_WORK_SUBDIR = "_temporary"
#: Exists only during a job commit: ``replaced/`` holds the old output an ``--overwrite``
#: job replaces, and part files being copied in from a work directory on another file
#: system wait here, on the output's file system, for their rename.
COMMIT_DIR = "_committing"


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

    def attempts_dir(self, step: int) -> str:
        return os.path.join(self.step_dir(step), "attempts")

    def attempt_prefix(self, step: int, kind: str, index: int, tag: str) -> str:
        """Every file of one attempt starts with this path prefix."""
        return os.path.join(self.attempts_dir(step), f"{kind}-{index:05d}.{tag}.")

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


def commit_file(tmp_path: str, final_path: str, sync_dir: bool = True) -> str:
    """Atomically move a complete, fsynced file to its final name.

    Returns the directory whose fsync makes the rename durable; with ``sync_dir=False`` the
    caller fsyncs it later (the coordinator batches those fsyncs in a group commit).
    """
    directory = os.path.dirname(final_path)
    os.makedirs(directory, exist_ok=True)
    os.replace(tmp_path, final_path)
    if sync_dir:
        fsync_dir(directory)
    return directory


def remove_prefix(prefix: str) -> None:
    """Delete every file whose path starts with ``prefix`` (one attempt's leftovers)."""
    directory, start = os.path.split(prefix)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(start):
            try:
                os.remove(os.path.join(directory, name))
            except FileNotFoundError:
                pass


#: Threads that unlink a large tree's files (see :func:`remove_tree`).
REMOVE_THREADS = 8
#: Below this many files a tree is removed by one thread (starting threads costs more).
_PARALLEL_REMOVE_FROM = 64


def remove_tree(path: str) -> None:
    """Delete directory ``path`` and everything in it (missing or vanishing files are fine).

    The files are unlinked by :data:`REMOVE_THREADS` threads.  On ext4 unlinking a file whose
    blocks were fsynced (every committed map output is) waits for the file system's journal,
    about 3 ms each here, one after the other; concurrent unlinks share a journal commit, so
    the 2,000 map outputs of a job with 2,000 tiny tasks go in 0.15 s instead of 5.6 s (the
    end of such a job was a third of its wall time: docs/performance.md).  Symlinks are
    removed, never followed; the directories go last, with ``shutil.rmtree``.
    """
    files: list[str] = []
    stack = [] if os.path.islink(path) else [path]  # rmtree refuses a symlink: so do we
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    (stack if is_dir else files).append(entry.path)
        except OSError:
            continue  # gone, or not a directory: rmtree below deals with what is left
    if len(files) >= _PARALLEL_REMOVE_FROM:
        with ThreadPoolExecutor(REMOVE_THREADS) as pool:
            list(pool.map(_unlink_quietly, files, chunksize=32))
    shutil.rmtree(path, ignore_errors=True)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # rmtree tries again and ignores what cannot be removed, as before
