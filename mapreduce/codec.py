"""Byte encodings of keys and values, and the partition function.

Keys: an order-preserving ("memcomparable") encoding
=====================================================

The shuffle sorts and merges records by comparing *encoded* keys with plain byte
comparison (``bytes.__lt__``, i.e. ``memcmp``) and groups them by byte equality, so it
never has to decode a key to order it.  That only works if the encoding preserves order:

    encode_key(a) < encode_key(b)   exactly when   a < b
    encode_key(a) == encode_key(b)  exactly when   a == b

for every pair of supported keys, with one total order across types::

    None  <  numbers (bool, int, float, by value)  <  str  <  bytes  <  tuples

The layout follows FoundationDB's tuple layer: every encoding starts with a one-byte type
tag whose numeric value orders the types, followed by a payload whose bytes order values
within the type.  ``docs/key-encoding.md`` gives every byte; in summary:

* **Numbers compare by value across int, float and bool.**  ``1``, ``1.0`` and ``True``
  are the same key (identical bytes), as Python's ``==`` says they are.  An int is a tag
  that gives its sign and byte length (a separate order-preserving length prefix beyond
  8 bytes, so ints of any size work), then its big-endian magnitude, complemented for
  negatives so that bigger magnitudes sort lower.  A float equal to an integer is encoded
  as that int.  Any other finite float ``x`` is ``floor(x)`` encoded as an int, then the
  marker ``0xFF``, then the exact binary expansion of ``x - floor(x)`` (a float's
  fraction is a finite dyadic rational, so this is exact and at most 135 bytes).  Nothing
  is ever rounded: ``2**53 + 1`` sorts above ``float(2**53)``.  ``-inf`` sorts below every
  number, ``+inf`` above every finite number, and NaN above ``+inf``; all NaNs are one
  key, equal to itself (Python's ``<`` cannot order NaN, so the encoding picks a place).
* **str** is its UTF-8 bytes (UTF-8 byte order is code point order, which is Python's
  ``str`` order).  Lone surrogates are encoded with ``surrogatepass`` so they still work.
* **bytes** is itself.
* **tuple / list** (the same key: ``[1, 2]`` is ``(1, 2)``) is its elements' encodings
  in sequence, so tuples compare element-wise and a prefix sorts first.

Elements nested in a tuple must be self-delimiting, because they are followed by more
bytes.  Ints already are (their length is known from tag or prefix).  str, bytes and a
float's fraction are escaped like FoundationDB does: each ``0x00`` becomes ``0x00 0xFF``
and ``0x00`` terminates.  A nested tuple ends with ``0x00``.  Every type tag is in
``0x01..0x50`` -- above the ``0x00`` terminator and below the ``0xFF`` escape -- which is
what keeps escaped strings and shorter tuples ordered correctly.

A *top-level* key is never followed by anything, so it needs no terminator: where its
encoding is a proper prefix of another key's, the other key continues with more
characters, bytes, fraction bits or elements and is correctly the larger.  So top-level
str, bytes, fractions and tuples omit the escaping and the terminator, and the word
count's hot path is just ``b"\\x40" + word.encode()``.

Decoding returns the *canonical* value of the key's equivalence class: integral numbers
(``True``, ``2.0``, ``10**30``) come back as ``int``, other numbers as ``float``, lists
and tuples as ``tuple``.  Decoding is strict -- it rejects every byte string that
``encode_key`` would not produce -- so ``encode_key(decode_key(b)) == b`` whenever
``decode_key(b)`` succeeds, and garbage raises ``ValueError``.

Values and partitions
=====================

Values are never compared, only carried, so they use msgpack (compact and fast in C):
``bin`` type for bytes so bytes and str stay distinct; arrays decode as tuples.  Ints
outside msgpack's 64-bit range are not supported as values.

``partition_of`` is ``zlib.crc32(key_bytes) % n``: a function of the key's encoded bytes
only, so it is the same in every process and every run (``hash()`` of str is salted per
process, so it must never be used here), and keys that are equal (``1`` and ``1.0``) land
in the same partition because their bytes are identical.

The C core
==========

When the compiled core is active (:mod:`mapreduce.core`), ``encode_key``, ``decode_key``
and ``partition_of`` are rebound at the end of this module to their C twins in
``mapreduce._core``.  The functions defined here stay the reference: C handles the common
types itself and hands anything else (subclasses, ints beyond 64 bits, lone surrogates,
unsupported types, malformed bytes) to ``py_encode_key`` / ``py_decode_key``, so results
and error messages are these functions' by construction (``docs/core.md``).

This module is a leaf: it imports only the standard library, msgpack,
``mapreduce.errors`` and ``mapreduce.core``.
"""
from __future__ import annotations

