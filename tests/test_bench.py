"""The ``bench`` command and the benchmark suite's pieces (fast: small inputs only).

* ``python -m mapreduce bench`` on ``sample_data/``: a table with both modes, identical
  outputs, exit 0; ``--json``; one-line usage errors with exit status 2.
* ``benchmarks/``: the data generators (format, determinism, reuse), the agreement checkers,
  the baselines, the process measurement, and a small smoke run of every workload except
  ``scale`` (the full suite is ``python benchmarks/run.py``, not part of the test run).
"""
from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(REPO, "benchmarks")
SAMPLE = os.path.join(REPO, "sample_data")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
sys.path.insert(0, BENCH_DIR)

import baselines  # noqa: E402
import checks  # noqa: E402
import datagen  # noqa: E402
import run as suite  # noqa: E402


def _env() -> dict:
    env = dict(os.environ)
    return env


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapreduce", "bench", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=_env())


# --------------------------------------------------------------------------------------------
# python -m mapreduce bench
# --------------------------------------------------------------------------------------------

def test_bench_prints_both_modes_and_identical_outputs(tmp_path):
    report = tmp_path / "bench.json"
    proc = bench(WORDCOUNT, SAMPLE, "--repeat", "1", "--workers", "2", "--json", report)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    header = next(line for line in out.splitlines() if "disk" in line and "memory" in line)
    assert re.search(r"disk\s+memory\s+disk/memory", header)
    for label in ("wall time (s)", "map phase (s)", "reduce phase", "CPU time",
                  "peak RSS, largest worker", "peak RSS, coordinator", "SPILL_FILES",
                  "MERGE_PASSES", "SPILLED_BYTES"):
        assert label in out, label
    assert "outputs: byte-identical in both modes" in out
    assert "Traceback" not in proc.stderr
    data = json.loads(report.read_text())
    assert data["outputs_identical"] is True
    assert [r["mode"] for r in data["runs"]["disk"]] == ["disk"]
    for mode in ("disk", "memory"):
        s = data["summary"][mode]
        assert s["wall_s"] > 0 and s["cpu_s"] > 0
        assert s["worker_peak_rss"] > 1 << 20 and s["coordinator_peak_rss"] > 1 << 20
        assert s["map_s"] > 0 and s["reduce_s"] > 0
    assert data["summary"]["disk"]["counters"]["SPILL_FILES"] > 0
    assert data["summary"]["memory"]["counters"]["SPILLED_BYTES"] == 0
    assert "disk/memory" in data["ratios"]


