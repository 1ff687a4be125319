"""Many small input files packed into few splits (Hadoop's CombineFileInputFormat).

Run the way a user runs it (``python -m mapreduce run``, no extra flags but the split size),
and checked against plain Python reading the same files with gzip/bz2: every record's
``input_path`` (and mrjob's ``mapreduce.map.input.file``) names the file it came from, a
map-only job's output is the inputs' lines in file order, and the map task count (from
``_job.json``) drops from one per file to about total bytes / split size.
"""
from __future__ import annotations

import bz2
import gzip
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mapreduce.journal import TASK_COMMITTED, Journal, read_journal

REPO = Path(__file__).resolve().parent.parent
MRJOB_BY_FILE = REPO / "tests" / "mrjob_examples" / "mr_count_lines_by_file.py"
SPLIT = 64 * 1024
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()


def cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapreduce", "run", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    """About 300 small files (plain, .gz, .bz2, empty, an empty .gz) and two plain files
    larger than the split size among them; with each file's lines as Python reads them."""
    rng = random.Random(18)
    d = tmp_path_factory.mktemp("small-files")
    lines_of: dict[str, list[str]] = {}
    for i in range(300):
        n = 0 if i % 23 == 0 else rng.randint(1, 60)
        if i in (100, 200):
            n = 9000  # larger than the split size: cut into byte ranges, not packed
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 9)))
                 for _ in range(n)]
        data = "".join(line + "\n" for line in lines).encode()
        name = f"d{i // 100}/f{i:04d}"
        if i % 5 == 0:
            name, data = name + ".gz", gzip.compress(data)
        elif i % 7 == 0:
            name, data = name + ".bz2", bz2.compress(data)
        else:
            name += ".txt"
        (d / name).parent.mkdir(exist_ok=True)
        (d / name).write_bytes(data)
        lines_of[name] = lines
    return d, lines_of


def plain_python_lines(d: Path, name: str) -> list[str]:
    """The file's lines, read by the standard library alone (the independent reference)."""
    opener = gzip.open if name.endswith(".gz") else bz2.open if name.endswith(".bz2") else open
    with opener(d / name, "rb") as f:
        return f.read().decode().splitlines()


def map_tasks(out: Path) -> list[dict]:
    summary = json.loads((out / "_job.json").read_text())
    return [t for t in summary["tasks"] if t["kind"] == "map" and t["step"] == 0]


PER_FILE_JOB = """\
import os
from mapreduce import Job

class PerFile(Job):
    REDUCERS = 3

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--poison", default="")

    def mapper(self, _key, line):
        if line == "POISON" and os.path.exists(self.options.poison):
            raise ValueError("poisoned line")
        yield self.input_path, [1, len(line)]

    def reducer(self, path, values):
        values = list(values)
        yield path, [sum(v[0] for v in values), sum(v[1] for v in values)]
"""

MAP_ONLY_JOB = """\
from mapreduce import Job

class Tagged(Job):  # a mapper and no reducer: map-only, one part file per map task
    OUTPUT_PROTOCOL = "raw_value"

    def mapper(self, _key, line):
        yield None, self.input_path + "\\t" + line
"""


def per_file_output(out: Path) -> dict[str, list[int]]:
    result = {}
    for part in sorted(out.glob("part-*")):
        for line in part.read_text().splitlines():
            key, value = line.split("\t")
            result[json.loads(key)] = json.loads(value)
    return result


