"""The option table: every option of a job run, defined once.

Each :class:`Option` says its name (the :class:`JobConfig` field and the Python API's
keyword), its command-line flag, how a value is parsed and checked, its default, its help,
and which runners accept it.  Everything else is derived from the table:

* the command line's ``run`` options (:func:`add_run_options`; ``bench`` takes a subset),
* the Python API's keyword checks (:func:`config_from_keywords`),
* each runner's refusals (:func:`check_runner`): an option a runner does not accept is an
  error when it is given a value other than its default, never silently ignored,

so the command line and the API reject the same bad values with the same message, differing
only in how the option is spelled: ``--task-timeout: must be positive (got -5)`` on the command
line, ``task_timeout: must be positive (got -5)`` from Python (:class:`Spelling`).

This module sits below every layer that takes options (entry, session, runners); it imports
only :mod:`mapreduce.errors`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Sequence

from mapreduce.errors import UsageError

#: Every runner's name, in the order ``--help`` lists them (the registry is
#: :mod:`mapreduce.runners`; this is the table's view of it, checked by a test).
RUNNER_NAMES = ("local", "inline", "spark", "dask")
SHUFFLE_MODES = ("disk", "memory")

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, option: str) -> int:
    """``64MB``, ``64M``, ``64MiB``, ``1.5G``, ``65536`` -> bytes (binary units)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise UsageError(f"{option}: invalid size {text!r} (use e.g. 64MB, 512KB or 1GB)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value < 1:
        raise UsageError(f"{option}: size must be positive (got {text!r})")
    return value


def _check_mapping(value: Any, who: str) -> dict[str, Any]:
    """``--storage-option KEY=VALUE`` (repeated; a VALUE that is JSON -- true, 5, {...} --
    is taken as such, anything else as a string) or a dict from Python.  Values are never
    shown in a message: they may be secrets."""
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not key:
                raise UsageError(f"{who}: keys must be non-empty strings (got {key!r})")
        return dict(value)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise UsageError(f"{who}: expected a dict of options, got a {type(value).__name__}")
    result: dict[str, Any] = {}
    for n, item in enumerate(value, 1):
        key, eq, text = str(item).partition("=")
        key = key.strip()
        if not eq or not key or not key.replace("_", "").replace("-", "").isalnum():
            raise UsageError(f"{who}: expected KEY=VALUE (KEY letters, digits, _ or -), "
                             f"got something else in occurrence {n}")
        try:
            result[key] = json.loads(text)
        except ValueError:
            result[key] = text
    return result


def _check_list(value: Any, who: str, commas: bool) -> list[str]:
    """A repeated option's values (``--files a.txt --files b,c``: comma-separated items with
    ``commas``, as mrjob's ``--files``) or a list (or one string) from Python."""
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise UsageError(f"{who}: expected a list of strings, got a {type(value).__name__}")
    result: list[str] = []
    for item in value:
        if not isinstance(item, (str, os.PathLike)):
            raise UsageError(f"{who}: expected strings, got {item!r}")
        parts = os.fspath(item).split(",") if commas else [os.fspath(item)]
        for part in parts:
            if not part.strip():
                raise UsageError(f"{who}: empty value in {os.fspath(item)!r}")
            result.append(part)
    return result


def _check_env(value: Any, who: str) -> dict[str, str]:
    """``--cmdenv KEY=VALUE`` (repeated) or a dict from Python: string values, as a shell
    sets them; KEY must be a variable name."""
    items = [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) \
        else _check_list(value, who, commas=False)
    env: dict[str, str] = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise UsageError(f"{who}: expected KEY=VALUE with KEY a variable name (letters, "
                             f"digits, _), got {item!r}")
        env[key] = text
    return env


class Spelling:
    """How the user named options: on the command line (``--flag``) or as Python keywords."""

    CLI = "cli"
    API = "api"


@dataclass(frozen=True)
class Option:
    name: str                          # JobConfig field and API keyword
    flag: str                          # command-line flag
    kind: str                          # int, size, seconds, choice, flag, text, mapping,
    #                                    object; repeated: paths, commands, env
    default: Any
    help: str
    minimum: Optional[int] = None      # int options
    choices: tuple = ()                # choice options
    metavar: Optional[str] = None
    only: tuple = ()                   # runners that accept it (empty: every runner)
    why_not: str = ""                  # what the other runners do instead
    shapes_output: bool = False        # part of the job's fingerprint (resume refuses a change)
    recorded: bool = True              # False: kept out of the journal and _job.json (an object)

    def spelled(self, spelling: str) -> str:
        return self.flag if spelling == Spelling.CLI else self.name

    def spelled_on(self, spelling: str) -> str:
        """How to ask for a flag option: ``--overwrite`` or ``overwrite=True``."""
        return self.flag if spelling == Spelling.CLI else f"{self.name}=True"

    def spelled_with(self, value: Any, spelling: str) -> str:
        """How to give this option ``value``, for hints in messages: ``--decode-errors
        replace`` on the command line, ``decode_errors="replace"`` from Python."""
        if spelling == Spelling.CLI:
            return f"{self.flag} {value}"
        return f'{self.name}="{value}"' if isinstance(value, str) else f"{self.name}={value!r}"

    def check(self, value: Any, spelling: str) -> Any:
        """The value, parsed (from a command-line string) and checked; UsageError if bad."""
        who = self.spelled(spelling)
        if value is None and self.default is None and self.kind != "flag":
            return None
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise UsageError(f"{who}: expected True or False, got {value!r}")
            return value
        if self.kind == "int":
            if isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    raise UsageError(f"{who}: invalid integer {value!r}") from None
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"{who}: expected an integer, got {value!r}")
            if self.minimum is not None and value < self.minimum:
                raise UsageError(f"{who}: must be at least {self.minimum} (got {value})")
            return value
        if self.kind == "size":
            if isinstance(value, str):
                return parse_size(value, who)
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"{who}: expected bytes or a size like '64MB', got {value!r}")
            if value < 1:
                raise UsageError(f"{who}: size must be positive (got {value})")
            return value
        if self.kind == "seconds":
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise UsageError(f"{who}: invalid number of seconds {value!r}") from None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise UsageError(f"{who}: expected a number of seconds, got {value!r}")
            if not value > 0 or math.isinf(value):
                raise UsageError(f"{who}: must be a positive number of seconds (got {value})")
            return float(value)
        if self.kind == "object":
            return value  # Python only; the runner that takes it checks what it is
        if self.kind == "choice":
            if value not in self.choices:
                raise UsageError(f"{who}: must be one of {', '.join(self.choices)} "
                                 f"(got {value!r})")
            return value
        if self.kind == "mapping":
            return _check_mapping(value, who)
        if self.kind == "paths":
            return _check_list(value, who, commas=True)
        if self.kind == "commands":
            return _check_list(value, who, commas=False)
        if self.kind == "env":
            return _check_env(value, who)
        if not isinstance(value, (str, os.PathLike)):
            raise UsageError(f"{who}: expected a string, got {value!r}")
        if not os.fspath(value).strip():
            # ``--work-dir ''`` (an unset shell variable): never read as "the default"
            raise UsageError(f"{who}: must not be empty (got {value!r}); leave the option "
                             "out for its default")
        return os.fspath(value)


