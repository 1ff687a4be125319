"""How an MRJob's records travel through the engine: its protocol's bytes, a half at a time.

Hadoop Streaming cuts each line a task writes at its first tab into the key (what it sorts,
partitions and groups by) and the value.  The compatibility layer hands the engine the same
two halves as bytes (:func:`encode_with`), and decodes them back for the next function
(:func:`decoder`, :func:`value_loader`), so keys, their order and values are mrjob's.
For mrjob's key-caching protocols (JSON, pickle, repr: ``_dumps(key) TAB _dumps(value)``)
each half is encoded on its own, with per-task caches; where the protocol writes an int as
its digits, int values travel as ints (:func:`passes_ints`).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional

from mapreduce.mrjob.protocol import _KeyCachingProtocol

#: Most entries each per-task encode/decode cache keeps before starting afresh.
_CACHE_LIMIT = 100_000
_SCALARS = (int, str, float, bool, type(None))


def is_key_caching(protocol: Any) -> bool:
    """A protocol whose line is ``_dumps(key) TAB _dumps(value)`` (mrjob's JSON, Pickle and
    Repr protocols, not overridden): it can be encoded and decoded a half at a time."""
    cls = type(protocol)
    return isinstance(protocol, _KeyCachingProtocol) and \
        cls.write is _KeyCachingProtocol.write and cls.read is _KeyCachingProtocol.read


def _caching_dumps(dumps: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """``dumps`` remembering the encodings of str and int objects (exact types: True and 1
    are equal as dict keys but encode differently), e.g. a word count's words and its 1s.
    ``_dumps`` of JSON, pickle or repr never contains a raw tab, so a half's encoding is
    exactly the part of the protocol's line before or after the first tab."""
    strs: dict[str, bytes] = {}
    ints: dict[int, bytes] = {}
    tuples: dict[tuple, bytes] = {}

    def dump(x: Any) -> bytes:
        t = type(x)
        cache = strs if t is str else ints if t is int else None
        if cache is None:
            # A tuple of exact strs and ints (a pair-of-words key): equal such tuples have
            # equal encodings (no True for 1, no 1.0 for 1 among them).
            if t is tuple and all(e.__class__ is str or e.__class__ is int for e in x):
                cache = tuples
            else:
                return dumps(x)
        b = cache.get(x)
        if b is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            b = cache[x] = dumps(x)
        return b
    return dump


def caching_loads(loads: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``loads`` remembering short encodings whose objects are immutable scalars (a list
    is decoded afresh every time: the job may change it)."""
    cache: dict[bytes, Any] = {}
    missing = object()

    def load(b: bytes) -> Any:
        x = cache.get(b, missing)
        if x is missing:
            x = loads(b)
            if type(x) in _SCALARS and len(b) <= 64:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[b] = x
        return x
    return load


#: Ints the engine's value encoding (msgpack) carries: a signed 64-bit range.
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def passes_ints(protocol: Any) -> bool:
    """Can int values travel as ints rather than as their encoding?  Yes when the protocol
    encodes an int as its decimal digits and decodes them back (JSON, repr; not pickle):
    the value is then the same whichever form it travels in, and the engine's combining
    buffer takes its fast path for a word count's 1s.  (Not under SORT_VALUES, where values
    must sort as their encoded bytes, as on Hadoop.)"""
    if not is_key_caching(protocol):
        return False
    try:
        return protocol._dumps(-1234) == b"-1234" and protocol._loads(b"-1234") == -1234
    except Exception:
        return False


def encode_with(protocol: Any, ints: bool = False
                 ) -> Callable[[Optional[Iterable]], Iterator[tuple]]:
    """Pairs -> (key bytes, value bytes or None): the protocol's line cut at its first tab,
    as Hadoop Streaming cuts it (a line without a tab is all key).  With ``ints``
    (:func:`passes_ints`), an int value in the 64-bit range stays an int."""
    if is_key_caching(protocol):
        dump = _caching_dumps(protocol._dumps)

        def encode_halves(pairs: Optional[Iterable]) -> Iterator[tuple]:
            for key, value in pairs or ():
                yield dump(key), dump(value)

        def encode_halves_ints(pairs: Optional[Iterable]) -> Iterator[tuple]:
            for key, value in pairs or ():
                if value.__class__ is int and _INT_MIN <= value <= _INT_MAX:
                    yield dump(key), value
                else:
                    yield dump(key), dump(value)
        return encode_halves_ints if ints else encode_halves
    write = protocol.write

    def encode(pairs: Optional[Iterable]) -> Iterator[tuple]:
        for key, value in pairs or ():
            line = write(key, value)
            k, tab, v = line.partition(b"\t")
            yield k, (v if tab else None)
    return encode


def value_loader(protocol: Any) -> Callable[[Any], Any]:
    """Decode a value half: bytes through the protocol (cached), an int as it is."""
    load = caching_loads(protocol._loads)
    return lambda v: v if v.__class__ is int else load(v)


def decoder(protocol: Any) -> Callable[[bytes, Optional[bytes]], tuple]:
    """Decode a (key bytes, value bytes or None) record into the pair it was written from."""
    if is_key_caching(protocol):
        load, load_value = caching_loads(protocol._loads), value_loader(protocol)
        return lambda k, v: (load(k), load_value(v))
    read = protocol.read
    return lambda k, v: read(joined(k, v))


def lines_with(protocol: Any) -> Callable[[Optional[Iterable]], Iterator[tuple]]:
    """Pairs -> (None, output line): the last step's output, written by the engine's
    ``raw_value`` output (the line as is, then a newline)."""
    write = protocol.write

    def lines(pairs: Optional[Iterable]) -> Iterator[tuple]:
        for key, value in pairs or ():
            yield None, write(key, value)
    return lines


def joined(key: bytes, value: Any) -> bytes:
    """The line a record came from (an int value only travels as one where its encoding
    is its decimal digits: :func:`passes_ints`)."""
    if value is None:
        return key
    return key + b"\t" + (value if value.__class__ is bytes else str(value).encode())


__all__ = ["caching_loads", "decoder", "encode_with", "is_key_caching", "joined",
           "lines_with", "passes_ints", "value_loader"]
