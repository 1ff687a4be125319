"""Tests for mapreduce.codec: key order preservation, canonical round trips, values."""
from __future__ import annotations

import math
import re
import zlib
from itertools import combinations
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce.codec import (decode_key, decode_value, decode_value_unchecked,
                             decode_values_unchecked, encode_key, encode_value, partition_of)
from mapreduce.errors import SerializationError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------
# Reference order: None < numbers (by value; NaN above everything) < str < bytes < tuples,
# tuples element-wise with a shorter prefix first.  Within a family it uses Python's own
# comparison (int/float comparison in Python is exact).
# ---------------------------------------------------------------------------------------
def ref(key):
    if key is None:
        return (0,)
    if isinstance(key, (bool, int, float)):
        if isinstance(key, float) and math.isnan(key):
            return (1, 1)
        return (1, 0, key)
    if isinstance(key, str):
        return (2, key)
    if isinstance(key, bytes):
        return (3, key)
    if isinstance(key, (tuple, list)):
        return (4, tuple(ref(e) for e in key))
    raise TypeError(type(key))


def cmp(a, b):
    return (a > b) - (a < b)


def canonical(key):
    """What decode_key should return for key."""
    if isinstance(key, (bool, int)):
        return int(key)
    if isinstance(key, float):
        return int(key) if key.is_integer() else key
    if isinstance(key, (tuple, list)):
        return tuple(canonical(e) for e in key)
    return key


