"""Tests for mapreduce.inputs: input expansion, split planning, and line reading."""
from __future__ import annotations

import bz2
import gzip
import os
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce import inputs
from mapreduce.errors import InputError
from mapreduce.inputs import (
    CombinedSplit,
    TextSplit,
    choose_split_size,
    expand_inputs,
    line_number_at,
    plan_splits,
    read_lines,
)

MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def reference_lines(content: bytes) -> list[str]:
    """Independent reference: split bytes on b"\\n", drop the empty piece after a final
    newline, strip one "\\r" from each newline-terminated line, decode each line."""
    if not content:
        return []
    pieces = content.split(b"\n")
    terminated = [True] * (len(pieces) - 1) + [False]
    if pieces[-1] == b"":
        pieces.pop()
        terminated.pop()
    out = []
    for piece, term in zip(pieces, terminated):
        if term and piece.endswith(b"\r"):
            piece = piece[:-1]
        out.append(piece.decode("utf-8"))
    return out


def read_all(path, split_size: int, errors: str = "strict") -> list[str]:
    lines = []
    for split in plan_splits([str(path)], split_size):
        lines.extend(read_lines(split, errors))
    return lines


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


# Pieces chosen to hit the tricky cases: CRLF, lone CR, empty lines, multi-byte UTF-8
# (2, 3, 4 bytes), and characters str.splitlines() would wrongly treat as line breaks.
PIECES = ["a", "bc", "é", "€", "😀", "\n", "\n", "\r\n", "\r", "\n\n", "\x0b", "\x1c",
          "\x85", "\u2028", " ", "xyz"]
contents = st.lists(st.sampled_from(PIECES), max_size=40).map(lambda ps: "".join(ps).encode())


# ---------------------------------------------------------------------------------------------
# read_lines / plan_splits: the split invariant
# ---------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=contents, data=st.data())
def test_splits_yield_every_line_once(tmp_path_factory, content, data):
    path = tmp_path_factory.mktemp("h") / "f.txt"
    path.write_bytes(content)
    split_size = data.draw(st.integers(1, len(content) + 2), label="split_size")
    chunk = data.draw(st.sampled_from([1, 2, 3, 5, 8, 64, 4 * MiB]), label="chunk")
    expected = reference_lines(content)
    with mock.patch.object(inputs, "_CHUNK_SIZE", chunk):
        splits = plan_splits([str(path)], split_size)
        got = []
        numbers = []
        for split in splits:
            for i, line in enumerate(read_lines(split)):
                got.append(line)
                numbers.append(line_number_at(split, i))
    assert got == expected
    assert numbers == list(range(1, len(expected) + 1))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=contents, chunk=st.sampled_from([1, 3, 7, 4 * MiB]),
       comp=st.sampled_from(["gz", "bz2"]))
def test_compressed_same_lines_as_plain(tmp_path_factory, content, chunk, comp):
    d = tmp_path_factory.mktemp("c")
    path = d / f"f.txt.{comp}"
    path.write_bytes(gzip.compress(content) if comp == "gz" else bz2.compress(content))
    expected = reference_lines(content)
    with mock.patch.object(inputs, "_CHUNK_SIZE", chunk):
        splits = plan_splits([str(path)], 1)
        assert len(splits) == 1
        assert splits[0].compression == comp
        got = list(read_lines(splits[0]))
        assert [line_number_at(splits[0], i) for i in range(len(got))] == \
            list(range(1, len(expected) + 1))
    assert got == expected


@pytest.mark.parametrize("content, expected", [
    (b"", []),
    (b"a\n", ["a"]),
    (b"a", ["a"]),
    (b"\n", [""]),
    (b"\n\n", ["", ""]),
    (b"a\r\nb\r\n", ["a", "b"]),
    (b"a\rb\n", ["a\rb"]),
    (b"a\r\r\n", ["a\r"]),
    (b"a\r", ["a\r"]),  # a lone \r at EOF is not a line ending
    (b"x\x0by\x1cz\xe2\x80\xa8w\n", ["x\x0by\x1cz\u2028w"]),
    ("héllo\nwörld".encode(), ["héllo", "wörld"]),
])
def test_line_ending_rules(tmp_path, content, expected):
    path = write(tmp_path / "f.txt", content)
    for split_size in (1, 2, 3, 1000):
        assert read_all(path, split_size) == expected


