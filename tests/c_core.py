"""The C core for the tests that call it directly (test_core, test_combining_core), and the
recording sink both use to compare what the two cores' buffers spill.

``load()`` imports ``mapreduce._core`` and registers the Python key codec it delegates to
(codec registers it when C is the active core; under MAPREDUCE_CORE=python nobody has yet).
When the extension is not built the calling test module is skipped -- unless
``MAPREDUCE_REQUIRE_CORE=1`` (CI sets it), where a missing core is a failure.
"""
from __future__ import annotations

import os

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
