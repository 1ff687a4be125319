"""Tests for mapreduce/journal.py (format: docs/journal-format.md)."""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import struct
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce import journal
from mapreduce.errors import CorruptDataError
from mapreduce.journal import (
    FILE_HEADER_SIZE,
    FRAME_HEADER_SIZE,
    HEADER,
    JOB_COMMITTED,
    MAX_PAYLOAD,
    RUN_START,
    TASK_COMMITTED,
    TASK_FAILED,
    Journal,
    JournalRecord,
    read_journal,
)

FIXTURE_OK = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "journal-format.md"

HEADER_PAYLOAD = {"fingerprint": "abc123", "job": {"name": "wordcount"}, "config": {"reducers": 4}}

# --- helpers -----------------------------------------------------------------------------


def frame(type_: int, payload_bytes: bytes, *, crc: int | None = None) -> bytes:
    """A hand-made frame, for records the writer refuses to produce."""
    covered = struct.pack("<IB", len(payload_bytes), type_)
    if crc is None:
        crc = zlib.crc32(payload_bytes, zlib.crc32(covered))
    return covered + struct.pack("<I", crc) + payload_bytes


def sample_records():
    """A few records of every non-HEADER type, as the coordinator would write them."""
    return [
        (RUN_START, {"run": 1, "pid": 4242, "time": 1700000000.25}),
        (TASK_COMMITTED, {"run": 1, "step": 0, "kind": "map", "index": 0, "attempt": 0,
                          "output": {"path": "step0/map-00000"},
                          "counters": [["io", "records", 17], ["user", "x", 2]],
                          "task": {"seconds": 0.5}}),
        (TASK_FAILED, {"run": 1, "step": 0, "kind": "map", "index": 1, "attempt": 0,
                       "message": "boom: ünïcödé"}),
        (TASK_COMMITTED, {"run": 1, "step": 0, "kind": "map", "index": 1, "attempt": 1,
                          "output": None, "counters": [], "task": {}}),
        (RUN_START, {"run": 2, "pid": 4243, "time": 1700000100.0}),
        (TASK_COMMITTED, {"run": 2, "step": 0, "kind": "reduce", "index": 0, "attempt": 0,
                          "output": ["part-00000"], "counters": [], "task": {"s": 1}}),
        (JOB_COMMITTED, {"run": 2, "time": 1700000200.5}),
    ]


def make_journal(path, records=None) -> list[int]:
    """Write a journal; return the offsets of all its records (HEADER first) and the end."""
    records = sample_records() if records is None else records
    offsets = []
    with Journal.create(str(path), HEADER_PAYLOAD) as j:
        offsets.append(j.size)
        for type_, payload in records:
            j.append(type_, payload)
            offsets.append(j.size)
    # offsets[i] is the end of record i; record starts are FILE_HEADER_SIZE and offsets[:-1].
    return [FILE_HEADER_SIZE] + offsets


def expected(records, offsets):
    out = [JournalRecord(HEADER, HEADER_PAYLOAD, FILE_HEADER_SIZE)]
    for (type_, payload), off in zip(records, offsets[1:]):
        out.append(JournalRecord(type_, payload, off))
    return out


def flip(path, offset, mask=0xFF):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ mask]))


# --- round trip --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
payloads = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
record_types = st.sampled_from([RUN_START, TASK_COMMITTED, TASK_FAILED, JOB_COMMITTED])


@FIXTURE_OK
@given(header=payloads, records=st.lists(st.tuples(record_types, payloads), max_size=20))
def test_round_trip_hypothesis(tmp_path_factory, header, records):
    path = str(tmp_path_factory.mktemp("j") / "journal")
    with Journal.create(path, header) as j:
        for type_, payload in records:
            j.append(type_, payload)
        size = j.size
    assert os.path.getsize(path) == size
    got, torn = read_journal(path)
    assert not torn
    assert [(r.type, r.payload) for r in got] == [(HEADER, header)] + [tuple(r) for r in records]
    assert got[0].offset == FILE_HEADER_SIZE
    assert [r.offset for r in got] == sorted(r.offset for r in got)


