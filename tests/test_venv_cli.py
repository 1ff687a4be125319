"""The command line from a fresh virtualenv, on every runner: the issue-15 regression test for
"the Spark runner does not work from a virtualenv".

Once per session this makes a virtualenv with ``python -m venv`` (not
``--system-site-packages``) and installs a clean copy of this repository into it with plain
``pip install 'REPO[spark]'``, as a user would.  Then, per runner (local, inline, Spark
``local[2]``), it runs exactly::

    VENV/bin/python -m mapreduce run jobs/wordcount.py sample_data -o OUT --runner R

with the user's environment minus anything that would choose Python for Spark
(``PYSPARK_PYTHON`` and friends, ``PYTHONPATH``, ``VIRTUAL_ENV``): the virtualenv is not
activated, and the ``python3`` first on PATH is another interpreter without the job's
dependencies (a bare virtualenv, standing for whatever ``python3`` a user's PATH has), which
is what Spark's workers used to run.  The output must equal the plain-Python oracle's.

Without Java 17+ the Spark case is skipped, unless MAPREDUCE_REQUIRE_SPARK=1 (CI).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import venv

import pytest

from mapreduce.errors import UsageError
from mapreduce.loader import load_job_class

from oracle import read_parts, run_oracle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
SAMPLE = os.path.join(REPO, "sample_data")
REQUIRE_SPARK = os.environ.get("MAPREDUCE_REQUIRE_SPARK") == "1"
_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info",
                                 "__pycache__", "*.so", ".hypothesis", ".pytest_cache")
#: Variables that choose a Python or a module path for us: a user following the README sets
#: none of them (the test runner's own virtualenv may have set some).
_NOT_THE_USERS = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYSPARK_PYTHON",
                  "PYSPARK_DRIVER_PYTHON", "PYSPARK_SUBMIT_ARGS", "SPARK_HOME",
                  "MAPREDUCE_CORE")


def _is_venv_bin(directory: str) -> bool:
    return os.path.exists(os.path.join(os.path.dirname(directory.rstrip(os.sep)),
                                       "pyvenv.cfg"))


@pytest.fixture(scope="session")
def user_venv(tmp_path_factory):
    """(the new virtualenv's python, the environment a user would run it in)."""
    root = tmp_path_factory.mktemp("venv-cli")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=_IGNORE)
    home = root / "venv"
    venv.create(home, with_pip=True)
    python = str(home / "bin" / "python")
    # Another python3 first on PATH, without msgpack, lz4 or pyspark: a bare virtualenv.
    other = root / "other-python"
    venv.create(other, with_pip=False)
    path = [str(other / "bin")] + [d for d in os.environ.get("PATH", "").split(os.pathsep)
                                   if d and not _is_venv_bin(d)]
    env = {k: v for k, v in os.environ.items() if k not in _NOT_THE_USERS}
    env["PATH"] = os.pathsep.join(path)
    proc = subprocess.run([python, "-m", "pip", "install", "-q", f"{src}[spark]"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the situation of the issue: the venv's python is not the python3 on PATH, and that
    # one cannot run the job
    on_path = shutil.which("python3", path=env["PATH"])
    assert on_path is not None
    assert os.path.realpath(on_path) != os.path.realpath(python)
    assert subprocess.run([on_path, "-c", "import msgpack"], env=env,
                          capture_output=True).returncode != 0
    where = subprocess.run([python, "-c", "import mapreduce; print(mapreduce.__file__)"],
                           cwd=root, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(home)), where.stdout  # the installed copy runs
    return python, env, root


@pytest.fixture(scope="module")
def expected() -> dict[str, bytes]:
    cls, _ = load_job_class(WORDCOUNT)
    files = sorted(os.path.join(SAMPLE, f) for f in os.listdir(SAMPLE)
                   if not f.startswith(("_", ".")))
    contents = []
    for path in files:
        with open(path, "rb") as f:
            contents.append(f.read())
    # the output of a job with reducers does not depend on how the input is split
    return run_oracle(cls, contents, 1 << 20, cls.REDUCERS).parts


def _need_java() -> None:
    from mapreduce.runners.spark import check_java
    try:
        check_java()
    except UsageError as exc:
        if REQUIRE_SPARK:
            pytest.fail(f"MAPREDUCE_REQUIRE_SPARK=1 but {exc}")
        pytest.skip(str(exc))


@pytest.mark.parametrize("runner", ["local", "inline", "spark"])
def test_wordcount_from_a_fresh_virtualenv(runner, user_venv, expected, tmp_path):
    if runner == "spark":
        _need_java()
    python, env, root = user_venv
    out = tmp_path / "out"
    argv = [python, "-m", "mapreduce", "run", WORDCOUNT, SAMPLE, "-o", str(out),
            "--runner", runner]
    if runner == "spark":
        argv += ["--spark-master", "local[2]"]
    proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert read_parts(str(out)) == expected
    assert (out / "_SUCCESS").exists()
