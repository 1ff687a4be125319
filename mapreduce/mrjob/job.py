"""``MRJob``: mrjob's job class on mapreduce's engine.

A job file written for mrjob subclasses :class:`MRJob` (imported as ``mrjob.job.MRJob``:
see ``mapreduce/mrjob/__init__.py`` for how that name reaches it).  ``MRJob`` is a
:class:`mapreduce.Job`; what differs is only how its steps reach the engine
(:meth:`MRJob.engine_steps`):

* Each :class:`~mapreduce.mrjob.step.MRStep` becomes one :class:`mapreduce.Step` whose
  functions are wrappers around the user's.  Between a step's map and reduce, and between
  steps, records travel as mrjob's do on Hadoop Streaming: the line the protocol wrote
  (``INTERNAL_PROTOCOL``, JSON by default), cut at its first tab into the key bytes and the
  value bytes.  The engine sorts, partitions and groups by those key bytes -- as Hadoop
  does -- so a reducer sees exactly the keys (and, with ``SORT_VALUES``, the value order)
  mrjob gives it, and a value that JSON turns from a tuple into a list does so here too.
* The first mapper reads input lines through ``INPUT_PROTOCOL`` (mrjob's default,
  ``RawValueProtocol``, hands the line through as is); ``mapper_raw`` gets each whole input
  file's path (the engine's ``whole_file`` input).
* The last step writes ``OUTPUT_PROTOCOL``'s line as the output line: ``JSONProtocol``'s
  output is mrjob's byte for byte (``"caf\\u00e9"``).
* ``JOBCONF`` / ``jobconf()`` / ``MRStep(jobconf=...)`` / ``-D``: the number of reducers is
  the step's ``Step(reducers=N)``; other keys are refused at start unless listed in
  :data:`_KNOWN_JOBCONF`.
* ``jobconf_from_env``: every task wrapper sets the Hadoop Streaming environment variables
  that have a meaning here (:mod:`mapreduce.mrjob.compat`).

* ``spark()`` / ``SparkStep``: on the Spark runner only, as a :class:`DriverStep` the runner
  runs in a driver process of its own, as mrjob's Spark runner does (spark-submit of the
  script); on any other runner refused at start, naming ``--runner spark``.

What mapreduce does not run is refused at start with one line naming it
(:meth:`MRJob.unsupported_features`): Jar steps, Java input/output formats and
partitioners.  ``FILES`` / ``DIRS`` / ``ARCHIVES`` and ``add_file_arg`` options reach the
engine through :meth:`MRJob.upload_files` (each task's working directory:
:mod:`mapreduce.taskdir`).

mrjob's testing pattern -- ``MRJob(args)``, ``sandbox()``, ``make_runner()``,
``parse_output()`` -- is :mod:`mapreduce.mrjob.runner`'s, through the Python API registered
by the entry layer (``mapreduce.job.set_api_run``), so this module imports nothing above the Job.
"""
from __future__ import annotations

import argparse
import contextlib
import contextvars
import inspect
import itertools
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

from mapreduce.errors import JobDefinitionError, UsageError
from mapreduce.job import Job, Step
from mapreduce.mrjob.commands import Spool
from mapreduce.mrjob.compat import set_task_env
from mapreduce.mrjob.protocol import JSONProtocol, RawValueProtocol, TextValueProtocol
from mapreduce.mrjob.py2 import to_unicode
from mapreduce.mrjob.records import (decoder, encode_with, is_key_caching, joined,
                                     key_loader, lines_with, passes_ints, values_loader)
from mapreduce.mrjob.step import (_JOB_STEP_FUNC_PARAMS, MRStep, SparkStep, _RefusedStep)

#: Jobconf keys that mean something here: the number of reduce tasks (Hadoop 2 and 1
#: spellings), and the number of map tasks, a hint in Hadoop too (accepted, no effect:
#: --split-size decides).
_REDUCES = ("mapreduce.job.reduces", "mapred.reduce.tasks")
_KNOWN_JOBCONF = _REDUCES + ("mapreduce.job.maps", "mapred.map.tasks")