def test_round_trip_all_types_and_offsets(tmp_path):
    path = tmp_path / "journal"
    recs = sample_records() * 20
    offsets = make_journal(path, recs)
    got, torn = read_journal(str(path))
    assert not torn
    assert got == expected(recs, offsets)
    assert offsets[-1] == os.path.getsize(path)


def test_payload_encoding_is_canonical_json(tmp_path):
    path = tmp_path / "journal"
    with Journal.create(str(path), {"b": 1, "a": [1, 2]}):
        pass
    data = path.read_bytes()
    length, type_, crc = struct.unpack_from("<IBI", data, FILE_HEADER_SIZE)
    payload = data[FILE_HEADER_SIZE + FRAME_HEADER_SIZE:]
    assert type_ == HEADER and len(payload) == length
    assert payload == b'{"a":[1,2],"b":1}'
    assert crc == zlib.crc32(data[FILE_HEADER_SIZE + FRAME_HEADER_SIZE:],
                             zlib.crc32(data[FILE_HEADER_SIZE:FILE_HEADER_SIZE + 5]))


def test_file_header_bytes_match_doc(tmp_path):
    path = tmp_path / "journal"
    Journal.create(str(path), {}).close()
    head = path.read_bytes()[:FILE_HEADER_SIZE]
    assert head[:8] == b"\x89MRJNL\r\n"
    assert struct.unpack_from("<HHI", head, 8) == (1, 0, zlib.crc32(head[:12]))
    doc = DOC.read_text()
    assert " ".join(f"{b:02X}" for b in head[:8]) in doc
    for name in ("HEADER", "RUN_START", "TASK_COMMITTED", "TASK_FAILED", "JOB_COMMITTED"):
        assert f"| {getattr(journal, name)}    | `{name}`" in doc


def test_resume_appends_after_existing(tmp_path):
    path = str(tmp_path / "journal")
    recs = sample_records()
    make_journal(path, recs)
    j, got, torn = Journal.resume(path)
    with j:
        assert not torn
        assert [(r.type, r.payload) for r in got[1:]] == recs
        j.append(RUN_START, {"run": 3, "pid": 1, "time": 0.0})
    got2, torn2 = read_journal(path)
    assert not torn2
    assert got2[:-1] == got
    assert (got2[-1].type, got2[-1].payload) == (RUN_START, {"run": 3, "pid": 1, "time": 0.0})


# --- API misuse --------------------------------------------------------------------------