def test_long_line_across_many_chunks(tmp_path):
    long = "ü" * 5000
    content = f"short\n{long}\nend".encode()
    path = write(tmp_path / "f.txt", content)
    # Tiny splits re-scan the long line once per split: keep the default chunk size there.
    for split_size in (1, 5):
        assert read_all(path, split_size) == ["short", long, "end"]
    with mock.patch.object(inputs, "_CHUNK_SIZE", 7), \
            mock.patch.object(inputs, "_TAIL_CHUNK_SIZE", 3):
        for split_size in (100, 4000, len(content)):
            assert read_all(path, split_size) == ["short", long, "end"]


def test_split_starting_right_after_newline_and_on_newline(tmp_path):
    path = write(tmp_path / "f.txt", b"ab\ncd\nef\n")
    # start=3: byte 2 is "\n", so "cd" starts in this split; end=4 still finishes "cd".
    assert list(read_lines(TextSplit(path, 3, 4, None))) == ["cd"]
    # start=2 is the "\n" of "ab": "ab" belongs to the previous split, "cd" starts at 3.
    assert list(read_lines(TextSplit(path, 2, 3, None))) == []
    assert list(read_lines(TextSplit(path, 2, 4, None))) == ["cd"]
    assert list(read_lines(TextSplit(path, 1, 9, None))) == ["cd", "ef"]
    assert line_number_at(TextSplit(path, 1, 9, None), 0) == 2
    assert line_number_at(TextSplit(path, 3, 4, None), 0) == 2
    assert line_number_at(TextSplit(path, 4, 9, None), 0) == 3


# ---------------------------------------------------------------------------------------------
# decoding errors and corrupt archives
# ---------------------------------------------------------------------------------------------

def test_invalid_utf8_offset_in_mid_file_split(tmp_path):
    content = b"hello\n" * 100 + b"ok \xff bad\n" + b"tail\n" * 10
    bad = content.index(b"\xff")
    path = write(tmp_path / "x.txt", content)
    splits = plan_splits([path], 64)
    containing = [s for s in splits if s.start > 0 and s.start <= bad < s.end]
    assert containing and containing[0].start > 0
    with mock.patch.object(inputs, "_CHUNK_SIZE", 16):
        with pytest.raises(InputError) as ei:
            for split in splits:
                list(read_lines(split))
    msg = str(ei.value)
    assert msg == (f"{path}: invalid UTF-8 at byte offset {bad} "
                   f"(use --decode-errors replace to decode leniently)")
    assert "\n" not in msg


def test_invalid_utf8_truncated_multibyte_offset(tmp_path):
    # "€" is e2 82 ac; a lone e2 82 followed by a newline is invalid at the e2.
    content = b"abc\nde\xe2\x82\nf\n"
    path = write(tmp_path / "x.txt", content)
    with pytest.raises(InputError, match=r"invalid UTF-8 at byte offset 6 "):
        read_all(path, 5)


def test_invalid_utf8_offset_in_gz(tmp_path):
    content = "ünïcode line\n".encode() * 1000 + b"\xc3\x28 here\n" + b"more\n"
    bad = content.index(b"\xc3\x28")
    path = write(tmp_path / "x.gz", gzip.compress(content))
    with mock.patch.object(inputs, "_CHUNK_SIZE", 1000):
        with pytest.raises(InputError) as ei:
            read_all(path, 10)
    assert str(ei.value).startswith(f"{path}: invalid UTF-8 at byte offset {bad} ")


def test_errors_replace(tmp_path):
    path = write(tmp_path / "x.txt", b"a\xffb\nok\n\xe2\x82")
    assert read_all(path, 2, errors="replace") == ["a\ufffdb", "ok", "\ufffd"]
    gz = write(tmp_path / "x.gz", gzip.compress(b"a\xffb\nok\n"))
    assert read_all(gz, 2, errors="replace") == ["a\ufffdb", "ok"]


