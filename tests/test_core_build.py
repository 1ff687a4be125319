"""The C core as a user gets it: ``pip install .`` into a fresh virtualenv, with and without a
working compiler, and a bounded atheris run over its decoders.  All slow (they install from
the package registry and build), so outside the default run::

    python -m pytest -m slow tests/test_core_build.py

* With a compiler the install builds ``mapreduce._core`` and ``--version`` says ``core: c``.
* With ``CC=false`` (every compile fails) the install still succeeds with a warning, and
  ``--version`` says ``core: python``.
* Both installs run the word count on sample_data/ to the same bytes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow
_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info",
                                 "__pycache__", "*.so", "data", ".hypothesis", ".pytest_cache")


def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAPREDUCE_", "PYTHON", "VIRTUAL_ENV", "CC", "CFLAGS",
                                "LDFLAGS"))}
    env.update(extra)
    return env


def _install(tmp_path, name: str, **env: str) -> tuple[str, str]:
    """A fresh virtualenv (its Python is not the one on PATH) with this repository
    installed by plain ``pip install .`` from a clean copy; returns (python, pip's output)."""
    src = tmp_path / f"src-{name}"
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    home = tmp_path / f"venv-{name}"
    venv.create(home, with_pip=True)
    python = str(home / "bin" / "python")
    proc = subprocess.run([python, "-m", "pip", "install", "-v", "--no-cache-dir", "."], cwd=src,
                          capture_output=True, text=True, timeout=900, env=_clean_env(**env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return python, proc.stdout + proc.stderr


def _version(python: str, tmp_path) -> str:
    return subprocess.run([python, "-m", "mapreduce", "--version"], cwd=tmp_path,
                          capture_output=True, text=True, check=True, timeout=120,
                          env=_clean_env()).stdout


def _wordcount(python: str, tmp_path, name: str) -> bytes:
    out = tmp_path / f"out-{name}"
    subprocess.run([python, "-m", "mapreduce", "run", os.path.join(ROOT, "jobs", "wordcount.py"),
                    os.path.join(ROOT, "sample_data"), "-o", str(out), "-q", "--workers", "2"],
                   cwd=tmp_path, check=True, timeout=300, env=_clean_env())
    return b"".join((out / p).read_bytes() for p in sorted(os.listdir(out))
                    if p.startswith("part-"))


def test_pip_install_builds_the_core_and_falls_back_without_a_compiler(tmp_path):
    built, _ = _install(tmp_path, "cc")
    assert "(core: c (built;" in _version(built, tmp_path)
    fallback, log = _install(tmp_path, "nocc", CC="false")
    assert "C core was not built" in log
    assert "(core: python (C core not built" in _version(fallback, tmp_path)
    assert _wordcount(built, tmp_path, "cc") == _wordcount(fallback, tmp_path, "nocc")


def test_fuzz_the_decoders_for_a_bounded_run():
    pytest.importorskip("atheris")
    pytest.importorskip("mapreduce._core")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "fuzz_core.py"),
                           "-runs=20000", "-seed=1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 20000 runs" in proc.stderr
