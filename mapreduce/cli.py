"""The command line: ``python -m mapreduce run JOB INPUT... -o OUT [options]``.

This module owns argv parsing, loading the job class from its file, exit codes, and turning
every :class:`~mapreduce.errors.MapReduceError` into one clear line on stderr (followed by the
detail, e.g. the user's traceback, when there is one) instead of a framework traceback.

Exit codes: 0 success; 1 the job or its input failed; 2 bad usage (options, job file);
130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any, NoReturn, Optional, Sequence

from mapreduce.errors import JobDefinitionError, MapReduceError, UsageError
from mapreduce.info import version_text
from mapreduce.job import Job
from mapreduce.loader import JobRef, load_job_class, register_job_class
from mapreduce.options import JobConfig, add_run_options, config_from_args
from mapreduce.progress import courteous, format_summary, make_progress
from mapreduce.runners import run_job
from mapreduce.storage import is_remote

INTERRUPTED = ("mapreduce: interrupted; what committed is kept: run the same command with "
               "--resume to finish the job")
#: Script mode without -o runs in a temporary directory that is removed: nothing to resume.
INTERRUPTED_NOT_KEPT = ("mapreduce: interrupted; nothing is kept: without -o the job ran in a "
                        "temporary directory, now removed (with -o DIR, what committed is kept "
                        "and --resume finishes the job)")

#: Below this a --sort-buffer is accepted but warned about: every spill's fixed costs (a run
#: file, its index, a combiner pass over few records, one more run for every merge) swamp
#: the work.  Word count over 8 MiB of Zipf text (100,000 words), one worker: 64MB 3.6 s,
#: 4MB 4.4 s, 1MB 7.3 s, 256KB 8.4 s, 64KB 11 s, 16KB 20 s, 1KB 130 s (docs/usage.md).
MIN_SORT_BUFFER = 1 << 20


def sort_buffer_warning(size: int, given: str) -> Optional[str]:
    """The warning for a sort buffer (``given``: how the user spelled the option and value)
    below MIN_SORT_BUFFER, or None.  Not an error: a tiny buffer is legitimate, e.g. to
    exercise the spill and merge path on small data."""
    if size >= MIN_SORT_BUFFER:
        return None
    return (f"{given} is below 1MB: the map tasks spill every {size} bytes and the "
            "job runs many times slower (the default is 64MB)")


def _add_run_options(parser: argparse.ArgumentParser, output_required: bool) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="input files, directories (recursive; names starting with _ or . "
                             "are skipped) or glob patterns")
    parser.add_argument("-o", "--output", required=output_required, metavar="OUT",
                        help="output directory (part-NNNNN files, _job.json, _SUCCESS)"
                        + ("" if output_required else "; without it the output is printed "
                           "and nothing is kept (an interrupted job cannot be resumed)"))
    add_run_options(parser)  # every option of the table (mapreduce.options)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print no progress, warnings or summary (errors still go to "
                             "stderr)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print the framework's decisions: the split plan, each "
                             "task's spills and merge passes, retries, map re-runs")
    parser.add_argument("--report", action="store_true",
                        help="write OUT/_report.html (task timeline, counters) at the end")


class _Version(argparse.Action):
    """``--version``: one line, not wrapped as argparse's own version action wraps it."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(version_text())
        parser.exit()


def build_parser(job_class: Optional[type[Job]] = None) -> argparse.ArgumentParser:
    """The CLI's parser; with ``job_class``, ``run`` also takes that job's own options."""
    # allow_abbrev=False on every parser: a prefix such as --overwrit or --reducer must not
    # silently stand for an option (a typo would pick an option, or stop doing so when a
    # longer name is added later).
    parser = argparse.ArgumentParser(
        prog="python -m mapreduce", allow_abbrev=False,
        description="A MapReduce framework for Python whose shuffle goes through disk.")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show the version and which core (C or Python) runs, and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run a job", allow_abbrev=False,
                         description="Run JOB (a Python file defining a mapreduce.Job "
                                     "subclass) over INPUT and write its output to OUT.")
    run.add_argument("job", metavar="JOB", help="path of the job file")
    run.add_argument("--job", dest="job_name", metavar="NAME",
                     help="which Job subclass to run when the file defines several")
    _add_run_options(run, output_required=True)
    if job_class is not None:
        run.set_defaults(job_option_dests=add_job_options(run, job_class))
    from mapreduce.bench import add_bench_parser  # lazy: bench is in the same (entry) layer
    add_bench_parser(sub)
    from mapreduce.report import add_report_parser  # lazy, as bench
    add_report_parser(sub)
    return parser


def add_job_options(parser: argparse.ArgumentParser, job_class: type[Job]) -> list[str]:
    """Add the job's own options (``configure_args``) as an argument group; their dests."""
    group = parser.add_argument_group(f"options of the job ({job_class.__name__})")
    before = len(group._group_actions)
    try:
        job_class.declare_options(group)  # type: ignore[arg-type]
    except argparse.ArgumentError as exc:
        raise JobDefinitionError(f"{job_class.__name__}.configure_args: {exc} (the name is "
                                 "taken by a framework option; pick another)") from None
    return [a.dest for a in group._group_actions[before:]]