_TASK_DIR_WHY_NOT = ("a task's working directory is made by the local and inline runners; "
                     "on a cluster, ship files with the cluster's own means")

#: The table.  Order is the order of ``--help``.
OPTIONS: tuple[Option, ...] = (
    Option("runner", "--runner", "choice", "local", choices=RUNNER_NAMES,
           help="where the tasks run: worker processes on this machine (local, the default), "
                "this process one task at a time (inline: for debugging with breakpoint() "
                "and print), Apache Spark (spark: needs pip install 'mapreduce[spark]' "
                "and Java 17+) or a Dask cluster (dask: needs pip install "
                "'mapreduce[dask]')"),
    Option("mode", "--mode", "choice", "disk", choices=SHUFFLE_MODES, shapes_output=True,
           only=("local", "inline"),
           why_not="Spark's shuffle replaces both local modes; the Dask runner always "
                   "shuffles through run files on storage its workers share",
           help="shuffle through sorted run files on disk (default) or in memory"),
    Option("spark_master", "--spark-master", "text", None, metavar="URL", only=("spark",),
           why_not="it names a Spark cluster",
           help="with --runner spark: local[N], spark://HOST:PORT, yarn or k8s://... "
                "(default local[*])"),
    Option("dask_scheduler", "--dask-scheduler", "text", None, metavar="ADDRESS",
           only=("dask",), why_not="it names a Dask scheduler",
           help="with --runner dask: the scheduler's address, e.g. tcp://HOST:8786 (default: "
                "a LocalCluster of --workers processes on this machine)"),
    # Python only (no flag): a distributed.Client the caller already has.
    Option("dask_client", "", "object", None, only=("dask",), recorded=False,
           why_not="it is a Dask client",
           help="with runner='dask': a distributed.Client to run on (the caller's own)"),
    Option("workers", "--workers", "int", None, minimum=1, metavar="N",
           help="worker processes (default: number of CPUs); the default split size is "
                "planned for this many on every runner"),
    Option("reducers", "--reducers", "int", None, minimum=1, metavar="N", shapes_output=True,
           help="reduce tasks (default: the job's REDUCERS attribute; a Step(reducers=N) "
                "keeps its own)"),
    Option("sort_buffer", "--sort-buffer", "size", 64 << 20, metavar="SIZE",
           shapes_output=True,
           help="map-side sort buffer per task before spilling (default 64MB)"),
    Option("merge_factor", "--merge-factor", "int", 10, minimum=2, metavar="N",
           shapes_output=True, only=("local", "inline", "dask"),
           why_not="Spark merges its own shuffle files",
           help="most runs merged at once (default 10)"),
    Option("split_size", "--split-size", "size", None, metavar="SIZE", shapes_output=True,
           help="bytes per map task for uncompressed input (default: about 4 splits per "
                "worker, 1MB..128MB)"),
    Option("overwrite", "--overwrite", "flag", False,
           help="replace an existing, non-empty output directory (the old output stays "
                "until the new job commits)"),
    Option("work_dir", "--work-dir", "text", None, metavar="DIR",
           only=("local", "inline", "dask"),
           why_not="intermediate data lives in Spark's spark.local.dir",
           help="where intermediate files go: a private directory made inside DIR "
                "(default OUT/_temporary; for output in a remote store, "
                "~/.cache/mapreduce/work)"),
    Option("decode_errors", "--decode-errors", "choice", "strict",
           choices=("strict", "replace"), shapes_output=True,
           help="invalid UTF-8 in text input: fail (default) or use U+FFFD"),
    Option("max_attempts", "--max-attempts", "int", 4, minimum=1, metavar="N",
           only=("local", "dask"),
           why_not="set spark.task.maxFailures on Spark; the inline runner runs each task "
                   "once, for debugging",
           help="attempts per task before the job fails (default 4)"),
    Option("task_timeout", "--task-timeout", "seconds", None, metavar="SECONDS",
           only=("local",), why_not="use Spark's speculation settings; the inline runner "
                                    "cannot kill a task running in its own process, nor "
                                    "can Dask one running in a worker's thread",
           help="kill and retry a task attempt running longer than this"),
    Option("skip_bad_records", "--skip-bad-records", "int", 0, minimum=0, metavar="N",
           shapes_output=True, only=("local", "inline", "dask"),
           why_not="it is counted by the local coordinator",
           help="tolerate up to N input records whose mapper raises (default 0)"),
    Option("resume", "--resume", "flag", False, only=("local", "dask"),
           why_not="Spark recovers failed tasks itself and keeps no journal; the inline "
                   "runner keeps no journal",
           help="continue an interrupted job in OUT from its journal"),
    Option("output_compression", "--output-compression", "choice", None,
           choices=("gz", "bz2", "zst"), shapes_output=True,
           help="compress the part files (part-00000.gz, .bz2, .zst; zst needs "
                "pip install 'mapreduce[zstd]'); they read back as input by their suffix"),
    Option("storage_options", "--storage-option", "mapping", None, metavar="KEY=VALUE",
           help="an option of the remote store inputs and output live in (s3://, gs://, ...), "
                "handed to its fsspec back end, e.g. endpoint_url=http://host:9000 or "
                "profile=NAME; repeat for more (from Python: storage_options={...}); values "
                "are never printed or written to the output (docs/storage.md)"),
    # The task's working directory (mapreduce/taskdir.py; mrjob's and Hadoop Streaming's
    # switches of these names).
    Option("files", "--files", "paths", None, metavar="PATH[#NAME]",
           only=("local", "inline"), why_not=_TASK_DIR_WHY_NOT,
           help="a file every task finds in its working directory (its current directory) "
                "as NAME (default: the file's name); repeat, or separate with commas"),
    Option("dirs", "--dirs", "paths", None, metavar="PATH[#NAME]",
           only=("local", "inline"), why_not=_TASK_DIR_WHY_NOT,
           help="a directory copied into every task's working directory as NAME"),
    Option("archives", "--archives", "paths", None, metavar="PATH[#NAME]",
           only=("local", "inline"), why_not=_TASK_DIR_WHY_NOT,
           help="an archive (a tar file, compressed or not, or a zip file: .jar, .egg too) "
                "unpacked into a directory NAME (default: the archive's file name) in every "
                "task's working directory"),
    Option("cmdenv", "--cmdenv", "env", None, metavar="KEY=VALUE",
           only=("local", "inline"), why_not=_TASK_DIR_WHY_NOT,
           help="an environment variable of every task (and of the shell commands it "
                "runs); repeat for more (from Python: cmdenv={...})"),
    Option("setup", "--setup", "commands", None, metavar="CMD",
           only=("local", "inline"), why_not=_TASK_DIR_WHY_NOT,
           help="a shell command run in each task's working directory before the task (what "
                "it exports, the task sees); PATH#NAME in it uploads the file as NAME "
                "(PATH#NAME/ an archive, DIR/#NAME a directory); repeat for more"),
    Option("keep_work", "--keep-work", "flag", False, only=("local", "inline", "dask"),
           why_not="there is no journal or task log to keep",
           help="keep the work directory (journal, logs) after success"),
)

