"""The task's working directory: files, directories and archives every task finds in its
current directory, its environment (``--cmdenv``) and setup commands (``--setup``).

This is Hadoop's distributed cache and mrjob's "working directory" (``FILES``, ``DIRS``,
``ARCHIVES``, ``add_file_arg``, ``--files``, ``--dirs``, ``--archives``, ``--cmdenv``,
``--setup``), done the way mrjob's local runner simulates it:

1. **At start** (:func:`plan_uploads`, in the coordinator, before anything is written):
   every ``PATH[#NAME]`` is resolved, checked to exist and to be of the right kind
   (a missing file is one line naming it and where it was asked for), and two uploads
   wanting the same name in the working directory are refused.
2. **Once per job** (:func:`stage`): each is copied into the job's work directory
   (``WORK/files/NAME``): a file as is, a directory as a tree, an archive unpacked into a
   directory called NAME (a zip or tar file, compressed or not, known by its contents as
   mrjob knows it, so ``.jar`` / ``.egg`` too; tar members that would land outside the
   directory are refused: tarfile's ``data`` filter).
   Tasks get only the small :class:`TaskDir` that says where that is.
3. **Around each task** (:func:`task_directory`): a fresh directory per attempt holds one
   symlink per NAME into the staged copy (as mrjob's local runner links its cache), the
   task's environment gets ``--cmdenv``, ``--setup`` commands run there with ``/bin/sh``
   (what they ``export`` reaches the task: the shell's environment is read back after
   them), the process changes into the directory and puts it first on ``sys.path`` (so a
   ``.py`` shipped with ``--files`` imports); all of it is undone when the task ends, so the
   inline runner's process and a reused worker are left as they were.

An upload's NAME is the path's last component unless ``#NAME`` says otherwise (mrjob's and
Hadoop's syntax).  In a ``--setup`` command, ``path#name`` (a file), ``path#name/`` (an
archive, unpacked) and ``dir/#name`` (a directory) are uploaded and replaced by ``name``
(mrjob's ``#`` syntax); ``#`` with no name keeps the path's last component.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from mapreduce.errors import TaskFailedError, UsageError

KINDS = ("file", "dir", "archive")
#: In the job's work directory: the staged copies, and the per-attempt directories.
STAGE_DIR, TASK_WD_DIR = "files", "task-wd"

#: Names a working directory entry must not take (they would escape it or hide it).
_BAD_NAME = re.compile(r"^\.{1,2}$|/|\x00")


@dataclass(frozen=True)
class Upload:
    """One entry of the working directory: ``kind`` (file, dir, archive) of local ``path``,
    called ``name`` there; ``where`` says who asked for it (for messages)."""

    kind: str
    path: str
    name: str
    where: str


@dataclass(frozen=True)
class TaskDir:
    """What a task needs to build its working directory (picklable, small)."""

    cache: str                    # WORK/files: the staged copies, one entry per name
    names: tuple = ()             # the entries to link into each task's directory
    env: tuple = ()               # (KEY, VALUE) pairs of --cmdenv
    setup: tuple = ()             # shell commands, ``#`` paths already replaced by names
    root: str = ""                # where the per-attempt directories are made


def split_upload(text: str) -> tuple[str, Optional[str]]:
    """``path#name`` -> (path, name); ``path`` -> (path, None)."""
    path, hash_, name = text.partition("#")
    return path, (name.rstrip("/") or None) if hash_ else None