import functools
import math
import struct
import zlib

import msgpack

from mapreduce.core import native
from mapreduce.errors import SerializationError

__all__ = ["encode_key", "decode_key", "partition_of", "encode_value", "decode_value"]

# ---------------------------------------------------------------------------------------
# Type tags.  Their numeric order *is* the cross-type order.  All lie strictly between
# _END (0x00) and _ESCAPE (0xFF); see the module docstring for why that matters.
# ---------------------------------------------------------------------------------------
_END = 0x00  # ends a nested str/bytes/fraction or a nested tuple
_NONE = 0x01
_NEG_INF = 0x16
_NEG_BIG = 0x17  # negative int whose magnitude needs more than 8 bytes
# 0x18..0x1F: negative int whose magnitude needs 8..1 bytes   (tag = _ZERO - nbytes)
_ZERO = 0x20  # the number 0 (also 0.0, -0.0, False)
# 0x21..0x28: positive int that needs 1..8 bytes              (tag = _ZERO + nbytes)
_POS_BIG = 0x29  # positive int that needs more than 8 bytes
_POS_INF = 0x2A
_NAN = 0x2B
_STR = 0x40
_BYTES = 0x41
_TUPLE = 0x50
_FRACTION = 0xFF  # follows floor(x) when x is a non-integral float; above every tag
_ESCAPE = 0xFF  # 0x00 inside a nested str/bytes/fraction is written 0x00 0xFF

_SMALL_BYTES = 8  # ints whose magnitude fits in this many bytes carry the length in the tag

# Preallocated constants so the hot paths allocate nothing but their result.
_STR_PREFIX = bytes((_STR,))
_BYTES_PREFIX = bytes((_BYTES,))
_NONE_BYTES = bytes((_NONE,))
_ZERO_BYTES = bytes((_ZERO,))
_NEG_INF_BYTES = bytes((_NEG_INF,))
_POS_INF_BYTES = bytes((_POS_INF,))
_NAN_BYTES = bytes((_NAN,))
_POS_BIG_PREFIX = bytes((_POS_BIG,))
_NEG_BIG_PREFIX = bytes((_NEG_BIG,))
_TUPLE_PREFIX = bytes((_TUPLE,))
_FRACTION_MARK = bytes((_FRACTION,))
_END_BYTES = bytes((_END,))
_NUL = b"\x00"
_NUL_ESCAPED = b"\x00\xff"
_INF = math.inf

_SUPPORTED = "keys may be None, bool, int, float, str, bytes, or tuples/lists of these"


# ---------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------
def _encode_int(n: int) -> bytes:
    """Sign/length tag, then the big-endian magnitude (complemented when negative)."""
    if n > 0:
        size = (n.bit_length() + 7) >> 3
        if size <= _SMALL_BYTES:
            # Put the tag in the top byte of one integer so to_bytes builds the whole
            # encoding in a single allocation.
            return (((_ZERO + size) << (size << 3)) | n).to_bytes(size + 1, "big")
        return _POS_BIG_PREFIX + _length_prefix(size, False) + n.to_bytes(size, "big")
    if n == 0:
        return _ZERO_BYTES
    size = ((-n).bit_length() + 7) >> 3
    # The complement of magnitude m in `size` bytes is (256**size - 1) - m
    # = 256**size - 1 + n: bigger magnitudes (more negative) give smaller bytes.
    if size <= _SMALL_BYTES:
        return (((_ZERO - size + 1) << (size << 3)) - 1 + n).to_bytes(size + 1, "big")
    return (
        _NEG_BIG_PREFIX
        + _length_prefix(size, True)
        + ((1 << (size << 3)) - 1 + n).to_bytes(size, "big")
    )


def _length_prefix(size: int, negative: bool) -> bytes:
    """Order-preserving encoding of a big int's byte length, of any size.

    One byte giving how many bytes the length takes (1..255), then the length
    big-endian.  A longer length has at least as many bytes, so this sorts by value.
    Negative ints complement both parts: a longer magnitude must sort *lower*.
    """
    width = (size.bit_length() + 7) >> 3
    if width > 255:  # a 2**2040-byte integer cannot exist in memory
        raise SerializationError("int key is too large to encode")
    if negative:
        return bytes((0xFF - width,)) + ((1 << (width << 3)) - 1 - size).to_bytes(width, "big")
    return bytes((width,)) + size.to_bytes(width, "big")


