"""The identity reducer's raw_value lines made in C (``_core.raw_value_lines``, used by
``kernel.run_reduce``) against the Python path (the same run with the C core switched off
in the kernel): the same part file bytes, the same counters, the same error."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce import kernel
from mapreduce.codec import encode_key, encode_value
from mapreduce.core import native
from mapreduce.job import Job, Step, identity_reducer
from mapreduce.task import TextOutput, _TextWriter

pytestmark = pytest.mark.skipif(native is None, reason="the C core is not built")

VALUES = (st.text(st.characters(codec="ascii"), max_size=40)  # C's lines, "\n" included
          | st.text(max_size=5)  # non-ASCII: Python's
          | st.binary(max_size=5) | st.sampled_from([7, None, [1]]))  # bytes / refused


def _run(tmp_path, name, batches, use_c, monkeypatch):
    if not use_c:
        monkeypatch.setattr(kernel, "native", None)
    path = str(tmp_path / name)
    writer = _TextWriter(TextOutput(path=path, protocol="raw_value", compression=None))
    try:
        outcome = kernel.run_reduce(Job(), Step(reducer=identity_reducer), iter(batches),
                                    writer, partition=0, sort_values=False)
    except Exception as exc:  # noqa: BLE001 -- compared below
        return type(exc), str(exc)
    finally:
        monkeypatch.undo()
    with open(path, "rb") as f:
        return f.read(), outcome.counters


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.tuples(st.sampled_from(["a", "b", "c", 1, ("x", 2)]), VALUES),
                        max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=4))
def test_raw_value_lines_match_the_python_writer(tmp_path, monkeypatch, records, cuts):
    encoded = sorted(((encode_key(k), encode_value(v)) for k, v in records),
                     key=lambda r: r[0])
    bounds = [0, *sorted(c for c in cuts if c <= len(encoded)), len(encoded)]
    batches = [encoded[a:b] for a, b in zip(bounds, bounds[1:])]  # empty ones too
    c = _run(tmp_path, "c", batches, True, monkeypatch)
    python = _run(tmp_path, "python", batches, False, monkeypatch)
    assert c == python
