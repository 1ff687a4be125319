"""The example jobs jobs/wordcount.py, top_words.py, line_count.py, inverted_index.py and
join.py, run end to end through the command line and compared with plain-Python references
on sample_data/, jobs/data/join/ and generated inputs, in both shuffle modes."""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
SAMPLE = ROOT / "sample_data"
JOIN_DATA = JOBS / "data" / "join"
ENV = dict(os.environ)  # the package is installed (pip install -e): no PYTHONPATH
WORD_RE = re.compile(r"[\w']+")
MODES = ["disk", "memory"]


# --- running jobs and reading their output ----------------------------------------------------
def run(job: str, inputs, out: Path, *options: str, expect: int = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mapreduce", "run", str(JOBS / job), *map(str, inputs),
           "-o", str(out), "--workers", "2", "-q", *options]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == expect, proc.stderr
    if expect == 0:
        assert (out / "_SUCCESS").exists()
    return proc


def part_files(out: Path) -> list[Path]:
    return sorted(out.glob("part-*"))


def parse(lines) -> list[tuple]:
    pairs = []
    for line in lines:
        key, tab, value = line.partition("\t")
        assert tab, line
        pairs.append((json.loads(key), json.loads(value)))
    return pairs


def read_parts(out: Path) -> list[list[tuple]]:
    """The pairs of each part file, in file order."""
    return [parse(p.read_text(encoding="utf-8").splitlines()) for p in part_files(out)]


def read_pairs(out: Path) -> list[tuple]:
    """All pairs, as ``cat OUT/part-*`` gives them."""
    return [pair for part in read_parts(out) for pair in part]


def assert_keys_sorted_per_part(out: Path) -> None:
    for part in read_parts(out):
        keys = [k for k, _ in part]
        assert keys == sorted(keys)


def run_pairs(job, inputs, out, *options) -> list[tuple]:
    run(job, inputs, out, *options)
    return read_pairs(out)


# --- plain-Python references ------------------------------------------------------------------
def input_files(*paths: Path) -> list[Path]:
    """The engine's expansion of file/directory arguments: directories walked sorted, names
    starting with _ or . skipped inside them."""
    files = []
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if d[0] not in "_.")
                files += [Path(dirpath) / f for f in sorted(filenames) if f[0] not in "_."]
        else:
            files.append(path)
    return files


def file_lines(path: Path) -> list[str]:
    """The lines the engine gives the mapper: split at \\n, a \\r before it dropped too."""
    text = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
    lines = text.split("\n")
    if text.endswith("\n") or not text:
        lines.pop()
    return lines


def words_of(paths) -> list[str]:
    return [w.lower() for f in paths for line in file_lines(f) for w in WORD_RE.findall(line)]


def ref_wordcount(paths) -> dict[str, int]:
    return dict(Counter(words_of(paths)))


def ref_top_words(paths, n: int) -> list[tuple[str, int]]:
    counts = ref_wordcount(paths)
    return sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:n]


def ref_line_count(paths) -> dict[str, int]:
    lines = [line for f in paths for line in file_lines(f)]
    return {"lines": len(lines), "words": sum(len(line.split()) for line in lines),
            "chars": sum(len(line) for line in lines)}


def ref_inverted_index(paths, full_path=False) -> dict[str, list[str]]:
    index = defaultdict(set)
    for f in paths:
        name = str(f) if full_path else f.name
        for line in file_lines(f):
            for w in WORD_RE.findall(line):
                index[w.lower()].add(name)
    return {w: sorted(files) for w, files in index.items()}


def ref_join(paths, is_left, how="inner", sep=",") -> dict[str, list]:
    """key -> the joined (left, right) pairs in the order the job promises."""
    lefts, rights = defaultdict(list), defaultdict(list)
    for f in paths:
        side = lefts if is_left(f.name) else rights
        for line in file_lines(f):
            if not line.strip() or line.startswith("#"):
                continue
            key, _, rest = line.partition(sep)
            side[key].append(rest)
    result = {}
    for key in lefts.keys() | rights.keys():
        if rights[key]:
            pairs = [[l, r] for l in lefts[key] for r in rights[key]]
        elif how == "left":
            pairs = [[l, None] for l in lefts[key]]
        else:
            pairs = []
        if pairs:
            result[key] = pairs
    return result


