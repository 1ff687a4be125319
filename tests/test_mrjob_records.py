"""The compatibility layer's fast record paths equal the protocol round trip they replace.

``mapreduce/mrjob/records.py`` lets some values cross the shuffle as themselves and encodes
and decodes standard JSON without ``json.dumps`` / ``json.loads``' per-call overhead.  The
oracle here is the plain round trip: ``json.dumps`` / ``json.loads`` for the JSON twins, and
``protocol.read(protocol.write(key, value))`` -- what mrjob does with every record between
a step's map and reduce -- for what a job sees, compared by type as well as value (``1``,
``True`` and ``1.0`` are equal in Python but not to a job that looks at types).
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapreduce.codec import decode_value, encode_value
from mapreduce.mrjob import protocol as P
from mapreduce.mrjob.records import (decoder, encode_with, is_standard_json, joined,
                                     json_dumps, json_loads, lines_with, passes_ints,
                                     values_loader)

SETTINGS = settings(max_examples=150, deadline=None)
#: For the tests whose every example encodes several pairs several ways.
FEWER = settings(max_examples=60, deadline=None)

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text()
           | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                     max_size=3)   # lone surrogates: JSON escapes them, msgpack cannot
           | st.sampled_from(["", "caf\u00e9", "a\tb", 'q"uote', "back\\slash", "\x00"]))
dict_keys = st.text(max_size=5) | st.integers() | st.booleans() | st.none() | \
    st.floats(allow_nan=False)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.lists(inner, max_size=4).map(tuple)
                      | st.dictionaries(dict_keys, inner, max_size=4), max_leaves=12)


def typed(x):
    """A form of ``x`` that differs when types differ (1, True, 1.0; list, tuple) and in
    which NaN equals NaN."""
    if isinstance(x, float) and math.isnan(x):
        return ("float", "nan")
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [typed(e) for e in x])
    if isinstance(x, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in x.items()])
    return (type(x).__name__, x)


def outcome(fn, *args):
    """What a call gives: its result, or its exception's type and message."""
    try:
        return "ok", typed(fn(*args))
    except Exception as exc:
        return type(exc).__name__, str(exc)


# --- the JSON twins -------------------------------------------------------------------------
@SETTINGS
@given(values)
def test_json_dumps_is_json_dumps(x):
    assert outcome(json_dumps, x) == outcome(lambda v: json.dumps(v).encode("utf_8"), x)


@pytest.mark.parametrize("x", [{1, 2}, b"bytes", object(), [1, {2}], {(1, 2): 3},
                               float("nan"), -0.0, 2 ** 64, True],
                         ids=["set", "bytes", "object", "nested-set", "tuple-key", "nan",
                              "minus-zero", "2**64", "true"])
def test_json_dumps_fails_and_succeeds_as_json_dumps(x):
    assert outcome(json_dumps, x) == outcome(lambda v: json.dumps(v).encode("utf_8"), x)


def test_json_dumps_fails_on_a_huge_int_as_json_dumps():
    x = 10 ** 5000  # beyond int's default limit for str conversion
    assert outcome(json_dumps, x) == outcome(lambda v: json.dumps(v).encode("utf_8"), x)
    assert outcome(json_dumps, [x])[0] == "ValueError"


def test_json_dumps_reports_a_cycle_as_json_dumps():
    cycle: list = [1]
    cycle.append(cycle)
    assert outcome(json_dumps, cycle) == outcome(json.dumps, cycle)
    assert outcome(json_dumps, cycle)[0] == "ValueError"
    assert json_dumps([1, [2]]) == b"[1, [2]]"  # and the encoder still works after it


@SETTINGS
@given(values, st.sampled_from(["", " ", "\n", "\t "]), st.sampled_from(["", " ", "\r\n"]))
def test_json_loads_is_json_loads_on_encodings(x, before, after):
    try:
        text = json.dumps(x)
    except (TypeError, ValueError):
        return
    data = (before + text + after).encode("utf_8")
    assert outcome(json_loads, data) == outcome(lambda b: json.loads(b.decode("utf_8")), data)


@SETTINGS
@given(st.binary(max_size=12) | st.text(max_size=12).map(lambda s: s.encode("utf_8",
                                                                          "surrogatepass")))
def test_json_loads_is_json_loads_on_any_bytes(data):
    assert outcome(json_loads, data) == outcome(lambda b: json.loads(b.decode("utf_8")), data)


