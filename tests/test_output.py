"""Part-file writers: the raw_value batch path writes exactly what one line at a time would."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapreduce import output
from mapreduce.errors import SerializationError
from mapreduce.output import TextPartWriter, format_raw_value

_raw_values = st.lists(st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
    st.text("a\udc80\udcff", max_size=3),      # escaped bytes surrogateescape can write
    st.binary(max_size=4)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(_raw_values, st.integers(1, 5))
def test_raw_batches_equal_line_at_a_time(tmp_path_factory, values, batch):
    path = str(tmp_path_factory.mktemp("raw") / "part-00000")
    old = output.RAW_BATCH
    output.RAW_BATCH = batch
    try:
        writer = TextPartWriter(path, "raw_value")
        for v in values:
            writer.write(None, v)
        size = writer.close()
    finally:
        output.RAW_BATCH = old
    expected = b"".join(format_raw_value(None, v) for v in values)
    with open(path, "rb") as f:
        assert f.read() == expected
    assert size == len(expected)


def test_raw_lone_surrogate_is_a_clear_error(tmp_path):
    writer = TextPartWriter(str(tmp_path / "p"), "raw_value")
    writer.write(None, "fine")
    writer.write(None, "bad \ud800 line")
    with pytest.raises(SerializationError, match=r"raw_value cannot write the line "
                                                 r"'bad \\ud800 line'"):
        writer.close()
    writer.abort()


def test_raw_non_text_value_fails_at_once(tmp_path):
    writer = TextPartWriter(str(tmp_path / "p"), "raw_value")
    writer.write(None, "kept")
    with pytest.raises(SerializationError, match="needs str or bytes values, got int"):
        writer.write(None, 7)