def grouped(out: Path) -> dict:
    """key -> its output values in output order; each key must sit in one part file, in one
    contiguous run."""
    result: dict = {}
    for part in read_parts(out):
        last = object()
        for key, value in part:
            if key != last:
                assert key not in result, f"key {key!r} output twice"
                result[key] = []
                last = key
            result[key].append(value)
    return result


# --- wordcount --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_wordcount_sample_data(tmp_path, mode):
    out = tmp_path / "out"
    pairs = run_pairs("wordcount.py", [SAMPLE], out, "--mode", mode)
    assert dict(pairs) == ref_wordcount(input_files(SAMPLE))
    assert len(pairs) == len(dict(pairs))
    assert_keys_sorted_per_part(out)


# --- top_words --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, options, n", [
    ("disk", [], 10),
    ("memory", [], 10),
    ("disk", ["--top", "25", "--reducers", "1"], 25),
    ("memory", ["--top", "25", "--reducers", "3", "--split-size", "16KB"], 25),
])
def test_top_words_sample_data(tmp_path, mode, options, n):
    pairs = run_pairs("top_words.py", [SAMPLE], tmp_path / "out", "--mode", mode, *options)
    assert [tuple(p) for p in pairs] == ref_top_words(input_files(SAMPLE), n)
    assert len(pairs) == n


def write_tied_corpus(directory: Path) -> list[Path]:
    """Many words sharing a few counts, shuffled over three files."""
    rng = random.Random(7)
    counts = {}
    for i in range(300):
        counts[f"w{i:03d}"] = rng.choice([3, 5, 5, 8, 8, 8, 13])
    counts["Zeta"] = counts["zeta"] = 8  # case-folded into one word "zeta" with count 16
    counts["it's"] = 13
    tokens = [w for w, c in counts.items() for _ in range(c)]
    rng.shuffle(tokens)
    directory.mkdir()
    files = []
    for i in range(3):
        chunk = tokens[i::3]
        lines = [" ".join(chunk[j:j + 7]) + rng.choice([".", ",", "!", ""])
                 for j in range(0, len(chunk), 7)]
        path = directory / f"part{i}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(path)
    return files


@pytest.mark.parametrize("mode", MODES)
def test_top_words_ties(tmp_path, mode):
    files = write_tied_corpus(tmp_path / "in")
    expected_all = ref_top_words(files, 10_000)
    assert expected_all[0] == ("zeta", 16)
    # a cut inside a run of equal counts: the alphabetically first of the tied words stay
    assert expected_all[39][1] == expected_all[40][1]
    for n in (1, 40, 10_000):
        out = tmp_path / f"out-{n}"
        # small splits and sort buffer: many map tasks and spills, so the step-2 combiner runs
        # on many partial lists
        pairs = run_pairs("top_words.py", files, out, "--mode", mode, "--top", str(n),
                          "--split-size", "2KB", "--sort-buffer", "16KB", "--reducers", "3")
        assert [tuple(p) for p in pairs] == expected_all[:n]
        assert sum(1 for p in part_files(out) if p.stat().st_size) == 1  # one reducer's output


