"""End-to-end tests of the command line: ``python -m mapreduce run JOB INPUT... -o OUT``.

Every test runs the real CLI in a subprocess and checks the output directory against an
independent reference computed here in plain Python (``collections.Counter``, ``sorted``,
``gzip``/``bz2`` from the standard library), never against the engine's own code.

Output format under test: ``OUT/part-NNNNN`` files of ``json(key)<TAB>json(value)\\n`` lines
(each sorted by key when the step has a reducer), ``OUT/_job.json``, ``OUT/_SUCCESS``.
"""
from __future__ import annotations

import bz2
import collections
import glob
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample_data")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
JOBS = os.path.join(REPO, "tests", "jobs")
WORD_RE = re.compile(r"[\w']+")
TIMEOUT = 120


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _env() -> dict:
    """The subprocess environment: the user's own (the package is installed, as after
    ``pip install -e '.[test]'``; no PYTHONPATH a user would not set)."""
    return dict(os.environ)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapreduce", "run", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
                          env=_env())


def run_ok(*args: str) -> subprocess.CompletedProcess:
    proc = run_cli(*args)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def job(name: str) -> str:
    return os.path.join(JOBS, name)


def part_files(out) -> list[str]:
    return sorted(glob.glob(os.path.join(str(out), "part-*")))


def read_parts(out) -> list[list[str]]:
    """Lines of each part file (without the newline), in part order."""
    result = []
    for path in part_files(out):
        with open(path, "rb") as f:
            data = f.read()
        assert data == b"" or data.endswith(b"\n"), f"{path} does not end with a newline"
        text = data.decode("utf-8")
        result.append(text.split("\n")[:-1] if text else [])
    return result


def parse_line(line: str):
    assert line.count("\t") == 1, f"not one TAB in output line {line!r}"
    k, v = line.split("\t")
    return json.loads(k), json.loads(v)


def read_pairs(out) -> list[tuple]:
    return [parse_line(line) for lines in read_parts(out) for line in lines]


def output_dict(out) -> dict:
    pairs = read_pairs(out)
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(map(json.dumps, keys))), "a key appears in two output lines"
    return {k: v for k, v in pairs}


def part_bytes(out) -> dict[str, bytes]:
    result = {}
    for path in part_files(out):
        with open(path, "rb") as f:
            result[os.path.basename(path)] = f.read()
    return result


def load_summary(out) -> dict:
    with open(os.path.join(str(out), "_job.json"), encoding="utf-8") as f:
        return json.load(f)


def assert_success(out) -> None:
    assert os.path.isfile(os.path.join(str(out), "_SUCCESS"))
    assert os.path.isfile(os.path.join(str(out), "_job.json"))
    assert part_files(out), "no part files"


def sample_files() -> list[str]:
    """The input files of sample_data/: names starting with _ or . are not input."""
    return sorted(os.path.join(SAMPLE, n) for n in os.listdir(SAMPLE)
                  if not n.startswith(("_", ".")) and os.path.isfile(os.path.join(SAMPLE, n)))


def text_lines(path: str) -> list[str]:
    """Reference line splitting: lines end at \\n; a \\r right before it is removed too."""
    with open(path, "rb") as f:
        data = f.read()
    pieces = data.split(b"\n")
    last_terminated = pieces[-1] == b""
    if last_terminated:
        pieces.pop()
    lines = []
    for i, piece in enumerate(pieces):
        if (i < len(pieces) - 1 or last_terminated) and piece.endswith(b"\r"):
            piece = piece[:-1]
        lines.append(piece.decode("utf-8"))
    return lines


def word_counter(paths) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in paths:
        for line in text_lines(path):
            counts.update(w.lower() for w in WORD_RE.findall(line))
    return counts


@pytest.fixture(scope="module")
def sample_counts() -> collections.Counter:
    return word_counter(sample_files())


@pytest.fixture(scope="module")
def wc_default(tmp_path_factory):
    """Word count over sample_data/ with default options (disk mode)."""
    out = tmp_path_factory.mktemp("wc") / "default"
    proc = run_ok(WORDCOUNT, "sample_data/", "-o", out)
    return out, proc


