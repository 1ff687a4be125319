"""The C core for the tests that call it directly (test_core, test_combining_core,
test_grouping_c), the recording sink they use to compare what the two cores' buffers spill,
and ``run_cli_on_core``: a job run through the CLI on one core, as a user runs it.

``load()`` imports ``mapreduce._core`` and registers the Python key codec it delegates to
(codec registers it when C is the active core; under MAPREDUCE_CORE=python nobody has yet).
When the extension is not built the calling test module is skipped -- unless
``MAPREDUCE_REQUIRE_CORE=1`` (CI sets it), where a missing core is a failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mapreduce import codec


def load():
    try:
        from mapreduce import _core
    except ImportError as exc:  # not built: the pure-Python core runs
        if os.environ.get("MAPREDUCE_REQUIRE_CORE") == "1":
            raise ImportError(
                f"MAPREDUCE_REQUIRE_CORE=1 but the C core is not built: {exc}") from exc
        pytest.skip(f"the C core is not built ({exc})", allow_module_level=True)
    _core.set_reference(codec.py_encode_key, codec.py_decode_key)
    return _core


class RecordingSink:
    """A MapSink that keeps every spill (a copy of each partition's record list)."""

    def __init__(self):
        self.spills, self.counters = [], {}

    def spill(self, parts):
        self.spills.append([list(records) for records in parts])

    def finish(self):
        return None


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli_on_core(core: str, job: Path, inputs: str, out: Path,
                    *options: str) -> tuple[dict, dict]:
    """``python -m mapreduce run JOB INPUTS -o OUT OPTIONS`` with the C core (``core="c"``,
    MAPREDUCE_CORE unset, as a user runs it) or the pure-Python one (``"python"``, the
    documented switch); returns ``({part name: bytes}, _job.json's counters)``."""
    env = {k: v for k, v in os.environ.items() if k != "MAPREDUCE_CORE"}
    if core == "python":
        env["MAPREDUCE_CORE"] = "python"
    done = subprocess.run([sys.executable, "-m", "mapreduce", "run", str(job), str(inputs),
                           "-o", str(out), *options],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    parts = {p.name: p.read_bytes() for p in sorted(out.glob("part-*"))}
    with open(out / "_job.json", encoding="utf-8") as f:
        counters = json.load(f)["counters"]
    return parts, counters