def test_unknown_error_handler(tmp_path):
    path = write(tmp_path / "x.txt", b"a\n")
    with pytest.raises(ValueError):
        list(read_lines(TextSplit(path, 0, 2, None), errors="nope"))


@pytest.mark.parametrize("comp", ["gz", "bz2"])
def test_truncated_archive(tmp_path, comp):
    content = b"".join(b"line %d\n" % i for i in range(5000))
    packed = gzip.compress(content) if comp == "gz" else bz2.compress(content)
    path = write(tmp_path / f"x.{comp}", packed[: len(packed) // 2])
    with pytest.raises(InputError) as ei:
        read_all(path, 1)
    msg = str(ei.value)
    assert msg.startswith(f"{path}: truncated or corrupt {comp} file (")
    assert "\n" not in msg


@pytest.mark.parametrize("comp", ["gz", "bz2"])
def test_corrupt_archive(tmp_path, comp):
    path = write(tmp_path / f"x.{comp}", b"this is not compressed data at all\n" * 10)
    with pytest.raises(InputError, match=rf"truncated or corrupt {comp} file"):
        read_all(path, 1)


def test_gz_crc_mismatch(tmp_path):
    packed = bytearray(gzip.compress(b"hello\nworld\n"))
    packed[-8] ^= 0xFF  # CRC32 in the trailer
    path = write(tmp_path / "x.gz", bytes(packed))
    with pytest.raises(InputError, match=r"truncated or corrupt gz file"):
        read_all(path, 1)


def test_concatenated_gz_members(tmp_path):
    path = write(tmp_path / "x.gz", gzip.compress(b"a\nb") + gzip.compress(b"c\nd\n"))
    assert read_all(path, 1) == ["a", "bc", "d"]


def test_missing_file_at_read_time(tmp_path):
    with pytest.raises(InputError, match="cannot read input file"):
        list(read_lines(TextSplit(str(tmp_path / "gone.txt"), 0, 10, None)))


# ---------------------------------------------------------------------------------------------
# plan_splits / choose_split_size
# ---------------------------------------------------------------------------------------------

def test_plan_splits_empty_file_gives_one_split(tmp_path):
    path = write(tmp_path / "empty.txt", b"")
    assert plan_splits([path], 10) == [TextSplit(path, 0, 0, None)]
    assert list(read_lines(TextSplit(path, 0, 0, None))) == []


def test_plan_splits_compressed_is_one_split(tmp_path):
    gz = write(tmp_path / "a.gz", gzip.compress(b"x\n" * 1000))
    bz = write(tmp_path / "b.bz2", bz2.compress(b"x\n" * 1000))
    empty_gz = write(tmp_path / "c.gz", gzip.compress(b""))
    splits = plan_splits([gz, bz, empty_gz], 1)
    assert splits == [
        TextSplit(gz, 0, os.path.getsize(gz), "gz"),
        TextSplit(bz, 0, os.path.getsize(bz), "bz2"),
        TextSplit(empty_gz, 0, os.path.getsize(empty_gz), "gz"),
    ]
    assert splits[0].describe() == f"{gz} (whole file, gz)"
    assert list(read_lines(splits[2])) == []


@pytest.mark.parametrize("size, split_size", [(1, 1), (10, 3), (10, 5), (10, 100), (1000, 7)])
def test_plan_splits_cover_file_exactly(tmp_path, size, split_size):
    a = write(tmp_path / "a.txt", b"x" * size)
    b = write(tmp_path / "b.txt", b"y" * 4)
    splits = plan_splits([a, b], split_size)
    if size + 4 <= split_size:  # both fit in one split: packed (CombineFileInputFormat)
        assert splits == [CombinedSplit((TextSplit(a, 0, size), TextSplit(b, 0, 4)))]
        assert splits[0].describe() == f"2 files {a} .. {b} ({size + 4} bytes)"
        return
    splits = [p for s in splits for p in getattr(s, "parts", [s])]
    for path, n in ((a, size), (b, 4)):
        mine = [s for s in splits if s.path == path]
        assert mine[0].start == 0 and mine[-1].end == n
        for prev, nxt in zip(mine, mine[1:]):
            assert prev.end == nxt.start
        assert all(0 < s.end - s.start <= split_size for s in mine)
        assert all(s.compression is None for s in mine)
    # file order, then offset order
    assert [s.path for s in splits] == sorted([s.path for s in splits], key=[a, b].index)
    assert splits[0].describe() == f"{a} bytes 0-{min(split_size, size)}"


def test_plan_splits_rejects_bad_size_and_missing_file(tmp_path):
    path = write(tmp_path / "a.txt", b"x")
    with pytest.raises(ValueError):
        plan_splits([path], 0)
    with pytest.raises(InputError, match="cannot read input file"):
        plan_splits([str(tmp_path / "nope.txt")], 10)


def test_choose_split_size():
    assert choose_split_size(0, 2) == MiB
    assert choose_split_size(10, 2) == MiB
    assert choose_split_size(80 * MiB, 2) == 10 * MiB
    assert choose_split_size(80 * MiB + 1, 2) == 10 * MiB + 1
    assert choose_split_size(10 ** 12, 2) == 128 * MiB
    assert choose_split_size(80 * MiB, 0) == 20 * MiB  # workers < 1 treated as 1
    for total in (1, 5 * MiB, 123456789, 10 ** 10):
        for workers in (1, 2, 8):
            s = choose_split_size(total, workers)
            assert MiB <= s <= 128 * MiB


# ---------------------------------------------------------------------------------------------
# expand_inputs
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A job-output-like tree; the test runs with cwd = tmp_path and uses relative paths."""
    monkeypatch.chdir(tmp_path)
    for rel in ["in/b.txt", "in/a.txt", "in/sub/c.txt", "in/sub/deeper/d.txt",
                "in/_SUCCESS", "in/_job.json", "in/.hidden", "in/_temporary/0/part-0",
                "in/.git/config", "in/sub/_x/e.txt", "in/sub/.f.txt",
                "out/part-00000", "out/part-00001", "out/_SUCCESS", "out/_temporary/t/part-9",
                "other/z.txt", "other/y.log", "emptydir/_SUCCESS", "emptydir/.keep"]:
        write(tmp_path / rel, rel.encode() + b"\n")
    (tmp_path / "reallyempty").mkdir()
    return tmp_path


def test_expand_directory_recursive_skips_hidden(tree):
    assert expand_inputs(["in"]) == [
        "in/a.txt", "in/b.txt", "in/sub/c.txt", "in/sub/deeper/d.txt",
    ]
    assert expand_inputs(["in/"]) == [
        "in/a.txt", "in/b.txt", "in/sub/c.txt", "in/sub/deeper/d.txt",
    ]


def test_expand_previous_job_output(tree):
    assert expand_inputs(["out"]) == ["out/part-00000", "out/part-00001"]
    assert expand_inputs(["out/*"]) == ["out/part-00000", "out/part-00001"]
    assert expand_inputs(["out/**"]) == ["out/part-00000", "out/part-00001"]


def test_expand_explicit_hidden_file_kept(tree):
    assert expand_inputs(["in/_SUCCESS", "in/.hidden"]) == ["in/_SUCCESS", "in/.hidden"]
    # a pattern component that spells the "_" asks for such names explicitly
    assert expand_inputs(["out/_*"]) == ["out/_SUCCESS", "out/_temporary/t/part-9"]
    # an explicitly named "_" directory (or a literal "_" prefix of a glob) is used
    write(tree / "_prev" / "part-0", b"p\n")
    write(tree / "_prev" / "_SUCCESS", b"")
    assert expand_inputs(["_prev"]) == ["_prev/part-0"]
    assert expand_inputs(["_prev/*"]) == ["_prev/part-0"]


def test_expand_glob(tree):
    assert expand_inputs(["other/*.txt"]) == ["other/z.txt"]
    assert expand_inputs(["in/**/*.txt"]) == [
        "in/a.txt", "in/b.txt", "in/sub/c.txt", "in/sub/deeper/d.txt",
    ]
    assert expand_inputs(["in/?.txt"]) == ["in/a.txt", "in/b.txt"]
    assert expand_inputs(["in/[b]*"]) == ["in/b.txt"]
    # a glob matching a directory walks it
    assert expand_inputs(["o*"]) == [
        "other/y.log", "other/z.txt", "out/part-00000", "out/part-00001",
    ]


def test_expand_literal_path_with_glob_characters(tree):
    write(tree / "odd[1].txt", b"x\n")
    assert expand_inputs(["odd[1].txt"]) == ["odd[1].txt"]


def test_expand_order_is_argument_order_and_dedup(tree):
    got = expand_inputs(["other/z.txt", "in", "in/a.txt", "./in/b.txt", "in/*.txt",
                         str(tree / "other" / "z.txt"), "other"])
    assert got == ["other/z.txt", "in/a.txt", "in/b.txt", "in/sub/c.txt",
                   "in/sub/deeper/d.txt", "other/y.log"]
    assert expand_inputs(["other", "in"]) == expand_inputs(["other", "in"])


def test_expand_dedup_through_symlink(tree):
    os.symlink("in/a.txt", "link.txt")
    assert expand_inputs(["in/a.txt", "link.txt"]) == ["in/a.txt"]
    assert expand_inputs(["link.txt", "in/a.txt"]) == ["link.txt"]


def test_expand_symlink_loop_terminates(tree):
    os.symlink("..", "in/sub/loop")
    got = expand_inputs(["in"])
    assert got == ["in/a.txt", "in/b.txt", "in/sub/c.txt", "in/sub/deeper/d.txt"]


def test_expand_errors(tree):
    with pytest.raises(InputError, match=r"^no input paths given$"):
        expand_inputs([])
    with pytest.raises(InputError, match=r"^input path does not exist: nope\.txt$"):
        expand_inputs(["in", "nope.txt"])
    with pytest.raises(InputError, match=r"^no files match input pattern: in/\*\.csv$"):
        expand_inputs(["in/*.csv"])
    with pytest.raises(InputError, match=r"^no files match input pattern: out/\*/\*$"):
        expand_inputs(["out/*/*"])  # only matches inside _temporary
    with pytest.raises(InputError, match=r"^input directory contains no input files: emptydir "
                                         r"\(2 names skipped: \.keep, _SUCCESS; names starting "
                                         r"with _ or \. inside a directory are not input"):
        expand_inputs(["emptydir"])
    with pytest.raises(InputError, match=r"^input directory contains no input files: "
                                         r"reallyempty \(it holds no files\)$"):
        expand_inputs(["reallyempty"])


def test_expand_dangling_symlink(tree):
    os.symlink("missing", "dangling")
    with pytest.raises(InputError, match=r"^input path does not exist: dangling$"):
        expand_inputs(["dangling"])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root can read any file")
def test_expand_unreadable_file(tree):
    os.chmod("in/a.txt", 0)
    try:
        with pytest.raises(InputError, match=r"^cannot read input file in/a\.txt: "):
            expand_inputs(["in"])
    finally:
        os.chmod("in/a.txt", 0o644)


def test_expand_fifo_is_not_a_regular_file(tree):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs")
    os.mkfifo("fifo")
    with pytest.raises(InputError, match=r"^cannot read input file fifo: not a regular file$"):
        expand_inputs(["fifo"])
    os.mkfifo("in/fifo")  # ignored inside a directory walk
    assert "in/fifo" not in expand_inputs(["in"])


def test_expand_end_to_end_with_splits(tree):
    files = expand_inputs(["in", "other/z.txt"])
    lines = [line for s in plan_splits(files, 3) for line in read_lines(s)]
    assert lines == ["in/a.txt", "in/b.txt", "in/sub/c.txt", "in/sub/deeper/d.txt",
                     "other/z.txt"]