# --------------------------------------------------------------------------------------------
# word count on sample_data/
# --------------------------------------------------------------------------------------------

def test_sample_data_has_a_skipped_file():
    # The test below relies on the reader skipping this file; keep the premise visible.
    assert os.path.exists(os.path.join(SAMPLE, "_SOURCES.md"))
    assert len(sample_files()) >= 2


def test_wordcount_matches_counter(wc_default, sample_counts):
    out, _ = wc_default
    assert_success(out)
    assert output_dict(out) == dict(sample_counts)
    # Words only found in _SOURCES.md must not appear (the file is not input).
    with open(os.path.join(SAMPLE, "_SOURCES.md"), encoding="utf-8") as f:
        only_sources = {w.lower() for w in WORD_RE.findall(f.read())} - set(sample_counts)
    assert only_sources, "premise: _SOURCES.md has words of its own"
    assert not only_sources & set(output_dict(out))


def test_wordcount_parts_sorted_by_key(wc_default):
    out, _ = wc_default
    parts = read_parts(out)
    assert len(parts) == 4  # WordCount.REDUCERS default
    for lines in parts:
        keys = [parse_line(line)[0] for line in lines]
        assert keys == sorted(keys)
        assert len(keys) == len(set(keys))
    # The same key never lands in two part files.
    all_keys = [parse_line(line)[0] for lines in parts for line in lines]
    assert len(all_keys) == len(set(all_keys))


def test_wordcount_output_format_is_json_tab_json(wc_default, sample_counts):
    out, _ = wc_default
    expected = {json.dumps(w, ensure_ascii=False) + "\t" + json.dumps(c)
                for w, c in sample_counts.items()}
    got = [line for lines in read_parts(out) for line in lines]
    assert set(got) == expected
    assert len(got) == len(expected)


def test_wordcount_job_summary(wc_default, sample_counts):
    out, _ = wc_default
    s = load_summary(out)
    for key in ("job", "mode", "workers", "reducers", "inputs", "counters", "tasks"):
        assert key in s, f"_job.json lacks {key!r}"
    assert "WordCount" in json.dumps(s["job"])
    assert s["mode"] == "disk"
    assert isinstance(s["workers"], int) and s["workers"] >= 1
    assert s["reducers"] == 4
    assert sorted(os.path.basename(p) for p in s["inputs"]) == sorted(
        os.path.basename(p) for p in sample_files())
    fw = s["counters"]["framework"]
    n_lines = sum(len(text_lines(p)) for p in sample_files())
    assert fw["MAP_INPUT_RECORDS"] == n_lines
    assert fw["MAP_OUTPUT_RECORDS"] == sum(sample_counts.values())
    assert fw["REDUCE_OUTPUT_RECORDS"] == len(sample_counts)
    assert fw["REDUCE_INPUT_GROUPS"] == len(sample_counts)
    assert fw["BYTES_READ"] == sum(os.path.getsize(p) for p in sample_files())
    tasks = s["tasks"]
    maps = [t for t in tasks if t.get("kind") == "map"]
    reduces = [t for t in tasks if t.get("kind") == "reduce"]
    # The 4 files (239 KiB) fit the default 1 MiB split: packed into one map task.
    assert len(maps) == 1 and maps[0]["input"].startswith("4 files ")
    assert len(reduces) == 4
    for t in tasks:
        for key in ("start", "end", "attempt", "worker_pid"):
            assert key in t, f"task record lacks {key!r}: {t}"
        assert any(k.startswith("records") for k in t), t
        assert any(k.startswith("bytes") for k in t), t
        assert t["start"] <= t["end"]
        assert s.get("start", t["start"]) <= t["start"]
        assert isinstance(t["worker_pid"], int) and t["worker_pid"] > 0
    assert sum(t["records_in"] for t in maps) == n_lines
    assert sum(t["records_out"] for t in reduces) == len(sample_counts)
    assert sum(t["bytes_in"] for t in maps) == fw["BYTES_READ"]