class _OptionsParser(argparse.ArgumentParser):
    """Checks ``job_options={...}`` (the Python API): argparse's complaints are UsageErrors,
    not a usage message and ``SystemExit``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: job_options: {message}")


def job_options_from_dict(job_class: type[Job], given: dict[str, Any]) -> dict[str, Any]:
    """The job's options from the API's ``job_options`` dict, checked against the job's own
    parser (``configure_args``) as the command line is: an unknown name, a missing required
    option, a string its ``type`` rejects or a value not among its ``choices`` is a
    UsageError naming the option.  Strings are converted by the option's ``type`` (``"5"``
    for ``type=int`` gives 5), other values are taken as given; every option is in the
    result, with its default when not given.  Runs in the coordinator, before any task."""
    name = job_class.__name__
    parser = _OptionsParser(prog=name, add_help=False, allow_abbrev=False, exit_on_error=False)
    add_job_options(parser, job_class)
    actions = {a.dest: a for a in parser._actions}
    unknown = sorted(set(given) - set(actions))
    if unknown:
        raise UsageError(f"{name} has no option {', '.join(unknown)} (its options: "
                         f"{', '.join(sorted(actions)) or 'none'})")
    for action in parser._actions:
        if action.required and action.dest not in given:
            raise UsageError(f"{name} needs job_options[{action.dest!r}] (the job's required "
                             f"option {'/'.join(action.option_strings)})")
        action.required = False  # checked just now; the dict's other values are not argv
    argv: list[str] = []
    direct: dict[str, Any] = {}
    for dest, value in given.items():
        action = actions[dest]
        if isinstance(value, str) and action.nargs is None and action.option_strings:
            # --long=VALUE or -sVALUE: a value starting with "-" is never taken for an option
            flag = max(action.option_strings, key=len)
            argv.append(f"{flag}={value}" if flag.startswith("--") else flag + value)
        else:
            direct[dest] = value
    try:
        options = vars(parser.parse_args(argv))
    except argparse.ArgumentError as exc:
        raise UsageError(f"{name}: job_options[{_dest_of(exc, actions)!r}]: {exc.message}"
                         ) from None
    for dest, value in direct.items():
        choices = actions[dest].choices
        values = value if isinstance(value, (list, tuple)) and actions[dest].nargs not in \
            (None, "?") else [value]
        bad = [v for v in values if choices is not None and v not in choices]
        if bad:
            raise UsageError(f"{name}: job_options[{dest!r}]: invalid choice: {bad[0]!r} "
                             f"(choose from {', '.join(map(repr, choices))})")
        options[dest] = value
    return options


def _dest_of(exc: argparse.ArgumentError, actions: dict[str, argparse.Action]) -> str:
    for dest, action in actions.items():
        if exc.argument_name in action.option_strings or exc.argument_name == dest:
            return dest
    return str(exc.argument_name)


def _config(args: argparse.Namespace, output_dir: str) -> JobConfig:
    config = config_from_args(args, output_dir, {
        dest: getattr(args, dest) for dest in getattr(args, "job_option_dests", [])})
    warning = sort_buffer_warning(config.sort_buffer, f"--sort-buffer {args.sort_buffer}")
    if warning and not args.quiet:  # a courtesy, like progress: a timestamped line like theirs
        _say(f"{time.strftime('%Y-%m-%d %H:%M:%S')} mapreduce: warning: {warning}")
    return config


def _say(text: str) -> None:
    """A line on stderr that cannot fail: with stderr closed (``2>&1 | head``) the job's
    exit status must still be the job's result."""
    print(text, file=courteous(), flush=True)


def _report_error(exc: MapReduceError) -> int:
    _say(f"mapreduce: error: {exc}")
    detail = getattr(exc, "detail", "")
    if detail:
        _say(detail.rstrip("\n"))
    return exc.exit_status