def _encode_float(x: float, nested: bool) -> bytes:
    if x != x:
        return _NAN_BYTES
    if x == _INF:
        return _POS_INF_BYTES
    if x == -_INF:
        return _NEG_INF_BYTES
    if x.is_integer():
        # The int it equals, so 2.0 == 2 and -0.0 == 0 share one encoding.
        return _encode_int(int(x))
    # Exact arithmetic only: x = num / 2**k with num odd.  (x - math.floor(x) in floats can
    # round, e.g. -0.1 + 1.)
    num, den = x.as_integer_ratio()
    floor = num // den
    rem = num - floor * den  # 0 < rem < den, odd
    k = den.bit_length() - 1
    nbytes = (k + 7) >> 3
    # Bits of the fraction 0.b1b2...bk, left-aligned in whole bytes.  rem is odd, so the
    # last byte is never 0: the expansion has no trailing zero bytes and is unique.
    frac = (rem << ((nbytes << 3) - k)).to_bytes(nbytes, "big")
    if nested:
        return _encode_int(floor) + _FRACTION_MARK + frac.replace(_NUL, _NUL_ESCAPED) + _END_BYTES
    return _encode_int(floor) + _FRACTION_MARK + frac


def _encode_str_bytes(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (e.g. from os.fsdecode); still code point ordered.
        return s.encode("utf-8", "surrogatepass")


def _unsupported(key: object, nested: bool) -> SerializationError:
    where = "element of tuple key" if nested else "key"
    return SerializationError(
        f"{where} of type {type(key).__name__} is not supported ({_SUPPORTED})"
    )


def _encode_nested(items, parts: list) -> None:
    """Append the self-delimiting encodings of a tuple's elements to ``parts``."""
    for e in items:
        t = type(e)
        if t is str:
            parts.append(_STR_PREFIX)
            parts.append(_encode_str_bytes(e).replace(_NUL, _NUL_ESCAPED))
            parts.append(_END_BYTES)
        elif t is int or t is bool:
            parts.append(_encode_int(e))
        elif t is float:
            parts.append(_encode_float(e, True))
        elif e is None:
            parts.append(_NONE_BYTES)
        elif t is tuple or t is list:
            parts.append(_TUPLE_PREFIX)
            _encode_nested(e, parts)
            parts.append(_END_BYTES)
        elif t is bytes:
            parts.append(_BYTES_PREFIX)
            parts.append(e.replace(_NUL, _NUL_ESCAPED))
            parts.append(_END_BYTES)
        else:
            _encode_subclass_nested(e, parts)


def _encode_subclass_nested(e: object, parts: list) -> None:
    # Subclasses of the supported types (IntEnum, a str subclass, a namedtuple) are keys
    # equal to their base-type value; they are rare, so they are handled off the fast path.
    if isinstance(e, str):
        _encode_nested((str.__str__(e),), parts)
    elif isinstance(e, int):
        parts.append(_encode_int(int.__index__(e)))
    elif isinstance(e, float):
        parts.append(_encode_float(float(e), True))
    elif isinstance(e, bytes):
        _encode_nested((bytes(e),), parts)
    elif isinstance(e, (tuple, list)):
        parts.append(_TUPLE_PREFIX)
        _encode_nested(e, parts)
        parts.append(_END_BYTES)
    else:
        raise _unsupported(e, True)


def encode_key(key: object) -> bytes:
    """Encode a key so that byte order equals key order (see the module docstring).

    Raises ``SerializationError`` naming the type for a key (or tuple element) that is
    not None, bool, int, float, str, bytes, tuple or list.
    """
    t = type(key)
    if t is str:  # the word-count case: one tag byte + UTF-8, no escaping at top level
        try:
            return _STR_PREFIX + key.encode()
        except UnicodeEncodeError:
            return _STR_PREFIX + key.encode("utf-8", "surrogatepass")
    if t is int:
        if -_SMALL_INT_BIAS <= key < _SMALL_INT_LIMIT:
            return _SMALL_INTS[key + _SMALL_INT_BIAS]
        return _encode_int(key)
    if t is tuple or t is list:
        parts = [_TUPLE_PREFIX]  # no end marker at top level: nothing follows it
        try:
            _encode_nested(key, parts)
        except RecursionError:
            raise SerializationError(
                f"key of type {t.__name__} is nested too deeply (or contains itself)"
            ) from None
        return b"".join(parts)
    if t is float:
        return _encode_float(key, False)
    if t is bytes:
        return _BYTES_PREFIX + key
    if t is bool:
        return _SMALL_INTS[key + _SMALL_INT_BIAS]
    if key is None:
        return _NONE_BYTES
    if isinstance(key, str):
        return encode_key(str.__str__(key))
    if isinstance(key, int):
        return _encode_int(int.__index__(key))
    if isinstance(key, float):
        return _encode_float(float(key), False)
    if isinstance(key, bytes):
        return _BYTES_PREFIX + bytes(key)
    if isinstance(key, (tuple, list)):
        return encode_key(tuple(key))
    raise _unsupported(key, False)


# Precomputed encodings of the commonest int keys, -128..1023: a tuple index is cheaper
# than building the bytes.  _SMALL_INTS[n + _SMALL_INT_BIAS] is the encoding of n.
_SMALL_INT_BIAS = 128
_SMALL_INT_LIMIT = 1024
_SMALL_INTS = tuple(_encode_int(i) for i in range(-_SMALL_INT_BIAS, _SMALL_INT_LIMIT))


# ---------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------
def decode_key(data: bytes) -> object:
    """Decode ``encode_key``'s output into the key's canonical value.

    Integral numbers decode to int, other numbers to float, lists and tuples to tuple.
    Raises ``ValueError`` if ``data`` is not exactly something ``encode_key`` produces.
    """
    try:
        if data[0] == _STR:  # fast path: top-level str is the tag + raw UTF-8
            return data[1:].decode()
    except IndexError:
        raise ValueError("empty key encoding") from None
    except (UnicodeDecodeError, AttributeError):
        pass  # lone surrogates, or a memoryview (no .decode): the general path decides
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        value, pos = _decode(data, 0, False)
    except ValueError:
        raise
    except (IndexError, OverflowError, RecursionError) as exc:
        raise ValueError(f"malformed key encoding ({type(exc).__name__})") from None
    if pos != len(data):
        raise ValueError(f"malformed key encoding: trailing bytes at offset {pos}")
    return value


def _unescape_until_end(data: bytes, pos: int) -> tuple[bytes, int]:
    """Read an escaped nested payload starting at ``pos``; return it and the position
    just after its 0x00 terminator."""
    start = pos
    while True:
        i = data.find(_NUL, pos)
        if i < 0:
            raise ValueError("malformed key encoding: unterminated nested string")
        if i + 1 < len(data) and data[i + 1] == _ESCAPE:
            pos = i + 2
            continue
        raw = data[start:i]
        if i > start and _NUL in raw:
            raw = raw.replace(_NUL_ESCAPED, _NUL)
        return raw, i + 1


def _decode_str(raw: bytes) -> str:
    # Strict UTF-8 plus encoded surrogates, exactly what encode_key can produce.
    return raw.decode("utf-8", "surrogatepass")


def _decode(data: bytes, pos: int, nested: bool) -> tuple[object, int]:
    """Decode one element at ``pos``; return (value, position after it)."""
    tag = data[pos]
    pos += 1
    if _NEG_BIG <= tag <= _POS_BIG:
        n, pos = _decode_int(data, pos, tag)
        if pos < len(data) and data[pos] == _FRACTION:
            return _decode_fraction(data, pos + 1, n, nested)
        return n, pos
    if tag == _STR or tag == _BYTES:
        if nested:
            raw, pos = _unescape_until_end(data, pos)
        else:
            raw, pos = data[pos:], len(data)
        return (_decode_str(raw) if tag == _STR else raw), pos
    if tag == _TUPLE:
        items = []
        end = len(data)
        while True:
            if nested:
                if data[pos] == _END:  # IndexError when unterminated
                    return tuple(items), pos + 1
            elif pos == end:
                return tuple(items), pos
            value, pos = _decode(data, pos, True)
            items.append(value)
    if tag == _NONE:
        return None, pos
    if tag == _NEG_INF:
        return -_INF, pos
    if tag == _POS_INF:
        return _INF, pos
    if tag == _NAN:
        return math.nan, pos
    raise ValueError(f"malformed key encoding: unknown tag 0x{tag:02x} at offset {pos - 1}")


def _take(data: bytes, pos: int, size: int) -> bytes:
    chunk = data[pos : pos + size]
    if len(chunk) != size:
        raise ValueError("malformed key encoding: truncated int")
    return chunk


def _decode_int(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    if tag == _ZERO:
        return 0, pos
    if _ZERO < tag < _POS_BIG:
        size = tag - _ZERO
        mag = _take(data, pos, size)
        if mag[0] == 0:
            raise ValueError("malformed key encoding: non-minimal int")
        return int.from_bytes(mag, "big"), pos + size
    if _NEG_BIG < tag < _ZERO:
        size = _ZERO - tag
        comp = _take(data, pos, size)
        if comp[0] == 0xFF:
            raise ValueError("malformed key encoding: non-minimal int")
        return int.from_bytes(comp, "big") - ((1 << (size << 3)) - 1), pos + size
    negative = tag == _NEG_BIG
    width = data[pos]
    if negative:
        width = 0xFF - width
    if width == 0:
        raise ValueError("malformed key encoding: bad int length prefix")
    lb = _take(data, pos + 1, width)
    mask = (1 << (width << 3)) - 1
    size = int.from_bytes(lb, "big")
    if negative:
        size = mask - size
    pos += 1 + width
    if size <= _SMALL_BYTES or (size.bit_length() + 7) >> 3 != width:
        raise ValueError("malformed key encoding: non-minimal int length")
    mag = _take(data, pos, size)
    value = int.from_bytes(mag, "big")
    if negative:
        value -= (1 << (size << 3)) - 1
        if mag[0] == 0xFF:
            raise ValueError("malformed key encoding: non-minimal int")
    elif mag[0] == 0:
        raise ValueError("malformed key encoding: non-minimal int")
    return value, pos + size


def _decode_fraction(data: bytes, pos: int, floor: int, nested: bool) -> tuple[float, int]:
    if nested:
        frac, pos = _unescape_until_end(data, pos)
    else:
        frac, pos = data[pos:], len(data)
    if not frac or frac[-1] == 0:
        raise ValueError("malformed key encoding: non-canonical float fraction")
    k = len(frac) << 3
    num = (floor << k) + int.from_bytes(frac, "big")
    value = num / (1 << k)  # correctly rounded; exact when the encoding is canonical
    tz = (num & -num).bit_length() - 1  # < k, as the fraction is nonzero
    if value.as_integer_ratio() != (num >> tz, 1 << (k - tz)):
        raise ValueError("malformed key encoding: fraction is not a float")
    return value, pos


# ---------------------------------------------------------------------------------------
# Partitions and values
# ---------------------------------------------------------------------------------------
def partition_of(key_bytes: bytes, num_partitions: int) -> int:
    """The reduce partition of an encoded key: ``zlib.crc32(key_bytes) % num_partitions``.

    CRC-32 of the bytes is the same in every process and run (unlike the salted
    ``hash()``), and equal keys have equal bytes, so they share a partition.
    """
    return zlib.crc32(key_bytes) % num_partitions


# One reusable Packer (msgpack.packb builds a new one per call).  It resets its buffer
# on error and never calls back into Python for the supported types, so reuse is safe.
_packer = msgpack.Packer(use_bin_type=True)
_pack = _packer.pack

#: For hot loops that inline the commonest encodings (the map task's sort buffer): a str
#: key's encoding is this tag byte + ``key.encode()`` (which raises UnicodeEncodeError on a
#: lone surrogate: only ``encode_key`` handles those), and ``pack_value`` is ``encode_value``
#: minus the explanation -- on a value it cannot encode it raises one of ``PACK_ERRORS``
#: (msgpack's own), and the caller calls ``encode_value`` to raise the ``SerializationError``
#: naming the type.  msgpack reads the built-in types and their subclasses through the C
#: API (a dict subclass's own ``items()`` aside), so a value's Python code does not run
#: again in that second call.
STR_KEY_PREFIX = _STR_PREFIX
pack_value = _pack
PACK_ERRORS = (TypeError, ValueError, OverflowError)
_unpackb = msgpack.unpackb
_VALUE_ERRORS = PACK_ERRORS
_INT64_MIN = -(1 << 63)
_UINT64_MAX = (1 << 64) - 1


def encode_value(value: object) -> bytes:
    """msgpack, ``bin`` type for bytes.  Raises ``SerializationError`` naming the type
    that cannot be encoded (e.g. an arbitrary object, or an int beyond 64 bits)."""
    try:
        return _pack(value)
    except _VALUE_ERRORS as exc:
        raise SerializationError(_describe_unpackable(value, exc)) from None
    except RecursionError:
        raise SerializationError(
            f"value of type {type(value).__name__} is nested too deeply (or contains itself)"
        ) from None


def _find_unpackable(value: object, depth: int = 0) -> object | None:
    """The first leaf inside ``value`` that msgpack cannot pack, if we can find it."""
    if depth > 100:
        return None
    if isinstance(value, (tuple, list)):
        items = value
    elif isinstance(value, dict):
        items = [x for kv in value.items() for x in kv]
    elif isinstance(value, bool) or value is None:
        return None
    elif isinstance(value, int):
        return None if _INT64_MIN <= value <= _UINT64_MAX else value
    elif isinstance(value, (float, str, bytes, bytearray, memoryview)):
        return None
    else:
        return value
    for item in items:
        bad = _find_unpackable(item, depth + 1)
        if bad is not None:
            return bad
    return None


_VALUE_TYPES = "None, bool, int, float, str, bytes, and lists, tuples and dicts of these"


def _describe_unpackable(value: object, exc: Exception) -> str:
    head = f"value of type {type(value).__name__} cannot be encoded"
    bad = _find_unpackable(value)
    if bad is None:  # not found by our walk; fall back on msgpack's own words
        return f"{head} ({exc})"
    if isinstance(bad, int):
        # Never str() a huge int: slow, and beyond 4300 digits Python refuses.
        shown = str(bad) if bad.bit_length() <= 128 else f"of {bad.bit_length()} bits"
        if bad is value:
            return f"{head}: {shown} is outside msgpack's 64-bit integer range"
        return f"{head}: it contains the int {shown}, outside msgpack's 64-bit integer range"
    if bad is value:
        return f"{head} (values may be {_VALUE_TYPES})"
    return (
        f"{head}: it contains a value of type {type(bad).__name__}"
        f" (values may be {_VALUE_TYPES})"
    )


#: ``decode_value`` as one C call (no Python frame), for the reduce loop's per-value path.
#: Run files are checksummed, so the value bytes it sees are what ``encode_value`` wrote; on
#: malformed bytes it raises msgpack's own ``ValueError`` subclasses.
decode_value_unchecked = functools.partial(_unpackb, raw=False, use_list=False,
                                           strict_map_key=False)


#: A msgpack "array 32" header: 0xdd and the item count, big-endian.
_ARRAY32_HEADER = struct.Struct(">BI")


#: Unpack a msgpack array of values as ``decode_values_unchecked`` does (the C core builds
#: the array itself, see ``shuffle.decoded_records``).
unpack_values = functools.partial(_unpackb, raw=False, use_list=False, strict_map_key=False)


def decode_values_unchecked(encoded: list[bytes]) -> tuple:
    """``decode_value`` of every item of ``encoded``, as one C call: the reduce loop's batch path.

    The encodings are concatenated behind a msgpack array header and unpacked at once, which
    costs about a quarter of a ``decode_value_unchecked`` call per value (that call's fixed
    price is most of it for short values).  Trusts its input like
    ``decode_value_unchecked``: the header fixes the count, so bytes that do not split into
    exactly ``len(encoded)`` values raise msgpack's ``ValueError`` subclasses.
    """
    data = b"".join((_ARRAY32_HEADER.pack(0xDD, len(encoded)), *encoded))
    return _unpackb(data, raw=False, use_list=False, strict_map_key=False)


def decode_value(data: bytes) -> object:
    """Inverse of ``encode_value``; arrays come back as tuples, maps may have any keys.
    Raises ``ValueError`` on malformed data."""
    try:
        return _unpackb(data, raw=False, use_list=False, strict_map_key=False)
    except ValueError:
        raise  # msgpack's FormatError/ExtraData/StackError and UnicodeDecodeError are ValueErrors
    except (TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"malformed value encoding ({exc})") from None


# ---------------------------------------------------------------------------------------
# The C core (mapreduce.core): the functions above stay as the reference
# ---------------------------------------------------------------------------------------
#: The pure-Python implementations, whichever core is active: what the C core delegates
#: the cases it does not handle to, and what tests/test_core.py compares it with.
py_encode_key = encode_key
py_decode_key = decode_key
py_partition_of = partition_of

if native is not None:
    native.set_reference(py_encode_key, py_decode_key)
    encode_key = native.encode_key  # noqa: F811 -- same contract, in C
    decode_key = native.decode_key  # noqa: F811
    partition_of = native.partition_of  # noqa: F811