@pytest.mark.parametrize("args, message", [
    (["--modes", "fast"], "--modes: unknown mode 'fast'"),
    (["--repeat", "0"], "--repeat must be at least 1"),
    (["--sort-buffer", "lots"], "--sort-buffer: invalid size"),
])
def test_bench_usage_errors_are_one_line(args, message):
    proc = bench(WORDCOUNT, SAMPLE, *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mapreduce: error: ") and message in lines[0]


def test_bench_missing_job_file_is_a_usage_error(tmp_path):
    proc = bench(tmp_path / "nope.py", SAMPLE, "--repeat", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"mapreduce: error: job file does not exist: {tmp_path}/nope.py"


# --------------------------------------------------------------------------------------------
# benchmarks/datagen.py
# --------------------------------------------------------------------------------------------

def test_zipf_text_format_determinism_and_reuse(tmp_path):
    a, reused = datagen.zipf_text(str(tmp_path / "a.txt"), 300_000)
    assert not reused
    b, _ = datagen.zipf_text(str(tmp_path / "b.txt"), 300_000)
    data = open(a, "rb").read()
    assert data == open(b, "rb").read()                 # same parameters, same bytes
    assert 300_000 - 300 < len(data) <= 300_000 and data.endswith(b"\n")
    assert re.fullmatch(rb"([a-z]+( [a-z]+)*\n)+", data)  # single spaces, no empty lines
    meta = json.load(open(a + ".meta.json"))
    assert meta["bytes"] == len(data) and meta["tokens"] == len(data.split())
    counts = collections.Counter(data.split()).most_common()
    assert counts[0][1] > 5 * counts[20][1]             # Zipf: a steep head
    mtime = os.path.getmtime(a)
    assert datagen.zipf_text(a, 300_000) == (a, True)   # reused, not rewritten
    assert os.path.getmtime(a) == mtime
    assert datagen.zipf_text(a, 200_000)[1] is False    # other parameters: regenerated
    assert os.path.getsize(a) <= 200_000


def test_tera_records_format(tmp_path):
    path, _ = datagen.tera_records(str(tmp_path / "t.txt"), 5000)
    lines = open(path, "rb").read().split(b"\n")
    assert lines.pop() == b"" and len(lines) == 5000
    for row, line in enumerate(lines):
        assert len(line) == 99
        assert all(33 <= c <= 126 for c in line[:10])
        assert line[10:11] == b" " and line[43:44] == b" "
        assert int(line[11:43], 16) == row and line[11:43] == line[11:43].upper()
        rot = row % 26
        assert line[44:99] == bytes(65 + (rot + j) % 26 for j in range(55))
    keys = [line[:10] for line in lines]
    assert len(set(keys)) < len(keys)                   # some ties, to test stability
    assert datagen.tera_records(path, 5000)[1] is True


def test_tiny_files(tmp_path):
    d, _ = datagen.tiny_files(str(tmp_path / "tiny"), 7)
    assert sorted(os.listdir(d)) == [f"tiny-{i:05d}.txt" for i in range(7)]
    assert datagen.tiny_files(d, 7)[1] is True


# --------------------------------------------------------------------------------------------
# benchmarks/checks.py and benchmarks/baselines.py
# --------------------------------------------------------------------------------------------

def test_read_counts_in_every_format(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-00000").write_text('"apple"\t3\n"pear"\t1\n')
    (out / "part-00001").write_text('"zebra"\t10\n')
    (out / "_SUCCESS").write_text("")
    (tmp_path / "c.tsv").write_text("apple\t3\npear\t1\nzebra\t10\n")
    (tmp_path / "u.txt").write_text("      3 apple\n      1 pear\n     10 zebra\n")
    expected = {"apple": 3, "pear": 1, "zebra": 10}
    assert checks.read_counts(str(out), "json") == expected
    assert checks.read_counts(str(tmp_path / "c.tsv"), "tsv") == expected
    assert checks.read_counts(str(tmp_path / "u.txt"), "uniq") == expected


def test_compare_counts_names_the_difference():
    ref = {"a": 1, "b": 2}
    assert checks.compare_counts(ref, {"b": 2, "a": 1}) is None
    assert "missing" in checks.compare_counts(ref, {"a": 1})
    assert "unexpected" in checks.compare_counts(ref, {"a": 1, "b": 2, "c": 3})
    assert "'b': 3 instead of 2" in checks.compare_counts(ref, {"a": 1, "b": 3})


def test_first_difference_across_file_boundaries(tmp_path):
    def files(*chunks):
        paths = []
        for i, c in enumerate(chunks):
            p = tmp_path / f"{len(list(tmp_path.iterdir()))}-{i}"
            p.write_bytes(c)
            paths.append(str(p))
        return paths

    assert checks.first_difference(files(b"abc", b"def"), files(b"abcdef")) is None
    assert checks.first_difference(files(b"ab", b"cXef"), files(b"abcdef")) == 3
    assert checks.first_difference(files(b"abc"), files(b"abcdef")) == 3
    assert checks.first_difference(files(b""), files(b"")) is None


def test_baselines_agree_and_ranges_are_line_aligned(tmp_path):
    path, _ = datagen.zipf_text(str(tmp_path / "z.txt"), 200_000)
    data = open(path, "rb").read()
    ranges = baselines.line_aligned_ranges(path, 8)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(data[s - 1:s] == b"\n" for s, _ in ranges[1:])
    reference = collections.Counter(data.decode().split())
    assert baselines.count_counter(path) == reference
    assert baselines.count_pool(path, 2) == reference


_REAPED_SCRIPT = """
import collections, sys, psutil
sys.path.insert(0, sys.argv[1])
import baselines
counts = baselines.count_pyspark(sys.argv[2], 2)
assert counts == collections.Counter(open(sys.argv[2]).read().split()), "counts differ"
left = [p.name() for p in psutil.Process().children(recursive=True)]
assert not left, f"children left running: {left}"
print("reaped")
"""


@pytest.mark.slow  # a JVM start (~16 s): the benchmark suite's, not a user path
def test_pyspark_baseline_waits_for_its_jvm(tmp_path):
    """The suite counts a program's CPU as its own plus its waited-for children's: the PySpark
    baseline must reap the JVM it started, or Spark's CPU time would go unmeasured."""
    from mapreduce.errors import UsageError
    try:
        import pyspark  # noqa: F401
        from mapreduce.runners.spark import check_java
        check_java()
    except (ImportError, UsageError) as exc:
        if os.environ.get("MAPREDUCE_REQUIRE_SPARK") == "1":
            pytest.fail(f"MAPREDUCE_REQUIRE_SPARK=1 but {exc}")
        pytest.skip(str(exc))
    path, _ = datagen.zipf_text(str(tmp_path / "z.txt"), 20_000)
    done = subprocess.run([sys.executable, "-c", _REAPED_SCRIPT, BENCH_DIR, path],
                          capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("reaped")


def test_run_measured_reports_the_child_and_fails_in_one_line():
    m = suite.run_measured("sleep", [sys.executable, "-c",
                                     "x = bytearray(64 << 20); x[::4096] = b'x' * (16384)"])
    assert m["wall_s"] > 0 and m["cpu_s"] > 0
    assert 64 << 20 <= m["max_rss"] < 400 << 20
    with pytest.raises(suite.BenchFailure, match=r"^boom: exit status 3: oops$"):
        suite.run_measured("boom", [sys.executable, "-c",
                                    "import sys; print('oops', file=sys.stderr); sys.exit(3)"])


def test_suite_rejects_unknown_workloads():
    proc = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "run.py"), "--only", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown workload nope" in proc.stderr


# --------------------------------------------------------------------------------------------
# a small smoke run of the workloads (real processes, tiny sizes)
# --------------------------------------------------------------------------------------------

@pytest.mark.slow  # every workload end to end (~35 s): benchmarks get their own command
def test_suite_smoke_small_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "DATA", str(tmp_path / "data"))
    ctx = suite.Context(quick=True, repeat=1, sizes={
        "text": 256 << 10, "tera_rows": 20_000, "latency_runs": 1, "tiny_files": 6,
        "small_files": 40, "small_bytes": 256 << 10})
    sections = [suite.wordcount(ctx), suite.terasort(ctx), suite.latency(ctx),
                suite.smallfiles(ctx)]
    assert ctx.failures == [] and ctx.disagreements == []
    wc, tera, lat, small = sections
    assert small["checks"] and small["checks"][0].startswith("3 outputs compared")
    assert 1 <= small["results"]["ours, plain, --mode disk"]["map_tasks"] < 40
    assert wc["checks"][0].startswith("all ") and "outputs agree" in wc["checks"][0]
    assert "ours, in-mapper combining, --mode memory" in wc["table"]
    if os.path.exists(suite.TERASORT):
        assert tera["checks"] == ["ours == GNU sort -s, byte for byte (2,000,000 bytes)"]
        assert {t.status for t in tera["targets"]} <= {"PASS", "MISS"}
    assert "6 one-line map tasks" in lat["table"] and "6 one-line files" in lat["table"]
    assert lat["results"]["tiny_n"]["map_tasks"] == 6
    assert lat["results"]["tiny_files"]["map_tasks"] == 1  # packed into one split
    report = suite.render(sections, suite.machine_info(), type("A", (), {"quick": True})(),
                          ctx, 0.0, "0/0")
    assert "## Targets" in report and "| GNU tr \\| sort \\| uniq -c |" in report
    assert not os.listdir(ctx.work) if os.path.exists(ctx.work) else True


def test_pair_cost_measures_every_layer_on_the_same_tokens(tmp_path):
    """The bound script runs end to end and reports one ns/token figure per layer."""
    text = tmp_path / "t.txt"
    text.write_text("a b c a\nb b d\n" * 2000, encoding="utf-8")
    proc = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "pair_cost.py"), str(text),
                           "--repeat", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "4,000 lines, 14,000 tokens" in proc.stdout
    rows = re.findall(r"^(.+?)\s+(\d+) ns/token$", proc.stdout, re.M)
    assert [name.strip() for name, _ in rows] == [
        "Counter.update(line.split())", "for w in line.split(): pass",
        "consume mapper generator", "generator + dict lookup + list append",
        "CombiningBuffer.extend (with spills, combiner)",
        "CombiningBuffer.map_records (run_map's loop)"]


# --------------------------------------------------------------------------------------------
# benchmarks/identity_paths.py
# --------------------------------------------------------------------------------------------
def test_identity_paths_benchmark_runs_and_checks_its_outputs():
    """The identity-path microbenchmark runs every row and exits 0 only when the identity
    reducer's part file equals the hand-written reducer's, byte for byte."""
    done = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "identity_paths.py"),
                           "--records", "3000", "--repeat", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "reduce outputs byte-identical: True" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.endswith("ns/record")]
    assert len(rows) in (4, 9)  # 9 with the C core (its sort, sort buffer and raw lines)
