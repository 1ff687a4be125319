"""The Job base class and Step: the user's whole view of the framework.

A job subclasses :class:`Job` and overrides generator methods, as in mrjob::

    class WordCount(Job):
        def mapper(self, _, line):
            for word in WORD_RE.findall(line):
                yield word.lower(), 1
        def combiner(self, word, counts):
            yield word, sum(counts)
        def reducer(self, word, counts):
            yield word, sum(counts)

The framework finds out which methods were overridden (a method left as the base class's is
"absent"), and :meth:`Job.steps` turns them into one :class:`Step`.  Multi-step jobs override
``steps()`` and return several.  Nothing here knows about processes, files or the CLI: the
engine creates a fresh Job instance inside each task, calls the step's functions, and reads
back the counters and status the task accumulated (:meth:`Job._take_counters`).

Policy decisions that live here:

* A job method may ``return`` nothing instead of yielding (mrjob allows it): a ``None``
  result is treated as no pairs (:func:`iter_pairs`).
* ``SORT_VALUES = True`` makes each reducer see a key's values in ascending natural order.
* ``REDUCERS`` is the default number of reduce tasks; ``--reducers`` overrides it.  It is a
  constant, not the CPU count, so that output does not depend on the machine.
"""
from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, NoReturn, Optional, Sequence

from mapreduce.errors import JobDefinitionError

Pair = tuple  # (key, value)

#: The names of a Step's callables, in the order mrjob documents them.
STEP_FUNCTIONS = (
    "mapper", "mapper_init", "mapper_final",
    "combiner", "combiner_init", "combiner_final",
    "reducer", "reducer_init", "reducer_final",
)


@dataclass
class Step:
    """One map (+ combine) (+ reduce) round.  Absent functions are ``None``.

    A step with no reducer is map-only: its map output is the step's output.  A step with
    no mapper uses the identity mapper.
    """

    mapper: Optional[Callable[..., Any]] = None
    mapper_init: Optional[Callable[..., Any]] = None
    mapper_final: Optional[Callable[..., Any]] = None
    combiner: Optional[Callable[..., Any]] = None
    combiner_init: Optional[Callable[..., Any]] = None
    combiner_final: Optional[Callable[..., Any]] = None
    reducer: Optional[Callable[..., Any]] = None
    reducer_init: Optional[Callable[..., Any]] = None
    reducer_final: Optional[Callable[..., Any]] = None
    #: This step's number of reduce tasks, whatever ``--reducers`` says (e.g. 1 for a top-N
    #: step whose reducer sees a single key); None: ``--reducers`` or the job's REDUCERS.
    reducers: Optional[int] = None

    def __post_init__(self) -> None:
        if self.reducers is not None and (type(self.reducers) is not int or self.reducers < 1):
            raise ValueError(f"Step(reducers=...) must be an int of at least 1, got "
                             f"{self.reducers!r}")

    @property
    def map_only(self) -> bool:
        return self.reducer is None

    def describe(self) -> dict[str, bool]:
        """Which functions the step has (for ``_job.json`` and error messages)."""
        return {name: getattr(self, name) is not None for name in STEP_FUNCTIONS}


class _Identity:
    """The identity mapper or reducer (Hadoop's ``IdentityMapper`` / ``IdentityReducer``).

    A callable object rather than a function, for two reasons: the kernel recognises it
    (``step.reducer is identity_reducer``) and moves records without calling it, so an
    identity step costs no Python call per record; and an object that is not a function
    is not bound as a method, so ``reducer = identity_reducer`` works in a Job's class body
    as well as in ``Step(reducer=identity_reducer)``.  Calling it gives what the kernel's
    shortcut gives, for code that calls it directly.  Pickled by name (one instance each).
    """

    def __init__(self, name: str, reducer: bool) -> None:
        self._name = name
        self._reducer = reducer

    def __call__(self, key: Any, value_or_values: Any) -> Iterator[Pair]:
        if self._reducer:
            return ((key, value) for value in value_or_values)
        return iter(((key, value_or_values),))

    def __repr__(self) -> str:
        return f"mapreduce.job.{self._name}"

    def __reduce__(self) -> str:
        return self._name


