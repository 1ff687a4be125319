"""What a user sees while and after a job runs: progress, --verbose, --quiet, the summary,
and where task output goes.  Every test runs the real CLI in a subprocess; a terminal is a
real pseudo-terminal (``pty``), not a flag.  Expected numbers come from ``_job.json`` and
from plain-Python word counts, never from the display code itself."""
from __future__ import annotations

import collections
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample_data")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
CHATTY = os.path.join(REPO, "tests", "jobs", "chatty_flaky.py")
WORD_RE = re.compile(r"[\w']+")
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d mapreduce: "
TIMEOUT = 120


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env.pop("MAPREDUCE_PROGRESS", None)
    env.update(extra)
    return env


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "mapreduce", "run", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
                          env=_env(**env))
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def summary_of(out) -> dict:
    with open(os.path.join(out, "_job.json")) as f:
        return json.load(f)


def words_file(path, lines=300) -> collections.Counter:
    text = "".join(f"alpha beta w{i % 23} gamma{i % 7}\n" for i in range(lines))
    path.write_text(text)
    return collections.Counter(w.lower() for w in WORD_RE.findall(text))


def test_lines_when_not_a_terminal(tmp_path):
    out = tmp_path / "out"
    # --split-size: several map tasks (sample_data's 4 files fit in one split, packed)
    proc = run_cli(WORDCOUNT, SAMPLE, "-o", out, "--reducers", "2", "--split-size", "64KB")
    assert proc.returncode == 0
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr   # no terminal codes
    progress, _, summary = proc.stderr.partition("mapreduce: job WordCount succeeded")
    lines = progress.splitlines()
    assert lines and all(re.match(STAMP, line) for line in lines), lines
    s = summary_of(out)
    n_maps = sum(1 for t in s["tasks"] if t["kind"] == "map")
    assert any(re.search(rf"step 0 map: done, {n_maps} tasks in", line) for line in lines)
    assert any("step 0 reduce: done, 2 tasks in" in line for line in lines)
    assert proc.stdout == ""                       # -o: nothing on stdout


def test_bar_on_a_terminal(tmp_path):
    """Under a real pseudo-terminal the display is a tqdm bar per phase."""
    out = tmp_path / "out"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120x40
    proc = subprocess.Popen([sys.executable, "-m", "mapreduce", "run", WORDCOUNT, SAMPLE,
                             "-o", str(out), "--reducers", "3", "--split-size", "64KB"],
                            cwd=REPO, env=_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], TIMEOUT)
        if not ready:
            proc.kill()
            pytest.fail("no output from the job on its terminal")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(TIMEOUT) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    n_maps = sum(1 for t in summary_of(out)["tasks"] if t["kind"] == "map")
    assert "\r" in screen                                       # redrawn in place
    assert re.search(rf"step 0 map: 100%.*{n_maps}/{n_maps}", screen), screen
    assert re.search(r"step 0 reduce: 100%.*3/3", screen), screen
    assert "rec/s" in screen and "running" in screen
    assert "mapreduce: job WordCount succeeded" in screen


def test_quiet_prints_nothing_on_success(tmp_path):
    proc = run_cli(WORDCOUNT, SAMPLE, "-o", tmp_path / "out", "-q")
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""


def test_summary_groups_counters_and_says_where_things_are(tmp_path):
    src = tmp_path / "in.txt"
    expected = words_file(src)
    out = tmp_path / "out"
    proc = run_cli(CHATTY, src, "-o", out)
    assert proc.returncode == 0
    summary = proc.stderr[proc.stderr.index("mapreduce: job ChattyFlaky succeeded"):]
    s = summary_of(out)
    assert f"output:  {out} (2 part files" in summary
    assert f"logs:    {out}/_logs (" in summary
    assert f"python -m mapreduce report {out}" in summary
    for phase in s["phases"]:
        noun = "task " if phase["tasks"] == 1 else "tasks"
        assert re.search(rf"{phase['phase']}\s+{phase['tasks']} {noun}", summary)
    # Every counter of _job.json, under its group, framework first.
    lines = summary.splitlines()
    counters = lines[lines.index(f"  counters: {sum(map(len, s['counters'].values()))}") + 1:]
    groups = [line.strip() for line in counters if not line.startswith("      ")]
    assert groups[0] == "framework" and set(groups) == set(s["counters"])
    for group, values in s["counters"].items():
        for name, value in values.items():
            assert f"      {name}={value}" in lines
    assert s["counters"]["framework"]["REDUCE_OUTPUT_RECORDS"] == len(expected)