def test_wordcount_summary_on_stderr_and_quiet(wc_default, tmp_path):
    _, proc = wc_default
    assert proc.stdout == ""
    assert "WordCount" in proc.stderr  # the summary names the job
    quiet = run_ok(WORDCOUNT, os.path.join(SAMPLE, "kjv-ecclesiastes.txt"), "-o",
                   tmp_path / "q", "-q")
    assert quiet.stdout == "" and quiet.stderr == ""


def test_disk_and_memory_modes_byte_identical(wc_default, tmp_path):
    out, _ = wc_default
    mem = tmp_path / "mem"
    run_ok(WORDCOUNT, "sample_data/", "-o", mem, "--mode", "memory")
    assert_success(mem)
    assert load_summary(mem)["mode"] == "memory"
    assert part_bytes(mem) == part_bytes(out)


def test_reducers_1_and_3_same_lines(wc_default, tmp_path, sample_counts):
    one, three = tmp_path / "r1", tmp_path / "r3"
    run_ok(WORDCOUNT, "sample_data/", "-o", one, "--reducers", "1")
    run_ok(WORDCOUNT, "sample_data/", "-o", three, "--reducers", "3")
    assert len(part_files(one)) == 1
    assert len(part_files(three)) == 3
    assert load_summary(three)["reducers"] == 3
    lines1 = read_parts(one)[0]
    lines3 = [line for lines in read_parts(three) for line in lines]
    assert sorted(lines1) == sorted(lines3)
    assert len(lines1) == len(sample_counts)
    # A single reducer's output is globally sorted by key.
    keys = [parse_line(line)[0] for line in lines1]
    assert keys == sorted(sample_counts)


def test_workers_1_same_as_default(wc_default, tmp_path):
    out, _ = wc_default
    w1 = tmp_path / "w1"
    run_ok(WORDCOUNT, "sample_data/", "-o", w1, "--workers", "1")
    assert load_summary(w1)["workers"] == 1
    assert part_bytes(w1) == part_bytes(out)


def test_job_file_run_directly_prints_pairs(wc_default):
    out, _ = wc_default
    proc = subprocess.run([sys.executable, "jobs/wordcount.py", "sample_data/"], cwd=REPO,
                          capture_output=True, timeout=TIMEOUT, env=_env())
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    expected = b"".join(data for _, data in sorted(part_bytes(out).items()))
    assert proc.stdout == expected