def test_top_words_zero_and_script_mode(tmp_path):
    assert run_pairs("top_words.py", [SAMPLE], tmp_path / "out", "--top", "0") == []
    proc = subprocess.run([sys.executable, str(JOBS / "top_words.py"), str(SAMPLE),
                           "--top", "3", "--workers", "2", "-q"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert [tuple(p) for p in parse(proc.stdout.splitlines())] == \
        ref_top_words(input_files(SAMPLE), 3)


# --- line_count -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_line_count_sample_data(tmp_path, mode):
    out = tmp_path / "out"
    pairs = run_pairs("line_count.py", [SAMPLE], out, "--mode", mode, "--split-size", "32KB")
    assert len(pairs) == 3
    assert dict(pairs) == ref_line_count(input_files(SAMPLE))
    assert dict(pairs)["lines"] == 4938  # what `wc -l sample_data/*.txt` says


@pytest.mark.parametrize("mode", MODES)
def test_line_count_empty_input(tmp_path, mode):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    run("line_count.py", [empty], out, "--mode", mode)
    lines = [line for p in part_files(out) for line in p.read_text().splitlines()]
    assert '"lines"\t0' in lines
    assert dict(parse(lines)) == {"lines": 0, "words": 0, "chars": 0}


@pytest.mark.parametrize("mode", MODES)
def test_line_count_awkward_files(tmp_path, mode):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.txt").write_bytes(b"one two\r\nthree\r\n\r\nfour  five six\n")
    (d / "b.txt").write_bytes("no newline at the end: caf\u00e9 \u00fcber".encode())
    (d / "c.txt").write_bytes(b"")
    (d / "d.txt").write_bytes(b"\n" * 5 + b"lone\rcarriage return\n")
    rng = random.Random(3)
    lines = (" ".join("x" * rng.randint(1, 9) for _ in range(rng.randint(0, 12)))
             for _ in range(3000))
    (d / "e.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    files = input_files(d)
    expected = ref_line_count(files)
    assert expected["lines"] == 4 + 1 + 0 + 6 + 3000
    for reducers in ("1", "3"):
        pairs = run_pairs("line_count.py", [d], tmp_path / f"out{reducers}", "--mode", mode,
                          "--split-size", "4KB", "--reducers", reducers)
        assert dict(pairs) == expected and len(pairs) == 3


# --- inverted_index ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_inverted_index_sample_data(tmp_path, mode):
    out = tmp_path / "out"
    pairs = run_pairs("inverted_index.py", [SAMPLE], out, "--mode", mode)
    assert dict(pairs) == ref_inverted_index(input_files(SAMPLE))
    assert len(pairs) == len(dict(pairs))
    assert_keys_sorted_per_part(out)
    assert dict(pairs)["vanity"] == ["devils-dictionary-s-z.txt", "kjv-ecclesiastes.txt"]


def write_corpus(directory: Path) -> None:
    rng = random.Random(11)
    vocabulary = [f"w{i}" for i in range(60)] + ["Apple", "apple", "don't", "\u00e9t\u00e9"]
    for name in ["a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt", "sub/e.txt"]:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        words = rng.sample(vocabulary, rng.randint(5, 30))
        lines = [" ".join(rng.choices(words, k=rng.randint(0, 10))) for _ in range(200)]
        path.write_text("\n".join(lines), encoding="utf-8")
    (directory / "_ignored.txt").write_text("onlyinignoredfile\n")  # skipped by the engine
    (directory / "empty.txt").write_text("")


@pytest.mark.parametrize("mode", MODES)
def test_inverted_index_several_files(tmp_path, mode):
    d = tmp_path / "in"
    write_corpus(d)
    files = input_files(d)
    assert len(files) == 6
    expected = ref_inverted_index(files)
    assert "onlyinignoredfile" not in expected
    outputs = []
    for reducers in ("1", "3"):
        out = tmp_path / f"out{reducers}"
        pairs = run_pairs("inverted_index.py", [d], out, "--mode", mode, "--reducers", reducers,
                          "--split-size", "1KB", "--sort-buffer", "32KB")
        assert dict(pairs) == expected
        assert len(pairs) == len(expected)
        assert_keys_sorted_per_part(out)
        outputs.append(sorted(pairs))
    assert outputs[0] == outputs[1]


def test_inverted_index_full_path(tmp_path):
    d = tmp_path / "in"
    write_corpus(d)
    pairs = run_pairs("inverted_index.py", [d], tmp_path / "out", "--full-path")
    assert dict(pairs) == ref_inverted_index(input_files(d), full_path=True)


# --- join -------------------------------------------------------------------------------------
DEMO_INNER = {
    "u1": [["Ada Lovelace,UK", "o1002,7.99"], ["Ada Lovelace,UK", "o1006,5.00"]],
    "u2": [["Alan Turing,UK", "o1005,19.95"]],
    "u3": [["Grace Hopper,US", "o1001,12.50"], ["Grace Hopper,US", "o1003,40.00"],
           ["Grace Hopper,US", "o1007,8.75"]],
}
DEMO_LEFT = {**DEMO_INNER, "u4": [["Edsger Dijkstra,NL", None]],
             "u5": [["Barbara Liskov,US", None]]}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how, expected", [("inner", DEMO_INNER), ("left", DEMO_LEFT)])
def test_join_demo_data(tmp_path, mode, how, expected):
    out = tmp_path / "out"
    run("join.py", [JOIN_DATA], out, "--mode", mode, "--left", "users", "--how", how)
    assert grouped(out) == expected
    assert expected == ref_join(input_files(JOIN_DATA), lambda name: "users" in name, how)
    assert_keys_sorted_per_part(out)


def write_join_inputs(directory: Path) -> list[Path]:
    """Left and right files with duplicate keys on both sides, keys missing on either side,
    comments, blank lines, a record without a separator, and enough lines for several
    splits per file.  The right files come first in argument order."""
    rng = random.Random(5)
    directory.mkdir()
    keys = [f"k{i:02d}" for i in range(40)] + ["", "x y", "\u00e9"]

    def lines(side: str, n: int) -> list[str]:
        result = [f"# {side} header", ""]
        for i in range(n):
            key = rng.choice(keys[:30] if side == "left" else keys[10:])
            result.append(f"{key},{side}{i},{rng.randint(0, 999)}")
        result.append("solo" if side == "left" else "solo,right-solo")
        result.append("   ")
        return result

    files = []
    for name, side, n in [("right-1.csv", "right", 150), ("left-a.csv", "left", 120),
                          ("right-2.txt", "right", 90), ("left-b.csv", "left", 60)]:
        path = directory / name
        path.write_text("\r\n".join(lines(side, n)) + "\r\n", encoding="utf-8")
        files.append(path)
    return files


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["inner", "left"])
def test_join_generated(tmp_path, mode, how):
    files = write_join_inputs(tmp_path / "in")
    expected = ref_join(files, lambda name: name.startswith("left"), how)
    assert expected["solo"] == [["", "right-solo"]] * 4  # 2 left x 2 right records
    assert any(len(v) > 1 for v in expected.values())
    left_keys = {k for f in files if f.name.startswith("left") for k in
                 (line.partition(",")[0] for line in file_lines(f))}
    if how == "left":
        assert any(v[0][1] is None for v in expected.values())  # left-only keys kept
    else:
        assert all(v[0][1] is not None for v in expected.values())
    assert not set(expected) - left_keys  # right-only keys never appear
    results = []
    for reducers in ("1", "3"):
        out = tmp_path / f"out{reducers}"
        run("join.py", files, out, "--mode", mode, "--how", how, "--left", "left*.csv",
            "--reducers", reducers, "--split-size", "1KB")
        assert grouped(out) == expected
        assert_keys_sorted_per_part(out)
        results.append(grouped(out))
    assert results[0] == results[1]


def test_join_separator_and_default_left(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "left.tsv").write_text("a\t1\tx\nb\t2\na\t3\n")
    (d / "other.tsv").write_text("a\tA\nc\tC\na\tAA\n")
    out = tmp_path / "out"
    run("join.py", [d], out, "--sep", "\t", "--reducers", "1")
    assert read_pairs(out) == [("a", ["1\tx", "A"]), ("a", ["1\tx", "AA"]),
                               ("a", ["3", "A"]), ("a", ["3", "AA"])]


def test_join_left_pattern_must_split_the_inputs(tmp_path):
    proc = run("join.py", [JOIN_DATA], tmp_path / "out1", expect=2)  # default "left"
    assert "--left 'left' matches no input file" in proc.stderr
    proc = run("join.py", [JOIN_DATA], tmp_path / "out2", "--left", "*.csv", expect=2)
    assert "matches every input file" in proc.stderr


# --- job options in --help --------------------------------------------------------------------
@pytest.mark.parametrize("job, options", [("top_words.py", ["--top"]),
                                          ("join.py", ["--left", "--how", "--sep"]),
                                          ("inverted_index.py", ["--full-path"])])
def test_help_lists_job_options(job, options):
    proc = subprocess.run([sys.executable, "-m", "mapreduce", "run", str(JOBS / job), "--help"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for option in options:
        assert re.search(rf"^\s+{option}\b", proc.stdout, re.M), proc.stdout
