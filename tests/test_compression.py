"""Compressed input: ``.gz``, ``.bz2``, ``.xz``, ``.lz4`` and ``.zst`` files are read whole and
decompressed; a job over them writes byte-for-byte the output it writes over the plain files.

Files are made here with the standard library (``gzip``, ``bz2``, ``lzma``), ``lz4.frame``
and ``zstandard``, and again with the ``xz`` / ``lz4`` / ``zstd`` command-line tools where
they are installed (only those variants are skipped without them).  A truncated or corrupt
file of each codec is one ``truncated or corrupt`` line naming it, after one attempt; a
``.zst`` file without the zstandard package is refused before any task runs.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import subprocess
import sys

import lz4.frame
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "sample_data")
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
TIMEOUT = 120


def _zstd_compress(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


#: suffix -> compress(bytes) with a library.
LIBRARY = {
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    ".lz4": lz4.frame.compress,
    ".zst": _zstd_compress,
}
#: suffix -> the command-line tool that makes such files (reading stdin, writing stdout).
TOOLS = {".xz": ["xz", "-c"], ".lz4": ["lz4", "-c"], ".zst": ["zstd", "-q", "-c"]}


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(extra)
    return env


def run_cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapreduce", "run", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT, env=env or _env())


def sample_files() -> list[str]:
    return sorted(f for f in os.listdir(SAMPLE) if not f.startswith(("_", ".")))


def parts(out) -> dict[str, bytes]:
    result = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("part-"):
            with open(os.path.join(out, name), "rb") as f:
                result[name] = f.read()
    return result


@pytest.fixture(scope="module")
def plain_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "out"
    proc = run_cli(WORDCOUNT, SAMPLE, "-o", out, "--reducers", "3")
    assert proc.returncode == 0, proc.stderr
    return parts(out)


def _compressed_copy(directory, suffix: str, compress) -> None:
    directory.mkdir()
    for name in sample_files():
        with open(os.path.join(SAMPLE, name), "rb") as f:
            data = f.read()
        (directory / (name + suffix)).write_bytes(compress(data))


@pytest.mark.parametrize("suffix", sorted(LIBRARY))
def test_library_made_files_give_the_plain_output(tmp_path, plain_output, suffix):
    src = tmp_path / "in"
    _compressed_copy(src, suffix, LIBRARY[suffix])
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, src, "-o", out, "--reducers", "3", "--split-size", "16KB")
    assert proc.returncode == 0, proc.stderr
    assert parts(out) == plain_output
    assert "invalid UTF-8" not in proc.stderr


@pytest.mark.parametrize("suffix", sorted(TOOLS))
def test_tool_made_files_give_the_plain_output(tmp_path, plain_output, suffix):
    if shutil.which(TOOLS[suffix][0]) is None:
        pytest.skip(f"{TOOLS[suffix][0]} is not installed")
    if suffix == ".zst":
        pytest.importorskip("zstandard")

    def compress(data: bytes) -> bytes:
        return subprocess.run(TOOLS[suffix], input=data, capture_output=True, check=True).stdout

    src = tmp_path / "in"
    _compressed_copy(src, suffix, compress)
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, src, "-o", out, "--reducers", "3")
    assert proc.returncode == 0, proc.stderr
    assert parts(out) == plain_output


@pytest.mark.parametrize("suffix", [".xz", ".lz4", ".zst"])
def test_concatenated_streams_and_upper_case_suffix(tmp_path, suffix):
    """Two compressed streams back to back (``cat a.xz b.xz``) are one file's lines, and
    the suffix is matched without regard to case."""
    compress = LIBRARY[suffix]
    src = tmp_path / ("in.txt" + suffix.upper())
    src.write_bytes(compress(b"alpha beta\n") + compress(b"beta gamma\nbeta\n"))
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, src, "-o", out, "--reducers", "1")
    assert proc.returncode == 0, proc.stderr
    assert parts(out) == {"part-00000": b'"alpha"\t1\n"beta"\t3\n"gamma"\t1\n'}


def _damaged(suffix: str, how: str) -> bytes:
    data = "".join(f"line {i} some words here\n" for i in range(20000)).encode()
    blob = LIBRARY[suffix](data)
    if how == "truncated":
        return blob[: len(blob) // 2]
    middle = len(blob) // 2
    return blob[:20] + bytes(b ^ 0x5A for b in blob[20:middle]) + blob[middle:]


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
@pytest.mark.parametrize("suffix", sorted(LIBRARY))
def test_damaged_file_is_one_line_naming_it(tmp_path, suffix, how):
    src = tmp_path / ("data.txt" + suffix)
    src.write_bytes(_damaged(suffix, how))
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, src, "-o", out)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mapreduce: error:")]
    assert len(errors) == 1, proc.stderr
    assert f"{src}: truncated or corrupt {suffix[1:]} file" in errors[0], errors[0]
    assert "failed after 1 attempt" in errors[0]
    assert "Traceback" not in proc.stderr and "invalid UTF-8" not in proc.stderr
    assert not os.path.exists(out / "_SUCCESS")
    assert not [n for n in os.listdir(out) if n.startswith("part-")]


def test_whole_file_input_is_decompressed(tmp_path):
    job = tmp_path / "sizes.py"
    job.write_text('''
from mapreduce import Job


class Sizes(Job):
    INPUT_FORMAT = "whole_file"
    REDUCERS = 1

    def mapper(self, path, data):
        yield path.rsplit("/", 1)[1], data.decode()

    def reducer(self, name, texts):
        yield name, "".join(texts)
''', encoding="utf-8")
    for suffix, compress in LIBRARY.items():
        (tmp_path / ("f" + suffix)).write_bytes(compress(f"text of {suffix}\n".encode()))
    inputs = [tmp_path / ("f" + suffix) for suffix in LIBRARY]
    out = tmp_path / "out"
    proc = run_cli(job, *inputs, "-o", out)
    assert proc.returncode == 0, proc.stderr
    expected = "".join(f'"f{s}"\t"text of {s}\\n"\n' for s in sorted(LIBRARY))
    assert parts(out) == {"part-00000": expected.encode()}


def test_zst_without_zstandard_is_refused_before_any_task(tmp_path):
    """As if zstandard were not installed (an import that fails, the way a missing package
    does): one line naming the file and the pip command, before any task runs."""
    fake = tmp_path / "fake"
    (fake / "zstandard").mkdir(parents=True)
    (fake / "zstandard" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'zstandard'\")\n")
    good = tmp_path / "a.txt"
    good.write_text("alpha\n", encoding="utf-8")
    src = tmp_path / "b.txt.zst"
    src.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(20))  # never read: refused by name
    out = tmp_path / "out"
    env = _env()
    env["PYTHONPATH"] = str(fake)  # a zstandard that fails to import
    proc = run_cli(WORDCOUNT, good, src, "-o", out, env=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"mapreduce: error: {src}: .zst input needs the zstandard package: "
        "pip install 'mapreduce[zstd]'"]
    assert not os.path.exists(out / "_SUCCESS")


def test_other_suffixes_are_plain_text(tmp_path):
    src = tmp_path / "notes.txt.lzma-not"
    src.write_text("alpha alpha\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(WORDCOUNT, src, "-o", out, "--reducers", "1")
    assert proc.returncode == 0, proc.stderr
    assert parts(out) == {"part-00000": b'"alpha"\t2\n'}
