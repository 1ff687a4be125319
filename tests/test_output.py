"""Part-file writers: the raw_value batch path writes exactly what one line at a time would,
holds a bounded amount of text, and rejects an unencodable line as it arrives."""
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
@given(_raw_values, st.integers(1, 12))
def test_raw_batches_equal_line_at_a_time(tmp_path_factory, values, batch):
    path = str(tmp_path_factory.mktemp("raw") / "part-00000")
    old = output.RAW_BATCH_CHARS
    output.RAW_BATCH_CHARS = batch
    try:
        writer = TextPartWriter(path, "raw_value")
        for v in values:
            writer.write(None, v)
        size = writer.close()
    finally:
        output.RAW_BATCH_CHARS = old
    expected = b"".join(format_raw_value(None, v) for v in values)
    with open(path, "rb") as f:
        assert f.read() == expected
    assert size == len(expected)


def test_raw_lone_surrogate_fails_as_it_is_written(tmp_path):
    """At once, not when its batch is flushed: the error must name the record that made it."""
    writer = TextPartWriter(str(tmp_path / "p"), "raw_value")
    writer.write(None, "fine")
    with pytest.raises(SerializationError, match=r"raw_value cannot write the line "
                                                 r"'bad \\ud800 line'"):
        writer.write(None, "bad \ud800 line")
    writer.abort()


def test_raw_buffer_is_bounded_in_characters(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "RAW_BATCH_CHARS", 10)
    writer = TextPartWriter(str(tmp_path / "p"), "raw_value")
    writer.write(None, "abcdef")
    assert writer._file.tell() == 0                  # 6 characters pending
    writer.write(None, "ghijkl")
    assert writer._file.tell() == 14                 # 12 >= 10: both lines written
    writer.write(None, "x" * 50)                     # a long line goes out on its own
    assert writer._file.tell() == 14 + 51
    assert writer.close() == 65


def test_raw_non_text_value_fails_at_once(tmp_path):
    writer = TextPartWriter(str(tmp_path / "p"), "raw_value")
    writer.write(None, "kept")
    with pytest.raises(SerializationError, match="needs str or bytes values, got int"):
        writer.write(None, 7)


_json_things = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                         st.binary(max_size=3), st.floats(),
                         st.tuples(st.integers(), st.text(max_size=2)))


@settings(max_examples=100, deadline=None)
@given(_json_things, st.lists(_json_things, max_size=8))
def test_json_write_values_equals_write_per_value(tmp_path_factory, key, values):
    """The identity reducer's write_values(key, values) writes the bytes of write(key, v)
    for each value, and both lines are json.dumps of key and value (bytes as Latin-1)."""
    import json
    base = tmp_path_factory.mktemp("jv")
    grouped, single = TextPartWriter(str(base / "a")), TextPartWriter(str(base / "b"))
    assert grouped.write_values(key, iter(values)) == len(values)
    for v in values:
        single.write(key, v)
    grouped.close(), single.close()

    def plain(x):
        return x.decode("latin-1") if isinstance(x, bytes) else x
    expected = "".join(f"{json.dumps(plain(key), ensure_ascii=False)}\t"
                       f"{json.dumps(plain(v), ensure_ascii=False)}\n" for v in values)
    assert (base / "a").read_bytes() == (base / "b").read_bytes() \
        == expected.encode("utf-8", "backslashreplace")
