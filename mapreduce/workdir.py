"""The job's private work directory: where it is, who made it, and what may be deleted.

The work directory holds the journal, attempt files, map outputs, committed parts awaiting
the job commit and attempt logs (layout in :mod:`mapreduce.layout`).  The framework deletes
whole trees in it, so it must be sure every byte in it is its own:

* **Where.** By default ``OUT/_temporary``.  ``--work-dir DIR`` names a directory the user
  owns (scratch space on a bigger disk, say) that may hold anything else; the job then works
  in a private directory it makes *inside* DIR, ``DIR/mapreduce-<output name>-<digest of the
  output's real path>``.  The name is a function of the output path, so the same command
  finds the same directory again on ``--resume``, and jobs writing different outputs never
  share one.  DIR itself, and everything else in it, is never touched.
* **Who.** The directory is made with mode 0700 and an owner marker (``_OWNER``: the output
  it serves, the host and time it was made).  An existing directory is taken only when it is
  owned by this user and carries the marker (or is empty: a job killed between ``mkdir`` and
  writing the marker); anything else is refused, never deleted or reused.
* **Where not.** The private directory may not overlap the output (other than the default
  ``OUT/_temporary``) nor lie where an input directory would be walked into: its files would
  become the next run's input.  :func:`check_placement` refuses both as usage errors.
* **Locks.** ``_LOCK`` inside it is held for the whole run (as the output's own lock), so
  two coordinators never share one work directory, whatever path spellings they were given.

Deleting goes through :meth:`WorkDir.remove`, which checks the marker again: the three paths
that delete work files (a fresh start over a dead job's leftovers, the end of a job, and the
clean-up of orphaned attempt files on ``--resume``) can only ever delete inside it.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import time
from typing import Optional, Sequence

from mapreduce.errors import OutputError, UsageError
from mapreduce.layout import DEFAULT_WORK_SUBDIR, remove_tree
from mapreduce.lock import DirectoryLock
from mapreduce.storage import is_remote

#: The owner marker: written first into a new work directory, checked before any deletion.
OWNER_FILE = "_OWNER"
#: Files of the work directory itself that are not job state (kept by orphan clean-up).
OWN_FILES = (OWNER_FILE, "_LOCK")
#: Prefix of a private directory made inside a user's ``--work-dir``.
PRIVATE_PREFIX = "mapreduce-"


def _is_within(path: str, directory: str) -> bool:
    """``path`` is ``directory`` or below it (both real paths)."""
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _real(output_dir: str) -> str:
    """What identifies an output: its real path, or its URL in a remote store."""
    return output_dir if is_remote(output_dir) else os.path.realpath(output_dir)


def default_remote_work_root() -> str:
    """Where the work directory of a job with remote output goes without ``--work-dir``:
    the output store has no rename and no lock, and the journal needs both, so work stays on
    this machine, under the user's cache directory (kept across reboots, for --resume)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "mapreduce", "work")


def work_dir_path(output_dir: str, work_root: Optional[str]) -> str:
    """The job's work directory for ``output_dir`` (absolute, or a remote store's URL)
    under ``--work-dir`` or not."""
    if work_root is None:
        if is_remote(output_dir):
            work_root = default_remote_work_root()
        else:
            return os.path.join(output_dir, DEFAULT_WORK_SUBDIR)
    real = _real(output_dir)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    stem = "".join(c if c.isalnum() or c in "-_." else "_"
                   for c in os.path.basename(real))[:40] or "out"
    return os.path.join(os.path.abspath(work_root), f"{PRIVATE_PREFIX}{stem}-{digest}")


