"""One job at a time per directory: an advisory lock on ``DIR/_LOCK``.

The coordinator locks the output directory and its work directory
(:mod:`mapreduce.workdir`) for the whole run.

The lock is a POSIX record lock (``fcntl.lockf``) held by the coordinator process.  The
kernel drops it when that process dies, however it dies, so a crashed job never holds the
directory forever; and unlike ``flock`` it is not shared with the forked worker processes.
The file holds who took it (pid, host, start time, command line) so that a second job is
refused with a message naming the first.  The file is removed when the job ends; its name
starts with ``_`` so input readers skip it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from typing import Any, Optional

from mapreduce.errors import OutputError

LOCK_FILE = "_LOCK"


class DirectoryLock:
    """The lock of one directory; ``what`` names it in the refusal ("output directory")."""

    def __init__(self, directory: str, what: str = "output directory") -> None:
        self.path = os.path.join(directory, LOCK_FILE)
        self.what = what
        self._fd: Optional[int] = None

    def _holder(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as f:
                info = json.load(f)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
            return (f"pid {info['pid']} on {info['host']}, started {when}: "
                    f"{' '.join(info['command'])}")
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def acquire(self) -> "DirectoryLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    raise OutputError(f"{self.what} {os.path.dirname(self.path)} is in "
                                      f"use by another job ({self._holder()})") from None
                raise
            # The previous holder may have unlinked the file between our open and lock.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing drops the lock
        self._fd = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def OutputLock(output_dir: str) -> DirectoryLock:
    """The lock of a job's output directory."""
    return DirectoryLock(output_dir, "output directory")
