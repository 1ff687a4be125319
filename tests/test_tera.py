"""The Tera* benchmark jobs (jobs/teragen.py, terasort.py, teravalidate.py) and jobs/textgen.py,
run end to end through the command line on small inputs."""
from __future__ import annotations

import bisect
import json
import os
import random
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from mapreduce.codec import encode_key
from mapreduce.kernel import split_point_bytes

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
sys.path.insert(0, str(JOBS))

import teragen  # noqa: E402
import terasort  # noqa: E402
import textgen  # noqa: E402

ROWS = 20_000
ENV = dict(os.environ)  # the package is installed (pip install -e): no PYTHONPATH


def run(job: str, inputs, out: Path, *options: str) -> Path:
    cmd = [sys.executable, "-m", "mapreduce", "run", str(JOBS / job), *map(str, inputs),
           "-o", str(out), "--workers", "2", "-q", *options]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "_SUCCESS").exists()
    return out


def parts(out: Path) -> list[Path]:
    return sorted(out.glob("part-*"))


def concat(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in parts(out))


def write_spec(path: Path, script: str, *args: str) -> Path:
    proc = subprocess.run([sys.executable, str(JOBS / script), "--write-spec", str(path), *args],
                          cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return path


def gnu_sort(files) -> bytes:
    proc = subprocess.run(["sort", "-s", "-k1.1,1.10", *map(str, files)],
                          env={**os.environ, "LC_ALL": "C"}, capture_output=True, check=True)
    return proc.stdout


def checksum(data: bytes) -> str:
    total = sum(zlib.crc32(line) for line in data.split(b"\n")[:-1])
    return f"{total % 2**64:016x}"


def validate(inputs, out: Path, *options: str) -> dict:
    run("teravalidate.py", inputs, out, *options)
    result = {}
    for line in (out / "part-00000").read_text().splitlines():
        k, v = line.split("\t")
        result[json.loads(k)] = json.loads(v)
    return result


# --------------------------------------------------------------------------------------------
# TeraGen
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tera(tmp_path_factory):
    """TeraGen output for ROWS rows in 3 tasks (3 part files)."""
    d = tmp_path_factory.mktemp("tera")
    spec = write_spec(d / "spec3", "teragen.py", "--rows", str(ROWS), "--tasks", "3")
    out = run("teragen.py", [spec], d / "gen3", "--split-size", str(teragen.SPEC_LINE_BYTES))
    return d, out


def test_teragen_records(tera):
    _, out = tera
    assert len(parts(out)) == 3
    data = concat(out)
    assert len(data) == ROWS * 100
    ids = []
    for i in range(ROWS):
        rec = data[i * 100:(i + 1) * 100]
        assert rec[-1:] == b"\n" and b"\n" not in rec[:-1]
        assert all(0x21 <= b <= 0x7E for b in rec[:10]), rec
        assert rec[10:11] == b" " and rec[43:44] == b" "
        assert re.fullmatch(rb"[0-9A-F]{32}", rec[11:43])
        assert re.fullmatch(rb"[A-Z]{55}", rec[44:99])
        ids.append(int(rec[11:43], 16))
    assert ids == list(range(ROWS))   # every row once, in row order
    keys = {data[i * 100:i * 100 + 10] for i in range(ROWS)}
    assert len(keys) > ROWS * 0.99    # random keys: (almost) no collisions
    assert data[:100] == teragen.generate_rows(0, 1, teragen.TeraGen.SEED).tobytes()


def test_teragen_independent_of_tasks_runs_and_mode(tera, tmp_path):
    d, out3 = tera
    expected = concat(out3)
    spec1 = write_spec(tmp_path / "spec1", "teragen.py", "--rows", str(ROWS), "--tasks", "1")
    spec7 = write_spec(tmp_path / "spec7", "teragen.py", "--rows", str(ROWS), "--tasks", "7")
    assert spec7.stat().st_size == 7 * teragen.SPEC_LINE_BYTES
    one = run("teragen.py", [spec1], tmp_path / "gen1")
    assert len(parts(one)) == 1 and concat(one) == expected
    seven = run("teragen.py", [spec7], tmp_path / "gen7", "--mode", "memory",
                "--split-size", str(teragen.SPEC_LINE_BYTES))
    assert len(parts(seven)) == 7 and concat(seven) == expected
    again = run("teragen.py", [d / "spec3"], tmp_path / "again",
                "--split-size", str(teragen.SPEC_LINE_BYTES))
    assert [p.read_bytes() for p in parts(again)] == [p.read_bytes() for p in parts(out3)]


def test_teragen_rows_do_not_depend_on_batching():
    whole = teragen.generate_rows(0, 3000, 42)
    pieces = [teragen.generate_rows(lo, n, 42) for lo, n in ((0, 1), (1, 1500), (1501, 1499))]
    assert all((a == b).all() for a, b in zip([whole[0:1], whole[1:1501], whole[1501:]], pieces))
    assert (teragen.generate_rows(0, 100, 43)[:, :10] != whole[:100, :10]).any()


# --------------------------------------------------------------------------------------------
# TeraSort
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sort_input(tera):
    """TeraGen's part files plus a file of records with duplicate keys (ties must keep input
    order) and a short line."""
    d, out = tera
    data = concat(out)
    rng = random.Random(5)
    keys = [data[i * 100:i * 100 + 10] for i in rng.sample(range(ROWS), 300)]
    dups = b"".join(k + b" dup %05d %s\n" % (i, b"x" * (i % 7)) for i, k in enumerate(keys * 2))
    dups += b"!!!!!!!!!! first\n!\n" + keys[0] + b" last\n"
    (d / "dups.txt").write_bytes(dups)
    return parts(out) + [d / "dups.txt"]


@pytest.mark.parametrize("reducers, options", [("1", ()), ("3", ("--sort-buffer", "256KB"))])
def test_terasort_matches_gnu_sort(sort_input, tmp_path, reducers, options):
    out = run("terasort.py", sort_input, tmp_path / "sorted", "--reducers", reducers, *options)
    files = parts(out)
    assert len(files) == int(reducers)
    assert concat(out) == gnu_sort(sort_input)
    ranges = []
    for f in files:
        keys = [line[:10] for line in f.read_bytes().split(b"\n")[:-1]]
        assert keys == sorted(keys)
        assert keys, f"empty partition {f.name}"
        ranges.append((keys[0], keys[-1]))
    for (_, hi), (lo, _) in zip(ranges, ranges[1:]):
        assert hi < lo          # disjoint, increasing key ranges
    if options:
        summary = json.loads((out / "_job.json").read_text())
        assert summary["counters"]["framework"]["SPILL_FILES"] > len(sort_input)


def test_terasort_sampling_and_partitioner(sort_input):
    files = [str(p) for p in sort_input]
    samples = terasort.sample_keys(files, 1000)
    assert samples == sorted(samples) and 900 < len(samples) <= 1000
    assert samples == terasort.sample_keys(files, 1000)   # deterministic
    job = terasort.TeraSort()
    job.side_data = job.prepare(files)
    assert len(job.side_data["split_points"]) == terasort.TeraSort.REDUCERS - 1
    for n in (1, 2, 4, 7, 4):
        points = terasort.split_points(job.side_data["samples"].split("\n"), n)
        assert job.total_order_split_points(n) == points and len(points) == n - 1
        # what the engine does with them: bisect over the encoded points
        encoded = split_point_bytes(job, n)
        assert [bisect.bisect_right(encoded, encode_key(k))
                for k in ("", "!", "~~~~~~~~~~", *points)] == [0, 0, n - 1, *range(1, n)]
    empty = terasort.TeraSort()
    empty.side_data = {"samples": "", "sample_count": 0, "split_points": []}
    assert empty.total_order_split_points(3) == []


# --------------------------------------------------------------------------------------------
# TeraValidate
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sorted_out(tera, tmp_path_factory):
    d, gen = tera
    out = run("terasort.py", [gen], tmp_path_factory.mktemp("sorted") / "out", "--reducers", "3")
    return gen, out


def test_teravalidate_ok(sorted_out, tmp_path):
    gen, out = sorted_out
    # small splits: summaries of many map tasks (some of them empty) must line up
    result = validate([out], tmp_path / "v", "--split-size", "64KB")
    assert result == {"records": ROWS, "checksum": checksum(concat(gen)),
                      "splits": result["splits"], "errors": [], "ok": True}
    assert result["splits"] > 3
    (tmp_path / "withempty").mkdir()
    for p in parts(out):
        shutil.copy(p, tmp_path / "withempty" / p.name)
    (tmp_path / "withempty" / "part-00001a").write_bytes(b"")   # an empty part in between
    again = validate([tmp_path / "withempty"], tmp_path / "v2")
    assert again["ok"] and again["records"] == ROWS and again["checksum"] == result["checksum"]


def test_teravalidate_detects_disorder(sorted_out, tmp_path):
    _, out = sorted_out
    lines = concat(out).split(b"\n")[:-1]
    # 1. two adjacent records swapped inside a part file
    bad = tmp_path / "swapped"
    bad.mkdir()
    swapped = lines[:]
    swapped[100], swapped[101] = swapped[101], swapped[100]
    (bad / "part-00000").write_bytes(b"\n".join(swapped) + b"\n")
    r = validate([bad], tmp_path / "v1")
    assert not r["ok"] and r["records"] == ROWS and len(r["errors"]) == 1
    # 2. the part files in the wrong order (each one sorted in itself), one split each
    perm = tmp_path / "permuted"
    perm.mkdir()
    files = parts(out)
    for name, src in zip(["part-00000", "part-00001", "part-00002"], [files[1], files[0], files[2]]):
        shutil.copy(src, perm / name)
    r = validate([perm], tmp_path / "v2", "--split-size", "1GB")
    assert not r["ok"] and r["records"] == ROWS and r["splits"] == 3
    # ... and whole splits out of order within one file
    half = len(lines) // 2
    (perm / "part-00000").write_bytes(b"\n".join(lines[half:] + lines[:half]) + b"\n")
    for name in ("part-00001", "part-00002"):
        (perm / name).unlink()
    r = validate([perm], tmp_path / "v3", "--split-size", str(half * 100))
    assert not r["ok"] and r["records"] == ROWS
    # 3. truncated: the last record cut short
    trunc = tmp_path / "truncated"
    trunc.mkdir()
    (trunc / "part-00000").write_bytes(b"\n".join(lines)[:-40])
    r = validate([trunc], tmp_path / "v4")
    assert not r["ok"] and r["records"] == ROWS
    assert r["checksum"] != checksum(b"\n".join(lines) + b"\n")
    # 4. a whole record missing: still ordered, but the count and checksum tell
    (trunc / "part-00000").write_bytes(b"\n".join(lines[:-1]) + b"\n")
    r = validate([trunc], tmp_path / "v5")
    assert r["ok"] and r["records"] == ROWS - 1
    assert r["checksum"] != checksum(b"\n".join(lines) + b"\n")


# --------------------------------------------------------------------------------------------
# TextGen
# --------------------------------------------------------------------------------------------
def test_textgen(tmp_path):
    lines = 5000
    spec1 = write_spec(tmp_path / "spec1", "textgen.py", "--lines", str(lines), "--tasks", "1")
    spec3 = write_spec(tmp_path / "spec3", "textgen.py", "--lines", str(lines), "--tasks", "3")
    one = run("textgen.py", [spec1], tmp_path / "t1")
    three = run("textgen.py", [spec3], tmp_path / "t3", "--mode", "memory",
                "--split-size", str(textgen.SPEC_LINE_BYTES))
    assert len(parts(three)) == 3
    data = concat(one)
    assert data == concat(three)
    text = data.decode("ascii").split("\n")
    assert text[-1] == "" and len(text) - 1 == lines
    vocab = set(textgen.vocabulary())
    assert len(vocab) == textgen.VOCAB_SIZE
    counts: dict[str, int] = {}
    for line in text[:-1]:
        words = line.split(" ")
        assert textgen.MIN_WORDS <= len(words) <= textgen.MAX_WORDS
        for w in words:
            assert w in vocab and w.islower() and w.isalpha()
            counts[w] = counts.get(w, 0) + 1
    top = sorted(counts.values(), reverse=True)
    assert top[0] > 5 * top[20] > 0          # Zipf-like: a steep head
    assert len(counts) > 2000                # and a long tail
    # the same lines from an arbitrary split of the range, in process
    assert list(textgen.generate_lines(1000, 1500, textgen.TextGen.SEED, textgen.TextGen.BLOCK)) \
        == text[1000:2500]