def same_key(a, b):
    """Equality that treats NaN as equal to itself and checks exact types."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same_key(x, y) for x, y in zip(a, b))
    return a == b


# ---------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------
floats = st.floats(allow_nan=False)
ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**700), max_value=10**700),
    st.integers(min_value=-300, max_value=300),
    # ints adjacent to floats, to catch any int->float rounding in comparisons
    st.builds(
        lambda f, d: int(f) + d,
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-2, 2),
    ),
)
special_numbers = st.sampled_from(
    [0, -0.0, 0.0, 1, 1.0, True, False, -1, 0.5, -0.5, math.inf, -math.inf, 2**53, 2**53 + 1,
     float(2**53), 2**64, -(2**64), 2**64 - 1, 2**63, -(2**63), 255, 256, -255, -256,
     1e308, -1e308, 5e-324, -5e-324, 2.0**-1074 * 3, 1.5, 2**1024, float(2**1023)]
)
numbers = st.one_of(ints, floats, st.booleans(), special_numbers)
texts = st.one_of(
    st.text(max_size=8),
    # boundaries of UTF-8 sequence lengths, NUL, and surrogates
    st.text(
        alphabet=st.sampled_from("\x00\x01a\xff\u07ff\u0800\ud7ff\ud800\udfff\ue000\U0010ffff"),
        max_size=5,
    ),
)
binaries = st.one_of(
    st.binary(max_size=8),
    st.lists(st.sampled_from([b"\x00", b"\xff", b"\x01", b"a"]), max_size=5).map(b"".join),
)
leaves = st.one_of(st.none(), numbers, texts, binaries)
keys = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(tuple), st.lists(children, max_size=4)
    ),
    max_leaves=8,
)


def check_pair(a, b):
    ea, eb = encode_key(a), encode_key(b)
    assert cmp(ea, eb) == cmp(ref(a), ref(b)), (a, b, ea.hex(), eb.hex())


# ---------------------------------------------------------------------------------------
# Order properties
# ---------------------------------------------------------------------------------------
@SETTINGS
@given(keys, keys)
def test_order_matches_reference(a, b):
    check_pair(a, b)


@SETTINGS
@given(st.lists(keys, min_size=1, max_size=3), keys, keys)
def test_order_with_shared_prefix(prefix, x, y):
    # Independent draws rarely share a prefix; force one, at top level and nested.
    a, b = (*prefix, x), (*prefix, y)
    check_pair(a, b)
    check_pair((a, 1), (b, 0))
    check_pair(tuple(prefix), a)
    check_pair([tuple(prefix), None], [a])


@settings(SETTINGS, max_examples=60)
@given(st.lists(keys, min_size=2, max_size=6))
def test_sorting_encodings_sorts_keys(ks):
    by_bytes = sorted(ks, key=encode_key)
    refs = [ref(k) for k in by_bytes]
    assert refs == sorted(refs)


@SETTINGS
@given(numbers, numbers)
def test_numbers_compare_by_value(a, b):
    check_pair(a, b)
    assert (encode_key(a) == encode_key(b)) == (a == b)


@SETTINGS
@given(st.one_of(texts, st.text()), st.one_of(texts, st.text()))
def test_str_order_is_code_point_order(a, b):
    check_pair(a, b)
    check_pair((a,), (b,))
    check_pair((a, 0), (b,))


@SETTINGS
@given(binaries, binaries)
def test_bytes_order(a, b):
    check_pair(a, b)
    check_pair((a,), (b,))
    check_pair((a, b""), (b,))


def test_nan_is_one_key_above_all_numbers():
    nan = encode_key(math.nan)
    assert nan == encode_key(float("-nan")) == encode_key(-math.nan)
    assert encode_key(math.inf) < nan < encode_key("")
    assert encode_key(None) < encode_key(-math.inf) < encode_key(-(10**1000))
    assert encode_key(10**1000) < encode_key(math.inf)
    assert math.isnan(decode_key(nan))
    assert encode_key((math.nan, 1)) < encode_key((math.nan, 2))


# ---------------------------------------------------------------------------------------
# Round trips and canonical form
# ---------------------------------------------------------------------------------------
@SETTINGS
@given(keys)
def test_round_trip_is_canonical(key):
    data = encode_key(key)
    decoded = decode_key(data)
    assert same_key(decoded, canonical(key))
    assert encode_key(decoded) == data


@SETTINGS
@given(st.binary(max_size=24))
def test_garbage_decodes_canonically_or_raises(data):
    try:
        value = decode_key(data)
    except ValueError:
        return
    assert encode_key(value) == data


@SETTINGS
@given(keys, st.data())
def test_mutated_encodings_decode_canonically_or_raise(key, data):
    enc = bytearray(encode_key(key))
    op = data.draw(st.sampled_from(["flip", "truncate", "append", "insert"]))
    i = data.draw(st.integers(0, len(enc)))
    b = data.draw(st.sampled_from([0x00, 0x01, 0x20, 0x40, 0x50, 0x80, 0xFE, 0xFF]))
    if op == "flip" and i < len(enc):
        enc[i] = b
    elif op == "truncate":
        del enc[i:]
    elif op == "append":
        enc.append(b)
    else:
        enc.insert(i, b)
    try:
        value = decode_key(bytes(enc))
    except ValueError:
        return
    assert encode_key(value) == bytes(enc)


REGRESSION_KEYS = [
    None, False, True, 0, 1, -1, 0.0, -0.0, 1.0, 0.5, -0.5, -0.1, 1.5, -1.5,
    2**53, 2**53 + 1, float(2**53), 2**53 - 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1,
    -(2**64), -(2**64) - 1, -(2**64) + 1, 10**1000, -(10**1000), 10**1000 + 1, -(10**1000) - 1,
    256**255, 256**256, -(256**256), 1e308, -1e308, 5e-324, -5e-324, 2.0**-1074 * 3,
    math.inf, -math.inf, "", "\x00", "\x00\x00", "a", "a\x00", "a\x00b", "ab", "\U0010ffff",
    "\ud800", "\udfff\ud800", b"", b"\x00", b"\x00\xff", b"\xff", b"a\x00", b"ab",
    (), (None,), (0,), (1,), (1, None), (1, 0.5), (1.5,), ("a",), ("a", None), ("a\x00",),
    (b"\x00",), (b"\x00", b""), (b"\x00\xff",), ((),), ((), ()), (((),),), ((None,),),
    ((1, 2), 3), (1, (2, 3)), [1, [2.5, "x"]], (math.inf, -0.0), (2.0**-1074,),
]


def test_regression_keys_sort_like_reference():
    for a, b in combinations(REGRESSION_KEYS, 2):
        check_pair(a, b)
    for k in REGRESSION_KEYS:
        data = encode_key(k)
        assert same_key(decode_key(data), canonical(k)), k
        assert encode_key(decode_key(data)) == data


def test_one_and_true_and_one_point_zero_are_one_key():
    assert encode_key(1) == encode_key(1.0) == encode_key(True)
    assert encode_key(0) == encode_key(0.0) == encode_key(-0.0) == encode_key(False)
    assert encode_key((1, "a")) == encode_key((True, "a")) == encode_key([1.0, "a"])
    assert type(decode_key(encode_key(True))) is int
    assert type(decode_key(encode_key(2.0))) is int
    assert decode_key(encode_key(-0.0)) == 0 and type(decode_key(encode_key(-0.0))) is int
    assert type(decode_key(encode_key(1e308))) is int and decode_key(encode_key(1e308)) == 1e308
    assert type(decode_key(encode_key(0.5))) is float


def test_int_float_compared_exactly():
    assert encode_key(float(2**53)) < encode_key(2**53 + 1)
    assert encode_key(float(2**60)) < encode_key(2**60 + 1)
    assert encode_key(-(2**60) - 1) < encode_key(-float(2**60))
    assert encode_key(2**1024) > encode_key(1.7976931348623157e308)
    assert encode_key(5e-324) > encode_key(0) and encode_key(-5e-324) < encode_key(0)
    assert encode_key(-0.5) < encode_key(-0.25) < encode_key(0) < encode_key(0.25) < encode_key(0.5)
    assert encode_key(-0.1) > encode_key(-1) and decode_key(encode_key(-0.1)) == -0.1


def test_huge_ints():
    for n in (10**1000, -(10**1000), 2**64, -(2**64), 256**300, -(256**300)):
        assert decode_key(encode_key(n)) == n
    assert encode_key(10**1000) < encode_key(10**1000 + 1) < encode_key(10**1001)
    assert encode_key(-(10**1001)) < encode_key(-(10**1000) - 1) < encode_key(-(10**1000))
    assert encode_key(256**255 - 1) < encode_key(256**255) < encode_key(256**256)


DOC = Path(__file__).resolve().parent.parent / "docs" / "key-encoding.md"


def documented_examples():
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- examples:begin -->")[1].split("<!-- examples:end -->")[0]
    rows = re.findall(r"^\|\s*`(.+?)`\s*\|\s*`([0-9A-F ]+)`\s*\|", table, re.M)
    assert len(rows) >= 20
    return rows


def test_documented_examples_are_true():
    env = {"inf": math.inf, "nan": math.nan, "__builtins__": {}}
    for expr, hexstr in documented_examples():
        key = eval(expr, env)  # noqa: S307 - our own docs
        assert encode_key(key) == bytes.fromhex(hexstr), expr
        assert encode_key(decode_key(bytes.fromhex(hexstr))) == bytes.fromhex(hexstr)
    # the "Larger ones" paragraph
    assert encode_key(10**1000)[:4].hex() == "290201a0" and len(encode_key(10**1000)) == 4 + 416
    assert encode_key(-(10**1000))[:4].hex() == "17fdfe5f"
    assert encode_key(5e-324) == b"\x20\xff" + b"\x00" * 134 + b"\x40"
    assert zlib.crc32(b"\x40hello") % 7 == partition_of(encode_key("hello"), 7)


def test_list_and_tuple_are_the_same_key():
    assert encode_key([1, "a", [b"x"]]) == encode_key((1, "a", (b"x",)))
    assert decode_key(encode_key([1, [2]])) == (1, (2,))
    assert encode_key([]) == encode_key(())


def test_prefix_tuples_sort_first():
    order = [(), (None,), (None, None), (1,), (1, None), (1, 0), (1, 0.5), (1, 1), (1.5,), ("a",),
             ("a", None), ("a\x00",), ("a\x00", 0), ("a\x01",), ("ab",), (b"",), (b"\x00",), ((),)]
    encs = [encode_key(k) for k in order]
    assert encs == sorted(encs)
    assert len(set(encs)) == len(encs)


def test_embedded_nuls_are_escaped():
    assert encode_key(("\x00",)) != encode_key(("",))
    assert encode_key((b"\x00",)) < encode_key((b"\x00", b"")) < encode_key((b"\x00\x00",))
    assert encode_key(("a", "b")) != encode_key(("a\x00b",))
    assert decode_key(encode_key(("a\x00", b"\x00\xff", "\x00"))) == ("a\x00", b"\x00\xff", "\x00")


def test_surrogates_round_trip():
    for s in ("\ud800", "a\udcff", "\ud83d\ude00"):
        assert decode_key(encode_key(s)) == s
        assert decode_key(encode_key((s, 1))) == (s, 1)
    # Surrogates sort by code point, between U+D7FF and U+E000.
    assert encode_key("\ud7ff") < encode_key("\ud800") < encode_key("\udfff") < encode_key("\ue000")


def test_subclasses_encode_as_their_base_type():
    import enum
    from collections import namedtuple

    class Color(enum.IntEnum):
        RED = 1

    class S(str):
        pass

    Point = namedtuple("Point", "x y")
    assert encode_key(Color.RED) == encode_key(1)
    assert encode_key(S("ab")) == encode_key("ab")
    assert encode_key(Point(1, "a")) == encode_key((1, "a"))
    assert encode_key((Color.RED, S("x"))) == encode_key((1, "x"))


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [{}, {1: 2}, set(), frozenset(), object(), bytearray(b"x"), 1j])
def test_unsupported_key_types(bad):
    name = type(bad).__name__
    top = rf"^key of type {name} is not supported \(keys may be None, bool, int"
    with pytest.raises(SerializationError, match=top):
        encode_key(bad)
    nested = rf"^element of tuple key of type {name} is not supported"
    with pytest.raises(SerializationError, match=nested):
        encode_key(("ok", (1, bad)))
    with pytest.raises(SerializationError, match=rf"element of tuple key of type {name}"):
        encode_key([bad])


def test_self_containing_key():
    loop = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="list"):
        encode_key(loop)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # empty
        b"\x00", b"\xff", b"\x02", b"\x30",  # not tags
        b"\x21", b"\x22\x01", b"\x29\x01\x09\x01",  # truncated ints
        b"\x21\x00", b"\x1f\xff", b"\x29\x00", b"\x17\xff",  # non-minimal ints / prefixes
        b"\x29\x01\x05\x01\x02\x03\x04\x05",  # big-int form of a small int
        b"\x29\x01\x09\x00" + b"\x01" * 8,  # leading zero magnitude byte
        b"\x20\xff", b"\x21\x01\xff\x01\x00",  # empty fraction; trailing zero byte
        b"\x20\xff" + b"\x01" * 200,  # fraction finer than any float
        b"\x29\x02\x01\x00" + b"\x01" * 256 + b"\xff\x80",  # floor too big for a float
        b"\x50\x40a", b"\x50\x50", b"\x50\x20\xff\x80",  # unterminated nested items
        b"\x50\x40a\x00\x00", b"\x01\x01", b"\x2a\xff\x80",  # trailing bytes
        b"\x40\xff", b"\x40\xc3", b"\x40\xc0\x80",  # invalid / overlong UTF-8
        b"\x50" * 5000,  # absurd nesting
    ],
)
def test_garbage_raises_value_error(data):
    with pytest.raises(ValueError):
        decode_key(data)


def test_decode_accepts_other_buffers():
    data = encode_key(("a", 1))
    assert decode_key(memoryview(data)) == ("a", 1)
    assert decode_key(bytearray(encode_key("hi"))) == "hi"
    assert decode_key(memoryview(encode_key("hi"))) == "hi"


# ---------------------------------------------------------------------------------------
# Partitions
# ---------------------------------------------------------------------------------------
def test_partition_of_is_crc32_mod_n():
    key = encode_key("hello")
    assert partition_of(key, 7) == zlib.crc32(b"\x40hello") % 7
    assert partition_of(b"", 3) == 0
    assert len({partition_of(encode_key(k), 16) for k in (1, 1.0, True)}) == 1


@settings(SETTINGS, max_examples=50)
@given(keys, st.integers(1, 1000))
def test_partition_in_range(key, n):
    p = partition_of(encode_key(key), n)
    assert 0 <= p < n
    assert p == zlib.crc32(encode_key(key)) % n


# ---------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.binary(max_size=8),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(
            st.one_of(st.integers(-5, 5), st.text(max_size=3), st.binary(max_size=3)),
            children,
            max_size=3,
        ),
    ),
    max_leaves=10,
)


@settings(SETTINGS, max_examples=100)
@given(values)
def test_value_round_trip(value):
    assert decode_value(encode_value(value)) == value


@settings(SETTINGS, max_examples=100)
@given(values)
def test_unchecked_value_decoder_agrees_with_decode_value(value):
    """The reduce loop's frameless decoder must give exactly what decode_value gives."""
    data = encode_value(value)
    fast, checked = decode_value_unchecked(data), decode_value(data)
    assert fast == checked and type(fast) is type(checked)