def check_placement(work_root: Optional[str], work_dir: str, output_dir: str,
                    input_roots: Sequence[str], input_files: Sequence[str],
                    option: str = "--work-dir") -> None:
    """Refuse (UsageError) a ``--work-dir`` that overlaps the output or an input.  ``option``
    is how the user spelled the option (``work_dir`` from Python)."""
    if work_root is None:
        return  # OUT/_temporary: a hidden name no input walk enters
    shown = f"{option} {work_root}"
    root = os.path.realpath(work_root)
    if os.path.exists(root) and not os.path.isdir(root):
        raise UsageError(f"{shown} is not a directory")
    out = _real(output_dir)
    work = os.path.realpath(work_dir)
    if _is_within(root, out):
        raise UsageError(f"{shown} is inside the output directory {output_dir}: "
                         "choose a directory outside it")
    if _is_within(out, work):
        raise UsageError(f"{shown}: the output directory {output_dir} would be "
                         "inside the job's work directory")
    for top in input_roots:
        real_top = os.path.realpath(top)
        if _is_within(work, real_top):
            rel = os.path.relpath(work, real_top)
            if not any(p.startswith(("_", ".")) for p in rel.split(os.sep)):
                raise UsageError(f"{shown} is inside the input directory {top}: "
                                 "its files would become input; choose a directory outside it")
    for path in input_files:
        if is_remote(path):
            continue
        if _is_within(os.path.realpath(path), work):
            raise UsageError(f"{shown} holds input file {path}: choose another "
                             "directory")


class WorkDir:
    """One job's private work directory (see the module docstring)."""

    def __init__(self, path: str, output_dir: str) -> None:
        self.path = path
        self.output = _real(output_dir)
        self._lock: Optional[DirectoryLock] = None

    @property
    def exists(self) -> bool:
        return os.path.lexists(self.path)

    @property
    def owner_file(self) -> str:
        return os.path.join(self.path, OWNER_FILE)

    def marker(self) -> Optional[dict]:
        """The owner marker's contents, or None when there is none (or it is unreadable)."""
        try:
            with open(self.owner_file, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def check_ours(self) -> None:
        """Raise OutputError unless the existing directory is one this user's mapreduce made
        (an empty directory of ours is adopted: a job killed before it wrote the marker)."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            raise OutputError(f"work directory {self.path} exists and is not a directory; "
                              "remove it or choose another --work-dir")
        if st.st_uid != os.getuid():
            raise OutputError(f"work directory {self.path} belongs to another user (uid "
                              f"{st.st_uid}); it is not used or deleted: choose another "
                              "--work-dir")
        if self.marker() is None:
            if set(os.listdir(self.path)) <= {"_LOCK"}:  # empty (but for our own lock)
                return
            raise OutputError(f"work directory {self.path} was not made by mapreduce (no "
                              f"{OWNER_FILE} marker); it is not used or deleted: move it "
                              "away or choose another --work-dir")

    def check_serves_output(self) -> None:
        """Raise OutputError if the marker names another output (a moved directory)."""
        marker = self.marker()
        if marker is not None and marker.get("output") != self.output:
            raise OutputError(f"work directory {self.path} holds the job of output "
                              f"{marker.get('output')}, not {self.output}; run with "
                              "--overwrite to start over")

    def create(self) -> None:
        """Make the directory (mode 0700; parents as needed) and write the owner marker."""
        self.check_ours()
        parent = os.path.dirname(self.path)
        os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(self.path, 0o700)
        except FileExistsError:
            pass  # an empty one of ours (check_ours)
        os.chmod(self.path, 0o700)
        if self.marker() is None:
            data = json.dumps({"output": self.output, "host": socket.gethostname(),
                               "pid": os.getpid(), "created": time.time()}).encode("utf-8")
            tmp = f"{self.owner_file}.tmp-{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.owner_file)

    def lock(self) -> None:
        """Hold the work directory's lock until :meth:`unlock` (or the process dies)."""
        if self._lock is None:
            self._lock = DirectoryLock(self.path, "work directory").acquire()

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def remove(self) -> None:
        """Delete the directory and everything in it: only if it is ours (marker checked)."""
        if not self.exists:
            return
        self.check_ours()
        remove_tree(self.path)


__all__ = ["WorkDir", "work_dir_path", "check_placement", "OWNER_FILE", "OWN_FILES",
           "default_remote_work_root"]
