"""The option table (mapreduce/options.py) drives the command line, the Python API, ``bench``
and the runners' refusals, so they cannot disagree.  Every test iterates over the table:

* the ``run`` command line has every option, with its flag, type and default, and a value
  typed on the command line means what the same value means as a keyword of ``mapreduce.run``;
* a bad value is refused by both with the same one-line message, differing only in how the
  option is spelled (``--task-timeout`` / ``task_timeout``), before anything is written; so
  is a bad value given to ``bench`` for the options it takes;
* an option a runner does not take is refused at start, naming the option and the runner;
* docs/cli.md is what ``python docs/gen_cli_reference.py`` writes.

The command line is exercised through its entry point (``mapreduce.cli.main``, what
``python -m mapreduce`` calls) with its stderr captured, in this process, so the table can be
walked quickly; tests/test_messages.py runs the real ``python -m mapreduce`` for the messages.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import fields

import pytest

import mapreduce
from mapreduce.api import make_config
from mapreduce.cli import build_parser, main
from mapreduce.errors import UsageError
from mapreduce.loader import load_job_class
from mapreduce.options import (BY_NAME, OPTIONS, RUNNER_NAMES, JobConfig, Option,
                               config_from_args)
from mapreduce.runners import REGISTRY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
SAMPLE = os.path.join(REPO, "sample_data")
#: The options a command line can give (``dask_client`` is Python-only: it has no flag).
CLI_OPTIONS = [o for o in OPTIONS if o.flag]
BENCH_OPTIONS = ("workers", "reducers", "sort_buffer", "merge_factor", "split_size")


# --- values per kind of option --------------------------------------------------------------------
def good_value(option: Option) -> tuple[str, object]:
    """A value other than the default, as typed on the command line, and what it means."""
    if option.kind == "int":
        return "3", 3
    if option.kind == "size":
        return "2MB", 2 << 20
    if option.kind == "seconds":
        return "2.5", 2.5
    if option.kind == "choice":
        value = [c for c in option.choices if c != option.default][-1]
        return value, value
    if option.kind == "text":
        return "somewhere", "somewhere"
    if option.kind == "mapping":  # KEY=VALUE, the VALUE read as JSON when it is JSON
        return "retries=3", {"retries": 3}
    if option.kind == "paths":  # repeated, and comma-separated as mrjob's --files
        return "a.txt,b.txt#c.txt", ["a.txt", "b.txt#c.txt"]
    if option.kind == "commands":  # repeated; a comma is part of the command
        return "echo a,b", ["echo a,b"]
    if option.kind == "env":  # KEY=VALUE, the VALUE a string as a shell sets it
        return "LANG_X=a=5", {"LANG_X": "a=5"}
    assert option.kind == "flag", option
    return "", True


def bad_values(option: Option) -> list[str]:
    """Values the command line and the API must both refuse (as typed: strings)."""
    return {"int": [str((option.minimum or 0) - 1), "many"],
            "size": ["0", "lots"],
            "seconds": ["-5", "0", "soon", "inf"],
            "choice": ["bogus"],
            "text": ["", "  "],
            "mapping": ["no-equals-sign", "=value", "bad key=1"],
            "paths": ["", "a.txt,,b.txt"],
            "commands": ["", "  "],
            "env": ["no-equals-sign", "=value", "bad key=1", "1X=2"],
            "flag": []}[option.kind]


def runner_for(option: Option) -> str:
    """A runner that takes ``option`` (the local runner if every runner does)."""
    return option.only[0] if option.only else "local"


def argv_for(option: Option, text: str) -> list[str]:
    return [option.flag] if option.kind == "flag" else [option.flag, text]


def cli_error(capsys, argv: list[str]) -> tuple[int, list[str]]:
    """Exit status and stderr lines of ``python -m mapreduce ARGV`` (its entry point)."""
    status = main(argv)
    return status, capsys.readouterr().err.splitlines()


# --- the parser follows the table ----------------------------------------------------------------
def _run_actions() -> dict[str, argparse.Action]:
    parser = build_parser()
    run = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in run.choices["run"]._actions}


@pytest.mark.parametrize("option", CLI_OPTIONS, ids=lambda o: o.name)
def test_every_option_is_on_the_command_line_with_its_flag_type_and_default(option, tmp_path):
    action = _run_actions()[option.name]
    assert action.option_strings == [option.flag]
    assert action.help == option.help
    if option.kind == "flag":
        assert isinstance(action, argparse._StoreTrueAction)
    # nothing given: the table's default (JobConfig's field default is the table's too)
    defaults = {f.name: f.default for f in fields(JobConfig)}
    assert defaults[option.name] == option.default
    out = str(tmp_path / "out")
    parser = build_parser()
    plain = config_from_args(parser.parse_args(["run", WORDCOUNT, SAMPLE, "-o", out]), out, {})
    if option.name == "workers":
        assert plain.workers == (os.cpu_count() or 1)   # the documented default
    else:
        assert getattr(plain, option.name) == option.default
    # a value given: parsed to its type, and the same as the keyword's from Python
    text, meaning = good_value(option)
    extra = [] if option.name == "runner" or not option.only else \
        ["--runner", runner_for(option)]
    args = parser.parse_args(["run", WORDCOUNT, SAMPLE, "-o", out, *extra,
                              *argv_for(option, text)])
    from_cli = getattr(config_from_args(args, out, {}), option.name)
    assert from_cli == meaning and type(from_cli) is type(meaning)
    keywords = {option.name: meaning}
    if extra:
        keywords["runner"] = runner_for(option)
    from_api = getattr(make_config(load_job_class(WORDCOUNT)[0], SAMPLE, out, **keywords),
                       option.name)
    assert from_api == from_cli and type(from_api) is type(from_cli)
    assert not os.path.exists(out)


def test_the_table_lists_the_registered_runners():
    assert RUNNER_NAMES == tuple(REGISTRY)
    assert BY_NAME["runner"].choices == RUNNER_NAMES


# --- bad values: the same message from the CLI and the API ----------------------------------------
BAD = [pytest.param(o, v, id=f"{o.name}={v!r}") for o in CLI_OPTIONS for v in bad_values(o)]


@pytest.mark.parametrize("option,value", BAD)
def test_a_bad_value_gets_the_same_one_line_message_from_cli_and_api(option, value, tmp_path,
                                                                      capsys):
    out = tmp_path / "out"
    with pytest.raises(UsageError) as info:
        mapreduce.run(WORDCOUNT, SAMPLE, str(out), **{option.name: value})
    api = str(info.value)
    assert api.startswith(f"{option.name}: ") and "\n" not in api
    assert option.flag not in api
    status, lines = cli_error(capsys, ["run", WORDCOUNT, SAMPLE, "-o", str(out),
                                       option.flag, value])
    assert status == 2
    assert lines == [f"mapreduce: error: {option.flag}: " + api[len(option.name) + 2:]]
    assert not out.exists()


@pytest.mark.parametrize("option,value", [p for p in BAD if p.values[0].name in BENCH_OPTIONS])
def test_bench_refuses_a_bad_value_as_run_does(option, value, tmp_path, capsys):
    status, run_lines = cli_error(capsys, ["run", WORDCOUNT, SAMPLE, "-o", str(tmp_path / "o"),
                                           option.flag, value])
    assert status == 2
    status, bench_lines = cli_error(capsys, ["bench", WORDCOUNT, SAMPLE, "--repeat", "1",
                                             option.flag, value])
    assert status == 2
    assert bench_lines == run_lines


def test_bench_takes_exactly_its_options_from_the_table():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bench = {a.dest: a for a in sub.choices["bench"]._actions}
    for option in CLI_OPTIONS:
        if option.name in BENCH_OPTIONS:
            assert bench[option.name].option_strings == [option.flag]
            assert bench[option.name].help == option.help
        else:
            assert option.name not in bench, f"bench takes {option.flag}"


def test_the_examples_of_the_issue(tmp_path):
    """Once reported as the mapper raising ValueError (retried four times), and as every
    attempt timing out: now refused at once, naming the keyword."""
    out = tmp_path / "out"
    with pytest.raises(UsageError) as info:
        mapreduce.run(WORDCOUNT, SAMPLE, str(out), decode_errors="bogus")
    assert str(info.value) == "decode_errors: must be one of strict, replace (got 'bogus')"
    with pytest.raises(UsageError) as info:
        mapreduce.run(WORDCOUNT, SAMPLE, str(out), task_timeout=-5)
    assert str(info.value) == "task_timeout: must be a positive number of seconds (got -5)"
    with pytest.raises(UsageError, match=r"^overwrite: expected True or False, got 'yes'$"):
        mapreduce.run(WORDCOUNT, SAMPLE, str(out), overwrite="yes")
    with pytest.raises(UsageError, match=r"^unknown option reducer \(options: "):
        mapreduce.run(WORDCOUNT, SAMPLE, str(out), reducer=2)
    assert not out.exists()


# --- runners refuse what they do not take ---------------------------------------------------------
REFUSED = [pytest.param(o, r, id=f"{o.name}-{r}") for o in CLI_OPTIONS if o.only
           for r in RUNNER_NAMES if r not in o.only]


@pytest.mark.parametrize("option,runner", REFUSED)
def test_an_option_a_runner_does_not_take_is_refused_at_start(option, runner, tmp_path, capsys):
    out = tmp_path / "out"
    text, meaning = good_value(option)
    with pytest.raises(UsageError) as info:
        mapreduce.run(WORDCOUNT, SAMPLE, str(out), runner=runner, **{option.name: meaning})
    assert str(info.value) == (f"{option.name} does not apply to runner {runner} "
                               f"({option.why_not})")
    status, lines = cli_error(capsys, ["run", WORDCOUNT, SAMPLE, "-o", str(out),
                                       "--runner", runner, *argv_for(option, text)])
    assert status == 2
    assert lines == [f"mapreduce: error: {option.flag} does not apply to --runner {runner} "
                     f"({option.why_not})"]
    assert not out.exists()


def test_every_runner_refuses_something_or_takes_everything():
    """The refusals are the table's: each runner-specific option names why it is not taken."""
    for option in CLI_OPTIONS:
        assert set(option.only) <= set(RUNNER_NAMES), option
        assert bool(option.only) == bool(option.why_not), option


# --- the reference page ---------------------------------------------------------------------------
def test_docs_cli_md_is_what_the_generator_writes():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "docs", "gen_cli_reference.py"),
                           "--check"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(os.path.join(REPO, "docs", "cli.md"), encoding="utf-8") as f:
        page = f.read()
    for option in CLI_OPTIONS:
        assert option.flag in page, option.flag