BY_NAME = {o.name: o for o in OPTIONS}


@dataclass
class JobConfig:
    """Everything that decides what a job run does: one field per :data:`OPTIONS` entry,
    plus the inputs, the output and the job's own options (``configure_args``).  Built by
    the command line from argv and by the Python API from keywords, both through the
    table."""

    inputs: list[str]
    output_dir: str
    runner: str = "local"
    mode: str = "disk"
    spark_master: Optional[str] = None
    dask_scheduler: Optional[str] = None
    dask_client: Any = None                # Python only: a distributed.Client
    workers: Optional[int] = None          # None: the number of CPUs
    reducers: Optional[int] = None
    sort_buffer: int = 64 << 20
    merge_factor: int = 10
    split_size: Optional[int] = None
    overwrite: bool = False
    work_dir: Optional[str] = None
    decode_errors: str = "strict"
    max_attempts: int = 4
    task_timeout: Optional[float] = None
    skip_bad_records: int = 0
    resume: bool = False
    keep_work: bool = False
    output_compression: Optional[str] = None
    storage_options: Optional[dict] = None  # never written down (credentials)
    files: Optional[list] = None           # --files PATH[#NAME] (mapreduce/taskdir.py)
    dirs: Optional[list] = None
    archives: Optional[list] = None
    cmdenv: Optional[dict] = None          # --cmdenv KEY=VALUE
    setup: Optional[list] = None           # --setup CMD
    job_options: dict = field(default_factory=dict)
    spelling: str = Spelling.CLI           # how errors name options (not an option itself)

    def __post_init__(self) -> None:
        if self.workers is None:
            self.workers = os.cpu_count() or 1

    def spell(self, name: str) -> str:
        """How this run's user names option ``name`` (``--task-timeout`` / ``task_timeout``)."""
        return BY_NAME[name].spelled(self.spelling)

    def spell_with(self, name: str, value: Any) -> str:
        """How this run's user gives ``name`` a value (``--runner spark`` / ``runner="spark"``)."""
        return BY_NAME[name].spelled_with(value, self.spelling)

    def spell_on(self, name: str) -> str:
        """How this run's user turns flag ``name`` on (``--overwrite`` / ``overwrite=True``)."""
        return BY_NAME[name].spelled_on(self.spelling)


