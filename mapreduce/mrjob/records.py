"""How an MRJob's records travel through the engine: its protocol's bytes, a half at a time.

Hadoop Streaming cuts each line a task writes at its first tab into the key (what it sorts,
partitions and groups by) and the value.  The compatibility layer hands the engine the same
two halves as bytes (:func:`encode_with`), and decodes them back for the next function
(:func:`decoder`, :func:`value_loader`), so keys, their order and values are mrjob's.
For mrjob's key-caching protocols (JSON, pickle, repr: ``_dumps(key) TAB _dumps(value)``)
each half is encoded on its own, with per-task caches.

Two shortcuts, each invisible to the job (tested against the protocol's own round trip):

* **A value that the protocol would give back unchanged travels as itself** (not under
  ``SORT_VALUES``, where values must sort as their encoded bytes, as on Hadoop).  For the
  standard-library JSON protocol (mrjob's default when ujson, rapidjson and simplejson are
  not installed) these are exact ``str`` (ASCII: the engine's msgpack cannot carry a lone
  surrogate), ``int`` in the signed 64-bit range, ``float`` and ``bool``; for a repr
  protocol, ints.  (Not ``None``: a record whose value half is None is a line without a
  tab, e.g. from a ``mapper_cmd``.)  A list, tuple or dict still travels as its encoding:
  JSON turns a tuple into a list and non-str dict keys into strs, and the job must see
  that.  The engine keeps such a value as a Python object, so a word count's ``1`` takes
  the combining buffer's small-int fast path, and nothing is encoded or decoded for it.
* **The standard JSON back end without its per-call overhead** (:func:`json_dumps`,
  :func:`json_loads`): ``json.dumps`` builds a new C encoder for every value that is not a
  plain str, and ``json.loads`` strips whitespace with regular expressions around the C
  scanner.  ``json_dumps`` builds that encoder once, with ``json.dumps``' defaults (checked
  against ``json.dumps`` at import), and hands anything it fails on (a cycle, an object JSON
  cannot encode) to ``json.dumps`` itself, so errors are its errors; ``json_loads`` calls
  the C scanner at offset 0 and falls back to ``json.loads`` whenever the text is not
  exactly one JSON value (leading or trailing space, a BOM, bad JSON), so results and
  errors are ``json.loads``'s.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Iterator, Optional

from mapreduce.mrjob.protocol import StandardJSONProtocol, _KeyCachingProtocol

#: Most entries each per-task encode/decode cache keeps before starting afresh.
_CACHE_LIMIT = 100_000
_SCALARS = (int, str, float, bool, type(None))
#: Ints the engine's value encoding (msgpack) carries: a signed 64-bit range.
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def is_key_caching(protocol: Any) -> bool:
    """A protocol whose line is ``_dumps(key) TAB _dumps(value)`` (mrjob's JSON, Pickle and
    Repr protocols, not overridden): it can be encoded and decoded a half at a time."""
    cls = type(protocol)
    return isinstance(protocol, _KeyCachingProtocol) and \
        cls.write is _KeyCachingProtocol.write and cls.read is _KeyCachingProtocol.read


def is_standard_json(protocol: Any) -> bool:
    """mrjob's ``StandardJSONProtocol`` (or a subclass that changes none of its coding):
    its halves are ``json.dumps`` / ``json.loads`` with the defaults."""
    cls = type(protocol)
    return is_key_caching(protocol) and isinstance(protocol, StandardJSONProtocol) and \
        cls._dumps is StandardJSONProtocol._dumps and \
        cls._loads is StandardJSONProtocol._loads


# --- the standard JSON back end, without its per-call overhead ---------------------------------
_escape = json.encoder.encode_basestring_ascii   # the C function json.dumps uses for strs


def _c_encoder() -> Optional[Callable[[Any, int], Any]]:
    """The C encoder ``json.dumps`` builds on every call (``JSONEncoder.iterencode`` with
    the defaults), built once; None if this Python has none or builds it differently."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        # No circular-reference markers: a cycle recurses until RecursionError, and
        # json_dumps then lets json.dumps raise its own error for it.
        encode = make(None, json.JSONEncoder().default, _escape, None, ": ", ", ",
                      False, False, True)
        sample = [("caf\u00e9", 1, -2.5, float("nan")), {"k": None, 2: True, 1.5: False}]
        if "".join(encode(sample, 0)) != json.dumps(sample):
            return None
    except Exception:
        return None
    return encode