def test_task_prints_and_logging_go_to_attempt_logs(tmp_path):
    src = tmp_path / "in.txt"
    expected = words_file(src)
    out = tmp_path / "out"
    proc = run_cli(CHATTY, src, "-o", out, "--reducers", "2")
    assert proc.returncode == 0
    assert "CHATTER" not in proc.stderr + proc.stdout
    s = summary_of(out)
    logs = {t["log"] for t in s["tasks"]}
    assert all(os.path.dirname(p) == str(out / "_logs") for p in logs)
    text = {p: open(p).read() for p in logs}
    for t in s["tasks"]:
        if t["kind"] == "map":
            assert text[t["log"]].count("CHATTER-PRINT from mapper") == t["records_in"]
            assert text[t["log"]].count("CHATTER-LOG from mapper") == t["records_in"]
        else:
            assert text[t["log"]].count("CHATTER-PRINT from reducer") == t["records_out"]
    pairs = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("part-"):
            for line in open(out / name):
                key, value = line.rstrip("\n").split("\t")
                pairs[json.loads(key)] = json.loads(value)
    assert pairs == dict(expected)                 # and nothing else in the output
    assert not os.path.exists(out / "_temporary")  # the logs outlived the work directory


def test_printed_output_is_not_mixed_with_chatter(tmp_path):
    """Without -o the pairs go to stdout: prints and progress must stay out of it."""
    src = tmp_path / "in.txt"
    expected = words_file(src)
    proc = subprocess.run([sys.executable, CHATTY, str(src)], cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT, env=_env())
    assert proc.returncode == 0, proc.stderr
    pairs = [line.split("\t") for line in proc.stdout.splitlines()]
    assert {json.loads(k): json.loads(v) for k, v in pairs} == dict(expected)
    assert len(pairs) == len(expected)


def test_verbose_shows_decisions_and_retries(tmp_path):
    src = tmp_path / "in.txt"
    words_file(src, 2000)
    out = tmp_path / "out"
    proc = run_cli(CHATTY, src, "-o", out, "-v", "--split-size", "16KB",
                   FLAKY_MARKER=str(tmp_path / "marker"))
    assert proc.returncode == 0
    s = summary_of(out)
    maps = [t for t in s["tasks"] if t["kind"] == "map"]
    committed = [t for t in s["tasks"] if t["status"] == "committed"]
    failed = [t for t in s["tasks"] if t["status"] == "failed"]
    assert len(failed) == 1 and len({t["index"] for t in maps}) > 1
    err = proc.stderr
    assert re.search(rf"{STAMP}planned {len(maps) - 1} map tasks over 1 input file "
                     rf"\({src.stat().st_size} bytes; split size 16384 bytes\)", err)
    commits = re.findall(r"step 0 (map|reduce) task (\d+) attempt (\S+) committed in .*: "
                         r"(\d+) records in, (\d+) out, (\d+) spills?", err)
    assert sorted((k, int(i), a, int(r)) for k, i, a, r, _, _ in commits) == \
        sorted((t["kind"], t["index"], t["attempt"], t["records_in"]) for t in committed)
    f = failed[0]
    assert f"step 0 map task {f['index']} attempt {f['attempt']} failed: " in err
    assert "flaky: the first map attempt fails on purpose" in err
    assert f"retrying step 0 map task {f['index']}: attempt 2 of at most 4" in err
    assert f"committed 2 part files to {out}" in err


def test_failed_attempt_shown_without_verbose(tmp_path):
    src = tmp_path / "in.txt"
    words_file(src)
    proc = run_cli(CHATTY, src, "-o", tmp_path / "out",
                   FLAKY_MARKER=str(tmp_path / "marker"))
    assert proc.returncode == 0
    failed_lines = [line for line in proc.stderr.splitlines() if " failed: " in line]
    assert len(failed_lines) == 1 and re.match(STAMP, failed_lines[0])
    assert "_logs/" in failed_lines[0] or "/logs/" in failed_lines[0]
    assert "retrying" not in proc.stderr          # decisions are --verbose's business


def test_report_flag_writes_the_page(tmp_path):
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, SAMPLE, "-o", out, "--report")
    assert proc.returncode == 0
    assert (out / "_report.html").exists()
    assert f"report:  {out}/_report.html" in proc.stderr
    # A job file run directly prints its output instead of writing OUT: no report then.
    proc = subprocess.run([sys.executable, WORDCOUNT, SAMPLE, "--report"], cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "mapreduce: error: --report needs -o OUT: the report is written next to the output"]