def _fields_match_table() -> None:
    names = {f.name for f in fields(JobConfig)} - {"inputs", "output_dir", "job_options",
                                                   "spelling"}
    assert names == set(BY_NAME), names ^ set(BY_NAME)


_fields_match_table()


def recorded_config(config: JobConfig) -> dict[str, Any]:
    """The configuration as the journal and ``_job.json`` record it: every field but the
    options marked ``recorded=False`` (objects such as a Dask client).  A shallow copy:
    ``dataclasses.asdict`` would deep-copy a client."""
    return {f.name: getattr(config, f.name) for f in fields(config)
            if f.name not in BY_NAME or BY_NAME[f.name].recorded}


def check_options(values: dict[str, Any], spelling: str) -> dict[str, Any]:
    """Parse and check every option in ``values`` (by name) with the table; the checked
    values.  Cross-option rules too (``--resume`` with ``--overwrite``)."""
    checked = {}
    for name, value in values.items():
        option = BY_NAME.get(name)
        if option is None:
            raise UsageError(f"unknown option {name} (options: {', '.join(sorted(BY_NAME))})")
        checked[name] = option.check(value, spelling)
    if checked.get("resume") and checked.get("overwrite"):
        raise UsageError(f"{BY_NAME['resume'].spelled(spelling)} and "
                         f"{BY_NAME['overwrite'].spelled(spelling)} contradict each other; "
                         "pick one")
    return checked