def resolve_upload(kind: str, text: str, where: str, base: Optional[str] = None) -> Upload:
    """An :class:`Upload` from ``PATH[#NAME]`` (``~`` and ``$VARS`` expanded, relative to
    ``base`` or the current directory); UsageError naming it if missing or of another kind."""
    if kind not in KINDS:
        raise ValueError(kind)
    raw_path, name = split_upload(text)
    if not raw_path:
        raise UsageError(f"{where}: {text!r}: no path before '#'")
    path = os.path.expandvars(os.path.expanduser(raw_path))
    if base is not None and not os.path.isabs(path):
        path = os.path.join(base, path)
    path = os.path.abspath(path)
    name = name or os.path.basename(path.rstrip("/"))
    if not name or _BAD_NAME.search(name):
        raise UsageError(f"{where}: {text!r}: {name!r} cannot be a name in the task's "
                         "working directory")
    if kind == "dir":
        if not os.path.isdir(path):
            raise UsageError(f"{where}: {raw_path}: no such directory")
    elif not os.path.isfile(path):
        what = "is a directory (use DIRS / --dirs for a directory)" if os.path.isdir(path) \
            else "no such file"
        raise UsageError(f"{where}: {raw_path}: {what}")
    if kind == "archive" and _archive_format(path) is None:
        raise UsageError(f"{where}: {raw_path}: not an archive this can unpack (a tar "
                         "file, compressed or not, or a zip file)")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{where}: {raw_path}: not readable")
    return Upload(kind, path, name, where)


