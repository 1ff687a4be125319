"""mrjob's ``*_cmd`` and ``*_pre_filter``: shell commands inside a task.

On Hadoop Streaming a ``mapper_cmd`` *is* the mapper (input lines in on stdin, output lines
out on stdout), and a ``mapper_pre_filter`` runs in front of the Python mapper
(``filter | mapper.py``); the same for reducers, whose input lines are sorted by key.  Here
a task's input lines are written to a temporary file (:class:`Spool`) as the engine hands
them over, and at the end of the task (the ``*_final`` hook) the command runs once over the
whole file with ``/bin/sh -c``; its output lines are the task's output (``*_cmd``) or the
Python function's input (``*_pre_filter``).  A ``combiner_cmd`` / ``combiner_pre_filter``
runs, as under mrjob's local runner, once per map task over the task's whole output,
sorted first (by key; by the whole line under ``SORT_VALUES``); what it writes is the map
task's output (the combiner is not run again on it).

What differs from Hadoop, and why: the command sees the task's whole input at once, after
the last record rather than while they stream (the engine calls the task's functions a
record at a time; a spool keeps memory bounded without a thread feeding a pipe); so a
failure inside the user's Python function after a pre-filter is reported at the end of
the task rather than at its input line.  A command that exits non-zero fails the task
attempt (which is retried) with its status and its last stderr lines.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from typing import IO, Any, Iterator, Optional


class CommandFailedError(RuntimeError):
    """A ``*_cmd`` / ``*_pre_filter`` command exited with a non-zero status."""


class Spool:
    """Lines kept in a temporary file until :meth:`run` pipes them through a command."""

    def __init__(self) -> None:
        self._file: Optional[IO[bytes]] = None

    def add(self, line: bytes) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="mapreduce-spool-")
        self._file.write(line)
        self._file.write(b"\n")

    def run(self, command: str, what: str, sort: Optional[str] = None) -> Iterator[bytes]:
        """The command's output lines (without their newline), given the spooled lines on
        its standard input; raises CommandFailedError if it exits non-zero.

        ``sort="key"`` (or ``"line"``) sorts the lines first, as mrjob's local runner sorts a
        combiner's input: GNU sort in byte order (``LC_ALL=C``), on the key (the text
        before the first tab, stable) or, under ``SORT_VALUES``, on the whole line; an
        external sort, so a map task's whole output never has to fit in memory."""
        source = self._file if self._file is not None else tempfile.TemporaryFile()
        self._file = None
        source.seek(0)
        with source, tempfile.TemporaryFile() as errors:
            sorter = None
            stdin: Any = source
            if sort is not None:
                argv = ["sort"] if sort == "line" else ["sort", "-t", "\t", "-k", "1,1", "-s"]
                sorter = subprocess.Popen(argv, stdin=source, stdout=subprocess.PIPE,
                                          stderr=errors, env=dict(os.environ, LC_ALL="C"))
                stdin = sorter.stdout
            proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=stdin,
                                    stdout=subprocess.PIPE, stderr=errors)
            if sorter is not None:
                sorter.stdout.close()  # the command's end is the only reader
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    yield line[:-1] if line.endswith(b"\n") else line
            finally:
                proc.stdout.close()
                status = proc.wait()
                sort_status = sorter.wait() if sorter is not None else 0
            if status == 0 and sort_status != 0:
                errors.seek(0)
                raise CommandFailedError(f"sorting the input of {what} {command!r} failed "
                                         f"(sort exited with status {sort_status}): "
                                         + errors.read()[-400:].decode("utf-8", "replace"))
            if status != 0:
                errors.seek(0)
                tail = errors.read()[-400:].decode("utf-8", "replace").strip()
                raise CommandFailedError(f"{what} {command!r} exited with status {status}"
                                         + (f": {tail}" if tail else ""))


__all__ = ["Spool", "CommandFailedError"]