def check_runner(config: JobConfig) -> None:
    """Refuse (UsageError) an option ``config.runner`` does not accept, when it was given a
    value other than its default: never silently ignored."""
    for option in OPTIONS:
        if not option.only or config.runner in option.only:
            continue
        value = getattr(config, option.name)
        if value != option.default:
            raise UsageError(f"{option.spelled(config.spelling)} does not apply to "
                             f"{BY_NAME['runner'].spelled(config.spelling)} {config.runner} "
                             f"({option.why_not})")


def config_from_keywords(inputs: Sequence[str], output: str, job_options: dict,
                         keywords: dict[str, Any]) -> JobConfig:
    """A JobConfig from the Python API's keywords (``sort_buffer="64MB"`` or bytes, ...)."""
    unknown = sorted(set(keywords) - set(BY_NAME))
    if unknown:
        raise UsageError(f"unknown option{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)} (options: {', '.join(sorted(BY_NAME))})")
    checked = check_options(keywords, Spelling.API)
    config = JobConfig(inputs=list(inputs), output_dir=output, job_options=job_options,
                       spelling=Spelling.API, **checked)
    check_runner(config)
    return config


# --- the command line -----------------------------------------------------------------------
def add_run_options(parser: argparse.ArgumentParser,
                    names: Optional[Sequence[str]] = None) -> None:
    """Add the table's options (or those in ``names``) to ``parser``.  Values are kept as
    the strings typed; :func:`config_from_args` checks them with the table, so that a bad
    one gets the same one-line message as from Python (not argparse's usage text)."""
    for option in OPTIONS:
        if names is not None and option.name not in names or not option.flag:
            continue  # not asked for, or Python only (a Dask client object)
        if option.kind == "flag":
            parser.add_argument(option.flag, dest=option.name, action="store_true",
                                help=option.help)
        elif option.kind in ("mapping", "paths", "commands", "env"):
            parser.add_argument(option.flag, dest=option.name, action="append",
                                metavar=option.metavar, default=None, help=option.help)
        else:
            parser.add_argument(option.flag, dest=option.name, metavar=option.metavar or
                                ("{" + ",".join(option.choices) + "}" if option.choices
                                 else option.name.upper()),
                                default=None, help=option.help)


def config_from_args(args: argparse.Namespace, output: str,
                     job_options: dict[str, Any]) -> JobConfig:
    """A JobConfig from parsed command-line arguments, checked with the table."""
    given = {o.name: getattr(args, o.name) for o in OPTIONS
             if o.flag and getattr(args, o.name, None) not in (None, False)}
    checked = check_options(given, Spelling.CLI)
    config = JobConfig(inputs=list(args.inputs), output_dir=output, job_options=job_options,
                       spelling=Spelling.CLI, **checked)
    check_runner(config)
    return config


__all__ = ["OPTIONS", "BY_NAME", "Option", "JobConfig", "Spelling", "parse_size",
           "recorded_config",
           "check_options", "check_runner", "config_from_keywords", "config_from_args",
           "add_run_options", "RUNNER_NAMES", "SHUFFLE_MODES"]