#: mrjob's switches ``pass_arg_through`` can pass: switch -> (mrjob's option name, which the
#: task sees as ``self.options.NAME``; the run option whose value it gets).
_PASSED_THROUGH = {"-r": ("runner", "runner"), "--runner": ("runner", "runner"),
                   "--num-cores": ("num_cores", "workers"), "--files": ("files", "files"),
                   "--dirs": ("dirs", "dirs"), "--archives": ("archives", "archives"),
                   "--cmdenv": ("cmdenv", "cmdenv"), "--setup": ("setup", "setup")}


def _jobconf_pair(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


#: Set while the Spark runner plans a job: Spark steps become DriverSteps, not an error.
_DRIVER_STEPS: contextvars.ContextVar[bool] = contextvars.ContextVar("mrjob_driver_steps",
                                                                     default=False)


@contextlib.contextmanager
def spark_steps_in_driver() -> Iterator[None]:
    """Within: ``engine_steps()`` gives a :class:`DriverStep` for each Spark step (mrjob's
    ``spark()``), which only the Spark runner runs (in its driver); elsewhere a Spark step
    is refused at start, naming ``--runner spark``."""
    token = _DRIVER_STEPS.set(True)
    try:
        yield
    finally:
        _DRIVER_STEPS.reset(token)


def _driver_only(key: Any, value: Any) -> Iterator[tuple]:
    raise JobDefinitionError("a Spark step (spark()) runs in the Spark runner's driver, "
                             "never as a map task")


@dataclass
class DriverStep(Step):
    """An mrjob Spark step as the engine sees it: ``spark(input_path, output_path)``, run
    by the Spark runner in a driver process of its own (``runners/spark_driver.py``).  Its
    mapper only raises, so no runner can mistake it for an identity map step."""

    spark: Optional[Callable[[str, str], Any]] = None


class _EngineArgs(list):
    """The ``args`` a task's ``load_args`` gets: the options are already parsed and set."""


class _ArgParserErrors:
    def __init__(self, name: str) -> None:
        self.name = name

    def error(self, message: str) -> None:
        raise UsageError(f"{self.name}: {message}")


class _FileArg(str):
    """An ``add_file_arg`` option's value: the NAME the file has in the task's working
    directory (what the job sees, as under mrjob), carrying the ``PATH[#NAME]`` it came
    from (made absolute where the job starts) and the option's flag, for the upload."""

    spec: str
    flag: str

    @classmethod
    def parse(cls, text: str, flag: str) -> "_FileArg":
        path, hash_, name = text.partition("#")
        path = os.path.abspath(os.path.expandvars(os.path.expanduser(path)))
        value = cls(name.rstrip("/") if hash_ and name.rstrip("/") else os.path.basename(path))
        value.spec, value.flag = path + (f"#{value}" if hash_ else ""), flag
        return value

    def __reduce__(self) -> tuple:
        return (_file_arg, (str(self), self.spec, self.flag))


def _file_arg(value: str, spec: str, flag: str) -> _FileArg:
    made = _FileArg(value)
    made.spec, made.flag = spec, flag
    return made


class MRJob(Job):
    """mrjob's ``MRJob`` (see the module docstring for how it runs)."""

    INPUT_PROTOCOL: Any = RawValueProtocol
    INTERNAL_PROTOCOL: Any = JSONProtocol
    OUTPUT_PROTOCOL: Any = JSONProtocol  # type: ignore[assignment]
    JOBCONF: dict = {}
    FILES: list = []
    DIRS: list = []
    ARCHIVES: list = []
    HADOOP_INPUT_FORMAT: Optional[str] = None
    HADOOP_OUTPUT_FORMAT: Optional[str] = None
    PARTITIONER: Optional[str] = None
    LIBJARS: list = []

    def __init__(self, args: Optional[list] = None) -> None:
        super().__init__()
        self._mr_args = None
        self._stdin: Any = None
        if args is not None:  # mrjob's testing pattern: MRJob(['-r', 'inline', ...])
            from mapreduce.mrjob.runner import parse_mrjob_args
            self._mr_args = parse_mrjob_args(type(self), list(args))
            self.options = self._mr_args.job_options

    # --- mrjob's hooks that the base class must know, to see them overridden ------------
    def mapper_cmd(self) -> Optional[str]:
        return None

    def mapper_pre_filter(self) -> Optional[str]:
        return None

    def _set_input(self, path: str, start: int, end: Optional[int]) -> None:
        """The task context, and mrjob's view of it: ``jobconf_from_env`` reads the input
        file of the records being mapped, which changes from file to file when small files
        share a map task (as Hadoop's CombineFileRecordReader sets it per file)."""
        super()._set_input(path, start, end)
        set_task_env(self._input_env())

    def _input_env(self) -> dict[str, Any]:
        """The jobconf values that describe the current input (none outside a map task)."""
        env: dict[str, Any] = {}
        if self.input_path is not None:
            # mrjob's runners give the path as a URI: file:// + the path as given (a remote
            # input's URL is one already).
            path = self.input_path
            env["mapreduce.map.input.file"] = path if "://" in path else "file://" + path
            env["mapreduce.map.input.start"] = self.input_start or 0
            if self.input_end is not None:
                env["mapreduce.map.input.length"] = self.input_end - (self.input_start or 0)
        return env

    def mapper_raw(self, input_path: str, input_uri: str) -> Optional[Iterable]:
        raise NotImplementedError

    def combiner_cmd(self) -> Optional[str]:
        return None

    def combiner_pre_filter(self) -> Optional[str]:
        return None

    def reducer_cmd(self) -> Optional[str]:
        return None

    def reducer_pre_filter(self) -> Optional[str]:
        return None

    def spark(self, input_path: str, output_path: str) -> None:
        raise NotImplementedError

    def spark_args(self) -> list:
        return []

    # --- protocols, options, settings (mrjob's methods) ----------------------------------
    def input_protocol(self) -> Any:
        return self.INPUT_PROTOCOL()

    def internal_protocol(self) -> Any:
        return self.INTERNAL_PROTOCOL()

    def output_protocol(self) -> Any:
        return self.OUTPUT_PROTOCOL()

    def jobconf(self) -> dict:
        """The job-level jobconf: ``JOBCONF``, then ``-D KEY=VALUE`` from the command line."""
        conf = dict(self.JOBCONF)
        conf.update(getattr(self.options, "jobconf", None) or [])
        return conf

    @classmethod
    def declare_options(cls, parser: argparse.ArgumentParser) -> None:
        """The job's own options, and mrjob's ``-D KEY=VALUE`` (``--jobconf``), which every
        task's :meth:`jobconf` sees (a job option like the others, so it is checked once,
        where the job starts, and reaches tasks on every runner)."""
        super().declare_options(parser)
        parser.add_argument("-D", "--jobconf", dest="jobconf", action="append", default=[],
                            type=_jobconf_pair, metavar="KEY=VALUE",
                            help="a Hadoop setting for the job, as mrjob's -D (e.g. "
                                 "mapreduce.job.reduces=1)")

    def sort_values(self) -> bool:
        return bool(self.SORT_VALUES)

    # --- files for the task's working directory (mapreduce/taskdir.py) -------------------
    def add_file_arg(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """An option naming a local file every task reads (mrjob's ``add_file_arg``): the
        file (``PATH[#NAME]``) is put in each task's working directory, and the option's
        value is its NAME there, as mrjob passes it, so ``open(self.options.x)`` works."""
        name = type(self).__name__
        if kwargs.get("type") not in (None, str):
            raise JobDefinitionError(f"{name}.add_file_arg({args[0] if args else ''!r}): "
                                     "file options must take strings (type=str)")
        if kwargs.get("action") not in (None, "append", "store"):
            raise JobDefinitionError(f"{name}.add_file_arg({args[0] if args else ''!r}): "
                                     "file options must use the actions 'store' or 'append'")
        flag = args[0] if args else kwargs.get("dest", "?")
        kwargs["type"] = lambda text: _FileArg.parse(text, flag)
        return self.add_passthru_arg(*args, **kwargs)

    def pass_arg_through(self, opt_str: str) -> None:
        """mrjob's ``pass_arg_through``: a runner switch's value reaches the tasks as
        ``self.options.DEST`` (e.g. ``--runner`` -> ``self.options.runner``).  Here the
        switches are the run's options of the same meaning (:data:`_PASSED_THROUGH`); any
        other is refused where the job starts, naming it."""
        parser = getattr(self, "_declaring", None)
        name = type(self).__name__
        if parser is None:
            raise JobDefinitionError(f"{name}.pass_arg_through: call it from "
                                     "configure_args(self)")
        if opt_str not in _PASSED_THROUGH:
            raise JobDefinitionError(
                f"{name}.pass_arg_through({opt_str!r}): mapreduce passes through only "
                f"{', '.join(_PASSED_THROUGH)} (mrjob's other switches have no meaning here)")
        dest, run_option = _PASSED_THROUGH[opt_str]
        vars(parser).setdefault("_mr_passed_through", {})[dest] = run_option

    @classmethod
    def run_options_for_tasks(cls) -> dict[str, str]:
        """The ``pass_arg_through`` switches: {job option: run option}."""
        parser = argparse.ArgumentParser(add_help=False)
        cls.declare_options(parser)
        return dict(vars(parser).get("_mr_passed_through", {}))

    def mr_job_script(self) -> Optional[str]:
        """The job's script (mrjob's): where relative ``FILES`` paths start from."""
        try:
            return inspect.getsourcefile(type(self))
        except TypeError:
            return None

    def files(self) -> list:
        """``FILES``, relative to the job's script (mrjob's ``files()``)."""
        return self._upload_attr("FILES")

    def dirs(self) -> list:
        """``DIRS``, relative to the job's script (mrjob's ``dirs()``)."""
        return self._upload_attr("DIRS")

    def archives(self) -> list:
        """``ARCHIVES``, relative to the job's script (mrjob's ``archives()``)."""
        return self._upload_attr("ARCHIVES")

    def _upload_attr(self, attr: str) -> list:
        value = getattr(self, attr)
        if isinstance(value, (str, bytes)):
            raise JobDefinitionError(f"{type(self).__name__}.{attr} must be a list of paths, "
                                     f"not a string ({attr} = [{value!r}])")
        script = self.mr_job_script()
        base = os.path.dirname(os.path.abspath(script)) if script else os.getcwd()
        return [p if os.path.isabs(os.path.expandvars(os.path.expanduser(p)))
                else os.path.join(base, p) for p in value]

    def upload_files(self) -> list[tuple[str, str, str]]:
        """What each task's working directory holds: ``files()`` / ``dirs()`` /
        ``archives()`` (the methods, or what they return from ``FILES`` / ``DIRS`` /
        ``ARCHIVES``: whichever the job overrides names it), and the ``add_file_arg``
        options' files."""
        found = []
        for kind, method, attr in (("file", "files", "FILES"), ("dir", "dirs", "DIRS"),
                                   ("archive", "archives", "ARCHIVES")):
            where = f"{method}()" if type(self)._overrides_mr(method) else attr
            paths = getattr(self, method)()
            if isinstance(paths, (str, bytes)) or not isinstance(paths, Iterable):
                raise JobDefinitionError(f"{type(self).__name__}.{where} must give a list of "
                                         f"paths, got {paths!r}")
            found += [(kind, os.fspath(p), where) for p in paths]
        for value in vars(self.options).values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, _FileArg):
                    found.append(("file", item.spec, item.flag))
        return found

    @property
    def options(self) -> argparse.Namespace:  # type: ignore[override]
        return Job.options.fget(self)  # type: ignore[attr-defined]

    @options.setter
    def options(self, value: argparse.Namespace) -> None:
        """The engine sets a task's options after making the job: a job that overrides
        mrjob's ``load_args`` (to derive attributes from its options) gets it called then,
        as mrjob calls it in every task; its ``super().load_args(args)`` keeps them."""
        Job.options.fset(self, value)  # type: ignore[attr-defined]
        if type(self)._overrides_mr("load_args") and not getattr(self, "_loading", False):
            self._loading = True
            try:
                self.load_args(_EngineArgs())
            finally:
                self._loading = False

    def load_args(self, args: list) -> None:
        """mrjob's hook to parse an argument list: parsed as ``MRJob(args)`` does."""
        if isinstance(args, _EngineArgs):
            return  # the engine's options, already set
        from mapreduce.mrjob.runner import parse_mrjob_args
        self._mr_args = parse_mrjob_args(type(self), list(args))
        Job.options.fset(self, self._mr_args.job_options)  # type: ignore[attr-defined]

    @property
    def arg_parser(self) -> Any:
        """mrjob's parser, for ``self.arg_parser.error(message)`` in ``load_args``: a
        UsageError (one line naming the job), raised where the job starts."""
        return _ArgParserErrors(type(self).__name__)

    def is_task(self) -> bool:
        return False

    # --- mrjob's steps ----------------------------------------------------------------
    def steps(self) -> list:  # type: ignore[override]
        """As mrjob: one MRStep of the methods the job overrides (or a SparkStep)."""
        given = {name: getattr(self, name) for name in _JOB_STEP_FUNC_PARAMS + ("spark",)
                 if type(self)._overrides_mr(name)}
        if "spark" in given:
            if sorted(given) != ["spark"]:
                raise JobDefinitionError(f"{type(self).__name__}: can't mix spark() and "
                                         "streaming functions")
            return [SparkStep(spark=given["spark"], spark_args=self.spark_args())]
        for name in list(given):
            if name.endswith(("_cmd", "_pre_filter")):
                given[name] = given[name]()
        return [MRStep(**given)] if given else []

    @classmethod
    def _overrides_mr(cls, name: str) -> bool:
        return getattr(cls, name) is not getattr(MRJob, name)

    def parse_output(self, chunks: Iterable[bytes]) -> Iterator[tuple]:
        """``(key, value)`` pairs from output bytes (``runner.cat_output()``)."""
        from mapreduce.mrjob.util import to_lines
        read = self.output_protocol().read
        for line in to_lines(chunks):
            yield read(line.rstrip(b"\r\n") if line.endswith(b"\n") else line)

    # --- what the engine runs ---------------------------------------------------------
    @classmethod
    def engine_output_protocol(cls) -> str:
        return "raw_value"  # the last step's wrappers yield (None, OUTPUT_PROTOCOL's line)

    def engine_input_format(self) -> str:
        first = self.steps()[:1]
        raw = bool(first) and isinstance(first[0], MRStep) and first[0].given("mapper_raw")
        return "whole_file" if raw else "lines"

    @classmethod
    def unsupported_features(cls) -> list[str]:
        found = []
        for name in ("HADOOP_INPUT_FORMAT", "HADOOP_OUTPUT_FORMAT", "PARTITIONER"):
            if getattr(cls, name):
                found.append(f"{name} = {getattr(cls, name)!r} (a Java class for Hadoop; "
                             "mapreduce runs no Java)")
        if cls.LIBJARS:
            found.append("LIBJARS (Java libraries for Hadoop)")
        for name in ("hadoop_input_format", "hadoop_output_format", "partitioner",
                     "libjars", "pick_protocols"):
            if name in vars(cls) or any(name in vars(b) for b in cls.__mro__[1:]
                                        if b not in (MRJob, Job, object)):
                found.append(f"{name}() (mrjob's runner hook; mapreduce does not call it)")
        return found

    def engine_steps(self) -> list[Step]:
        name = type(self).__name__
        mr_steps = self.steps()
        if not isinstance(mr_steps, (list, tuple)):
            raise JobDefinitionError(f"{name}.steps() must return a list of MRStep")
        for i, st in enumerate(mr_steps):
            if isinstance(st, _RefusedStep):
                raise JobDefinitionError(f"{name}.steps()[{i}] is a {type(st).__name__}, "
                                         f"which {st.what}: mapreduce does not run it")
            if isinstance(st, SparkStep):
                if not _DRIVER_STEPS.get():
                    raise JobDefinitionError(
                        f"{name}.steps()[{i}] is a Spark step (spark()), which runs only on "
                        "the Spark runner: --runner spark (mrjob's -r spark)")
                continue
            if not isinstance(st, MRStep):
                raise JobDefinitionError(f"{name}.steps()[{i}] is {st!r}, not an MRStep")
            if i > 0 and st.given("mapper_raw"):
                raise JobDefinitionError(f"{name}.steps()[{i}] has mapper_raw: only the "
                                         "first step can read raw input files")
        job_conf = self.jobconf()
        return [DriverStep(spark=st.spark, mapper=_driver_only) if isinstance(st, SparkStep)
                else self._engine_step(st, i, len(mr_steps), job_conf)
                for i, st in enumerate(mr_steps)]

    def _reducers(self, conf: dict, i: int) -> Optional[int]:
        name = type(self).__name__
        unknown = sorted(k for k in conf if k not in _KNOWN_JOBCONF)
        if unknown:
            raise JobDefinitionError(
                f"{name}: jobconf {unknown[0]!r} has no meaning on mapreduce (it knows "
                f"{', '.join(_KNOWN_JOBCONF)})")
        reducers = None
        for key in _REDUCES:
            if key in conf:
                try:
                    reducers = int(conf[key])
                except (TypeError, ValueError):
                    reducers = -1
                if reducers < 1:
                    raise JobDefinitionError(f"{name}: jobconf {key}={conf[key]!r} in step "
                                             f"{i}: must be a whole number of at least 1")
        return reducers

    def _engine_step(self, st: MRStep, i: int, n: int, job_conf: dict) -> Step:
        last = i == n - 1
        has_reducer = st["reducer"] is not None
        internal = self.internal_protocol()
        ints = not self.SORT_VALUES and passes_ints(internal)
        final = lines_with(self.output_protocol()) if last else \
            encode_with(self.internal_protocol(), ints)
        map_out = final if (last and not has_reducer) else encode_with(internal, ints)
        conf = dict(job_conf, **(st.given("jobconf") or {}))
        reducers = self._reducers(conf, i)

        mapper = self._map_function(st, i, map_out)
        user_init, user_final = st["mapper_init"], st["mapper_final"]

        def mapper_init() -> Iterator[tuple]:
            set_task_env(self._input_env())
            return map_out(user_init()) if user_init else iter(())

        step = Step(mapper=mapper, mapper_init=mapper_init,
                    mapper_final=(lambda: map_out(user_final())) if user_final else None,
                    reducers=reducers)
        if st.given("mapper_cmd") or st.given("mapper_pre_filter"):
            self._map_command(st, i, step, map_out, last and not has_reducer)
        if has_reducer and (st.given("combiner_cmd") or st.given("combiner_pre_filter")):
            self._combine_command(st, step, ints)
        elif st["combiner"] is not None and has_reducer:
            combine_out = encode_with(self.internal_protocol(), ints)
            step.combiner = self._grouped(st["combiner"], self.internal_protocol(),
                                          combine_out)
            if st["combiner_init"]:
                step.combiner_init = lambda: combine_out(st["combiner_init"]())
            if st["combiner_final"]:
                step.combiner_final = lambda: combine_out(st["combiner_final"]())
        if has_reducer:
            step.reducer = self._grouped(st["reducer"], self.internal_protocol(), final)
            if st["reducer_init"]:
                step.reducer_init = lambda: final(st["reducer_init"]())
            if st["reducer_final"]:
                step.reducer_final = lambda: final(st["reducer_final"]())
            if st.given("reducer_cmd") or st.given("reducer_pre_filter"):
                self._reduce_command(st, step, final, last)
        return step

    # --- *_cmd and *_pre_filter (mapreduce/mrjob/commands.py) ---------------------------
    @staticmethod
    def _command_lines(lines: Iterator[bytes], raw: bool) -> Iterator[tuple]:
        """A command's output lines as the engine's records: the job's output lines as they
        are (``raw``: the last step's), else cut at the first tab as Hadoop cuts them."""
        for line in lines:
            if raw:
                yield None, line
            else:
                k, tab, v = line.partition(b"\t")
                yield k, (v if tab else None)

    def _map_command(self, st: MRStep, i: int, step: Step, out: Callable, raw: bool) -> None:
        spool = Spool()
        if i == 0:
            def add(_key: Any, line: str) -> tuple:
                spool.add(line.encode("utf-8", "surrogateescape"))
                return ()
        else:
            def add(key: bytes, value: Optional[bytes]) -> tuple:  # type: ignore[misc]
                spool.add(joined(key, value))
                return ()
        command = st.given("mapper_cmd")
        if command:
            step.mapper = add
            step.mapper_final = lambda: self._command_lines(
                spool.run(command, "mapper_cmd"), raw)
            return
        python_mapper, user_final = step.mapper, st["mapper_final"]
        filter_command = st.given("mapper_pre_filter")
        step.mapper = add

        def filtered_final() -> Iterator[tuple]:
            for line in spool.run(filter_command, "mapper_pre_filter"):
                if i == 0:
                    yield from python_mapper(None, to_unicode(line))
                else:
                    k, tab, v = line.partition(b"\t")
                    yield from python_mapper(k, v if tab else None)
            if user_final:
                yield from out(user_final())
        step.mapper_final = filtered_final

    def _combine_command(self, st: MRStep, step: Step, ints: bool) -> None:
        """``combiner_cmd`` / ``combiner_pre_filter``, as mrjob's local runner runs them: the
        map task's output lines, sorted (by key; the whole line under SORT_VALUES), through
        the command once per map task; its output lines are the map output (``*_cmd``) or
        the Python combiner's input (``*_pre_filter``)."""
        spool = Spool()
        sort = "line" if self.SORT_VALUES else "key"

        def add(key: bytes, values: Iterator[Any]) -> tuple:
            for value in values:
                spool.add(joined(key, value))
            return ()
        step.combiner = add
        command = st.given("combiner_cmd")
        if command:
            step.combiner_final = lambda: self._command_lines(
                spool.run(command, "combiner_cmd", sort), False)
            return
        out = encode_with(self.internal_protocol(), ints)
        python = self._grouped(st["combiner"], self.internal_protocol(), out)
        user_init, user_final = st["combiner_init"], st["combiner_final"]
        filter_command = st.given("combiner_pre_filter")

        def filtered_final() -> Iterator[tuple]:
            if user_init:  # its pairs leave the combiner as they are, as under mrjob
                yield from out(user_init())
            records = self._command_lines(
                spool.run(filter_command, "combiner_pre_filter", sort), False)
            for key, group in itertools.groupby(records, key=lambda r: r[0]):
                yield from python(key, (v for _, v in group))
            if user_final:
                yield from out(user_final())
        step.combiner_final = filtered_final

    def _reduce_command(self, st: MRStep, step: Step, final: Callable, last: bool) -> None:
        spool = Spool()

        def add(key: bytes, values: Iterator[Optional[bytes]]) -> tuple:
            for value in values:
                spool.add(joined(key, value))
            return ()
        command = st.given("reducer_cmd")
        if command:
            step.reducer = add
            step.reducer_final = lambda: self._command_lines(
                spool.run(command, "reducer_cmd"), last)
            return
        python_reducer, user_final = step.reducer, st["reducer_final"]
        filter_command = st.given("reducer_pre_filter")
        step.reducer = add

        def filtered_final() -> Iterator[tuple]:
            records = self._command_lines(spool.run(filter_command, "reducer_pre_filter"),
                                          False)
            for key, group in itertools.groupby(records, key=lambda r: r[0]):
                yield from python_reducer(key, (v for _, v in group))
            if user_final:
                yield from final(user_final())
        step.reducer_final = filtered_final

    def _map_function(self, st: MRStep, i: int, out: Callable) -> Callable:
        raw = st.given("mapper_raw")
        if raw:
            def mapper_raw(path: str, _contents: bytes) -> Iterator[tuple]:
                return out(raw(path, "file://" + os.path.abspath(path)))
            return mapper_raw
        user = st["mapper"]
        if i == 0:
            protocol = self.input_protocol()
            if type(protocol) is TextValueProtocol:  # mrjob's default: the line as is
                def mapper(_key: Any, line: str) -> Iterator[tuple]:
                    return out(user(None, line))
            else:
                read = protocol.read

                def mapper(_key: Any, line: str) -> Iterator[tuple]:
                    return out(user(*read(line.encode("utf-8", "surrogateescape"))))
            return mapper
        decode = decoder(self.internal_protocol())

        def mapper(key: bytes, value: Optional[bytes]) -> Iterator[tuple]:
            return out(user(*decode(key, value)))
        return mapper

    @staticmethod
    def _grouped(user: Callable, protocol: Any, out: Callable) -> Callable:
        """A combiner/reducer over (key bytes, value bytes...): decoded as mrjob decodes a
        group of lines, the user's function called once per key, its pairs encoded."""
        if is_key_caching(protocol):
            load, load_values = key_loader(protocol), values_loader(protocol)

            def grouped_halves(key: bytes, values: Iterator[Any]) -> Iterator[tuple]:
                return out(user(load(key), load_values(values)))
            return grouped_halves
        read = protocol.read

        def grouped(key: bytes, values: Iterator[Optional[bytes]]) -> Iterator[tuple]:
            pairs = (read(joined(key, v)) for v in values)
            first_key, first_value = next(pairs)
            decoded = itertools.chain((first_value,), (v for _, v in pairs))
            return out(user(first_key, decoded))
        return grouped

    # --- running (mrjob's testing pattern and script mode) ------------------------------
    def sandbox(self, stdin: Any = None, stdout: Any = None, stderr: Any = None) -> "MRJob":
        """Give the job the standard input that ``-`` (or no input) reads."""
        self._stdin = stdin
        return self

    def make_runner(self) -> Any:
        """A runner for ``MRJob(args)`` (``with job.make_runner() as runner: ...``)."""
        from mapreduce.mrjob.runner import MRRunner
        if self._mr_args is None:
            raise UsageError(f"{type(self).__name__}.make_runner() needs the job made with "
                             "its arguments: MRJob(['-r', 'inline', 'input.txt'])")
        return MRRunner(self, self._mr_args, self._stdin)

    @classmethod
    def run(cls, argv: Optional[list] = None) -> None:  # type: ignore[override]
        """``python mr_job.py INPUT...``: mrjob's switches, output printed (or -o DIR)."""
        from mapreduce.mrjob.runner import script_main
        raise SystemExit(script_main(cls, sys.argv[1:] if argv is None else argv))


__all__ = ["DriverStep", "MRJob", "spark_steps_in_driver"]