def test_create_existing_raises_and_keeps_file(tmp_path):
    path = tmp_path / "journal"
    make_journal(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        Journal.create(str(path), HEADER_PAYLOAD)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["journal"]  # no temporary file left behind


def test_create_leaves_no_temporary(tmp_path):
    Journal.create(str(tmp_path / "journal"), HEADER_PAYLOAD).close()
    assert os.listdir(tmp_path) == ["journal"]


def test_append_rejects_bad_arguments(tmp_path):
    path = str(tmp_path / "journal")
    with Journal.create(path, HEADER_PAYLOAD) as j:
        with pytest.raises(ValueError):
            j.append(99, {})
        with pytest.raises(ValueError):
            j.append(HEADER, {})  # only create() writes the HEADER record
        j.append(RUN_START, {"run": 1})
    got, torn = read_journal(path)
    assert [r.type for r in got] == [HEADER, RUN_START] and not torn


def test_append_rejects_non_dict_and_closed(tmp_path):
    path = str(tmp_path / "journal")
    j = Journal.create(path, HEADER_PAYLOAD)
    with pytest.raises(TypeError):
        j.append(RUN_START, [1, 2])
    j.close()
    j.close()  # idempotent
    with pytest.raises(ValueError):
        j.append(RUN_START, {})
    got, torn = read_journal(path)
    assert len(got) == 1 and not torn


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope")
    for fn in (read_journal, Journal.resume):
        with pytest.raises(CorruptDataError) as ei:
            fn(path)
        assert (ei.value.path, ei.value.offset, ei.value.reason) == (path, 0, "file missing")


# --- torn tail ---------------------------------------------------------------------------


def test_torn_tail_every_offset(tmp_path):
    path = tmp_path / "journal"
    recs = sample_records()
    offsets = make_journal(path, recs)
    full = path.read_bytes()
    last_start, end = offsets[-2], offsets[-1]
    want = expected(recs, offsets)[:-1]
    new = (TASK_FAILED, {"run": 3, "step": 1, "kind": "reduce", "index": 2, "attempt": 0,
                         "message": "after resume"})
    for cut in range(last_start + 1, end):
        path.write_bytes(full[:cut])
        got, torn = read_journal(str(path))
        assert torn, cut
        assert got == want, cut
        assert os.path.getsize(path) == cut  # read_journal never modifies the file

        j, got, torn = Journal.resume(str(path))
        with j:
            assert torn and got == want, cut
            assert os.path.getsize(path) == last_start  # truncated to the last good record
            j.append(*new)
        got, torn = read_journal(str(path))
        assert not torn, cut
        assert got == want + [JournalRecord(new[0], new[1], last_start)], cut


def test_cut_exactly_at_record_boundary_is_not_torn(tmp_path):
    path = tmp_path / "journal"
    recs = sample_records()
    offsets = make_journal(path, recs)
    full = path.read_bytes()
    for i in range(1, len(offsets) - 1):
        path.write_bytes(full[:offsets[i]])
        got, torn = read_journal(str(path))
        assert not torn
        assert got == expected(recs, offsets)[:i]


def test_torn_header_record_is_corrupt(tmp_path):
    # create() is atomic, so a journal without its HEADER record is never a crash artefact.
    path = tmp_path / "journal"
    offsets = make_journal(path, [])
    full = path.read_bytes()
    for cut in (FILE_HEADER_SIZE, FILE_HEADER_SIZE + 3, offsets[-1] - 1):
        path.write_bytes(full[:cut])
        with pytest.raises(CorruptDataError) as ei:
            read_journal(str(path))
        assert ei.value.offset == FILE_HEADER_SIZE
        assert ei.value.reason == "no HEADER record"


def test_zero_filled_tail_is_torn(tmp_path):
    # Power loss can leave the file longer than what was written, padded with zeros.
    path = tmp_path / "journal"
    recs = sample_records()
    offsets = make_journal(path, recs)
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)
    got, torn = read_journal(str(path))
    assert torn and got == expected(recs, offsets)


# --- corruption --------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0xFF, 0x01, 0x80])
def test_flip_in_middle_record_is_corrupt(tmp_path, mask):
    path = tmp_path / "journal"
    recs = sample_records()
    offsets = make_journal(path, recs)
    full = path.read_bytes()
    for i in (0, 2, len(offsets) - 3):  # HEADER, a middle one, the one before the last
        start, end = offsets[i], offsets[i + 1]
        for pos in range(start, end):
            path.write_bytes(full)
            flip(path, pos, mask)
            for fn in (read_journal, Journal.resume):
                with pytest.raises(CorruptDataError) as ei:
                    fn(str(path))
                assert ei.value.path == str(path)
                assert ei.value.offset == start, (i, pos)
            assert path.read_bytes() != full  # resume did not "repair" it
            assert len(path.read_bytes()) == len(full)


@pytest.mark.parametrize("mask", [0xFF, 0x01, 0x80])
def test_flip_in_last_record_is_torn(tmp_path, mask):
    path = tmp_path / "journal"
    recs = sample_records()
    offsets = make_journal(path, recs)
    full = path.read_bytes()
    want = expected(recs, offsets)[:-1]
    for pos in range(offsets[-2], offsets[-1]):
        path.write_bytes(full)
        flip(path, pos, mask)
        got, torn = read_journal(str(path))
        assert torn, pos
        assert got == want, pos


@pytest.mark.parametrize("mask", [0xFF, 0x01])
def test_flip_in_file_header_is_corrupt(tmp_path, mask):
    path = tmp_path / "journal"
    make_journal(path)
    full = path.read_bytes()
    for pos in range(FILE_HEADER_SIZE):
        path.write_bytes(full)
        flip(path, pos, mask)
        for fn in (read_journal, Journal.resume):
            with pytest.raises(CorruptDataError) as ei:
                fn(str(path))
            assert ei.value.offset == 0 and ei.value.path == str(path)