@pytest.mark.parametrize("data", [b"\xef\xbb\xbf1", b"1 2", b"[1,", b"NaN", b"-Infinity",
                                  b'"\\ud800"', b"\xff", b"", b"  ", b"1e400", b'{"a":1}x'])
def test_json_loads_edge_cases(data):
    assert outcome(json_loads, data) == outcome(lambda b: json.loads(b.decode("utf_8")), data)


# --- what a job sees: the fast paths against the protocol's round trip ----------------------
PROTOCOLS = [P.StandardJSONProtocol, P.ReprProtocol, P.PickleProtocol, P.JSONProtocol]


def through_engine(record):
    """The engine carries a value half as msgpack (codec), as the shuffle does."""
    key, value = record
    assert key.__class__ is bytes
    return key, decode_value(encode_value(value))


@FEWER
@given(st.lists(st.tuples(values, values), max_size=6), st.sampled_from(PROTOCOLS),
       st.booleans())
def test_records_decode_to_what_the_protocol_round_trip_gives(pairs, protocol_class, ints):
    protocol = protocol_class()
    expected, encodable = [], []
    for key, value in pairs:
        try:
            line = protocol.write(key, value)
            expected.append(typed(protocol_class().read(line)))
        except Exception:
            continue  # the protocol cannot write it: neither can the fast path (below)
        encodable.append((key, value))
    ints = ints and passes_ints(protocol)
    records = [through_engine(r) for r in encode_with(protocol, ints)(encodable)]
    decode = decoder(protocol)
    assert [typed(decode(k, v)) for k, v in records] == expected
    # The key half is the protocol line's bytes before the first tab (what the engine
    # sorts, partitions and groups by), and a record joins back into the protocol's line.
    assert [k for k, _ in records] == [protocol.write(k, v).partition(b"\t")[0]
                                       for k, v in encodable]
    assert [joined(k, v) for k, v in records] == [protocol.write(k, v) for k, v in encodable]
    # A reducer's values, decoded as a group.
    load_values = values_loader(protocol)
    assert [typed(v) for v in load_values(v for _, v in records)] == \
        [pair[1][1] for pair in expected]   # typed((k, v)) is ("tuple", [k', v'])
    # The last step's output lines.
    assert [line for _, line in lines_with(protocol)(encodable)] == \
        [protocol.write(k, v) for k, v in encodable]


@FEWER
@given(st.lists(st.tuples(values, values), min_size=1, max_size=4))
def test_the_fast_path_fails_where_the_protocol_fails(pairs):
    """A pair JSON cannot encode (a set, bytes, a non-str dict key it rejects) is an error
    on the fast path too, with json.dumps' message."""
    protocol = P.StandardJSONProtocol()
    for key, value in pairs + [("k", {1, 2})]:
        theirs = outcome(protocol.write, key, value)
        ours = outcome(lambda k, v: list(encode_with(protocol, True)([(k, v)])), key, value)
        assert (theirs[0] == "ok") == (ours[0] == "ok")
        if theirs[0] != "ok":
            assert ours == theirs


def test_which_values_travel_as_themselves():
    protocol = P.StandardJSONProtocol()
    assert is_standard_json(protocol) and passes_ints(protocol)
    encode = encode_with(protocol, True)
    travelled = [v for _, v in encode([("k", 1), ("k", "ascii"), ("k", 1.5), ("k", True),
                                       ("k", None), ("k", "caf\u00e9"), ("k", (1, 2)),
                                       ("k", 2 ** 64)])]
    assert travelled == [1, "ascii", 1.5, True, b"null", b'"caf\\u00e9"', b"[1, 2]",
                         b"18446744073709551616"]
    # Without the option (SORT_VALUES), every value is its encoding.
    assert [v for _, v in encode_with(protocol, False)([("k", 1), ("k", "a")])] == \
        [b"1", b'"a"']
    # Repr passes ints only; pickle nothing; a subclass that changes the coding is not
    # standard JSON.

    class Custom(P.StandardJSONProtocol):
        def _dumps(self, value):
            return json.dumps(value, sort_keys=True).encode()
    assert [v for _, v in encode_with(P.ReprProtocol(), True)([("k", 1), ("k", "a")])] == \
        [1, b"'a'"]
    assert not passes_ints(P.PickleProtocol())
    assert not is_standard_json(Custom())
    assert [v for _, v in encode_with(Custom(), True)([("k", {"b": 1, "a": 2})])] == \
        [b'{"a": 2, "b": 1}']