#: The identity mapper: every input record ``(key, value)`` is a map output pair.  A step
#: with no mapper (``Step(mapper=None)``, or a Job that does not override ``mapper``) uses
#: it; the kernel hands the input records to the sort buffer or the writer in one call.
identity_mapper = _Identity("identity_mapper", reducer=False)
#: The identity reducer: every value out under its key, in the order the reducer would see
#: them.  ``reducer = identity_reducer`` in a Job, or ``Step(reducer=identity_reducer)``;
#: the kernel writes each merged group straight to the output without calling it.
identity_reducer = _Identity("identity_reducer", reducer=True)


def iter_pairs(result: Optional[Iterable[Any]]) -> Iterable[Any]:
    """The pairs a job method produced; a method that simply returned gives none."""
    return () if result is None else result


class _DefaultsParser(argparse.ArgumentParser):
    """Reads a job's option defaults: argparse's complaints become a JobDefinitionError
    instead of a usage message and ``SystemExit``."""

    def error(self, message: str) -> NoReturn:
        raise JobDefinitionError(f"{self.prog}.configure_args: {message}")


class Job:
    """Base class for MapReduce jobs.  Override mapper/combiner/reducer (and their
    ``*_init`` / ``*_final`` hooks) or :meth:`steps`.

    Class attributes a job may set:

    * ``REDUCERS`` (default 4): number of reduce tasks, overridden by ``--reducers``.
    * ``SORT_VALUES`` (default False): reducers see each key's values in sorted order.
      Values must then be orderable keys (None, numbers, str, bytes, tuples of these).
    * ``OUTPUT_PROTOCOL`` (default ``"json"``): part-file lines are ``json(key) TAB
      json(value)``; ``"raw_value"`` writes each value alone as a line (str or bytes).
    * ``INPUT_FORMAT`` (default ``"lines"``): the mapper gets ``(None, line)`` per line;
      ``"whole_file"`` gives one record per input file, ``(path, contents as bytes)``.

    In a task, ``self.options`` holds the job's own command-line options (see
    :meth:`configure_args`), ``self.side_data`` what :meth:`prepare` returned, and, in a map
    task of the first step, ``self.input_path`` / ``self.input_start`` / ``self.input_end``
    say which file and byte range the current records come from.
    """

    REDUCERS: int = 4
    SORT_VALUES: bool = False
    OUTPUT_PROTOCOL: str = "json"
    INPUT_FORMAT: str = "lines"

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], int] = {}
        self._status: Optional[str] = None
        #: What :meth:`prepare` returned in the coordinator (empty dict if nothing).
        self.side_data: dict = {}
        # The job's own options (see the ``options`` property): set by the engine, which
        # parsed and checked them once, in the coordinator, before any task started.
        self._options: Optional[argparse.Namespace] = None
        #: Task context: the input file and byte range of the current map task (first step).
        self.input_path: Optional[str] = None
        self.input_start: Optional[int] = None
        self.input_end: Optional[int] = None

    def _set_input(self, path: str, start: int, end: Optional[int]) -> None:
        """Set the task context: the file and byte range the next records come from (the
        engine calls it at a map task's start and, for packed small files, per file)."""
        self.input_path, self.input_start, self.input_end = path, start, end

    @property
    def options(self) -> argparse.Namespace:
        """The job's own options (from :meth:`configure_args`).

        In a task and in :meth:`prepare`, the values the run was given (parsed and checked
        in the coordinator: a task never parses a command line).  On a Job made by hand (a
        unit test, a notebook), their defaults.
        """
        if getattr(self, "_options", None) is None:
            self._options = argparse.Namespace(**self.default_options())
        return self._options  # type: ignore[return-value]

    @options.setter
    def options(self, value: argparse.Namespace) -> None:
        self._options = value

    # --- methods users override -----------------------------------------------------
    def mapper(self, key: Any, value: Any) -> Iterable[Pair]:
        """Default: identity (the base method counts as absent)."""
        yield key, value

    def combiner(self, key: Any, values: Iterator[Any]) -> Iterable[Pair]:
        raise NotImplementedError  # absent unless overridden

    def reducer(self, key: Any, values: Iterator[Any]) -> Iterable[Pair]:
        raise NotImplementedError  # absent unless overridden

    def mapper_init(self) -> Optional[Iterable[Pair]]:
        return None

    def mapper_final(self) -> Optional[Iterable[Pair]]:
        return None

    def combiner_init(self) -> Optional[Iterable[Pair]]:
        return None

    def combiner_final(self) -> Optional[Iterable[Pair]]:
        return None

    def reducer_init(self) -> Optional[Iterable[Pair]]:
        return None

    def reducer_final(self) -> Optional[Iterable[Pair]]:
        return None

    def partitioner(self, key: Any, num_partitions: int) -> int:
        """Which reduce partition (0 <= p < num_partitions) a map output key goes to.

        Absent unless overridden (Hadoop's Partitioner, mrjob's PARTITIONER): the default is
        a stable hash of the encoded key.  Override it for e.g. a total order (TeraSort);
        it must be a pure function of the key.  It is called once per map output record.
        """
        raise NotImplementedError

    def total_order_split_points(self, num_partitions: int) -> Sequence[Any]:
        """The built-in total-order partitioner's split points (Hadoop's
        ``TotalOrderPartitioner`` reading the partition file ``InputSampler`` wrote).

        Absent unless overridden.  Return at most ``num_partitions - 1`` keys in ascending
        order, normally sampled from the input by :meth:`prepare` and read from
        ``self.side_data``; a key ``k`` then goes to partition ``bisect_right(points, k)``:
        partition ``i`` holds the keys from ``points[i - 1]`` (included) up to
        ``points[i]`` (excluded), so the part files in name order are one sorted output.
        Called once per map task; the engine encodes the points and compares encoded key
        bytes (the engine's own key order, which is Python's for comparable keys), so no
        Python function runs per record.  A job defines this or :meth:`partitioner`, not both.
        """
        raise NotImplementedError

    def configure_args(self, parser: Optional[argparse.ArgumentParser] = None) -> None:
        """Declare the job's own command-line options (mrjob's ``configure_args``).

        mrjob's form works too: ``configure_args(self)`` calling
        ``super().configure_args()`` and ``self.add_passthru_arg(...)`` (hence ``parser``'s
        default: the base method is called without one there).

        ``parser`` is an argument group of the ``run`` command: call ``parser.add_argument``
        as with argparse (e.g. ``parser.add_argument("--top", type=int, default=10)``).  The
        values reach every task as ``self.options.top``; ``--help`` lists them.  Options must
        be optional (``--name``) and their values picklable.
        """

    def add_passthru_arg(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """mrjob's way of declaring an option, from a ``configure_args(self)`` that takes no
        parser: the same as ``parser.add_argument(...)``.  Only valid while the options are
        being declared (:meth:`declare_options` sets the parser)."""
        parser = getattr(self, "_declaring", None)
        if parser is None:
            raise JobDefinitionError(
                f"{type(self).__name__}.add_passthru_arg: call it from configure_args(self)")
        return parser.add_argument(*args, **kwargs)

    @classmethod
    def declare_options(cls, parser: argparse.ArgumentParser) -> None:
        """Run the job's ``configure_args`` against ``parser``, whichever of the two
        signatures it has: ours (``configure_args(self, parser)``) or mrjob's
        (``configure_args(self)`` calling ``self.add_passthru_arg(...)``)."""
        declarer = cls.__new__(cls)
        declarer._declaring = parser
        try:
            if _takes_no_parser(cls.configure_args):
                declarer.configure_args()  # type: ignore[call-arg]
            else:
                declarer.configure_args(parser)
        finally:
            declarer._declaring = None

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        """The job options' defaults (what ``self.options`` holds without a command line):
        a string default converted by the option's ``type``, None for a required option."""
        parser = _DefaultsParser(prog=cls.__name__, add_help=False, allow_abbrev=False,
                                 exit_on_error=False)
        cls.declare_options(parser)
        for action in parser._actions:
            action.required = False  # the defaults are wanted, not a complete command line
        try:
            return vars(parser.parse_args([]))
        except argparse.ArgumentError as exc:  # e.g. default="ten" with type=int
            raise JobDefinitionError(f"{cls.__name__}.configure_args: {exc}") from None

    def prepare(self, inputs: list[str]) -> Optional[dict]:
        """Called once, in the coordinator, before any task runs, with the input files.

        Whatever dict it returns (picklable) is available in every task as
        ``self.side_data`` -- e.g. split points sampled from the input for a total-order
        partitioner, or a data set every task reads.  It is stored once per job, not copied
        into each task: NumPy arrays in it are shared by all workers as read-only memory-
        mapped files (see :mod:`mapreduce.sidedata`).  ``self.options``
        is set here too.  Default: nothing.
        """
        return None

    @classmethod
    def run_options_for_tasks(cls) -> dict[str, str]:
        """Job options whose value is a run option's: ``{job option: run option}`` (e.g.
        ``{"runner": "runner"}``: ``self.options.runner`` is the run's ``--runner``), set
        where the job starts.  Default: none (mrjob's ``pass_arg_through`` fills it)."""
        return {}

    def upload_files(self) -> list[tuple[str, str, str]]:
        """What every task finds in its working directory (its current directory while it
        runs), besides ``--files`` / ``--dirs`` / ``--archives``: ``(kind, "PATH[#NAME]",
        where)`` with kind ``"file"``, ``"dir"`` or ``"archive"`` (unpacked), PATH relative
        to the current directory, and ``where`` naming the setting for messages.  Called
        once, where the job starts, with ``self.options`` set; a missing PATH is refused
        there.  Default: nothing (mrjob's ``FILES`` / ``DIRS`` / ``ARCHIVES`` and
        ``add_file_arg`` options come from here; see :mod:`mapreduce.taskdir`).
        """
        return []

    def steps(self) -> list[Step]:
        """The job's steps.  Default: one step made of the overridden methods."""
        present = {name: getattr(self, name) for name in STEP_FUNCTIONS if self._overrides(name)}
        return [Step(**present)]

    # --- the task context ------------------------------------------------------------
    def increment_counter(self, group: str, name: str, amount: int = 1) -> None:
        """Add ``amount`` to a user counter; counters of all tasks are summed per job."""
        key = (str(group), str(name))
        self._counters[key] = self._counters.get(key, 0) + int(amount)

    def set_status(self, message: str) -> None:
        """Set the task's status message (shown in the task's record in ``_job.json``)."""
        self._status = str(message)

    def _take_counters(self) -> dict[tuple[str, str], int]:
        """Hand the counters gathered so far to the engine and start afresh."""
        counters, self._counters = self._counters, {}
        return counters

    # --- checking the definition ------------------------------------------------------
    @classmethod
    def unsupported_features(cls) -> list[str]:
        """What the job defines that looks like a hook or setting but that this engine
        does not run: one phrase each, naming it.  Never silently ignored: the session
        refuses a job with any (:meth:`check_definition`)."""
        found = []
        for name in sorted(_MRJOB_ONLY):
            if hasattr(cls, name) and not hasattr(Job, name):
                how = ("the mrjob compatibility layer runs it: subclass mapreduce.mrjob.MRJob"
                       if name in _COMPAT_RUNS else "mapreduce does not run it")
                found.append(f"{name} ({_MRJOB_ONLY[name]}; {how})")
        for name, meant in _NEAR_MISSES.items():
            if callable(getattr(cls, name, None)) and not hasattr(Job, name):
                found.append(f"{name}() (not a hook: did you mean {meant}()?)")
        return found

    @classmethod
    def check_definition(cls) -> None:
        """Raise JobDefinitionError naming the first thing the job defines that the engine
        would not run (see :meth:`unsupported_features`)."""
        if cls._overrides("partitioner") and cls._overrides("total_order_split_points"):
            raise JobDefinitionError(
                f"{cls.__name__} defines both partitioner() and total_order_split_points(); "
                "define one (total_order_split_points() is the built-in total-order "
                "partitioner)")
        found = cls.unsupported_features()
        if found:
            more = (" (also: " + ", ".join(f.split(" ")[0] for f in found[1:]) + ")"
                    if len(found) > 1 else "")
            raise JobDefinitionError(f"{cls.__name__} defines {found[0]}{more}")

    def engine_steps(self) -> list[Step]:
        """The steps as the engine runs them: :meth:`steps` here; a compatibility layer
        (``mapreduce.mrjob``) translates its own step objects into Steps here."""
        return self.steps()

    @classmethod
    def engine_output_protocol(cls) -> str:
        """The output line format the engine writes (``OUTPUT_PROTOCOL`` here)."""
        return cls.OUTPUT_PROTOCOL

    def engine_input_format(self) -> str:
        """How the first step reads its input (``INPUT_FORMAT`` here)."""
        return self.INPUT_FORMAT

    # --- helpers ------------------------------------------------------------------------
    @classmethod
    def _overrides(cls, name: str) -> bool:
        return getattr(cls, name) is not getattr(Job, name)

    @classmethod
    def run(cls, argv: Optional[list[str]] = None) -> None:
        """Run this job from the command line (``python jobs/wordcount.py input.txt``).

        Takes the same options as ``python -m mapreduce run`` without the job path; without
        ``-o`` the output pairs are printed to stdout, as mrjob does.
        """
        if _SCRIPT_MAIN is None:  # mapreduce/__init__.py registers it on import
            raise RuntimeError("mapreduce's command line is not registered")
        raise SystemExit(_SCRIPT_MAIN(cls, argv))


#: mrjob's hooks and settings that a plain Job does not run, and what they are.
_MRJOB_ONLY = {
    "mapper_pre_filter": "an mrjob shell command before the mapper",
    "combiner_pre_filter": "an mrjob shell command before the combiner",
    "reducer_pre_filter": "an mrjob shell command before the reducer",
    "mapper_cmd": "an mrjob shell command as the mapper",
    "combiner_cmd": "an mrjob shell command as the combiner",
    "reducer_cmd": "an mrjob shell command as the reducer",
    "mapper_raw": "mrjob's whole-input-file mapper",
    "spark": "an mrjob Spark step",
    "spark_args": "mrjob's Spark arguments",
    "JOBCONF": "mrjob's Hadoop configuration",
    "jobconf": "mrjob's Hadoop configuration",
    "FILES": "mrjob's files uploaded to every task",
    "DIRS": "mrjob's directories uploaded to every task",
    "ARCHIVES": "mrjob's archives unpacked in every task",
    "INPUT_PROTOCOL": "mrjob's input protocol",
    "INTERNAL_PROTOCOL": "mrjob's protocol between steps",
    "HADOOP_INPUT_FORMAT": "a Java Hadoop input format",
    "HADOOP_OUTPUT_FORMAT": "a Java Hadoop output format",
    "PARTITIONER": "a Java Hadoop partitioner class",
    "LIBJARS": "Java libraries for Hadoop",
}

#: Those of them that ``mapreduce.mrjob.MRJob`` runs (docs/mrjob.md).
_COMPAT_RUNS = {"mapper_pre_filter", "reducer_pre_filter", "mapper_cmd", "reducer_cmd",
                "combiner_pre_filter", "combiner_cmd", "mapper_raw", "JOBCONF", "jobconf",
                "INPUT_PROTOCOL", "INTERNAL_PROTOCOL", "FILES", "DIRS", "ARCHIVES"}

#: Method names that look like a hook but are not one, and the hook meant.
_NEAR_MISSES = {
    "map": "mapper", "reduce": "reducer", "combine": "combiner",
    "map_init": "mapper_init", "map_final": "mapper_final",
    "reduce_init": "reducer_init", "reduce_final": "reducer_final",
    "combine_init": "combiner_init", "combine_final": "combiner_final",
    "mapper_setup": "mapper_init", "reducer_setup": "reducer_init",
    "mapper_cleanup": "mapper_final", "reducer_cleanup": "reducer_final",
}


def _takes_no_parser(method: Callable[..., Any]) -> bool:
    """Is ``configure_args`` mrjob's ``(self)`` rather than our ``(self, parser)``?"""
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 1 and not any(p.kind == p.VAR_POSITIONAL for p in params)


#: ``Job.run()``'s command line, set by the entry layer (see :func:`set_script_main`).
_SCRIPT_MAIN: Optional[Callable[[type, Optional[list]], int]] = None


def set_script_main(main: Callable[[type, Optional[list]], int]) -> None:
    """Register what ``Job.run()`` runs: the command line for one job class.  The entry
    layer (``mapreduce/__init__.py``) does it, so this module imports nothing above it."""
    global _SCRIPT_MAIN
    _SCRIPT_MAIN = main


#: The Python API's ``run``, set by the entry layer (see :func:`set_api_run`): what the
#: mrjob compatibility layer's ``make_runner()`` runs a job with.
_API_RUN: Optional[Callable[..., Any]] = None


def set_api_run(run: Callable[..., Any]) -> None:
    """Register the Python API's ``run`` (``mapreduce/__init__.py`` does it), for
    ``mapreduce.mrjob``'s runners, which sit below the API."""
    global _API_RUN
    _API_RUN = run


def api_run(*args: Any, **kwargs: Any) -> Any:
    """Run a job through the registered Python API (``mapreduce.run``)."""
    if _API_RUN is None:  # mapreduce/__init__.py registers it on import
        raise RuntimeError("mapreduce's Python API is not registered")
    return _API_RUN(*args, **kwargs)