def _run(job_class: type[Job], job_ref, args: argparse.Namespace) -> int:
    listener = make_progress(quiet=args.quiet, verbose=args.verbose)
    if args.output:
        if args.report and is_remote(args.output):
            raise UsageError(f"--report writes _report.html next to the output, which is in a "
                             f"remote store ({args.output}): run python -m mapreduce report "
                             "on a local copy of its _job.json instead")
        result = run_job(job_class, job_ref, _config(args, args.output), listener)
        if args.report:
            from mapreduce.report import write_report  # same (entry) layer, as bench
            write_report(result.output_dir)
        if not args.quiet:
            _say(format_summary(result.summary, result.wall_seconds))
        return 0
    if args.report:
        raise UsageError("--report needs -o OUT: the report is written next to the output")
    if args.output_compression:
        raise UsageError("--output-compression needs -o OUT: without it the output is "
                         "printed, as text")
    if args.resume:
        raise UsageError("--resume needs -o OUT: without it the job runs in a temporary "
                         "directory that is not kept, so there is nothing to resume")
    # No -o: run into a temporary directory and print the output pairs (mrjob's habit).
    tmp = tempfile.mkdtemp(prefix="mapreduce-")
    try:
        try:
            result = run_job(job_class, job_ref, _config(args, os.path.join(tmp, "out")),
                             listener)
        except MapReduceError as exc:
            if keep_only_logs(tmp):  # the error names an attempt log: keep it readable
                note = (f"mapreduce: the attempt logs are kept in {tmp}; nothing else is "
                        "(no -o given): delete it when done")
                detail = getattr(exc, "detail", "")
                exc.detail = f"{detail.rstrip()}\n{note}" if detail else note  # type: ignore
                tmp = ""
            raise
        except KeyboardInterrupt:
            _say(INTERRUPTED_NOT_KEPT)
            return 130
        parts = sorted(f for f in os.listdir(result.output_dir) if f.startswith("part-"))
        out = sys.stdout.buffer
        try:
            for name in parts:
                with open(os.path.join(result.output_dir, name), "rb") as f:
                    shutil.copyfileobj(f, out)
            out.flush()
        except BrokenPipeError:  # e.g. `python jobs/wordcount.py data | head`: fine, stop
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def keep_only_logs(directory: str) -> list[str]:
    """Delete everything under ``directory`` except attempt logs (``*.log``), and the
    directory itself when there are none; return the logs kept.

    For a failed run whose output went to a temporary directory (script mode without -o,
    ``run()`` without ``output=``): its error names the attempt log to read, but nothing
    else there can ever be used (no -o, no --resume), and spills may be large.
    """
    kept = []
    for root, dirs, files in os.walk(directory, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".log"):
                kept.append(path)
            else:
                try:
                    os.remove(path)
                except OSError:
                    pass
        for name in dirs:
            try:
                os.rmdir(os.path.join(root, name))  # fails, as it should, if it holds a log
            except OSError:
                pass
    if not kept:
        shutil.rmtree(directory, ignore_errors=True)
    return sorted(kept)


def _job_named_in(argv: Sequence[str]
                  ) -> tuple[Optional[tuple[type[Job], JobRef]], Optional[MapReduceError]]:
    """The job a ``run`` command line names, loaded early so that its own options can be
    parsed (and listed by --help), or the error loading it raised.  This pre-parse does
    not know which options take values, so the path it found may not be the job's: the
    caller reports the error only once the full parse agrees on the path."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("command", nargs="?")
    pre.add_argument("job", nargs="?")
    pre.add_argument("--job", dest="job_name")
    known, _ = pre.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    if known.command != "run" or not known.job:
        return None, None
    try:
        return load_job_class(known.job, known.job_name), None
    except MapReduceError as exc:
        exc.job_path = known.job  # type: ignore[attr-defined]
        return None, exc


def _load_error_first(parser: argparse.ArgumentParser, argv: list[str],
                      error: MapReduceError) -> bool:
    """Does the command line name the job file that failed to load?  Then its load error
    is the one to report: the job's own options on the line are unknown to a parser
    without the job, and "unrecognized arguments" would hide the real problem (an import
    error, a syntax error, a missing file)."""
    try:
        args, _ = parser.parse_known_args(argv)
    except SystemExit:
        return False
    return getattr(args, "job", None) == getattr(error, "job_path", None)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        loaded, load_error = _job_named_in(argv)
        parser = build_parser(loaded[0] if loaded else None)
    except MapReduceError as exc:
        return _report_error(exc)
    if load_error is not None and "-h" not in argv and "--help" not in argv and \
            _load_error_first(build_parser(None), argv, load_error):
        return _report_error(load_error)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "bench":
            from mapreduce.bench import run_bench_command
            return run_bench_command(args)
        if args.command == "report":
            from mapreduce.report import run_report_command
            return run_report_command(args)
        job_class, job_ref = loaded or load_job_class(args.job, args.job_name)
        return _run(job_class, job_ref, args)
    except MapReduceError as exc:
        return _report_error(exc)
    except KeyboardInterrupt:
        _say(INTERRUPTED)
        return 130


def run_job_class_main(job_class: type[Job], argv: Optional[Sequence[str]] = None) -> int:
    """``MyJob.run()``: the ``run`` options without a job path; prints output without -o."""
    parser = argparse.ArgumentParser(prog=os.path.basename(sys.argv[0]), allow_abbrev=False,
                                     description=(job_class.__doc__ or "").strip() or None)
    _add_run_options(parser, output_required=False)
    try:
        dests = add_job_options(parser, job_class)
    except MapReduceError as exc:
        return _report_error(exc)
    args = parser.parse_args(argv)
    args.job_option_dests = dests
    try:
        return _run(job_class, register_job_class(job_class), args)
    except MapReduceError as exc:
        return _report_error(exc)
    except KeyboardInterrupt:
        _say(INTERRUPTED)
        return 130


__all__ = ["main", "run_job_class_main", "build_parser", "job_options_from_dict",
           "keep_only_logs"]
