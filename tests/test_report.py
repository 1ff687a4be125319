"""The job report page (``mapreduce/report.py``) and ``python -m mapreduce report``.

Fast tests (the default run) build real ``_job.json`` files by running real jobs in
subprocesses: word count over ``sample_data/`` with 2 workers, the two-step top-words job,
and a word count whose first map attempt raises (so one task has a failed attempt and a
retry), written in a directory whose name holds ``&``, ``<`` and a quote and counting into a
user counter group named ``<script>alert(1)</script>``.  They check the page's markup: one
timeline bar per attempt in ``_job.json`` (``<rect data-attempt=...>``), the failed attempt and
its retry marked, counters and configuration present, well-formed (``html.parser``), nothing
fetched from elsewhere, hostile strings escaped, summaries with missing fields or no tasks,
and the CLI's one-line errors.

The browser test (``python -m pytest -m browser``; not in the default run) renders the page in
headless Chromium to a PNG, decodes it with the small decoder below (zlib + NumPy, already a
test dependency) and checks the pixels: the plot area has the size the markup gives it (no
scaling), every bar's exact colour is inside that bar's box, in proportion to its area, and
bar colours inside the plot area appear nowhere but on the bars.  Without Chromium it skips,
unless ``MAPREDUCE_REQUIRE_BROWSER=1`` (CI), where it fails.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from typing import Optional

import numpy as np
import pytest

from mapreduce import cli, report
from mapreduce.inputs import expand_inputs
from mapreduce.report import (FAILED_COLOR, LANE_COLORS, MAP_COLORS, REDUCE_COLORS,
                              render_report, write_report)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample_data")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
TOP_WORDS = os.path.join(REPO, "jobs", "top_words.py")
HOSTILE_COUNTER = "<script>alert(1)</script>"

#: Word count whose first map attempt to start (the one that creates the marker file) raises;
#: every other attempt, including that task's retry, runs normally.
FLAKY_JOB = '''
import os
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\\w']+")


class FlakyWordCount(Job):
    def mapper_init(self):
        try:
            fd = os.open(os.environ["REPORT_TEST_MARKER"], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return
        os.close(fd)
        raise RuntimeError("first attempt fails on purpose: <b>bold</b> & 'quoted'")

    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def reducer(self, word, counts):
        self.increment_counter("<script>alert(1)</script>", "words & \\"things\\"")
        yield word, sum(counts)
'''


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(extra)
    return env


def _run_job(job: str, out: str, *options: str, **env: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "mapreduce", "run", job, SAMPLE, "-o", out,
                           "--workers", "2", "-q", *options], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=_env(**env))
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(out, "_job.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> dict[str, str]:
    """Output directories of three real jobs: name -> OUT."""
    base = tmp_path_factory.mktemp("report-jobs")
    hostile_dir = base / "jobs & <tools> \"x\""
    hostile_dir.mkdir()
    flaky = hostile_dir / "flaky.py"
    flaky.write_text(FLAKY_JOB, encoding="utf-8")
    outs = {name: str(base / name) for name in ("wordcount", "top_words", "flaky")}
    _run_job(WORDCOUNT, outs["wordcount"])
    _run_job(TOP_WORDS, outs["top_words"])
    summary = _run_job(str(flaky), outs["flaky"], "--reducers", "3",
                       REPORT_TEST_MARKER=str(base / "marker"))
    assert [t["status"] for t in summary["tasks"]].count("failed") == 1  # the premise
    return outs


def _summary(out: str) -> dict:
    with open(os.path.join(out, "_job.json"), encoding="utf-8") as f:
        return json.load(f)


def _page(out: str) -> str:
    return render_report(_summary(out))


class _Markup(HTMLParser):
    """Collects the attempt bars and checks nesting: every non-void element is closed, in
    order (SVG elements are written either self-closed or with an end tag)."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "wbr", "area", "base", "col",
            "embed", "source", "track"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.bars: list[dict] = []
        self.tags: list[tuple[str, dict]] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def _element(self, tag: str, attrs: list) -> dict:
        a = {k: (v if v is not None else "") for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "rect" and "data-attempt" in a:
            a["_inside_svg"] = "svg" in self.stack
            self.bars.append(a)
        return a

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._element(tag, attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self._element(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _parse(page: str) -> _Markup:
    parser = _Markup()
    parser.feed(page)
    parser.close()
    return parser


# --------------------------------------------------------------------------------------------
# the page's content
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["wordcount", "top_words", "flaky"])
def test_one_timeline_bar_per_task_attempt(jobs, name):
    summary = _summary(jobs[name])
    markup = _parse(render_report(summary))
    expected = sorted((f"{t['step']}-{t['kind']}-{t['index']:05d}", t["attempt"], t["status"])
                      for t in summary["tasks"])
    found = sorted((b["data-task"], b["data-attempt"], b["data-status"]) for b in markup.bars)
    assert found == expected
    assert all(b["_inside_svg"] for b in markup.bars)
    # Every bar lies inside the plot area, whatever the job's duration.
    for b in markup.bars:
        x, w = float(b["x"]), float(b["width"])
        assert report._PLOT_X0 - 0.01 <= x and x + w <= report._PLOT_X1 + 0.01, b
    # One lane per worker pid.
    pids = {t["worker_pid"] for t in summary["tasks"]}
    page = render_report(summary)
    assert {int(p) for p in re.findall(r">worker (\d+)</text>", page)} == pids


def test_failed_attempt_and_its_retry_are_marked(jobs):
    summary = _summary(jobs["flaky"])
    failed = [t for t in summary["tasks"] if t["status"] == "failed"]
    page = render_report(summary)
    bars = _parse(page).bars
    bad = [b for b in bars if b["data-status"] == "failed"]
    assert len(bad) == 1 and "failed" in bad[0]["class"].split()
    assert bad[0]["fill"] == "url(#mr-hatch-failed)"
    assert "start" not in failed[0]  # the coordinator records no start: it is estimated
    assert "estimated" in bad[0]["class"].split()
    retries = [b for b in bars if "retry" in b["class"].split()]
    assert [(b["data-task"], b["data-status"]) for b in retries] == \
        [(bad[0]["data-task"], "committed")]
    assert page.count('class="retry-link"') == 1
    # The error message is in the task table (escaped) and in the bar's tooltip.
    assert html.escape(failed[0]["error"]) in page
    assert page.count("first attempt fails on purpose") >= 2
    assert "<b>bold</b>" not in page


def test_counters_phases_memory_and_config_are_shown(jobs):
    summary = _summary(jobs["top_words"])
    page = render_report(summary)
    for name, value in summary["counters"]["framework"].items():
        assert re.search(rf">{name}</td><td class=\"num\">{value:,}</td>", page), name
    assert page.count("<td>step ") == 4  # four phases, one row each
    for phase in ("step 0 map", "step 0 reduce", "step 1 map", "step 1 reduce"):
        assert f"<td>{phase}</td>" in page
    for colors in (MAP_COLORS, REDUCE_COLORS):  # both steps of both kinds in the chart
        assert f'fill="{colors[0]}"' in page and f'fill="{colors[1]}"' in page
    # Peak memory per worker: the largest peak_rss_bytes of each pid.
    for pid in {t["worker_pid"] for t in summary["tasks"]}:
        peak = max(t["peak_rss_bytes"] for t in summary["tasks"] if t["worker_pid"] == pid)
        assert re.search(rf"<td>worker {pid}</td>.*?{report._bytes(peak)}</td>", page)
    for text in (summary["job"]["path"], "TopWords", summary["job"]["fingerprint"],
                 "--max-attempts", "--sort-buffer", "67108864", summary["output_dir"],
                 *summary["inputs"]):
        assert html.escape(text) in page, text
    for t in summary["tasks"]:
        assert html.escape(t["log"]) in page


def test_page_is_well_formed_and_self_contained(jobs):
    seen = []
    for out in jobs.values():
        page = _page(out)
        markup = _parse(page)
        assert markup.doctype
        assert not markup.problems and not markup.stack, (markup.problems, markup.stack)
        tags = {tag for tag, _ in markup.tags}
        assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
        references = [v for _, a in markup.tags for k, v in a.items()
                      if k in ("src", "href", "xlink:href", "action", "srcset")]
        references += re.findall(r"url\(\s*['\"]?([^)'\"]*)", page)
        references += re.findall(r"@import\s+([^;]+)", page)
        for ref in references:
            assert ref.startswith("#"), ref
        seen += references
        assert not re.search(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}/", page), "external URL"
    assert "#mr-hatch-failed" in seen  # the check saw the references the page does make


def test_hostile_strings_are_escaped(jobs):
    summary = _summary(jobs["flaky"])
    page = render_report(summary)
    assert HOSTILE_COUNTER in summary["counters"]  # the premise
    assert HOSTILE_COUNTER not in page
    assert html.escape(HOSTILE_COUNTER) in page
    assert html.escape('words & "things"') in page
    path = summary["job"]["path"]
    assert "&" in path and "<" in path
    assert path not in page and html.escape(path) in page
    assert "script" not in {tag for tag, _ in _parse(page).tags}


def test_summary_without_tasks_renders_a_sentence():
    spark = {"runner": "spark", "job": {"path": "/jobs/wc.py", "class": "WordCount"},
             "mode": "spark", "tasks": [], "phases": [], "counters": {},
             "config": {"runner": "spark", "spark_master": "local[2]"}}
    page = render_report(spark)
    assert "No task timeline recorded." in page
    assert "runner spark" in page and "local[2]" in page
    assert not _parse(page).bars
    for summary in ({}, {"tasks": None, "phases": "?", "counters": [1], "job": "x"}):
        page = render_report(summary)
        assert "No task timeline recorded" in page
        markup = _parse(page)
        assert not markup.problems and not markup.stack


def test_missing_and_odd_fields_are_tolerated():
    summary = {
        "runs": 1, "start": 100.0, "end": 110.0,
        "phases": [{"phase": "step 0 map", "start": 100.5, "end": 105.0, "run": 1},
                   {"phase": "step 0 reduce", "start": 105.0}],
        "tasks": [
            {"kind": "map", "step": 0, "index": 0, "attempt": "1-1", "status": "committed",
             "start": 101.0, "end": 102.0},                       # no worker pid, no RSS
            {"kind": "map", "step": 0, "index": 1, "attempt": "1-1", "status": "failed",
             "end": 103.0, "worker_pid": 7, "error": "boom <x>"},   # no start
            {"kind": "map", "step": 0, "index": 1, "attempt": "1-2", "status": "committed",
             "start": 103.5, "end": 104.0, "worker_pid": 7, "peak_rss_bytes": "many"},
            {"kind": "reduce", "step": "zero", "index": None, "status": None,
             "start": "soon", "end": float("nan")},                # nothing usable: no bar
            "not a task",
            {"kind": "reduce", "step": 0, "index": 0, "attempt": "1-1", "status": "committed",
             "start": 106.0},                                       # no end
        ],
        "counters": {"framework": {"MAP_INPUT_RECORDS": 3, "ODD": "text"}, "user": "flat"},
        "config": {"workers": 2, "job_options": {"top": 3}},
        "steps": "not a list", "inputs": "not a list", "extra_field": {"a": [1, 2]},
    }
    page = render_report(summary)
    markup = _parse(page)
    assert not markup.problems and not markup.stack
    assert sorted(b["data-attempt"] for b in markup.bars) == ["1-1", "1-1", "1-1", "1-2"]
    assert "1 attempt without recorded times not shown" in page
    failed = [b for b in markup.bars if b["data-status"] == "failed"][0]
    # Estimated start: the worker was free from the start of the phase it failed in.
    x0 = report._PLOT_X0 + (100.5 - 100) / 10 * (report._PLOT_X1 - report._PLOT_X0)
    assert float(failed["x"]) == pytest.approx(x0, abs=0.01)
    assert "boom &lt;x&gt;" in page and "worker ?" in page
    assert "extra_field" in page and "{&quot;a&quot;: [1, 2]}" in page


def test_a_resumed_job_gets_one_timeline_per_run():
    task = {"kind": "map", "step": 0, "attempt": "1-1", "status": "committed",
            "worker_pid": 11, "start": 10.0, "end": 11.0, "run": 1}
    summary = {"runs": 2, "start": 5000.0, "end": 5003.0,
               "phases": [{"phase": "step 0 map", "start": 5000.1, "end": 5001.0, "run": 2}],
               "tasks": [dict(task, index=0, recovered=True),
                         dict(task, index=1, run=2, attempt="2-1", worker_pid=12,
                              start=5000.2, end=5000.9)]}
    page = render_report(summary)
    assert page.count('<svg class="timeline"') == 2
    assert "Run 1 (interrupted" in page and "Run 2 (the run that finished the job)" in page
    assert "replayed" in page


def test_timeline_scales_with_workers_and_tasks():
    tasks = [{"kind": "map" if i < 400 else "reduce", "step": 0, "index": i,
              "attempt": "1-1", "status": "committed", "worker_pid": 1000 + i % 40,
              "start": i * 0.01, "end": i * 0.01 + 0.35, "run": 1} for i in range(500)]
    page = render_report({"runs": 1, "start": 0.0, "end": 5.5, "tasks": tasks})
    markup = _parse(page)
    assert len(markup.bars) == 500
    svg = next(a for tag, a in markup.tags if tag == "svg")
    few = next(a for tag, a in _parse(render_report(
        {"runs": 1, "tasks": tasks[:2]})).tags if tag == "svg")
    assert int(svg["height"]) > int(few["height"])  # 40 lanes take more room than 2
    assert len(re.findall(r">worker \d+</text>", page)) == 40
    for b in markup.bars:
        assert report._PLOT_X0 - 0.01 <= float(b["x"])
        assert float(b["x"]) + float(b["width"]) <= report._PLOT_X1 + 0.01


# --------------------------------------------------------------------------------------------
# write_report and the command
# --------------------------------------------------------------------------------------------

def test_write_report_default_and_explicit_paths(jobs, tmp_path):
    out = jobs["wordcount"]
    path = write_report(out)
    assert path == os.path.join(os.path.abspath(out), "_report.html")
    with open(path, encoding="utf-8") as f:
        assert f.read() == _page(out)
    assert sorted(n for n in os.listdir(out) if n.startswith((".", "_"))) == \
        ["_SUCCESS", "_job.json", "_report.html"]  # no temporary file left behind
    # The report does not become input when OUT feeds the next job.
    assert not any(p.endswith("_report.html") for p in expand_inputs([out]))
    target = tmp_path / "page.html"
    assert write_report(out, str(target)) == str(target)
    assert target.read_text(encoding="utf-8") == _page(out)


def test_report_command_prints_the_path(jobs, tmp_path, capsys):
    target = tmp_path / "r.html"
    assert cli.main(["report", jobs["top_words"], "-o", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{target}\n" and captured.err == ""
    assert target.exists()
    proc = subprocess.run([sys.executable, "-m", "mapreduce", "report", jobs["flaky"]],
                          cwd=REPO, capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == os.path.join(jobs["flaky"], "_report.html") + "\n"
    proc = subprocess.run([sys.executable, "-m", "mapreduce", "report", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 0 and "OUT/_report.html" in proc.stdout


def _error_line(capsys, argv: list[str]) -> str:
    status = cli.main(argv)
    captured = capsys.readouterr()
    assert status == 1, captured.err
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapreduce: error: "), captured.err
    return lines[0]


def test_report_command_errors(jobs, tmp_path, capsys):
    missing = tmp_path / "nope"
    assert "does not exist" in _error_line(capsys, ["report", str(missing)])
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "not a directory" in _error_line(capsys, ["report", str(a_file)])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    line = _error_line(capsys, ["report", str(unfinished)])
    assert "is not a finished job's output directory" in line and "_job.json" in line
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "_job.json").write_text('{"tasks": [')
    assert "is not valid JSON" in _error_line(capsys, ["report", str(broken)])
    (broken / "_job.json").write_text("[1, 2]")
    assert "expected a JSON object" in _error_line(capsys, ["report", str(broken)])
    line = _error_line(capsys, ["report", jobs["wordcount"], "-o",
                                str(tmp_path / "no-such-dir" / "r.html")])
    assert "cannot write the report" in line and "No such file or directory" in line
    line = _error_line(capsys, ["report", jobs["wordcount"], "-o", str(tmp_path)])
    assert "it is a directory" in line
    line = _error_line(capsys, ["report", jobs["wordcount"], "-o", str(a_file / "r.html")])
    assert "cannot write the report" in line
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


def test_report_of_an_empty_task_list_via_the_command(tmp_path, capsys):
    out = tmp_path / "spark-out"
    out.mkdir()
    (out / "_job.json").write_text(json.dumps({"runner": "spark", "tasks": []}))
    assert cli.main(["report", str(out)]) == 0
    assert "No task timeline recorded." in (out / "_report.html").read_text()
    capsys.readouterr()


# --------------------------------------------------------------------------------------------
# the browser test
# --------------------------------------------------------------------------------------------

def decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB(A), non-interlaced PNG (what Chromium writes) -> an (h, w, 3) array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    assert header is not None, "no IHDR"
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (2, 6), f"unsupported PNG {header}"
    bpp = 3 if color == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1)
        if ftype == 0:
            cur = line.copy()
        elif ftype == 1:  # Sub: a running sum along the row, per channel, mod 256
            cur = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(stride)
        elif ftype == 2:  # Up
            cur = line + prev
        else:  # Average and Paeth depend on the byte just decoded to the left: a plain loop
            row, up = bytearray(line.tobytes()), prev.tobytes()
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b = up[i]
                if ftype == 3:
                    row[i] = (row[i] + ((a + b) >> 1)) & 0xFF
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc
                                        else c)) & 0xFF
            cur = np.frombuffer(bytes(row), np.uint8)
        out[y] = cur
        prev = out[y]
    return out.reshape(height, width, bpp)[:, :, :3]


def test_png_decoder_handles_every_filter():
    pixels = np.array([[[10, 20, 30], [200, 100, 50], [255, 0, 7]],
                       [[1, 2, 3], [90, 80, 70], [0, 255, 128]],
                       [[5, 5, 5], [250, 250, 250], [30, 60, 90]],
                       [[77, 88, 99], [11, 22, 33], [128, 128, 128]],
                       [[0, 0, 0], [255, 255, 255], [3, 30, 130]]], dtype=np.uint8)

    def paeth(a: int, b: int, c: int) -> int:
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else b if pb <= pc else c

    raw = b""
    prev = bytes(9)
    for ftype, row in enumerate(pixels):  # row y uses filter type y (0..4)
        cur = row.tobytes()
        enc = bytearray()
        for i, x in enumerate(cur):
            a = cur[i - 3] if i >= 3 else 0
            b, c = prev[i], prev[i - 3] if i >= 3 else 0
            pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][ftype]
            enc.append((x - pred) & 0xFF)
        raw += bytes([ftype]) + bytes(enc)
        prev = cur

    def chunk(ctype: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + ctype + body + \
            struct.pack(">I", zlib.crc32(ctype + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 5, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    assert np.array_equal(decode_png(png), pixels)


def _chromium() -> Optional[str]:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


@pytest.mark.browser
def test_report_renders_in_headless_chromium(jobs, tmp_path):
    exe = _chromium()
    if exe is None:
        message = "Chromium not found (/usr/bin/chromium or chromium on PATH): " \
                  "apt-get install chromium"
        if os.environ.get("MAPREDUCE_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (MAPREDUCE_REQUIRE_BROWSER=1)")
        pytest.skip(message)
    page_path = write_report(jobs["flaky"], str(tmp_path / "report.html"))
    png_path = tmp_path / "report.png"
    # These flags keep Chromium off the network (closed here, and not needed: the page is
    # self-contained) and out of the user's profile.
    proc = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--window-size=1280,2000", f"--screenshot={png_path}", f"file://{page_path}"],
        capture_output=True, text=True, timeout=180)
    assert png_path.exists(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    img = decode_png(png_path.read_bytes())
    assert img.shape == (2000, 1280, 3)

    # The plot area: the bounding box of the two lane background colours.
    lanes = np.zeros(img.shape[:2], dtype=bool)
    for color in LANE_COLORS:
        lanes |= np.all(img == _rgb(color), axis=2)
    ys, xs = np.nonzero(lanes)
    assert xs.size, "the timeline's lanes are not on the screenshot"
    left, right, top, bottom = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    with open(page_path, encoding="utf-8") as f:
        markup = _parse(f.read())
    svg = next(a for tag, a in markup.tags if tag == "svg")
    lane_rects = [a for tag, a in markup.tags if tag == "rect" and a.get("class") == "lane"]
    assert len(lane_rects) == 2  # two workers
    # Drawn 1:1 (no zoom, nothing squeezed): the plot area has the markup's size.
    assert abs((right - left) - (report._PLOT_X1 - report._PLOT_X0)) <= 2
    lanes_height = sum(int(a["height"]) for a in lane_rects)
    assert abs((bottom - top) - lanes_height) <= 2
    assert int(svg["width"]) <= 1280 - left + report._PLOT_X0  # the chart fits the window
    # SVG user space -> screenshot pixels.
    dx, dy = left - report._PLOT_X0, top - int(lane_rects[0]["y"])

    colors = {"map": MAP_COLORS[0], "reduce": REDUCE_COLORS[0], "failed": FAILED_COLOR}
    expected_area = dict.fromkeys(colors, 0.0)
    on_bars = {name: np.zeros(img.shape[:2], dtype=bool) for name in colors}
    for bar in markup.bars:
        name = "failed" if bar["data-status"] == "failed" else bar["class"].split()[1]
        x, y = float(bar["x"]) + dx, float(bar["y"]) + dy
        w, h = float(bar["width"]), float(bar["height"])
        box = (slice(int(y), int(np.ceil(y + h))), slice(int(x), int(np.ceil(x + w))))
        in_box = np.all(img[box] == _rgb(colors[name]), axis=2).sum()
        # Every bar shows its own colour: most of its box for a plain bar (less its label
        # and outline), at least a quarter for the hatched failed bar.
        floor = 0.25 if name == "failed" else 0.5
        assert in_box >= floor * w * h, (bar, in_box, w * h)
        expected_area[name] += w * h
        on_bars[name][int(y) - 1:int(np.ceil(y + h)) + 1,
                      int(x) - 1:int(np.ceil(x + w)) + 1] = True
    plot = np.zeros(img.shape[:2], dtype=bool)
    plot[top:bottom, left:right] = True
    for name, color in colors.items():
        exact = np.all(img == _rgb(color), axis=2)
        inside = exact & plot
        # In proportion to the bars' total area (a hatched bar is 5/8 red) ...
        floor = 0.25 if name == "failed" else 0.5
        assert floor * expected_area[name] <= inside.sum() <= 1.02 * expected_area[name] + 50, \
            (name, inside.sum(), expected_area[name])
        # ... and only on the bars: nothing of a bar colour elsewhere in the plot area, and
        # outside it no more than the legend's swatch.
        assert not (inside & ~on_bars[name]).any(), name
        assert (exact & ~plot).sum() <= 14 * 10 + 20, (name, (exact & ~plot).sum())