_encode = _c_encoder()


def json_dumps(x: Any) -> bytes:
    """``json.dumps(x).encode('utf_8')`` (StandardJSONProtocol's ``_dumps``), without
    building a new encoder per call.  Anything the prebuilt encoder does not do exactly as
    ``json.dumps`` (a cycle, an unencodable object) goes to ``json.dumps`` itself."""
    t = x.__class__
    if t is str:
        return _escape(x).encode("utf_8")
    if t is int:
        return int.__repr__(x).encode("utf_8")
    if _encode is not None:
        try:
            return "".join(_encode(x, 0)).encode("utf_8")
        except Exception:  # noqa: S110 -- json.dumps raises the user's error (or succeeds)
            pass
    return json.dumps(x).encode("utf_8")


_scan_once = json.JSONDecoder().scan_once        # the C scanner json.loads ends up in


def json_loads(b: bytes) -> Any:
    """``json.loads(b.decode('utf_8'))`` (StandardJSONProtocol's ``_loads``), faster."""
    s = b.decode("utf_8")
    try:
        x, end = _scan_once(s, 0)
    except Exception:  # StopIteration (not a value at 0) or bad JSON: json.loads says why
        return json.loads(s)
    if end != len(s):  # trailing space (allowed) or extra data (an error): json.loads decides
        return json.loads(s)
    return x


def _coders(protocol: Any) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """The protocol's ``_dumps`` and ``_loads`` (the fast twins for standard JSON)."""
    if is_standard_json(protocol):
        return json_dumps, json_loads
    return protocol._dumps, protocol._loads


# --- caches ------------------------------------------------------------------------------------
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
    dump.strs = strs  # type: ignore[attr-defined]  # for encode_with's inline str lookup
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


# --- values that travel as themselves ----------------------------------------------------------
def passes_ints(protocol: Any) -> bool:
    """Can some values travel as themselves rather than as their encoding?  Yes when the
    protocol encodes an int as its decimal digits and decodes them back (JSON, repr; not
    pickle): an int value is then the same whichever form it travels in (and, for the
    standard JSON back end, a str, float or bool: see the module docstring).  The
    caller leaves it off under SORT_VALUES, where values must sort as their encoded
    bytes, as on Hadoop."""
    if not is_key_caching(protocol):
        return False
    try:
        return protocol._dumps(-1234) == b"-1234" and protocol._loads(b"-1234") == -1234
    except Exception:
        return False


def travels_as_itself(protocol: Any) -> Callable[[Any], bool]:
    """For a protocol :func:`passes_ints` accepts: which values may skip the encoding."""
    if is_standard_json(protocol):
        return _json_stable
    return lambda v: v.__class__ is int and _INT_MIN <= v <= _INT_MAX


def _json_stable(v: Any) -> bool:
    """``json.loads(json.dumps(v)) == v`` with the same type, and msgpack carries it."""
    t = v.__class__
    if t is int:
        return _INT_MIN <= v <= _INT_MAX
    if t is str:
        return v.isascii()
    return t is float or t is bool


