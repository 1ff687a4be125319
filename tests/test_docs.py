"""The docs cannot drift from the code.

* docs/cli.md is exactly what docs/gen_cli_reference.py generates from the real parsers.
* Every option the CLI's parsers define is in docs/cli.md, and every ``--option`` that
  docs/usage.md and docs/tutorial.md mention exists (or is a job's or script's own option,
  listed below).
* The tutorial's jobs (docs/tutorial/) run on the tutorial's generated data and agree with a
  plain-Python count.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import re
import subprocess
import sys

import pytest

import mapreduce
from mapreduce.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
TUTORIAL = os.path.join(DOCS, "tutorial")

#: ``--options`` the docs mention that belong to something other than the mapreduce CLI.
NOT_CLI_OPTIONS = {
    "usage.md": {
        "--top",          # jobs/top_words.py's own option (configure_args)
        "--write-spec",   # jobs/teragen.py and jobs/textgen.py write their spec files
        "--rows",         # jobs/teragen.py --write-spec
        "--tasks",        # jobs/teragen.py / jobs/textgen.py --write-spec
        "--lines",        # jobs/textgen.py --write-spec
        "--overwrit",     # an option prefix, shown as refused (not an abbreviation)
        "--reducer",      # an option prefix, shown as refused (not an abbreviation)
    },
    "tutorial.md": {
        "--lines",        # docs/tutorial/make_access_log.py
        "--malformed",    # docs/tutorial/make_access_log.py
        "--seed",         # docs/tutorial/make_access_log.py
        "--preserve-status",  # GNU timeout, to send the job a Ctrl-C
    },
}

OPTION_RE = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference",
                                                  os.path.join(DOCS, "gen_cli_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(name: str) -> str:
    with open(os.path.join(DOCS, name), encoding="utf-8") as f:
        return f.read()


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _all_cli_options() -> set[str]:
    parser = build_parser()
    options = _options(parser)
    for sub in _generator().subcommands(parser).values():
        options |= _options(sub)
    return options


# --- the reference ------------------------------------------------------------------------------

def test_cli_reference_is_up_to_date(monkeypatch):
    gen = _generator()
    written = _read("cli.md")
    made_with = gen.generated_with(written)
    running = "%d.%d" % sys.version_info[:2]
    if made_with != running:
        pytest.skip(f"docs/cli.md was generated with Python {made_with}; argparse lays help "
                    f"out differently on {running} (the option checks below still run)")
    monkeypatch.setenv("COLUMNS", "100")
    assert gen.render() == written, \
        "docs/cli.md differs from the CLI's --help: run python docs/gen_cli_reference.py"


def test_every_cli_option_is_in_the_reference():
    text = _read("cli.md")
    parser = build_parser()
    commands = _generator().subcommands(parser)
    assert set(commands) == {"run", "report", "bench"}
    for name, sub in commands.items():
        for action in sub._actions:
            for option in action.option_strings:
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), \
                    f"{name} {option} is not in docs/cli.md: run python docs/gen_cli_reference.py"
        assert f"## python -m mapreduce {name}" in text


@pytest.mark.parametrize("name", sorted(NOT_CLI_OPTIONS))
def test_options_in_docs_exist(name):
    known = _all_cli_options()
    mentioned = set(OPTION_RE.findall(_read(name)))
    unknown = sorted(mentioned - known - NOT_CLI_OPTIONS[name])
    assert not unknown, (f"docs/{name} mentions options the CLI does not have: {unknown} "
                         f"(a job's own option? add it to NOT_CLI_OPTIONS in tests/test_docs.py)")
    stale = sorted(NOT_CLI_OPTIONS[name] & known)
    assert not stale, f"{stale} are CLI options now: drop them from NOT_CLI_OPTIONS"


def test_tutorial_script_options_exist():
    """The whitelisted tutorial options really are make_access_log.py's."""
    out = subprocess.run([sys.executable, os.path.join(TUTORIAL, "make_access_log.py"),
                          "--help"], capture_output=True, text=True, check=True).stdout
    for option in NOT_CLI_OPTIONS["tutorial.md"] - {"--preserve-status"}:
        assert option in out


def test_readme_links_the_new_docs():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert "(docs/tutorial.md)" in readme and "(docs/cli.md)" in readme


# --- the tutorial's code ------------------------------------------------------------------------

