"""Inputs and outputs in remote stores (mapreduce/storage.py, docs/storage.md), against real
servers on loopback, each a separate process started by a fixture:

* an S3-compatible server: moto in server mode (``moto[server]``, in the test extra).  Picked
  over SeaweedFS because it is a pure-Python wheel that pip installs from the test extra
  alone (nothing for .ci/run to fetch or build), starts in about a second, and speaks the S3
  REST protocol over HTTP that s3fs/botocore use against AWS -- the client side is exactly
  what users run;
* a static HTTP server with range requests (tests/http_range_server.py), which logs every
  request so a test can prove that splits are read by ranges, never whole.

The CLI runs as users run it: ``python -m mapreduce run``, the endpoint given with
``--storage-option endpoint_url=...``, credentials in the AWS_* environment variables that a
user of a private S3 endpoint sets.  Results are compared with the same job run over the same
files on local disk, byte for byte.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

if os.environ.get("MAPREDUCE_REQUIRE_S3") == "1":  # CI: a skip would hide a broken install
    import s3fs
else:
    s3fs = pytest.importorskip("s3fs")  # the test extra installs it (pyproject.toml)

from test_dask import cluster  # noqa: E402,F401  (a scheduler and two workers, processes)
from test_spark import spark  # noqa: E402,F401  (the session's one local[2] SparkContext)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
GATED = os.path.join(REPO, "tests", "ft_jobs", "gated.py")
SAMPLE = os.path.join(REPO, "sample_data")
SECRET = "s3cr3t-Value-That-Must-Never-Be-Written"
#: What a user of a private S3 endpoint puts in the environment (moto accepts any key).
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within 60 s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _start_moto(log_path: str, **env: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(os.environ, **env))
    _wait_listening(port, proc, "moto server")
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The loopback S3 server: (endpoint URL, an s3fs client of the test's own)."""
    proc, endpoint = _start_moto(str(tmp_path_factory.mktemp("moto") / "moto.log"))
    try:
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing")
        yield endpoint, fs
    finally:
        _stop(proc)