def test_short_file_header(tmp_path):
    path = tmp_path / "journal"
    make_journal(path)
    full = path.read_bytes()
    for cut in range(FILE_HEADER_SIZE):
        path.write_bytes(full[:cut])
        with pytest.raises(CorruptDataError) as ei:
            read_journal(str(path))
        assert ei.value.offset == 0


def test_file_header_checks(tmp_path):
    path = tmp_path / "journal"
    make_journal(path)
    full = path.read_bytes()
    rest = full[FILE_HEADER_SIZE:]
    for version, flags, reason in ((2, 0, "unsupported format version 2"),
                                   (1, 1, "unsupported flags 1")):
        head = b"\x89MRJNL\r\n" + struct.pack("<HH", version, flags)
        path.write_bytes(head + struct.pack("<I", zlib.crc32(head)) + rest)
        with pytest.raises(CorruptDataError) as ei:
            read_journal(str(path))
        assert (ei.value.offset, ei.value.reason) == (0, reason)
    path.write_bytes(b"\x89MRRUN\r\n" + full[8:])  # a run file's magic
    with pytest.raises(CorruptDataError, match="bad magic"):
        read_journal(str(path))


def _with_bad_record(tmp_path, bad: bytes, *, trailing: bool):
    path = tmp_path / "journal"
    offsets = make_journal(path, sample_records()[:2])
    data = path.read_bytes() + bad
    if trailing:
        data += frame(RUN_START, b'{"run":9}')
    path.write_bytes(data)
    return str(path), offsets[-1]


@pytest.mark.parametrize("trailing", [False, True])
@pytest.mark.parametrize("bad, reason", [
    (frame(0, b"{}"), "unknown record type 0"),
    (frame(6, b"{}"), "unknown record type 6"),
    (frame(RUN_START, b"{not json"), "record payload is not valid JSON"),
    (frame(RUN_START, b'{"a":"\xff"}'), "record payload is not valid JSON"),
    (frame(RUN_START, b"[1,2]"), "record payload is not a JSON object"),
    (frame(HEADER, b"{}"), "HEADER record after the first record"),
])
def test_intact_but_invalid_record_is_always_corrupt(tmp_path, bad, reason, trailing):
    # Its CRC matches, so a crash did not make it: corrupt even as the last record.
    path, offset = _with_bad_record(tmp_path, bad, trailing=trailing)
    with pytest.raises(CorruptDataError) as ei:
        read_journal(path)
    assert (ei.value.offset, ei.value.reason) == (offset, reason)


def test_first_record_must_be_header(tmp_path):
    path = tmp_path / "journal"
    make_journal(path)
    head = path.read_bytes()[:FILE_HEADER_SIZE]
    path.write_bytes(head + frame(RUN_START, b"{}") + frame(HEADER, b"{}"))
    with pytest.raises(CorruptDataError) as ei:
        read_journal(str(path))
    assert (ei.value.offset, ei.value.reason) == (FILE_HEADER_SIZE,
                                                  "first record is not a HEADER record")


def test_huge_length_followed_by_data_is_corrupt(tmp_path):
    bad = struct.pack("<IBI", MAX_PAYLOAD + 1, RUN_START, 0)
    path, offset = _with_bad_record(tmp_path, bad, trailing=True)
    with pytest.raises(CorruptDataError) as ei:
        read_journal(path)
    assert ei.value.offset == offset
    assert ei.value.reason.startswith(f"record length {MAX_PAYLOAD + 1} exceeds maximum")
    # The same damaged frame header at the very end is a torn tail.
    p2 = tmp_path / "other"
    p2.mkdir()
    path2, offset2 = _with_bad_record(p2, bad, trailing=False)
    got, torn = read_journal(path2)
    assert torn and got[-1].offset < offset2