def test_records_per_input_path_equal_plain_python_with_few_map_tasks(small, tmp_path):
    d, lines_of = small
    (tmp_path / "per_file.py").write_text(PER_FILE_JOB)
    proc = cli("per_file.py", d, "-o", tmp_path / "out", "--split-size", SPLIT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = {}
    for name in lines_of:
        lines = plain_python_lines(d, name)
        assert lines == lines_of[name]
        if lines:
            expected[str(d / name)] = [len(lines), sum(len(x) for x in lines)]
    assert per_file_output(tmp_path / "out") == expected
    # One map task per file before; now about total bytes / split size (packs close early
    # when the next file does not fit, and the two large files are cut into ranges).
    total = sum((d / name).stat().st_size for name in lines_of)
    tasks = map_tasks(tmp_path / "out")
    assert len(tasks) <= 2 * total // SPLIT + 4
    assert len(tasks) < len(lines_of) // 5
    assert any(" files " in t["input"] for t in tasks)
    summary = json.loads((tmp_path / "out" / "_job.json").read_text())
    assert summary["counters"]["framework"]["MAP_INPUT_RECORDS"] == \
        sum(len(v) for v in lines_of.values())
    assert summary["counters"]["framework"]["BYTES_READ"] == total


def test_map_only_output_is_every_line_tagged_with_its_file_in_file_order(small, tmp_path):
    d, lines_of = small
    (tmp_path / "tagged.py").write_text(MAP_ONLY_JOB)
    proc = cli("tagged.py", d, "-o", tmp_path / "out", "--split-size", SPLIT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = b"".join(p.read_bytes() for p in sorted((tmp_path / "out").glob("part-*")))
    expected = "".join(f"{d / name}\t{line}\n" for name in sorted(lines_of)
                       for line in plain_python_lines(d, name))
    assert got.decode() == expected
    assert len(list((tmp_path / "out").glob("part-*"))) == len(map_tasks(tmp_path / "out"))


def test_mrjob_jobconf_input_file_follows_every_packed_file(small, tmp_path):
    d, lines_of = small
    proc = cli(MRJOB_BY_FILE, d, "-o", tmp_path / "out", "--split-size", SPLIT,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = {"file://" + str(d / name): len(lines)
                for name, lines in lines_of.items() if lines}
    assert per_file_output(tmp_path / "out") == expected
    assert len(map_tasks(tmp_path / "out")) < len(lines_of) // 5


def test_whole_file_input_still_one_task_per_file(small, tmp_path):
    d, lines_of = small
    (tmp_path / "whole.py").write_text(
        "from mapreduce import Job\n"
        "class Whole(Job):\n    INPUT_FORMAT = 'whole_file'\n    REDUCERS = 1\n"
        "    def mapper(self, path, data):\n        yield path, data.count(b'\\n')\n")
    proc = cli("whole.py", d / "d0", "-o", tmp_path / "out", "--split-size", SPLIT,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = [n for n in lines_of if n.startswith("d0/")]
    assert per_file_output(tmp_path / "out") == {str(d / n): len(lines_of[n]) for n in names}
    assert len(map_tasks(tmp_path / "out")) == len(names)


@pytest.fixture
def poisoned(small, tmp_path) -> tuple[Path, Path, dict[str, list[int]]]:
    """A copy of the small files whose last file holds a line that fails the mapper while
    the flag file exists, and the per-file reference without the flag."""
    d, lines_of = small
    data = tmp_path / "data"
    for name in lines_of:
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes((d / name).read_bytes())
    last = sorted(lines_of)[-1]
    assert not last.endswith((".gz", ".bz2"))
    with open(data / last, "a") as f:
        f.write("POISON\n")
    expected = {str(data / n): [len(v), sum(len(x) for x in v)]
                for n, v in lines_of.items() if v}
    expected[str(data / last)] = [len(lines_of[last]) + 1,
                                  sum(len(x) for x in lines_of[last]) + 6]
    (tmp_path / "per_file.py").write_text(PER_FILE_JOB)
    (tmp_path / "flag").write_text("")
    return data, tmp_path / "flag", expected


def _first_run_fails(data: Path, flag: Path, out: Path, cwd: Path) -> str:
    proc = cli("per_file.py", data, "-o", out, "--split-size", SPLIT, "--workers", "1",
               "--max-attempts", "1", "--poison", flag, cwd=cwd)
    assert proc.returncode != 0 and "poisoned line" in proc.stderr, proc.stderr
    return next(line for line in proc.stderr.splitlines() if "mapreduce: error:" in line)


def test_resume_keeps_the_packed_tasks_that_committed(poisoned, tmp_path):
    data, flag, expected = poisoned
    out = tmp_path / "out"
    error = _first_run_fails(data, flag, out, tmp_path)
    # the error names the packed file and its line, not the task's record number
    last = max(expected)
    assert f"at {last} line {expected[last][0]}" in error, error
    flag.unlink()
    proc = cli("per_file.py", data, "-o", out, "--split-size", SPLIT, "--workers", "1",
               "--max-attempts", "1", "--poison", flag, "--resume", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert per_file_output(out) == expected
    tasks = map_tasks(out)
    assert any(t.get("recovered") for t in tasks)
    assert not all(t.get("recovered") for t in tasks)


def test_resume_refuses_a_journal_whose_map_task_read_another_split(poisoned, tmp_path):
    """A journal written by a planner that cut the inputs differently (one split per file,
    as before packing) must not have its map outputs taken for the packs'."""
    data, flag, _expected = poisoned
    out = tmp_path / "out"
    _first_run_fails(data, flag, out, tmp_path)
    flag.unlink()
    journals = list(out.glob("_work*/journal")) or list(out.glob("**/journal"))
    assert len(journals) == 1, journals
    path = journals[0]
    records, _torn = read_journal(str(path))
    changed = 0
    os.remove(path)
    with Journal.create(str(path), records[0].payload) as journal:
        for record in records[1:]:
            p = record.payload
            if record.type == TASK_COMMITTED and p["kind"] == "map" and p["step"] == 0:
                p["task"]["input"] = f"{data}/d0/f0000.gz (whole file, gz)"
                changed += 1
            journal.append(record.type, p)
    assert changed
    proc = cli("per_file.py", data, "-o", out, "--split-size", SPLIT, "--workers", "1",
               "--poison", flag, "--resume", cwd=tmp_path)
    line = one_error_line(proc)
    assert "this version plans" in line and "--overwrite" in line, line


def test_plan_names_the_packing(small, tmp_path):
    d, _lines_of = small
    (tmp_path / "per_file.py").write_text(PER_FILE_JOB)
    proc = cli("per_file.py", d, "-o", tmp_path / "out", "--split-size", SPLIT, "-v",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "small files packed into" in proc.stderr, proc.stderr


def test_small_files_in_s3_are_packed_and_each_record_names_its_url(small, tmp_path):
    """Remote input: the same small files in a loopback S3 (moto, started as its own
    process by test_storage's fixture helpers), read through the filesystem seam."""
    pytest.importorskip("s3fs")
    from test_storage import AWS_ENV, _start_moto, _stop, endpoint_option

    import s3fs

    d, lines_of = small
    proc, endpoint = _start_moto(str(tmp_path / "moto.log"))
    try:
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing")
        fs.mkdir("small")
        fs.put(str(d / "d0"), "s3://small/in", recursive=True)  # 100 files: d0/...
        (tmp_path / "per_file.py").write_text(PER_FILE_JOB)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        result = subprocess.run(
            [sys.executable, "-m", "mapreduce", "run", "per_file.py", "s3://small/in", "-o",
             str(tmp_path / "out"), "--split-size", str(SPLIT),
             *endpoint_option((endpoint, fs))],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
            env=dict(env, **AWS_ENV))
    finally:
        _stop(proc)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {f"s3://small/in/{name[3:]}": [len(v), sum(len(x) for x in v)]
                for name, v in lines_of.items() if v and name.startswith("d0/")}
    assert per_file_output(tmp_path / "out") == expected
    assert len(map_tasks(tmp_path / "out")) < 100 // 5


HOOKS_JOB = """\
from mapreduce import Job

class Hooks(Job):
    REDUCERS = 2

    def mapper_init(self):
        self.tag = self.input_path  # cached per task, as jobs/join.py does
        self.lines = 0

    def mapper(self, _key, line):
        self.lines += 1
        yield self.tag, 1

    def mapper_final(self):
        yield "files", 1
        yield "lines counted in mapper_final", self.lines

    def reducer(self, key, values):
        yield key, sum(values)
"""


def test_per_task_hooks_run_around_each_packed_file(small, tmp_path):
    """A job that caches self.input_path in mapper_init sees each file's path: the hooks run
    per packed file, as when every file was a task of its own."""
    d, lines_of = small
    (tmp_path / "hooks.py").write_text(HOOKS_JOB)
    proc = cli("hooks.py", d, "-o", tmp_path / "out", "--split-size", SPLIT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = per_file_output(tmp_path / "out")
    # the two large files are cut into byte ranges: one hook pair per range
    ranges = sum(-(-(d / n).stat().st_size // SPLIT) for n in lines_of
                 if (d / n).stat().st_size > SPLIT)
    small_files = sum(1 for n in lines_of if (d / n).stat().st_size <= SPLIT)
    assert got.pop("files") == small_files + ranges
    assert got.pop("lines counted in mapper_final") == sum(len(v) for v in lines_of.values())
    assert got == {str(d / n): len(v) for n, v in lines_of.items() if v}
    assert len(map_tasks(tmp_path / "out")) < len(lines_of) // 5
