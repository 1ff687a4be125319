"""The error hierarchy: every failure a user can cause or see.

Every exception here carries a one-line, user-facing message (``str(exc)``) that names the
file, line, option or task at fault.  The CLI prints that line and exits non-zero instead of
showing a framework traceback.  Any module may import this one; it imports nothing of ours.
"""
from __future__ import annotations

import os
import traceback


class MapReduceError(Exception):
    """Base class: a failure with a message meant for the user (exit status 1).

    Inside a task, two class attributes steer what the coordinator does with it:
    ``retryable`` (would another attempt possibly succeed?) and ``show_traceback`` (is the
    traceback of the chained ``__cause__`` -- the user's code -- worth showing?).
    """

    exit_status = 1
    retryable = True
    show_traceback = False


class UsageError(MapReduceError):
    """A bad command-line option or combination of options (exit status 2)."""

    exit_status = 2


class JobDefinitionError(MapReduceError):
    """The job file cannot be loaded or does not define a usable Job (exit status 2)."""

    exit_status = 2
    retryable = False


class InputError(MapReduceError):
    """An input path, file or record that cannot be read (missing, truncated, not UTF-8)."""

    retryable = False  # the same bytes will be just as bad next time


class OutputError(MapReduceError):
    """The output location cannot be used (exists and not empty, not writable)."""


class CorruptDataError(MapReduceError):
    """Intermediate data failed a check: bad magic, checksum, length, or truncation.

    ``path`` and ``offset`` locate the damage; ``reason`` says which check failed.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"{path}: corrupt data at byte offset {offset}: {reason}")

    def __reduce__(self):  # keep picklable across process boundaries
        return (type(self), (self.path, self.offset, self.reason))


class SerializationError(MapReduceError):
    """A key or value a job method produced cannot be encoded."""

    show_traceback = True
    retryable = False  # the same record makes the same key or value on every attempt


class TaskFailedError(MapReduceError):
    """A task failed; the message names the task, its split or partition, and the cause."""


class JobCancelledError(MapReduceError):
    """The job was cancelled (``JobHandle.cancel()``) before it finished (exit status 130).

    Everything committed before the cancel stays journaled, so ``--resume`` continues it.
    """

    exit_status = 130
    retryable = False


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` with the framework's own frames left out: what a user needs
    to see of an exception their job code raised."""
    te = traceback.TracebackException.from_exception(exc, capture_locals=False)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)])
    te.__cause__ = te.__context__ = None
    return "".join(te.format())