def test_bad_crc_followed_by_data_is_corrupt(tmp_path):
    bad = frame(RUN_START, b'{"run":1}', crc=12345)
    path, offset = _with_bad_record(tmp_path, bad, trailing=True)
    with pytest.raises(CorruptDataError) as ei:
        read_journal(path)
    assert ei.value.offset == offset
    assert ei.value.reason.startswith("record checksum mismatch")
    assert str(offset + len(bad)) in ei.value.reason  # names where good data resumes


def test_append_payload_too_large(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "MAX_PAYLOAD", 100)
    path = str(tmp_path / "journal")
    with Journal.create(path, HEADER_PAYLOAD) as j:
        with pytest.raises(ValueError):
            j.append(RUN_START, {"x": "y" * 200})
        j.append(RUN_START, {"x": "y"})
    assert len(read_journal(path)[0]) == 2


def test_failed_append_truncates_and_poisons(tmp_path, monkeypatch):
    path = str(tmp_path / "journal")
    j = Journal.create(path, HEADER_PAYLOAD)
    j.append(RUN_START, {"run": 1})
    good = os.path.getsize(path)
    real_write = os.write

    def short_write(fd, data):
        return real_write(fd, bytes(data)[:5])

    monkeypatch.setattr(journal.os, "write", short_write)
    with pytest.raises(OSError, match="short write"):
        j.append(RUN_START, {"run": 2})
    monkeypatch.setattr(journal.os, "write", real_write)
    assert os.path.getsize(path) == good
    with pytest.raises(OSError, match="unusable"):
        j.append(RUN_START, {"run": 3})
    j.close()
    got, torn = read_journal(path)
    assert not torn and [r.payload for r in got] == [HEADER_PAYLOAD, {"run": 1}]


# --- crash simulation --------------------------------------------------------------------


def _appender(path: str, start: int) -> None:  # runs in a forked child
    j, records, _torn = Journal.resume(path)
    n = start
    deadline = time.monotonic() + 3.0  # safety net should the SIGKILL never come
    while time.monotonic() < deadline:
        j.append(TASK_COMMITTED, {"n": n, "pad": "x" * (n % 50)})
        n += 1
    os._exit(0)


def _check_consecutive(records, count_from=0):
    assert records[0].type == HEADER
    ns = [r.payload["n"] for r in records[1:]]
    assert ns == list(range(count_from, count_from + len(ns)))
    assert all(r.type == TASK_COMMITTED for r in records[1:])


def test_sigkill_during_appends(tmp_path):
    ctx = multiprocessing.get_context("fork")
    t0 = time.monotonic()
    for seed in range(5):
        rng = random.Random(seed)
        path = str(tmp_path / f"journal-{seed}")
        Journal.create(path, HEADER_PAYLOAD).close()
        total = 0
        for _round in range(2):  # kill, resume, kill again: numbering must continue
            child = ctx.Process(target=_appender, args=(path, total))
            child.start()
            time.sleep(rng.uniform(0.0, 0.12))
            os.kill(child.pid, signal.SIGKILL)
            child.join(5)
            assert child.exitcode == -signal.SIGKILL
            records, _torn = read_journal(path)
            _check_consecutive(records)
            total = len(records) - 1
        j, records, _torn = Journal.resume(path)
        with j:
            j.append(TASK_COMMITTED, {"n": total})
        records, torn = read_journal(path)
        assert not torn
        _check_consecutive(records)
        assert len(records) == total + 2
    assert time.monotonic() - t0 < 5


def test_simulated_crash_mid_write(tmp_path):
    """What a kill inside the single write could leave: any prefix of the frame."""
    path = tmp_path / "journal"
    offsets = make_journal(path, [(TASK_COMMITTED, {"n": i}) for i in range(3)])
    full = path.read_bytes()
    extra = journal._encode_record(TASK_COMMITTED, {"n": 3})
    for cut in range(len(extra)):
        path.write_bytes(full + extra[:cut])
        records, torn = read_journal(str(path))
        assert torn == (cut > 0)
        _check_consecutive(records)
        assert len(records) == 4
    assert offsets[-1] == len(full)