def _archive_format(path: str) -> Optional[str]:
    """``"zip"`` or ``"tar"`` by the file's contents, as mrjob's ``unarchive`` decides (so a
    ``.jar``, ``.egg`` or ``.whl`` unpacks too; tar's compression is found by tarfile)."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except OSError:
        return None


#: A ``#`` path in a setup command: PATH (no quotes, spaces, ':' or '='; a trailing '/'
#: marks a directory), '#', then an optional NAME and an optional '/' (an archive).
_SETUP_HASH_PATH = re.compile(
    r"""(?P<path>[^\s'":=#]*[^\s'":=#/])(?P<dir>/)?#(?P<name>[^\s'":;><|=/#]*)(?P<arch>/)?""")


def parse_setup(command: str, where: str) -> tuple[str, list[Upload]]:
    """mrjob's ``#`` path syntax in a ``--setup`` command: the uploads it asks for and the
    command with each ``path#name`` replaced by ``name`` (quoted strings are left alone)."""
    uploads: list[Upload] = []
    out: list[str] = []
    pos = 0
    quoted = re.compile(r"""'[^']*'|"(?:[^"\\]|\\.)*\"""")
    while pos < len(command):
        q = quoted.match(command, pos)
        if q:
            out.append(q.group(0))
            pos = q.end()
            continue
        m = _SETUP_HASH_PATH.match(command, pos)
        if m and (pos == 0 or command[pos - 1] in " \t\n;&|:=()<>"):
            kind = "dir" if m.group("dir") else "archive" if m.group("arch") else "file"
            spec = m.group("path") + ("#" + m.group("name") if m.group("name") else "")
            upload = resolve_upload(kind, spec, where)
            uploads.append(upload)
            out.append(shlex.quote(upload.name) + ("/" if m.group("dir") or m.group("arch")
                                                   else ""))
            pos = m.end()
            continue
        if command[pos] in "'\"":
            raise UsageError(f"{where}: {command!r}: no closing quotation")
        out.append(command[pos])
        pos += 1
    return "".join(out), uploads


def check_names(uploads: Sequence[Upload]) -> None:
    """Two different things wanting one name in the working directory: refused."""
    seen: dict[str, Upload] = {}
    for upload in uploads:
        other = seen.get(upload.name)
        if other is not None and (other.path, other.kind) != (upload.path, upload.kind):
            raise UsageError(f"{upload.where}: {upload.path} and {other.path} ({other.where}) "
                             f"would both be {upload.name!r} in the task's working directory "
                             "(give one another name with #NAME)")
        seen[upload.name] = upload


def stage(uploads: Sequence[Upload], cache: str, env: dict[str, str],
          setup: Sequence[str]) -> Optional[TaskDir]:
    """Copy (or unpack) every upload into ``cache`` (replacing what is there); None when
    there is nothing for a working directory to hold or do."""
    if not uploads and not env and not setup:
        return None
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(cache)
    names: list[str] = []
    for upload in uploads:
        dest = os.path.join(cache, upload.name)
        if upload.name in names:
            continue  # the same thing asked for twice (check_names refused the rest)
        names.append(upload.name)
        if upload.kind == "file":
            shutil.copy(upload.path, dest)
        elif upload.kind == "dir":
            shutil.copytree(upload.path, dest, symlinks=True)
        else:
            try:
                if _archive_format(upload.path) == "zip":
                    with zipfile.ZipFile(upload.path) as archive:
                        archive.extractall(dest)
                else:
                    with tarfile.open(upload.path) as archive:
                        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12
                            archive.extractall(dest, filter="data")
                        else:
                            archive.extractall(dest)
            except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError,
                    ValueError) as exc:
                raise UsageError(f"{upload.where}: {upload.path}: cannot unpack: {exc}") \
                    from None
    return TaskDir(cache=cache, names=tuple(names), env=tuple(sorted(env.items())),
                   setup=tuple(setup), root=os.path.join(os.path.dirname(cache), TASK_WD_DIR))


def _setup_env(commands: Sequence[str], cwd: str, env: dict[str, str]) -> dict[str, str]:
    """Run the setup commands (``set -e``: the first failure stops them) in ``cwd`` and
    return the environment they leave (read back with ``env -0``, so ``export X=...``
    reaches the task).  What they print goes to the task's stderr (its log), as mrjob's
    setup wrapper sends it; a non-zero exit fails the attempt, naming the commands."""
    with tempfile.NamedTemporaryFile(prefix="mapreduce-setup-env-") as dump, \
            tempfile.TemporaryFile() as printed:
        script = "set -e\n" + "\n".join(commands) + f"\nenv -0 > {shlex.quote(dump.name)}\n"
        status = subprocess.call(["/bin/sh", "-c", script], cwd=cwd, env=env,
                                 stdin=subprocess.DEVNULL, stdout=printed, stderr=printed)
        printed.seek(0)
        output = printed.read()
        if status != 0:
            tail = output[-400:].decode("utf-8", "replace").strip()
            raise TaskFailedError(f"--setup {'; '.join(commands)!r} exited with status "
                                  f"{status}" + (f": {tail}" if tail else ""))
        if output:
            sys.stderr.write(output.decode("utf-8", "replace"))
            sys.stderr.flush()
        raw = dump.read()
    result: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq and key:
            result[os.fsdecode(key)] = os.fsdecode(value)
    return result


@contextlib.contextmanager
def task_directory(spec: Optional[TaskDir], label: str) -> Iterator[Optional[str]]:
    """Run the body in a fresh working directory for one task attempt (see the module
    docstring); everything is put back afterwards.  ``label`` names the directory."""
    if spec is None:
        yield None
        return
    os.makedirs(spec.root, exist_ok=True)
    wd = tempfile.mkdtemp(prefix=re.sub(r"[^\w.-]+", "-", label) + "-", dir=spec.root)
    saved_cwd, saved_env, saved_path = os.getcwd(), dict(os.environ), list(sys.path)
    try:
        for name in spec.names:
            os.symlink(os.path.join(spec.cache, name), os.path.join(wd, name))
        env = dict(saved_env)
        env.update(spec.env)
        env["PWD"] = wd
        if spec.setup:
            env = _setup_env(spec.setup, wd, env)
        _set_environ(env)
        os.chdir(wd)
        sys.path.insert(0, wd)
        yield wd
    finally:
        os.chdir(saved_cwd)
        _set_environ(saved_env)
        sys.path[:] = saved_path
        shutil.rmtree(wd, ignore_errors=True)


def _set_environ(env: dict[str, str]) -> None:
    """Make ``os.environ`` equal ``env``, touching only the variables that differ (each
    change is a putenv/unsetenv call)."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


__all__ = ["Upload", "TaskDir", "KINDS", "resolve_upload", "split_upload", "parse_setup",
       "check_names", "stage", "task_directory"]