def _plain_count(path: str) -> tuple[collections.Counter, int]:
    """(hour, status) -> requests, by plain Python; and the number of malformed lines."""
    months = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
                                         .split(), 1)}
    line_re = re.compile(r'^\S+ \S+ \S+ \[(\d\d)/(\w{3})/(\d{4}):(\d\d):\d\d:\d\d [^\]]*\] '
                         r'"[^"]*" (\d{3}) \d+$')
    counts: collections.Counter = collections.Counter()
    bad = 0
    with open(path) as f:
        for line in f:
            m = line_re.match(line.rstrip("\n"))
            if not m:
                bad += 1
                continue
            day, month, year, hour, status = m.groups()
            counts[(f"{year}-{months[month]:02d}-{day} {hour}:00", int(status))] += 1
    return counts, bad


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tutorial")
    script = os.path.join(TUTORIAL, "make_access_log.py")
    good, bad = str(d / "access.log"), str(d / "bad.log")
    subprocess.run([sys.executable, script, good, "--lines", "20000"], check=True)
    subprocess.run([sys.executable, script, bad, "--lines", "20000", "--malformed", "3"],
                   check=True)
    return good, bad


def test_tutorial_job_matches_plain_python(logs):
    good, _ = logs
    expected, bad = _plain_count(good)
    assert bad == 0 and sum(expected.values()) == 20000
    with mapreduce.run(os.path.join(TUTORIAL, "status_by_hour.py"), good, workers=2,
                       split_size="256KB", progress=False) as result:
        got = {tuple(key): n for key, n in result.pairs()}
        assert got == dict(expected)
        by_class = collections.Counter()
        for (_, status), n in expected.items():
            by_class[f"{status // 100}xx"] += n
        assert result.counters["status"] == dict(by_class)
        assert result.counter("framework", "MAP_INPUT_RECORDS") == 20000
        logs_dir = os.path.join(result.output_dir, "_logs")
        printed = "".join(open(os.path.join(logs_dir, f)).read() for f in os.listdir(logs_dir))
        assert "read " in printed                                           # mapper_final prints
        if any(status == 503 for _, status in expected):                   # the mapper's logging
            assert "WARNING status_by_hour: 503 at" in printed


def test_tutorial_failing_and_fixed_jobs(logs):
    _, bad_log = logs
    expected, bad = _plain_count(bad_log)
    assert bad == 3
    with pytest.raises(mapreduce.MapReduceError,
                       match=r"mapper raised (IndexError|ValueError|KeyError).*line \d+"):
        mapreduce.run(os.path.join(TUTORIAL, "status_by_hour.py"), bad_log, workers=2,
                      max_attempts=1, progress=False)
    with mapreduce.run(os.path.join(TUTORIAL, "status_by_hour.py"), bad_log, workers=2,
                       skip_bad_records=3, progress=False) as skipped:
        assert {tuple(k): n for k, n in skipped.pairs()} == dict(expected)
        assert skipped.counter("framework", "SKIPPED_RECORDS") == 3
    with mapreduce.run(os.path.join(TUTORIAL, "status_by_hour_guarded.py"), bad_log, workers=2,
                       progress=False) as guarded:
        assert {tuple(k): n for k, n in guarded.pairs()} == dict(expected)
        assert guarded.counter("status_by_hour", "malformed lines") == 3


def test_output_directories_the_docs_create_are_ignored_by_git():
    """Running README's and docs/examples.md's commands from the repository's root must not
    leave untracked output directories for `git status` to list."""
    if not os.path.isdir(os.path.join(ROOT, ".git")) and \
            not os.path.isfile(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout")
    outputs = set()
    for name in ("examples.md", os.path.join("..", "README.md")):
        # real names only, not placeholders such as OUT
        outputs |= set(re.findall(r"python -m mapreduce run \S+ .*?-o ([a-z][\w-]*)\b",
                                  _read(name)))
    assert {"wc-out", "grid", "ranks", "sessions", "join-left"} <= outputs, outputs
    paths = [f"{out.rstrip('/')}/part-00000" for out in sorted(outputs)]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT,
                          capture_output=True, text=True)
    ignored = set(proc.stdout.split())
    assert ignored == set(paths), f"not ignored by .gitignore: {sorted(set(paths) - ignored)}"
