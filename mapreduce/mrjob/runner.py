"""mrjob's command line and runner objects, for ``MRJob(args)`` and ``MRJob.run()``.

mrjob users test a job like this::

    job = MRWordCount(['-r', 'inline', '--no-conf', '-'])
    job.sandbox(stdin=BytesIO(b'foo bar\\n'))
    with job.make_runner() as runner:
        runner.run()
        pairs = list(job.parse_output(runner.cat_output()))
        counters = runner.counters()

:func:`parse_mrjob_args` reads mrjob's switches that mean something here (``-r
inline|local|spark``, ``--num-cores``, ``-o/--output-dir``, ``--cat-output``,
``--no-output``, ``--no-conf``, ``-D KEY=VALUE``: a job option of MRJob's; ``--files``,
``--dirs``, ``--archives``, ``--cmdenv``, ``--setup``: the run options of those names) and
the job's own options; anything else
(an EMR, Dataproc or Hadoop switch, an unknown option) is a UsageError naming it.
:class:`MRRunner` runs the job through the Python API (registered by the entry layer:
``mapreduce.job.api_run``): standard input (``-`` or no input) is copied to a temporary file
first, the output goes to a temporary directory unless ``-o`` names one.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterator, NoReturn, Optional

from mapreduce.errors import MapReduceError, UsageError
from mapreduce.job import api_run

#: mrjob's runners that run somewhere mapreduce does not go.
_REFUSED_RUNNERS = {"emr": "Amazon EMR", "dataproc": "Google Dataproc", "hadoop": "Hadoop"}
_RUNNERS = {"inline": "inline", "local": "local", "spark": "spark"}
#: mrjob's switches for the task's working directory: the run options of the same names
#: (mapreduce/taskdir.py), checked by the option table when the job runs.
_TASK_DIR_SWITCHES = ("files", "dirs", "archives", "cmdenv", "setup")


class _ArgsParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


@dataclass
class MRArgs:
    """What an mrjob command line asked for."""

    inputs: list[str]
    runner: str = "inline"
    workers: Optional[int] = None
    output_dir: Optional[str] = None
    cat_output: Optional[bool] = None
    no_output: bool = False
    #: --files, --dirs, --archives, --cmdenv, --setup: run options of the same names.
    task_dir: dict = field(default_factory=dict)
    job_options: argparse.Namespace = field(default_factory=argparse.Namespace)
    job_option_dests: list = field(default_factory=list)


def parse_mrjob_args(job_class: type, args: list[str]) -> MRArgs:
    """mrjob's command line for ``job_class``; UsageError (one line) for anything else."""
    parser = _ArgsParser(prog=job_class.__name__, add_help=False, allow_abbrev=False)
    parser.add_argument("args", nargs="*")
    parser.add_argument("-r", "--runner", default="inline")
    parser.add_argument("--num-cores", type=int, dest="num_cores")
    parser.add_argument("-o", "--output-dir", dest="output_dir")
    parser.add_argument("--cat-output", dest="cat_output", action="store_true", default=None)
    parser.add_argument("--no-cat-output", dest="cat_output", action="store_false")
    parser.add_argument("--no-output", dest="no_output", action="store_true")
    parser.add_argument("--no-conf", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    for switch in _TASK_DIR_SWITCHES:
        parser.add_argument(f"--{switch}", dest=f"td_{switch}", action="append")
    before = len(parser._actions)
    job_class.declare_options(parser)
    dests = [a.dest for a in parser._actions[before:]]
    for option in args:
        if option.startswith("-c") or option.startswith("--conf-path"):
            raise UsageError(f"{job_class.__name__}: {option}: mrjob.conf files are not read "
                             "by mapreduce (pass the options on the command line)")
    parsed = parser.parse_args(args)
    runner = parsed.runner
    if runner in _REFUSED_RUNNERS:
        raise UsageError(f"{job_class.__name__}: -r {runner}: mapreduce does not run jobs on "
                         f"{_REFUSED_RUNNERS[runner]} (it runs them with -r inline, local or "
                         "spark)")
    if runner not in _RUNNERS:
        raise UsageError(f"{job_class.__name__}: -r {runner}: unknown runner (inline, local "
                         "or spark)")
    if parsed.num_cores is not None and parsed.num_cores < 1:
        raise UsageError(f"{job_class.__name__}: --num-cores must be at least 1")
    options = argparse.Namespace(**{d: getattr(parsed, d) for d in dests})
    task_dir = {s: getattr(parsed, f"td_{s}") for s in _TASK_DIR_SWITCHES
                if getattr(parsed, f"td_{s}")}
    return MRArgs(inputs=list(parsed.args), runner=_RUNNERS[runner], task_dir=task_dir,
                  workers=parsed.num_cores, output_dir=parsed.output_dir,
                  cat_output=parsed.cat_output, no_output=parsed.no_output,
                  job_options=options, job_option_dests=dests)


class MRRunner:
    """mrjob's runner object: ``run()``, ``cat_output()``, ``counters()``,
    ``get_output_dir()``; a context manager that removes its temporary files."""

    def __init__(self, job: Any, args: MRArgs, stdin: Any) -> None:
        self._job, self._args, self._stdin = job, args, stdin
        self._tmp = tempfile.mkdtemp(prefix="mapreduce-mrjob-")
        self._result: Any = None

    def __enter__(self) -> "MRRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _inputs(self) -> list[str]:
        inputs = self._args.inputs or ["-"]
        if "-" not in inputs:
            return inputs
        stdin = self._stdin if self._stdin is not None else sys.stdin.buffer
        path = os.path.join(self._tmp, "stdin")
        with open(path, "wb") as f:
            data = stdin.read()
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        return [path if i == "-" else i for i in inputs]

    def run(self) -> None:
        """Run the job to completion (raises MapReduceError if it fails)."""
        options = {"runner": self._args.runner, "progress": False, **self._args.task_dir}
        if self._args.workers is not None:
            options["workers"] = self._args.workers
        output = self._args.output_dir or os.path.join(self._tmp, "output")
        job = self._job
        # The job's options as parsed here (its own configure_args), and -D on the line.
        job_options = {d: _as_given(getattr(job.options, d))
                       for d in self._args.job_option_dests}
        self._result = api_run(type(job), self._inputs(), output, job_options=job_options,
                               **options)

    def get_output_dir(self) -> str:
        return self._result.output_dir if self._result else (
            self._args.output_dir or os.path.join(self._tmp, "output"))

    def cat_output(self) -> Iterator[bytes]:
        """The output's bytes, part file by part file (mrjob yields chunks)."""
        out = self.get_output_dir()
        for name in sorted(os.listdir(out)):
            if name.startswith("part-"):
                with open(os.path.join(out, name), "rb") as f:
                    yield from iter(lambda: f.read(1 << 16), b"")

    def counters(self) -> list[dict[str, dict[str, int]]]:
        """Each step's user counters (``[{group: {name: n}}]``, mrjob's shape)."""
        if self._result is None:
            return []
        return [{g: dict(c) for g, c in step.items() if g != "framework"}
                for step in self._result.step_counters]


def _as_given(value: Any) -> Any:
    """An ``add_file_arg`` value (a str carrying ``.spec``) goes to the API as the absolute
    ``PATH[#NAME]`` it was parsed from: the API parses a string option again."""
    spec = getattr(value, "spec", None)
    return spec if isinstance(value, str) and spec is not None else value


def script_main(job_class: type, argv: list[str]) -> int:
    """``python mr_job.py INPUT...`` with mrjob's switches; prints the output unless -o
    (or --no-output) says otherwise.  Exit 0, or 1/2 with one line on stderr."""
    try:
        job = job_class(argv)
        with job.make_runner() as runner:
            runner.run()
            args = job._mr_args
            cat = args.cat_output if args.cat_output is not None else not args.output_dir
            if cat and not args.no_output:
                for chunk in runner.cat_output():
                    sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
        return 0
    except MapReduceError as exc:
        print(f"mapreduce: error: {exc}", file=sys.stderr)
        detail = getattr(exc, "detail", "")
        if detail:
            print(detail.rstrip("\n"), file=sys.stderr)
        return exc.exit_status