def _words(path: str, seed: int, lines: int) -> None:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)] + ["Zoë", "naïve", "déjà"]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            f.write(" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) + "\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Local input: the sample texts, a 2 MB generated file (1 MB splits), a gzip
    file, and names the hidden-name rule skips (``_SUCCESS``, ``.hidden``, ``_tmp/``)."""
    d = tmp_path_factory.mktemp("data") / "in"
    shutil.copytree(SAMPLE, d)
    _words(str(d / "big.txt"), 1, 60000)
    subprocess.run(["gzip", "-k", str(d / "kjv-ecclesiastes.txt")], check=True)
    os.rename(d / "kjv-ecclesiastes.txt.gz", d / "eccl.txt.gz")
    (d / "_SUCCESS").write_text("not input\n")
    (d / ".hidden").write_text("not input either\n")
    (d / "_tmp").mkdir()
    (d / "_tmp" / "x.txt").write_text("hidden dir\n")
    return str(d)


@pytest.fixture(scope="module")
def s3_data(s3, data_dir):
    """``data_dir`` uploaded to s3://inputs/in."""
    _endpoint, fs = s3
    fs.mkdir("inputs")
    fs.put(data_dir, "s3://inputs/in", recursive=True)
    return "s3://inputs/in"


def cli(args: list, cwd: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update(AWS_ENV)
    e.update(env)
    return subprocess.run([sys.executable, "-m", "mapreduce", *map(str, args)], cwd=cwd,
                          env=e, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    return result


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "mapreduce: error:" in ln]
    assert len(lines) == 1, result.stderr
    return lines[0]


def local_parts(out: str) -> dict[str, bytes]:
    return {n: open(os.path.join(out, n), "rb").read() for n in sorted(os.listdir(out))
            if n.startswith("part-")}


def s3_parts(fs, url: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {p.rsplit("/", 1)[1]: fs.cat_file(p) for p in sorted(fs.ls(url))
            if p.rsplit("/", 1)[1].startswith("part-")}


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """The word count of the local copy (local runner, same options as the remote runs)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    ok(cli(["run", WORDCOUNT, data_dir, "-o", out, "--workers", "2", "--split-size", "1MB",
            "-q"], REPO))
    parts = local_parts(str(out))
    assert len(parts) >= 2 and all(parts.values())
    return parts


def endpoint_option(s3) -> list[str]:
    return ["--storage-option", f"endpoint_url={s3[0]}"]


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("runner", ["local", "inline"])
def test_word_count_over_s3_input_equals_the_local_run(s3, s3_data, reference, runner,
                                                       tmp_path):
    out = tmp_path / "out"
    ok(cli(["run", WORDCOUNT, s3_data, "-o", out, "--workers", "2", "--split-size", "1MB",
            "--runner", runner, "-q", *endpoint_option(s3)], REPO))
    assert local_parts(str(out)) == reference
    summary = json.loads((out / "_job.json").read_text())
    # the hidden-name rule held, the gzip file was read, and big.txt was cut in 1 MB splits
    names = sorted(u.rsplit("/", 1)[1] for u in summary["inputs"])
    assert "_SUCCESS" not in names and ".hidden" not in names and "x.txt" not in names
    assert "eccl.txt.gz" in names and "big.txt" in names
    assert all(u.startswith("s3://inputs/in/") for u in summary["inputs"])
    big = [t for t in summary["tasks"] if t.get("kind") == "map" and "big.txt" in
           json.dumps(t)]
    assert len(big) >= 2, big


def test_s3_glob_input_and_endpoint_from_the_environment(s3, s3_data, data_dir, tmp_path):
    """A glob over the bucket, the endpoint given the AWS way (AWS_ENDPOINT_URL)."""
    ref = tmp_path / "ref"
    ok(cli(["run", WORDCOUNT, os.path.join(data_dir, "*.txt"), "-o", ref, "-q"], REPO))
    out = tmp_path / "out"
    ok(cli(["run", WORDCOUNT, f"{s3_data}/*.txt", "-o", out, "-q"], REPO,
           AWS_ENDPOINT_URL=s3[0]))
    assert local_parts(str(out)) == local_parts(str(ref))


@pytest.fixture(scope="module")
def http_server(data_dir, tmp_path_factory):
    """The range-capable HTTP server over ``data_dir``: (base URL, request log path)."""
    d = tmp_path_factory.mktemp("http")
    port_file, log = str(d / "port"), str(d / "requests.log")
    root = d / "root"
    (root / "denied").mkdir(parents=True)
    (root / "denied" / "secret.txt").write_text("no\n")
    for name in ("big.txt", "eccl.txt.gz"):
        shutil.copy(os.path.join(data_dir, name), root / name)
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tests",
                                                          "http_range_server.py"),
                             str(root), port_file, log], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        port = int(open(port_file).read())
        _wait_listening(port, proc, "http server")
        yield f"http://127.0.0.1:{port}", log
    finally:
        _stop(proc)


def test_http_input_is_read_by_ranges_never_whole(http_server, data_dir, tmp_path):
    base, log = http_server
    big = os.path.join(data_dir, "big.txt")
    ref = tmp_path / "ref"
    ok(cli(["run", WORDCOUNT, big, os.path.join(data_dir, "eccl.txt.gz"), "-o", ref,
            "--split-size", "1MB", "-q"], REPO))
    open(log, "w").close()
    out = tmp_path / "out"
    ok(cli(["run", WORDCOUNT, f"{base}/big.txt", f"{base}/eccl.txt.gz", "-o", out,
            "--split-size", "1MB", "--workers", "2", "-q"], REPO))
    assert local_parts(str(out)) == local_parts(str(ref))
    size = os.path.getsize(big)
    gets = [json.loads(line) for line in open(log)]
    of_big = [g for g in gets if g["path"] == "/big.txt"]
    assert of_big and all(g["range"] for g in of_big), of_big
    assert all(g["sent"] < size for g in of_big), of_big
    # each split fetched its own bytes (plus the tail of its last line), not the file again
    assert sum(g["sent"] for g in of_big) < size * 1.1, of_big


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------

def test_s3_output_reads_back_identical_and_the_secret_is_never_written(
        s3, data_dir, reference, tmp_path):
    endpoint, fs = s3
    fs.mkdir("results")
    url = "s3://results/wc"
    work = tmp_path / "work"
    result = ok(cli(["run", WORDCOUNT, data_dir, "-o", url, "--workers", "2",
                     "--split-size", "1MB", "--work-dir", work, "--keep-work",
                     "--storage-option", f"endpoint_url={endpoint}",
                     "--storage-option", "key=testing",
                     "--storage-option", f"secret={SECRET}", "-v"], REPO))
    fs.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(url))
    assert names[-2:] == ["part-00003", "_SUCCESS"][-2:] or "_SUCCESS" in names
    assert s3_parts(fs, url) == reference
    summary = json.loads(fs.cat_file(f"{url}/_job.json"))
    assert summary["output_dir"] == url
    assert summary["config"]["storage_options"] == ["endpoint_url", "key", "secret"]
    # the secret is nowhere: not in any object of the output, not in the kept work
    # directory (journal, logs), not in what was printed
    for path in fs.find(url):
        assert SECRET.encode() not in fs.cat_file(path), path
    for root, _dirs, files in os.walk(work):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert SECRET.encode() not in f.read(), name
    assert SECRET not in result.stderr and SECRET not in result.stdout


def test_s3_output_that_exists_is_refused_then_overwritten(s3, data_dir, reference, tmp_path):
    endpoint, fs = s3
    fs.mkdir("taken")
    fs.pipe_file("s3://taken/out/part-00000", b"old\n")
    fs.pipe_file("s3://taken/out/_SUCCESS", b"")
    args = ["run", WORDCOUNT, data_dir, "-o", "s3://taken/out", "--workers", "2",
            "--split-size", "1MB", "--work-dir", tmp_path / "work", "-q",
            *endpoint_option(s3)]
    line = one_line_error(cli(args, REPO))
    assert "output directory is not empty: s3://taken/out" in line and "--overwrite" in line
    assert s3_parts(fs, "s3://taken/out") == {"part-00000": b"old\n"}
    ok(cli(args + ["--overwrite"], REPO))
    assert s3_parts(fs, "s3://taken/out") == reference
    # and a finished output is resumable: nothing to do
    ok(cli(args + ["--resume"], REPO))


def test_killed_job_with_s3_output_shows_nothing_then_resumes(s3, data_dir, reference,
                                                               tmp_path):
    """SIGKILL the coordinator (and its workers) once some map tasks have committed: the
    output holds no part file and no _SUCCESS while the job is dead; --resume finishes it
    with the same bytes as the local run."""
    endpoint, fs = s3
    fs.mkdir("killed")
    url = "s3://killed/out"
    work = tmp_path / "work"
    gate = tmp_path / "gate"
    args = ["run", GATED, data_dir, "-o", url, "--workers", "2", "--split-size", "1MB",
            "--work-dir", work, "-q", *endpoint_option(s3)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENV, FT_GATE=str(gate))
    proc = subprocess.Popen([sys.executable, "-m", "mapreduce", *map(str, args)], cwd=REPO,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        journal = None
        while journal is None and time.monotonic() < deadline:
            found = [os.path.join(r, "journal") for r, _d, f in os.walk(work) if "journal" in f]
            journal = found[0] if found else None
            time.sleep(0.05)
        assert journal, "no journal appeared"
        gate.write_text("open")
        from mapreduce.journal import TASK_COMMITTED, read_journal
        while time.monotonic() < deadline:
            records, _torn = read_journal(journal)
            if any(r.type == TASK_COMMITTED for r in records):
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        proc.stderr.close()
    fs.invalidate_cache()
    visible = [p.rsplit("/", 1)[1] for p in fs.find(url)]
    assert not any(n.startswith("part-") or n == "_SUCCESS" for n in visible), visible
    # a plain run refuses: there is an unfinished job
    assert "--resume" in one_line_error(cli(args, REPO))
    ok(cli(args + ["--resume"], REPO, FT_GATE=str(gate)))
    assert s3_parts(fs, url) == reference
    assert fs.exists(f"{url}/_SUCCESS")


# --------------------------------------------------------------------------------------------
# errors: one line each, at the start, nothing written
# --------------------------------------------------------------------------------------------

def test_unknown_scheme_and_missing_extra(tmp_path, data_dir):
    line = one_line_error(cli(["run", WORDCOUNT, "foo://x/y", "-o", tmp_path / "o"], REPO))
    assert "foo://x/y" in line and "not supported" in line
    line = one_line_error(cli(["run", WORDCOUNT, data_dir, "-o", "foo://x/out"], REPO))
    assert "output foo://x/out" in line
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        line = one_line_error(cli(["run", WORDCOUNT, "gs://b/in", "-o", tmp_path / "o"], REPO))
        assert "pip install 'mapreduce[gcs]'" in line and "gs://b/in" in line
    assert not (tmp_path / "o").exists()


def test_store_errors_are_one_line_at_the_start(s3, s3_data, data_dir, tmp_path):
    out = tmp_path / "o"
    line = one_line_error(cli(["run", WORDCOUNT, "s3://no-such-bucket/in", "-o", out,
                               *endpoint_option(s3)], REPO))
    assert "s3://no-such-bucket/in" in line and "no such bucket" in line
    line = one_line_error(cli(["run", WORDCOUNT, f"{s3_data}/nothing-here.txt", "-o", out,
                               *endpoint_option(s3)], REPO))
    assert f"input path does not exist: {s3_data}/nothing-here.txt" in line
    line = one_line_error(cli(["run", WORDCOUNT, data_dir, "-o", "s3://no-such-bucket/out",
                               *endpoint_option(s3)], REPO))
    assert "s3://no-such-bucket/out" in line and "no such bucket" in line
    line = one_line_error(cli(["run", WORDCOUNT, f"{s3_data}/*.nothing", "-o", out,
                               *endpoint_option(s3)], REPO))
    assert "no files match input pattern" in line
    port = _free_port()  # nothing listens there
    line = one_line_error(cli(["run", WORDCOUNT, f"{s3_data}/big.txt", "-o", out,
                               "--storage-option", f"endpoint_url=http://127.0.0.1:{port}",
                               "--storage-option",
                               'config_kwargs={"retries": {"max_attempts": 1}}'], REPO))
    assert "cannot reach" in line and f"127.0.0.1:{port}" in line
    line = one_line_error(cli(["run", WORDCOUNT, data_dir, "-o", out,
                               "--storage-option", "justakey"], REPO))
    assert "--storage-option" in line and "KEY=VALUE" in line
    assert not out.exists()


def test_access_denied_is_one_line(http_server, tmp_path):
    base, _log = http_server
    line = one_line_error(cli(["run", WORDCOUNT, f"{base}/denied/secret.txt", "-o",
                               tmp_path / "o"], REPO))
    assert f"{base}/denied/secret.txt" in line and "access denied" in line


def test_s3_access_denied_is_one_line(tmp_path, data_dir):
    """A server that checks credentials (moto enforcing IAM from the first request): a key
    it does not know is refused."""
    proc, endpoint = _start_moto(str(tmp_path / "moto.log"), INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        line = one_line_error(cli(["run", WORDCOUNT, "s3://some-bucket/in", "-o",
                                   tmp_path / "o", "--storage-option",
                                   f"endpoint_url={endpoint}"], REPO))
        assert "s3://some-bucket/in" in line and "access denied" in line, line
        line = one_line_error(cli(["run", WORDCOUNT, data_dir, "-o", "s3://some-bucket/o",
                                   "--storage-option", f"endpoint_url={endpoint}"], REPO))
        assert "s3://some-bucket/o" in line and "access denied" in line, line
    finally:
        _stop(proc)


# --------------------------------------------------------------------------------------------
# the Spark runner, through the same layer
# --------------------------------------------------------------------------------------------

def test_spark_reads_s3_and_writes_s3_through_the_same_layer(spark, s3, s3_data, reference,
                                                             tmp_path):
    """--runner spark on local[2] (the test session's shared SparkContext, from Python):
    splits planned on the driver and read by ranges in the executors, with the storage
    options (endpoint and keys) handed to them; the output uploaded by the same commit; the
    bytes equal the local run's."""
    from mapreduce import run
    endpoint, fs = s3
    fs.mkdir("spark-out")
    # a new URL each run, as in the Dask test below (the work directory is keyed by the URL)
    url = f"s3://spark-out/wc-{os.getpid()}-{time.time_ns()}"
    run(WORDCOUNT, [s3_data], url, runner="spark", spark_master="local[2]",
        split_size="1MB", progress=False,
        storage_options={"endpoint_url": endpoint, "key": "testing", "secret": "testing"})
    assert s3_parts(fs, url) == reference
    assert fs.exists(f"{url}/_SUCCESS")


def test_spark_cluster_master_with_s3_output_is_refused_at_start(s3, data_dir, tmp_path):
    """A non-local master cannot commit remote output (the executors would write into the
    driver's work directory): one line before anything runs; nothing in the bucket."""
    endpoint, fs = s3
    fs.mkdir("spark-cluster-out")
    result = cli(["run", WORDCOUNT, data_dir, "-o", "s3://spark-cluster-out/wc", "--runner",
                  "spark", "--spark-master", "spark://127.0.0.1:7077", *endpoint_option(s3)],
                 str(tmp_path), **AWS_ENV)
    line = one_line_error(result)
    assert "s3://spark-cluster-out/wc" in line and "local[N]" in line
    assert "spark://127.0.0.1:7077" in line
    assert fs.ls("spark-cluster-out") == []


def test_dask_reads_s3_and_writes_s3_with_the_storage_options(cluster, s3, s3_data,
                                                              reference):
    """--runner dask on a real scheduler and two worker processes: the map tasks read S3
    ranges in the workers, which get the endpoint and keys from the job's storage options
    (not from their environment); the output is committed to S3 by the coordinator."""
    from mapreduce import run
    endpoint, fs = s3
    fs.mkdir("dask-out")
    # a new URL each run: an earlier run on this machine that failed left its (local) work
    # directory for its URL, which a run with the same URL rightly refuses to overwrite
    url = f"s3://dask-out/wc-{os.getpid()}-{time.time_ns()}"
    run(WORDCOUNT, [s3_data], url, runner="dask", dask_client=cluster[1], workers=2,
        split_size="1MB", progress=False,
        storage_options={"endpoint_url": endpoint, "key": "testing", "secret": "testing"})
    assert s3_parts(fs, url) == reference
    assert fs.exists(f"{url}/_SUCCESS")
    assert "testing" not in fs.cat(f"{url}/_job.json").decode()


def test_python_api_storage_options_and_remote_result(s3, s3_data, reference, tmp_path,
                                                      monkeypatch):
    """From Python: storage_options={...}; the result's pairs read the S3 output back."""
    from mapreduce import run
    from mapreduce.output import parse_line
    endpoint, fs = s3
    for k, v in AWS_ENV.items():
        monkeypatch.setenv(k, v)
    fs.mkdir("api-out")
    result = run(WORDCOUNT, [s3_data], "s3://api-out/wc", workers=2, split_size="1MB",
                 progress=False, work_dir=str(tmp_path / "work"),
                 storage_options={"endpoint_url": endpoint, "secret": SECRET,
                                  "key": "testing"})
    assert result.part_files == [f"s3://api-out/wc/{n}" for n in sorted(reference)]
    expected = [parse_line(line, "json") for n in sorted(reference)
                for line in reference[n].splitlines(keepends=True)]
    assert list(result.pairs()) == expected
    assert SECRET not in repr(result.summary)
    with pytest.raises(Exception, match="storage_options: expected a dict"):
        run(WORDCOUNT, [s3_data], "s3://api-out/x", storage_options=5, progress=False)


# --------------------------------------------------------------------------------------------
# --output-compression
# --------------------------------------------------------------------------------------------

def _decompress(name: str, data: bytes) -> bytes:
    import bz2
    import gzip
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".bz2"):
        return bz2.decompress(data)
    if name.endswith(".zst"):
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


@pytest.mark.parametrize("codec", ["gz", pytest.param("bz2", marks=pytest.mark.slow),
                                   pytest.param("zst", marks=pytest.mark.slow)])
def test_output_compression_names_parts_and_reads_back(codec, data_dir, reference, tmp_path):
    out = tmp_path / "out"
    ok(cli(["run", WORDCOUNT, data_dir, "-o", out, "--workers", "2", "--split-size", "1MB",
            "--output-compression", codec, "-q"], REPO))
    names = sorted(n for n in os.listdir(out) if n.startswith("part-"))
    assert names == [f"{n}.{codec}" for n in sorted(reference)]
    for name in names:
        assert _decompress(name, (out / name).read_bytes()) == reference[name.rsplit(".", 1)[0]]
    # the compressed output is the next job's input: the same as reading the plain one
    plain = tmp_path / "plain"
    for name, data in reference.items():
        plain.mkdir(exist_ok=True)
        (plain / name).write_bytes(data)
    again, ref_again = tmp_path / "again", tmp_path / "ref-again"
    ok(cli(["run", WORDCOUNT, out, "-o", again, "-q"], REPO))
    ok(cli(["run", WORDCOUNT, plain, "-o", ref_again, "-q"], REPO))
    assert local_parts(str(again)) == local_parts(str(ref_again))


def test_compressed_output_to_s3(s3, data_dir, reference, tmp_path):
    endpoint, fs = s3
    fs.mkdir("gz-out")
    url = "s3://gz-out/wc"
    ok(cli(["run", WORDCOUNT, data_dir, "-o", url, "--workers", "2", "--split-size", "1MB",
            "--output-compression", "gz", "--work-dir", tmp_path / "work", "-q",
            *endpoint_option(s3)], REPO))
    parts = s3_parts(fs, url)
    assert sorted(parts) == [f"{n}.gz" for n in sorted(reference)]
    assert {n[:-3]: _decompress(n, d) for n, d in parts.items()} == reference


# --------------------------------------------------------------------------------------------
# standard input
# --------------------------------------------------------------------------------------------

def test_dash_reads_standard_input(data_dir, tmp_path):
    src = os.path.join(data_dir, "kjv-ecclesiastes.txt")
    ref, out = tmp_path / "ref", tmp_path / "out"
    ok(cli(["run", WORDCOUNT, src, "-o", ref, "-q"], REPO))
    e = dict(os.environ)
    with open(src, "rb") as stdin:
        done = subprocess.run([sys.executable, "-m", "mapreduce", "run", WORDCOUNT, "-", "-o",
                               str(out), "-q"], cwd=REPO, env=e, stdin=stdin,
                              capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert local_parts(str(out)) == local_parts(str(ref))
    line = one_line_error(cli(["run", WORDCOUNT, "-", "-o", out, "--resume"], REPO))
    assert "standard input" in line and "--resume" in line


def test_http_output_is_refused(data_dir, tmp_path):
    line = one_line_error(cli(["run", WORDCOUNT, data_dir, "-o", "https://example.org/out"],
                              REPO))
    assert "https://example.org/out" in line and "read-only" in line


@pytest.mark.parametrize("kill_at", [2, pytest.param(5, marks=pytest.mark.slow)])
def test_commit_to_s3_killed_midway_is_not_complete_and_resumes(s3, data_dir, reference,
                                                                 kill_at, tmp_path):
    """The coordinator SIGKILLs itself inside the job commit (tests/ft_jobs/commit_killer.py):
    before the second part's upload (2) or, all 4 parts uploaded, before _job.json (5).  The
    store then holds complete parts but no _SUCCESS;
    --resume finishes the commit with the same bytes."""
    endpoint, fs = s3
    bucket = f"commit-kill-{kill_at}"
    fs.mkdir(bucket)
    url = f"s3://{bucket}/out"
    args = ["run", os.path.join(REPO, "tests", "ft_jobs", "commit_killer.py"), data_dir, "-o",
            url, "--workers", "2", "--split-size", "1MB", "--work-dir", tmp_path / "work",
            "-q", *endpoint_option(s3)]
    killed = cli(args, REPO, FT_KILL_COMMIT=str(kill_at), FT_OUT=url)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    fs.invalidate_cache()
    names = [p.rsplit("/", 1)[1] for p in fs.ls(url)]
    assert "_SUCCESS" not in names
    parts = s3_parts(fs, url)
    assert parts and all(reference[n] == d for n, d in parts.items())  # whole, never partial
    ok(cli(args + ["--resume"], REPO))
    assert s3_parts(fs, url) == reference and fs.exists(f"{url}/_SUCCESS")