@settings(SETTINGS, max_examples=100)
@given(st.lists(values, max_size=20))
def test_batch_value_decoder_agrees_with_decode_value(batch):
    """The reduce loop decodes a batch of values with one call: item for item, the same."""
    got = decode_values_unchecked([encode_value(v) for v in batch])
    expected = [decode_value(encode_value(v)) for v in batch]
    assert list(got) == expected
    assert [type(g) for g in got] == [type(e) for e in expected]


def test_batch_value_decoder_rejects_bytes_that_are_not_that_many_values():
    good = [encode_value("abc"), encode_value(7)]
    with pytest.raises(ValueError):  # the last value cut short
        decode_values_unchecked([good[0], good[1], encode_value("xyz")[:-1]])
    with pytest.raises(ValueError):  # two values in one item: one too many bytes' worth
        decode_values_unchecked([good[0] + good[1]])


def test_value_specifics():
    assert decode_value(encode_value([1, [2, "x"]])) == (1, (2, "x"))
    assert type(decode_value(encode_value(b"ab"))) is bytes
    assert type(decode_value(encode_value("ab"))) is str
    mapping = {1: "a", (1, 2): b"b", "k": None}
    assert decode_value(encode_value(mapping)) == mapping
    assert encode_value(1) == msgpack.packb(1, use_bin_type=True)
    assert decode_value(encode_value(2**64 - 1)) == 2**64 - 1
    assert decode_value(encode_value(-(2**63))) == -(2**63)


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (object(), r"value of type object cannot be encoded"),
        (2**70, r"^value of type int cannot be encoded: 1180591620717411303424 is outside"),
        (-(2**63) - 1, r"value of type int cannot be encoded"),
        ((1, {2: {3}}), r"^value of type tuple cannot be encoded: it contains a value of type set"),
        ([1, 2**64], r"^value of type list .*: it contains the int 18446744073709551616,"),
        ([10**1000], r"it contains the int of 3322 bits, outside msgpack's 64-bit integer range"),
        ({1, 2}, r"value of type set cannot be encoded"),
    ],
)
def test_unpackable_values(bad, pattern):
    with pytest.raises(SerializationError, match=pattern):
        encode_value(bad)
    # the shared packer must still work afterwards
    assert decode_value(encode_value((1, "a"))) == (1, "a")


@pytest.mark.parametrize(
    "data", [b"", b"\x92\x01", b"\x01\x02", b"\xc1", b"\xa2\xff\xfe", b"\x81\x80\x01"]
)
def test_garbage_value_raises_value_error(data):
    with pytest.raises(ValueError):
        decode_value(data)