def test_job_file_run_directly_with_output_dir(tmp_path, sample_counts):
    out = tmp_path / "direct"
    proc = subprocess.run([sys.executable, "jobs/wordcount.py", "sample_data/", "-o", str(out),
                           "--reducers", "2", "-q"], cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert_success(out)
    assert len(part_files(out)) == 2
    assert output_dict(out) == dict(sample_counts)


# --------------------------------------------------------------------------------------------
# the other test jobs
# --------------------------------------------------------------------------------------------

def test_multi_step_top_words(tmp_path, sample_counts):
    out = tmp_path / "top"
    run_ok(job("multi_step.py"), "sample_data/", "-o", out)
    assert_success(out)
    pairs = read_pairs(out)
    ranked = sorted(sample_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    assert pairs == [(count, word) for word, count in ranked]
    s = load_summary(out)
    assert len(s["steps"]) == 2
    # Step 2 reads step 1's output: its map tasks see one record per distinct word.
    step2_maps = [t for t in s["tasks"] if t["kind"] == "map" and t["step"] == 1]
    assert sum(t["records_in"] for t in step2_maps) == len(sample_counts)


def test_multi_step_memory_mode_same(tmp_path):
    disk, mem = tmp_path / "d", tmp_path / "m"
    run_ok(job("multi_step.py"), "sample_data/", "-o", disk, "--reducers", "3")
    run_ok(job("multi_step.py"), "sample_data/", "-o", mem, "--reducers", "3",
           "--mode", "memory")
    assert part_bytes(disk) == part_bytes(mem)


def test_map_only(tmp_path):
    src = tmp_path / "in.txt"
    lines = ["", "a", "hello world", "  spaces  ", "ünïcödé — text", "tab\there", "x" * 300]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run_ok(job("map_only.py"), src, "-o", out)
    assert_success(out)
    # Map-only: pairs in emission (input) order, one part file per map task.
    assert read_pairs(out) == [(len(line), line) for line in lines]
    assert not any(t["kind"] == "reduce" for t in load_summary(out)["tasks"])


def test_map_only_several_splits_keep_order(tmp_path):
    src = tmp_path / "in.txt"
    lines = [f"line {i} " + "y" * (i % 37) for i in range(2000)]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run_ok(job("map_only.py"), src, "-o", out, "--split-size", "8KB")
    assert len(part_files(out)) > 1
    assert read_pairs(out) == [(len(line), line) for line in lines]


def test_sort_values(tmp_path):
    rnd = random.Random(42)
    users = [f"user{i}" for i in range(7)]
    events = [(rnd.choice(users), rnd.randrange(10**6), rnd.choice("abcdefgh") * rnd.randint(1, 4))
              for _ in range(3000)]
    src = tmp_path / "events.csv"
    src.write_text("".join(f"{u},{t},{e}\n" for u, t, e in events), encoding="utf-8")
    expected: dict = collections.defaultdict(list)
    for u, t, e in events:
        expected[u].append([t, e])
    expected = {u: sorted(v) for u, v in expected.items()}
    for mode in ("disk", "memory"):
        out = tmp_path / f"out-{mode}"
        # Several map tasks and spills so that the order must survive the merges.
        run_ok(job("sort_values.py"), src, "-o", out, "--mode", mode, "--split-size", "16KB",
               "--sort-buffer", "8KB", "--merge-factor", "3")
        assert_success(out)
        assert output_dict(out) == expected


def test_counters(tmp_path):
    src1, src2 = tmp_path / "a.txt", tmp_path / "b.txt"
    src1.write_text("The cat sat\n\non the mat\n", encoding="utf-8")
    src2.write_text("the dog's bone\n\n\nend\n", encoding="utf-8")
    out = tmp_path / "out"
    run_ok(job("counters.py"), src1, src2, "-o", out)
    lines = text_lines(str(src1)) + text_lines(str(src2))
    words = [w for line in lines for w in WORD_RE.findall(line)]
    distinct = {w.lower() for w in words}
    s = load_summary(out)
    c = s["counters"]
    assert c["lines"] == {"total": len(lines), "empty": sum(1 for x in lines if not x)}
    assert c["words"] == {"total": len(words), "chars": sum(map(len, words)),
                          "distinct": len(distinct)}
    fw = c["framework"]
    assert fw["MAP_INPUT_RECORDS"] == len(lines)
    assert fw["MAP_OUTPUT_RECORDS"] == len(words)
    assert fw["REDUCE_INPUT_RECORDS"] == len(words)  # no combiner
    assert fw["REDUCE_INPUT_GROUPS"] == len(distinct)
    assert fw["REDUCE_OUTPUT_RECORDS"] == len(distinct)
    assert fw["BYTES_READ"] == os.path.getsize(src1) + os.path.getsize(src2)
    assert output_dict(out) == dict(collections.Counter(w.lower() for w in words))
    statuses: dict = {t["kind"]: set() for t in s["tasks"]}
    for t in s["tasks"]:
        # The set_status message (recorded as "status_message" next to the attempt's state).
        statuses[t["kind"]].add(t.get("status_message", t.get("status")))
    assert statuses["map"] == {"mapping"}
    assert "reducing" in statuses["reduce"]


def test_counters_summed_over_many_tasks(tmp_path):
    src = tmp_path / "in.txt"
    lines = [("w%d " % (i % 50)) * (i % 5) for i in range(3000)]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run_ok(job("counters.py"), src, "-o", out, "--split-size", "4KB", "--reducers", "3")
    s = load_summary(out)
    assert len([t for t in s["tasks"] if t["kind"] == "map"]) > 3
    words = [w for line in lines for w in WORD_RE.findall(line)]
    assert s["counters"]["lines"]["total"] == len(lines)
    assert s["counters"]["lines"]["empty"] == sum(1 for x in lines if not x)
    assert s["counters"]["words"]["total"] == len(words)
    assert s["counters"]["words"]["distinct"] == len(set(words))
    assert s["counters"]["framework"]["MAP_INPUT_RECORDS"] == len(lines)


def test_line_count_with_init_final(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("".join(f"{i}\n" for i in range(1234)), encoding="utf-8")
    out = tmp_path / "out"
    run_ok(job("line_count.py"), src, "-o", out, "--split-size", "1KB")
    assert read_parts(out) == [['"lines"\t1234']]


@pytest.mark.parametrize("mode", ["disk", "memory"])
def test_empty_input_line_count_is_zero(tmp_path, mode):
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    out = tmp_path / "out"
    run_ok(job("line_count.py"), src, "-o", out, "--mode", mode)
    assert_success(out)
    assert read_parts(out) == [['"lines"\t0']]
    assert load_summary(out)["counters"]["framework"]["MAP_INPUT_RECORDS"] == 0


def test_empty_input_wordcount(tmp_path):
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    out = tmp_path / "out"
    run_ok(WORDCOUNT, src, "-o", out)
    assert os.path.isfile(out / "_SUCCESS")
    assert read_pairs(out) == []


def test_all_key_types(tmp_path):
    src = tmp_path / "in.txt"
    n = 5
    src.write_text("x\n" * n, encoding="utf-8")
    out = tmp_path / "out"
    run_ok(job("all_key_types.py"), src, "-o", out, "--reducers", "1")
    lines = read_parts(out)[0]
    # One reducer: every key once, in the natural order
    # None < numbers < str < bytes < tuples; 1 == 1.0 == True and (1, "a") == [1, "a"].
    assert lines == [
        f"null\t{n}",
        f"-3\t{n}",
        f"1\t{3 * n}",
        f"2\t{n}",
        f"2.5\t{n}",
        f'"s"\t{n}',
        f'"b"\t{n}',
        f'[1, "a"]\t{2 * n}',
        f'["t", [2, null]]\t{n}',
    ]
    many = tmp_path / "many"
    run_ok(job("all_key_types.py"), src, "-o", many, "--reducers", "5", "--mode", "memory")
    assert sorted(line for lines in read_parts(many) for line in lines) == sorted(lines)


# --------------------------------------------------------------------------------------------
# --job and the ways of naming input
# --------------------------------------------------------------------------------------------

def test_job_option_picks_one_class(tmp_path):
    src = tmp_path / "in.txt"
    lines = ["abc", "", "de", "f" * 10]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    a, b = tmp_path / "a", tmp_path / "b"
    run_ok(job("two_jobs.py"), src, "-o", a, "--job", "CountLines")
    run_ok(job("two_jobs.py"), src, "-o", b, "--job", "CountChars")
    assert read_pairs(a) == [("lines", len(lines))]
    assert read_pairs(b) == [("chars", sum(map(len, lines)))]
    assert "CountChars" in json.dumps(load_summary(b)["job"])


def test_inputs_directory_files_and_glob_agree(tmp_path, sample_counts):
    files = sample_files()
    by_dir, by_files, by_glob = tmp_path / "dir", tmp_path / "files", tmp_path / "glob"
    run_ok(WORDCOUNT, SAMPLE, "-o", by_dir)
    run_ok(WORDCOUNT, *files, "-o", by_files)
    run_ok(WORDCOUNT, os.path.join("sample_data", "*.txt"), "-o", by_glob)
    for out in (by_dir, by_files, by_glob):
        assert_success(out)
        assert output_dict(out) == dict(sample_counts)
    assert sorted(load_summary(by_glob)["inputs"]) == sorted(
        os.path.join("sample_data", os.path.basename(p)) for p in files)


def test_glob_subset(tmp_path):
    out = tmp_path / "out"
    run_ok(WORDCOUNT, "sample_data/devils-*.txt", "-o", out)
    expected = word_counter(sorted(glob.glob(os.path.join(SAMPLE, "devils-*.txt"))))
    assert output_dict(out) == dict(expected)
    assert len(load_summary(out)["inputs"]) == 2


def test_same_file_twice_is_read_once(tmp_path):
    f = os.path.join(SAMPLE, "kjv-ecclesiastes.txt")
    out = tmp_path / "out"
    run_ok(WORDCOUNT, f, f, "sample_data/kjv-*.txt", "-o", out)
    assert output_dict(out) == dict(word_counter([f]))


def test_gz_and_bz2_inputs_match_plain(tmp_path):
    plain = os.path.join(SAMPLE, "world-english-bible-ruth-jonah-esther.txt")
    with open(plain, "rb") as f:
        data = f.read()
    gz, bz = tmp_path / "bible.txt.gz", tmp_path / "bible.txt.bz2"
    gz.write_bytes(gzip.compress(data))
    bz.write_bytes(bz2.compress(data))
    outs = {}
    for name, src in (("plain", plain), ("gz", gz), ("bz2", bz)):
        outs[name] = tmp_path / name
        run_ok(WORDCOUNT, src, "-o", outs[name], "--split-size", "8KB")
    expected = dict(word_counter([plain]))
    assert output_dict(outs["plain"]) == expected
    assert part_bytes(outs["gz"]) == part_bytes(outs["plain"])
    assert part_bytes(outs["bz2"]) == part_bytes(outs["plain"])
    fw = load_summary(outs["gz"])["counters"]["framework"]
    assert fw["MAP_INPUT_RECORDS"] == len(text_lines(plain))


def test_gz_lines_map_only(tmp_path):
    lines = [f"row {i}" for i in range(500)]
    gz = tmp_path / "rows.gz"
    gz.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    out = tmp_path / "out"
    run_ok(job("map_only.py"), gz, "-o", out)
    assert read_pairs(out) == [(len(x), x) for x in lines]


def test_crlf_line_endings(tmp_path):
    lines = ["first line", "", "Second Line here", "third: end", "last"]
    crlf, lf = tmp_path / "crlf.txt", tmp_path / "lf.txt"
    crlf.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    lf.write_bytes(("\n".join(lines) + "\n").encode())
    a, b = tmp_path / "a", tmp_path / "b"
    run_ok(job("map_only.py"), crlf, "-o", a)
    pairs = read_pairs(a)
    assert pairs == [(len(x), x) for x in lines]
    assert not any("\r" in v for _, v in pairs)
    # Word count is the same with either line ending, also across split boundaries.
    big = tmp_path / "big-crlf.txt"
    with open(os.path.join(SAMPLE, "kjv-ecclesiastes.txt"), "rb") as f:
        big.write_bytes(f.read().replace(b"\n", b"\r\n"))
    run_ok(WORDCOUNT, big, "-o", b, "--split-size", "4KB")
    assert output_dict(b) == dict(word_counter([os.path.join(SAMPLE, "kjv-ecclesiastes.txt")]))
    assert "\\r" not in "".join(line for lines_ in read_parts(b) for line in lines_)


def test_overwrite_replaces_previous_output(tmp_path):
    out = tmp_path / "out"
    run_ok(WORDCOUNT, os.path.join(SAMPLE, "kjv-ecclesiastes.txt"), "-o", out, "--reducers", "5")
    assert len(part_files(out)) == 5
    run_ok(WORDCOUNT, os.path.join(SAMPLE, "kjv-ecclesiastes.txt"), "-o", out, "--reducers", "2",
           "--overwrite")
    assert len(part_files(out)) == 2  # no stale part files from the first run
    assert output_dict(out) == dict(word_counter([os.path.join(SAMPLE, "kjv-ecclesiastes.txt")]))


def test_work_dir_option(tmp_path, sample_counts):
    out, work = tmp_path / "out", tmp_path / "work"
    run_ok(WORDCOUNT, "sample_data/", "-o", out, "--work-dir", work)
    assert output_dict(out) == dict(sample_counts)
    assert not os.path.exists(out / "_temporary")
    assert not os.path.exists(work) or not os.listdir(work)


def test_output_of_one_job_is_input_of_the_next(tmp_path, wc_default):
    """part files are input; _SUCCESS, _job.json are skipped (names start with _)."""
    out1, _ = wc_default
    out2 = tmp_path / "again"
    run_ok(job("line_count.py"), out1, "-o", out2)
    n = sum(len(lines) for lines in read_parts(out1))
    assert read_pairs(out2) == [("lines", n)]


# --------------------------------------------------------------------------------------------
# spills and merges
# --------------------------------------------------------------------------------------------

def test_small_sort_buffer_spills_and_merges(tmp_path):
    rnd = random.Random(3)
    words = [f"longishword{i:05d}x" for i in range(400)]
    src = tmp_path / "big.txt"
    src.write_text("".join(" ".join(rnd.choice(words) for _ in range(3)) + "\n"
                           for _ in range(800)), encoding="utf-8")
    assert os.path.getsize(src) > 40 * 1024  # three splits of 20KB
    small, default = tmp_path / "small", tmp_path / "default"
    run_ok(WORDCOUNT, src, "-o", small, "--sort-buffer", "4KB", "--merge-factor", "2",
           "--split-size", "20KB", "--reducers", "2")
    run_ok(WORDCOUNT, src, "-o", default, "--reducers", "2")
    fw = load_summary(small)["counters"]["framework"]
    assert fw["SPILL_FILES"] > 1
    assert fw.get("MERGE_PASSES", 0) > 0
    assert len([t for t in load_summary(small)["tasks"] if t["kind"] == "map"]) == 3
    assert part_bytes(small) == part_bytes(default)
    assert output_dict(small) == dict(word_counter([str(src)]))


def test_line_count_agrees_with_wc(tmp_path):
    """Cross-check against GNU wc: every sample file ends with a newline, so wc -l counts
    exactly the lines the reader yields."""
    files = sample_files()
    for path in files:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            assert f.read() == b"\n"
    if shutil.which("wc") is None:
        pytest.skip("wc not available")
    wc = subprocess.run(["wc", "-l", *files], capture_output=True, text=True, timeout=30)
    total = int(wc.stdout.strip().splitlines()[-1].split()[0]) if len(files) > 1 else int(
        wc.stdout.split()[0])
    out = tmp_path / "out"
    run_ok(job("line_count.py"), "sample_data", "-o", out, "--split-size", "16KB")
    assert read_pairs(out) == [("lines", total)]


def test_user_prints_do_not_corrupt_printed_output(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("Hello world\nhello again world\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, job("printing.py"), str(src)], cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == ['"again"\t1', '"hello"\t2', '"world"\t2']
    assert "noise" not in proc.stdout


def test_split_size_does_not_change_output(wc_default, tmp_path):
    """Lines cut by split boundaries are read exactly once, whatever the split size."""
    out, _ = wc_default
    for size in ("1KB", "3333"):
        small = tmp_path / f"split-{size}"
        run_ok(WORDCOUNT, "sample_data/", "-o", small, "--split-size", size, "--mode", "memory")
        assert len([t for t in load_summary(small)["tasks"] if t["kind"] == "map"]) > 50
        assert part_bytes(small) == part_bytes(out)


def test_more_reducers_than_keys(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("one two\n", encoding="utf-8")
    out = tmp_path / "out"
    run_ok(WORDCOUNT, src, "-o", out, "--reducers", "7")
    assert len(part_files(out)) == 7  # empty part files too, one per reducer
    assert output_dict(out) == {"one": 1, "two": 1}


def test_existing_empty_output_dir_is_fine(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run_ok(WORDCOUNT, os.path.join(SAMPLE, "kjv-ecclesiastes.txt"), "-o", out)
    assert_success(out)


def test_hidden_named_file_given_explicitly_is_input(tmp_path):
    src = tmp_path / "_underscore.txt"
    src.write_text("a\nb\nc\n", encoding="utf-8")
    out = tmp_path / "out"
    run_ok(job("line_count.py"), src, "-o", out)
    assert read_pairs(out) == [("lines", 3)]