def encode_with(protocol: Any, ints: bool = False
                 ) -> Callable[[Optional[Iterable]], Iterator[tuple]]:
    """Pairs -> (key bytes, value bytes or the value itself): the protocol's line cut at its
    first tab, as Hadoop Streaming cuts it (a line without a tab is all key).  With
    ``ints`` (:func:`passes_ints`), a value :func:`travels_as_itself` is not encoded."""
    if is_key_caching(protocol):
        dump = _caching_dumps(_coders(protocol)[0])
        str_keys = dump.strs.get  # type: ignore[attr-defined]

        def encode_halves(pairs: Optional[Iterable]) -> Iterator[tuple]:
            for key, value in pairs or ():
                yield dump(key), dump(value)

        if not ints:
            return encode_halves
        if is_standard_json(protocol):
            def encode_halves_json(pairs: Optional[Iterable]) -> Iterator[tuple]:
                for key, value in pairs or ():
                    # inline what dump() and _json_stable() do for the common cases
                    kb = str_keys(key) if key.__class__ is str else None
                    if kb is None:
                        kb = dump(key)
                    t = value.__class__
                    if t is int:
                        if _INT_MIN <= value <= _INT_MAX:
                            yield kb, value
                            continue
                    elif t is str:
                        if value.isascii():
                            yield kb, value
                            continue
                    elif t is float or t is bool:
                        yield kb, value
                        continue
                    yield kb, dump(value)
            return encode_halves_json

        def encode_halves_ints(pairs: Optional[Iterable]) -> Iterator[tuple]:
            for key, value in pairs or ():
                if value.__class__ is int and _INT_MIN <= value <= _INT_MAX:
                    yield dump(key), value
                else:
                    yield dump(key), dump(value)
        return encode_halves_ints
    write = protocol.write

    def encode(pairs: Optional[Iterable]) -> Iterator[tuple]:
        for key, value in pairs or ():
            line = write(key, value)
            k, tab, v = line.partition(b"\t")
            yield k, (v if tab else None)
    return encode


def value_loader(protocol: Any) -> Callable[[Any], Any]:
    """Decode a value half: bytes through the protocol (cached), a value that travelled as
    itself as it is."""
    load = caching_loads(_coders(protocol)[1])
    return lambda v: load(v) if v.__class__ is bytes else v


def values_loader(protocol: Any) -> Callable[[Iterable], Iterator]:
    """:func:`value_loader` over an iterator of value halves (a reducer's values), as a
    generator rather than a call per value."""
    load = caching_loads(_coders(protocol)[1])
    return lambda values: (load(v) if v.__class__ is bytes else v for v in values)


def key_loader(protocol: Any) -> Callable[[bytes], Any]:
    """Decode a key half through the protocol (cached)."""
    return caching_loads(_coders(protocol)[1])


def decoder(protocol: Any) -> Callable[[bytes, Any], tuple]:
    """Decode a (key bytes, value half or None) record into the pair it was written from."""
    if is_key_caching(protocol):
        load, load_value = key_loader(protocol), value_loader(protocol)
        return lambda k, v: (load(k), load_value(v))
    read = protocol.read
    return lambda k, v: read(joined(k, v))


def lines_with(protocol: Any) -> Callable[[Optional[Iterable]], Iterator[tuple]]:
    """Pairs -> (None, output line): the last step's output, written by the engine's
    ``raw_value`` output (the line as is, then a newline)."""
    if is_standard_json(protocol):  # write() is _dumps(key) TAB _dumps(value)
        dumps = json_dumps

        def json_lines(pairs: Optional[Iterable]) -> Iterator[tuple]:
            for key, value in pairs or ():
                yield None, dumps(key) + b"\t" + dumps(value)
        return json_lines
    write = protocol.write

    def lines(pairs: Optional[Iterable]) -> Iterator[tuple]:
        for key, value in pairs or ():
            yield None, write(key, value)
    return lines


def joined(key: bytes, value: Any) -> bytes:
    """The line a record came from.  A value that travelled as itself did so only where the
    protocol's encoding of it is what JSON writes (:func:`travels_as_itself`: for an int,
    its decimal digits, which repr writes too)."""
    if value is None:
        return key
    if value.__class__ is bytes:
        return key + b"\t" + value
    if value.__class__ is int:
        return key + b"\t" + str(value).encode()
    return key + b"\t" + json_dumps(value)


__all__ = ["caching_loads", "decoder", "encode_with", "is_key_caching", "is_standard_json",
           "joined", "json_dumps", "json_loads", "key_loader", "lines_with", "passes_ints",
           "travels_as_itself", "value_loader", "values_loader"]
