"""The task kernel: the one implementation of what a map task and a reduce task do with
their records, whichever runner drives it.

A runner only adapts I/O: it makes a fresh Job for the task, hands the kernel an iterable of
input records (a split's lines, a whole file, a previous step's pairs) or of merged record
batches, and a place for the output (a :class:`~mapreduce.shuffle.MapSink` for spills, or a
writer with ``write(key, value)`` / ``finish()``).  The local and inline runners call it
through :func:`mapreduce.task.run_task`; the Spark runner calls it inside Spark's tasks.
Everything that defines a job's behaviour lives here: hook order (``*_init``, per record,
``*_final``), error attribution naming the job method and the record, counters,
``--skip-bad-records``, the sort and combining buffers, batch value decoding on the reduce
side.

Map task (:func:`run_map`)::

    records --> mapper --> encode key/value --> partition --> sort buffer
         sort buffer full (--sort-buffer bytes) --> per partition: stable sort by key bytes,
         combiner per key group --> sink.spill(run)         (disk: a run file; memory: RAM)
    end of task --> combiner_final --> sink.finish()      (merge spills into one map output)

Map-only steps skip the buffer: pairs go straight to the writer in emission order.

Identity steps (``job.identity_mapper`` / ``identity_reducer``) are recognised and not
called: an identity map hands the whole record iterator to the buffer (or the writer) in one
``extend`` call; an identity reduce hands each key group's decoded values to the writer's
``write_values(key, values)``.  The partition is ``crc32(key bytes) % n`` by default,
``bisect_right(split points, key bytes)`` for a job with ``total_order_split_points`` (the
points encoded once per task, :func:`split_point_bytes`), or a call of the job's
``partitioner`` per pair.  The spill's sort is ``sort_records``: the C core's stable merge
sort when it runs, else ``list.sort``.  When the C core runs, a step without map-side
combining buffers in :class:`NativeSortBuffer` (``_core.SortBuffer``: the records in a C
arena, the mapper's pairs consumed in C, spills packed from the arena into run-file
blocks; the same records, errors and spill boundaries as :class:`SortBuffer`), and an
identity reducer writing ``raw_value`` text has its lines made in C
(``_core.raw_value_lines``: no value decoding, no Python step per record).

Reduce task (:func:`run_reduce`): the partition's records merged by key (stable), a batch at a
time; each batch's values are decoded together (one C call), records are grouped by key bytes
and each key's values are streamed to the reducer as a lazy iterator (a key with millions of
values never needs memory proportional to them: at most DECODE_BATCH values, and 1 MiB of
them, are decoded ahead; see ``shuffle.grouped_values``).  With the C core the grouping
is ``_core.GroupBy``: one Python step per group, none per record.

Buffer accounting: a buffered record is charged ``len(key) + len(value) + RECORD_OVERHEAD``
bytes, where RECORD_OVERHEAD approximates CPython's cost of the tuple, the two ``bytes``
objects and the list slot, so ``--sort-buffer`` bounds real memory, not just payload.

User-code failures are raised as :class:`UserCodeError` naming the job method and the record
(file and line for text input) with the user's traceback chained as ``__cause__``.  A job
method whose result is not made of ``(key, value)`` pairs raises :class:`NotAPairError`,
which is not retried.  The map side's per-pair loops (``for pair in pairs: key, value =
pair``) pay nothing per pair for it: a ``try`` around the whole loop (free in CPython 3.11)
catches the TypeError/ValueError of the unpacking, told apart from the user's own by where
it was raised (:func:`_pair_mistake`: this frame, the unpacking instruction).  A 2-character
str unpacks without error into two 1-character strs; a ``pair.__class__ is str`` test costs
about 10 ns, so those loops make it once per call, on the last item (``SortBuffer`` and the
map-only collector), or only off the fast path (``CombiningBuffer``: a str pair's value is
never a small int).  A method that yields strs is caught on its first call; one whose call
yields 2-character strs and then ends with a true pair is not.  The reduce side and the
once-per-task hooks, whose per-pair cost is dominated by writing, test every pair.
"""
from __future__ import annotations

import dis
import errno
import linecache
import sys
from bisect import bisect_right
from dataclasses import dataclass
from itertools import chain, groupby, repeat
from types import GeneratorType
from operator import attrgetter, itemgetter
from typing import Any, Callable, Iterable, Iterator, Optional
from zlib import crc32

from mapreduce.codec import (PACK_ERRORS, STR_KEY_PREFIX, decode_key, decode_value,
                             encode_key, encode_value, pack_value)
from mapreduce.core import native
from mapreduce.errors import JobDefinitionError, MapReduceError, SerializationError
from mapreduce.inputs import (CombinedSplit, TextSplit, WholeFileSplit, file_size,
                              line_number_at, read_lines,
                              read_whole_file)
from mapreduce.job import Job, Step, identity_mapper, identity_reducer
from mapreduce.options import BY_NAME, Spelling
from mapreduce.shuffle import MapOutput, MapSink, grouped_values, value_decoder

#: Approximate CPython bytes per buffered record beyond its payload: a 2-tuple (56), two
#: bytes objects' headers (2 x 33) and a list slot (8), rounded up.
RECORD_OVERHEAD = 136

_KEY = itemgetter(0)


class UserCodeError(MapReduceError):
    """A job method raised; the message names the method and the record."""

    show_traceback = True


class NotAPairError(UserCodeError):
    """A job method yielded something that is not a ``(key, value)`` pair (``yield word``,
    ``return key, value``, ``yield sum(values)``), or returned something that is not an
    iterable of pairs.  A mistake in the job's code that every attempt would make again, so
    it is not retried; the message says what was yielded and at which line of the job, so
    no traceback is needed."""

    retryable = False
    show_traceback = False


def _show(thing: Any) -> str:
    text = repr(thing)
    return text if len(text) <= 60 else text[:57] + "..."


def not_a_pair(item: Any, pairs: Any) -> NotAPairError:
    """The error for ``item`` of a job method's result ``pairs`` that is not a pair.

    A generator still running is suspended at the ``yield`` that produced ``item``, so its
    frame names the job's line; one that has finished (a check after the loop) names the
    line of its only ``yield``, or all of them.  Any other result (``return key, value``
    gives a tuple) is shown itself.  The method and the record are added by _user_error.
    """
    what = f"{_show(item)} ({type(item).__name__})"
    frame, code = getattr(pairs, "gi_frame", None), getattr(pairs, "gi_code", None)
    if frame is not None or code is not None:
        path = (frame.f_code if frame is not None else code).co_filename
        lines = [frame.f_lineno] if frame is not None else sorted({
            i.positions.lineno for i in dis.get_instructions(code)
            if i.opname == "YIELD_VALUE" and i.positions and i.positions.lineno})
        if len(lines) == 1:
            source = linecache.getline(path, lines[0]).strip()
            where = f"{path} line {lines[0]}" + (f": {source}" if source else "")
        else:
            where = f"{path}, a yield at line {', '.join(map(str, lines))}"
        return NotAPairError(f"yielded {what}, not a (key, value) pair ({where})")
    return NotAPairError(f"returned {_show(pairs)} ({type(pairs).__name__}), whose item "
                         f"{what} is not a (key, value) pair (emit pairs with: yield key, value)")


def not_pairs(result: Any) -> NotAPairError:
    """The error for a job method that returned ``result``, which cannot be iterated."""
    return NotAPairError(f"returned {_show(result)} ({type(result).__name__}), not (key, "
                         "value) pairs (emit pairs with: yield key, value)")


def _pairs(result: Any) -> Iterable[Any]:
    """A job hook's result as an iterable: none for a bare ``return`` (mrjob allows it), a
    NotAPairError for something that cannot be iterated.  Once per call, not per pair."""
    if result is None:
        return ()
    if not hasattr(result, "__iter__"):
        raise not_pairs(result)
    return result


def _checked(result: Any) -> Iterator[tuple[Any, Any]]:
    """The pairs of a job hook's result, each checked (for hooks called once per task)."""
    pairs = _pairs(result)
    for pair in pairs:
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise not_a_pair(pair, pairs) from None
        if pair.__class__ is str:
            raise not_a_pair(pair, pairs)
        yield key, value


_UNPACK_SEQUENCE, _GET_ITER = dis.opmap["UNPACK_SEQUENCE"], dis.opmap["GET_ITER"]


def _pair_mistake(exc: BaseException, pairs: Any, pair: Any) -> Optional[NotAPairError]:
    """The NotAPairError for a TypeError/ValueError caught around a per-pair loop
    ``for pair in pairs: key, value = pair`` -- or None when it is not the loop's own.

    Which it is, is read off where it was raised: in the loop's own frame (no deeper
    traceback entry: not inside the user's generator, nor any Python function the loop
    calls), by the instruction that unpacks ``pair`` (it is no pair) or that iterates
    ``pairs`` (it cannot be iterated).  Only looked at on failure; so the loop itself pays
    for no ``try`` per pair, and a user's own ValueError is never taken for a mistake.
    """
    tb = exc.__traceback__
    if tb is None or tb.tb_next is not None:
        return None
    op = tb.tb_frame.f_code.co_code[tb.tb_lasti]
    if op == _UNPACK_SEQUENCE:
        return not_a_pair(pair, pairs)
    if op == _GET_ITER:
        return not_pairs(pairs)
    return None


def _not_iterable(exc: BaseException, result: Any) -> Optional[NotAPairError]:
    """A NotAPairError if ``exc`` is the TypeError of iterating ``result`` (a mapper's or
    reducer's result, e.g. ``return sum(values)``) -- else None.  Only called on failure;
    ``result`` is the latest call's, so if that call itself raised, ``result`` is the previous
    call's, which was iterable (or None) since its pairs were consumed."""
    if isinstance(exc, TypeError) and result is not None and not hasattr(result, "__iter__"):
        return not_pairs(result)
    return None




def py_sort_records(records: list[tuple[bytes, bytes]], sort_values: bool) -> None:
    """Sort a partition's records in place, stably by key bytes (and by value bytes under
    SORT_VALUES): the reference for the C core's ``_core.sort_records``."""
    if sort_values:
        records.sort()
    else:
        records.sort(key=_KEY)  # stable: equal keys keep emission order


#: The sort buffer's sort: ``_core.sort_records`` (a stable merge sort on an 8-byte key
#: prefix, then the full bytes; about 0.3x ``list.sort``'s time) when the C core runs.
sort_records = native.sort_records if native is not None else py_sort_records


def _bump(counters: dict, name: str, amount: int = 1) -> None:
    key = ("framework", name)
    counters[key] = counters.get(key, 0) + amount


# --- the sort buffer --------------------------------------------------------------------------
class SortBuffer:
    """Map output collector: encode, partition, buffer; sort + combine + spill when full."""

    def __init__(self, step: Step, num_partitions: int, limit: int, sort_values: bool,
                 sink: MapSink, counters: dict,
                 partitioner: Optional[Callable[[Any, int], int]] = None,
                 split_points: Optional[list[bytes]] = None) -> None:
        self.step = step
        self.partitioner = partitioner
        #: The total-order partitioner's encoded split points (see split_point_bytes), or
        #: None: a record goes to ``bisect_right(split_points, key bytes)``.
        self.split_points = split_points
        self.num_partitions = num_partitions
        self.limit = limit
        self.sort_values = sort_values
        self.sink = sink
        self.counters = counters
        self.encode_value = encode_key if sort_values else encode_value
        self.decode_value = value_decoder(sort_values)
        self.parts: list[list[tuple[bytes, bytes]]] = [[] for _ in range(num_partitions)]
        self.size = 0
        self.records = 0            # map output records
        self.running: Optional[str] = None  # the job method running inside the buffer, if any

    def partition(self, kb: bytes, key: Any) -> int:
        if self.split_points is not None:
            return bisect_right(self.split_points, kb)
        if self.partitioner is None:
            return crc32(kb) % self.num_partitions
        p = self.partitioner(key, self.num_partitions)
        if type(p) is not int or not 0 <= p < self.num_partitions:
            raise ValueError(f"partitioner returned {p!r} for key {key!r}; expected an int "
                             f"in 0..{self.num_partitions - 1}")
        return p

    def add(self, key: Any, value: Any) -> None:
        """Buffer one map output pair (spilling when the buffer is full)."""
        self.extend(((key, value),))

    def extend(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Buffer every pair of ``pairs`` (one mapper call's output).

        The hot path: the map loop calls this once per input record, so a pair costs no
        Python call of the framework's -- encoding, partitioning and accounting are inline.
        """
        encode_value = self.encode_value
        # encode_key/encode_value inlined for str keys and msgpack values (a call each per
        # pair was ~10% of the loop); other keys, lone surrogates and unencodable values go
        # through them, which raise the explanatory SerializationError.
        if self.sort_values:
            pack, pack_errors = encode_value, ()   # SORT_VALUES: values are key encodings
        else:
            pack, pack_errors = pack_value, PACK_ERRORS
        partitioner = self.partitioner
        points = self.split_points
        hashing = partitioner is None and points is None  # one test per pair, as before
        n = self.num_partitions
        pair = None
        try:
            for pair in pairs:
                key, value = pair
                if key.__class__ is str:
                    try:
                        kb = STR_KEY_PREFIX + key.encode()
                    except UnicodeEncodeError:
                        kb = encode_key(key)
                else:
                    kb = encode_key(key)
                try:
                    vb = pack(value)
                except pack_errors:
                    vb = encode_value(value)
                if hashing:
                    p = crc32(kb) % n  # == codec.partition_of
                elif points is not None:
                    p = bisect_right(points, kb)  # total order: C, on the bytes at hand
                else:
                    p = partitioner(key, n)
                    if p.__class__ is not int or not 0 <= p < n:
                        p = self.partition(kb, key)  # raises the explanatory error
                self.parts[p].append((kb, vb))
                self.records += 1
                self.size += len(kb) + len(vb) + RECORD_OVERHEAD
                if self.size >= self.limit:
                    self.spill()
        except (TypeError, ValueError) as exc:
            mistake = _pair_mistake(exc, pairs, pair)
            if mistake is None:
                raise
            raise mistake from None
        if pair.__class__ is str:  # "ab" unpacked as "a", "b": see the module docstring
            raise not_a_pair(pair, pairs)

    def _sort(self, parts: list[list[tuple[bytes, bytes]]]) -> None:
        sort, sort_values = sort_records, self.sort_values
        for records in parts:
            sort(records, sort_values)  # stable: equal keys keep emission order

    def _combine(self, parts: list[list[tuple[bytes, bytes]]]) -> list[list[tuple[bytes, bytes]]]:
        combiner = self.step.combiner
        decode_value = self.decode_value
        combined: list[list[tuple[bytes, bytes]]] = [[] for _ in range(self.num_partitions)]
        n_in = n_out = 0
        for records in parts:
            n_in += len(records)
            for kb, group in groupby(records, _KEY):
                key = decode_key(kb)
                values = (decode_value(vb) for _, vb in group)
                out = _pairs(combiner(key, values))
                for pair in out:
                    try:
                        k, v = pair
                    except (TypeError, ValueError):
                        raise not_a_pair(pair, out) from None
                    if pair.__class__ is str:
                        raise not_a_pair(pair, out)
                    okb = encode_key(k)
                    combined[self.partition(okb, k)].append((okb, self.encode_value(v)))
                    n_out += 1
        _bump(self.counters, "COMBINE_INPUT_RECORDS", n_in)
        _bump(self.counters, "COMBINE_OUTPUT_RECORDS", n_out)
        # The combiner normally keeps its key; sorting again keeps runs sorted even if not.
        self._sort(combined)
        return combined

    def spill(self) -> None:
        parts = self.parts
        self.parts = [[] for _ in range(self.num_partitions)]
        self.size = 0
        self._sort(parts)
        if self.step.combiner is not None:
            self.running = "combiner"
            parts = self._combine(parts)
            self.running = None  # not reset on error: the error names the combiner
        self.sink.spill(parts)

    def finish(self) -> MapOutput:
        if self.size:
            self.spill()
        if self.step.combiner_final is not None:
            # combiner_final's pairs form one last run of their own (not combined again).
            self.running = "combiner_final"
            self.parts = [[] for _ in range(self.num_partitions)]
            self.size = 0
            for k, v in _checked(self.step.combiner_final()):
                kb = encode_key(k)
                self.parts[self.partition(kb, k)].append((kb, self.encode_value(v)))
            if any(self.parts):
                self._sort(self.parts)
                self.sink.spill(self.parts)
            self.parts = []
            self.running = None
        output = self.sink.finish()
        for key, amount in self.sink.counters.items():
            self.counters[key] = self.counters.get(key, 0) + amount
        return output



class NativeSortBuffer(SortBuffer):
    """:class:`SortBuffer` with its records in C (``_core.SortBuffer``, docs/core.md).

    The same records, order, errors and spill boundaries as the Python buffer; what changes
    is where a record lives: in a byte arena per buffer with a sorted index per partition,
    not a ``(bytes, bytes)`` tuple in a list.  ``extend`` hands the mapper's pairs to C,
    which encodes, partitions and charges them (``len(kb) + len(vb) + RECORD_OVERHEAD``, as
    here, so spills fall on the same records) and comes back only when the buffer is full
    (this spills, then ``resume()`` continues the same iterator) or for a pair that is not
    an exact 2-tuple (:meth:`_add_slow` unpacks it the Python way, raising NotAPairError
    for what is no pair; a 2-character str is refused when it is the call's last pair, as
    in SortBuffer).  A spill to a sink with ``spill_sorted`` (the disk back end) packs each
    partition straight from the arena into run-file blocks; memory mode and a combiner
    get the sorted records as lists (``partitions()``).
    """

    def __init__(self, step: Step, num_partitions: int, limit: int, sort_values: bool,
                 sink: MapSink, counters: dict,
                 partitioner: Optional[Callable[[Any, int], int]] = None,
                 split_points: Optional[list[bytes]] = None) -> None:
        # SortBuffer.__init__'s fields but its record lists, size and count (C has them)
        self.step, self.partitioner, self.split_points = step, partitioner, split_points
        self.num_partitions, self.limit, self.sort_values = num_partitions, limit, sort_values
        self.sink, self.counters = sink, counters
        self.encode_value = encode_key if sort_values else encode_value
        self.decode_value = value_decoder(sort_values)
        self.running = None
        if self.sort_values:
            pack, errors = encode_key, ()
        else:
            pack, errors = pack_value, PACK_ERRORS
        points = list(self.split_points) if self.split_points is not None else None
        self._c = native.SortBuffer(self.num_partitions, self.limit, self.sort_values,
                                    RECORD_OVERHEAD, self.encode_value, pack, errors,
                                    self.partitioner, points, self.partition)
        self._uncounted = 0   # combiner_final's records: buffered, not map output records

    @property
    def records(self) -> int:  # type: ignore[override]
        return self._c.records - self._uncounted

    @property
    def size(self) -> int:  # type: ignore[override]
        return self._c.size

    def extend(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        r = self._c.extend(pairs)
        if r is not None:
            self.extend_more(r, pairs)

    def extend_more(self, r: Any, pairs: Any) -> None:
        """The rest of an ``extend`` whose C call returned ``r`` (not None): spill when
        full, unpack what C hands back, until C has taken every pair.  (``run_map`` calls
        the C ``extend`` itself and this only when it returns something.)"""
        c = self._c
        last = None  # the pair Python took last, if no pair came after it
        while r is not None:
            if r is True:
                self.spill()
            elif r is False:
                raise not_pairs(pairs)
            else:
                last = r[0]
                self._add_slow(last, pairs)
            r = c.resume()
            if c.taken:
                last = None
        if last.__class__ is str:  # "ab" unpacked as "a", "b": as SortBuffer.extend
            raise not_a_pair(last, pairs)

    def _add_slow(self, pair: Any, pairs: Any) -> None:
        """A pair C does not take (not an exact 2-tuple): unpacked and encoded as
        :meth:`SortBuffer.extend` does, with its errors."""
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise not_a_pair(pair, pairs) from None
        kb = encode_key(key)
        if self.sort_values:
            vb = encode_key(value)
        else:
            try:
                vb = pack_value(value)
            except PACK_ERRORS:
                vb = encode_value(value)
        if self._c.add(kb, vb, self.partition(kb, key)):
            self.spill()

    def spill(self) -> None:
        c = self._c
        if self.step.combiner is not None:
            parts = c.partitions()
            c.clear()
            self.running = "combiner"
            parts = self._combine(parts)
            self.running = None  # not reset on error: the error names the combiner
            self.sink.spill(parts)
            return
        spill_sorted = getattr(self.sink, "spill_sorted", None)
        if spill_sorted is not None:
            spill_sorted(c)
        else:
            self.sink.spill(c.partitions())
        c.clear()

    def finish(self) -> MapOutput:
        if self.size:
            self.spill()
        if self.step.combiner_final is not None:
            # combiner_final's pairs form one last run of their own (not combined again).
            self.running = "combiner_final"
            c = self._c
            before = c.records
            for k, v in _checked(self.step.combiner_final()):
                kb = encode_key(k)
                c.add(kb, self.encode_value(v), self.partition(kb, k))
            self._uncounted += c.records - before
            if c.records > before:
                self.sink.spill(c.partitions())
            c.clear()
            self.running = None
        output = self.sink.finish()
        for key, amount in self.sink.counters.items():
            self.counters[key] = self.counters.get(key, 0) + amount
        return output


#: The sort buffer run_map uses for a step without map-side combining: C when it runs.
SORT_BUFFER = NativeSortBuffer if native is not None else SortBuffer

#: Value types a CombiningBuffer keeps by reference: immutable, and msgpack gives back an
#: equal object of the same type, so the combiner sees what a decode would have produced.
_SCALARS = frozenset((int, float, str, bytes, bool, type(None)))
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1   # msgpack's integer range
#: Estimated CPython bytes of one distinct key's group (dict entry, list, key object).
GROUP_OVERHEAD = 200
#: Bytes a buffered value costs in its group's list: one pointer slot, plus list
#: over-allocation.  Small ints (CPython caches -5..256), bools and None are shared objects
#: and cost only this; any other int or a float adds its own object (SCALAR_OBJECT_SIZE).
VALUE_SLOT_SIZE = 9
SCALAR_OBJECT_SIZE = 32


class PyGroup(list):
    """One distinct key's buffered values in a :class:`CombiningBuffer`: the Python core's
    twin of ``_core.Group`` (the same interface: ``PyGroup(kb, value)``, ``append``,
    ``len``, ``kb``, ``values()``).

    The C group keeps a run of one repeated object (word count's 1s) as that object and a
    count and hands the combiner ``itertools.repeat(value, count)``; this one is a plain
    list of the values.  Both yield the very objects appended, in order, and are charged
    alike (``VALUE_SLOT_SIZE`` a value), so both cores spill the same bytes at the same
    points.
    """

    __slots__ = ("kb",)

    def __init__(self, kb: bytes, value: Any) -> None:
        super().__init__((value,))
        self.kb = kb   # the key's encoding: the spill sorts and writes by it

    def values(self) -> Iterator[Any]:
        """The values in the order they were appended (a single-pass iterator)."""
        return iter(self)


_END = object()   # group_values/map_group: "the iterator is exhausted"
_FULL = object()  # group_values/map_group: "the buffer is full: spill, then go on"


def py_group_values(groups: dict, it: Iterator[Any], size: int, limit: int, end: Any,
                    full: Any) -> tuple[int, int, Any]:
    """CombiningBuffer's per-pair path for the common pair, the reference for
    ``_core.group_values`` (whose comment in _core.c gives the contract).

    While each pair of ``it`` is a 2-tuple whose value is an int in -5..256 and whose key
    has a group in ``groups`` or is a new ASCII ``str``, does what
    :meth:`CombiningBuffer._add_grouped` does (append, account); returns ``(taken, size,
    item)``: the values taken, the new size, and the first item that is anything else,
    untouched -- or ``full`` right after a pair that brought ``size`` to ``limit``, or
    ``end`` when ``it`` is exhausted.
    """
    taken = 0
    for item in it:
        if item.__class__ is not tuple or len(item) != 2:
            return taken, size, item
        key, value = item
        if value.__class__ is not int or not -5 <= value <= 256:
            return taken, size, item
        try:
            group = groups.get(key)
        except TypeError:  # unhashable: the caller's general path canonicalises it
            return taken, size, item
        if group is None:
            if key.__class__ is not str or not key.isascii():
                return taken, size, item
            kb = encode_key(key)
            groups[key] = PyGroup(kb, value)
            size += VALUE_SLOT_SIZE + len(kb) + GROUP_OVERHEAD
        elif group.__class__ is PyGroup:
            group.append(value)
            size += VALUE_SLOT_SIZE
        else:
            return taken, size, item
        taken += 1
        if size >= limit:
            return taken, size, full
    return taken, size, end


def py_map_group(records: Iterator[Any], mapper: Callable, groups: dict, size: int,
                 limit: int, progress: list, end: Any,
                 full: Any) -> tuple[int, int, int, Any, Any]:
    """run_map's per-record loop for a combining step, the reference for
    ``_core.map_group`` (whose comment in _core.c gives the contract): calls
    ``mapper(key, value)`` per record and takes its generator's pairs through
    :func:`py_group_values`; returns ``(index, taken, size, out, item)`` at the first
    thing it hands back, or ``(index, taken, size, None, end)`` at the end of
    ``records``."""
    index = progress[0]
    taken = 0
    for rec in records:
        if rec.__class__ is not tuple or len(rec) != 2:
            return index, taken, size, None, rec
        index += 1
        progress[0] = index
        out = mapper(rec[0], rec[1])
        if out is None:
            continue
        if out.__class__ is not GeneratorType:
            return index, taken, size, out, end
        took, size, item = py_group_values(groups, out, size, limit, end, full)
        taken += took
        if item is not end:
            return index, taken, size, out, item
    return index, taken, size, None, end


#: The per-pair and per-record loops and the group they fill: C's when the C core is
#: active (docs/core.md).
group_values = native.group_values if native is not None else py_group_values
map_group = native.map_group if native is not None else py_map_group
Group = native.Group if native is not None else PyGroup
_GROUP_KB = attrgetter("kb")


def py_sort_groups(groups: list) -> None:
    """Sort a spill's groups in place by key bytes, stably (two distinct keys can encode
    alike: two NaN objects); the twin of ``_core.sort_groups`` (a merge sort on key-byte
    prefixes: no key list, no Python comparison per pair of keys)."""
    groups.sort(key=_GROUP_KB)


sort_groups = native.sort_groups if native is not None else py_sort_groups


class CombiningBuffer(SortBuffer):
    """Map-side combining for steps with a combiner (Spark's map-side combine).

    Instead of encoding every pair and decoding it again for the combiner, emitted values are
    grouped per key in a dict as they arrive; when the buffer is full the combiner runs once
    per distinct key -- in key-byte order, with the canonical decoded key and the values in
    emission order, exactly as :class:`SortBuffer` would call it -- and only its output is
    encoded, partitioned, sorted and spilled.  That takes the per-pair cost from an encode,
    a CRC, a tuple and a decode down to a dict lookup and a list append.

    A key's group is a :data:`Group` (its key bytes and its values; ``_core.Group`` with
    the C core, which keeps a run of one repeated object -- word count's 1s -- as the
    object and a count and hands the combiner ``itertools.repeat`` of it, so the common
    case is a count increment, not an append).  The combiner gets an iterator over the
    values, in emission order, each the very object emitted (a single pass, as mrjob's).

    Keys are validated and encoded once per distinct key per spill.  Scalar values are kept by
    reference (they are immutable); any other value is snapshotted through msgpack on arrival,
    which both checks that it can be encoded and protects against a mapper that mutates an
    object after yielding it.  Unhashable keys (lists) are canonicalised to tuples first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups: dict[Any, Any] = {}   # key -> Group (its key bytes and its values)
        self.mapped = -1   # map_records: the index of the last record it mapped
        self.progress: Optional[list] = None   # map_records running: [index being mapped]

    def extend(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Group every pair of ``pairs`` (one mapper call's output) under its key.

        The hot path of a job with a combiner (word count's ``(word, 1)``): a pair whose value
        is a small int (a shared object, nothing to snapshot or size) and whose key has a
        group or is a new ASCII ``str`` costs a type check, a dict lookup and a list append
        -- in :func:`group_values` (C's ``_core.group_values`` or its Python twin), which
        pulls pairs until one is anything else and hands that one back to go through
        :meth:`_add_grouped` here (or says the buffer is full: spill and go on).
        """
        try:
            it = iter(pairs)
        except TypeError as exc:
            if exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
                raise not_pairs(pairs) from None  # iter() itself: no __iter__ of the user's
            raise
        self._extend(it, pairs, _END)

    def _extend(self, it: Iterator[Any], pairs: Any, pair: Any) -> None:
        """:meth:`extend` from ``pair`` (a pair handed back by C, or ``_END``: none) on."""
        try:
            while True:
                if pair is _END:
                    taken, self.size, pair = group_values(self.groups, it, self.size,
                                                          self.limit, _END, _FULL)
                    self.records += taken
                    if pair is _END:
                        return
                    if pair is _FULL:  # the pair just taken filled the buffer
                        self.spill()
                        pair = _END
                        continue
                key, value = pair  # here, so that _pair_mistake sees a failed unpack
                if pair.__class__ is str:  # "ab" unpacks as "a", "b" (never the fast path)
                    raise not_a_pair(pair, pairs)
                self._add_grouped(key, value)  # may spill, which replaces self.groups
                pair = _END
        except (TypeError, ValueError) as exc:
            mistake = _pair_mistake(exc, pairs, pair)
            if mistake is None:
                raise
            raise mistake from None

    def map_records(self, mapper: Callable, records: Iterable[tuple[Any, Any]]) -> int:
        """run_map's loop (``mapper(key, value)`` per record, its pairs into this buffer)
        for a step without --skip-bad-records; returns the index of the last record.

        :func:`map_group` (C's ``_core.map_group`` or its Python twin) calls the mapper and
        takes the common pairs of its generators without a Python frame of ours per record
        or pair; what it hands back (another pair, a full buffer, a result that is not a
        generator) goes through :meth:`_extend` / :meth:`extend` here, so errors and spills
        are exactly those of a mapper call and an ``extend`` per record.  On an exception
        :attr:`mapped` is the index of the record whose mapper (or pairs) raised; while it
        runs, ``progress[0]`` is the index of the record being mapped.
        """
        it = iter(records)
        # map_group's index of the record being mapped: read on an exception, and by
        # position() when the task times out
        self.progress = progress = [-1]
        try:
            while True:
                index, taken, self.size, out, item = map_group(
                    it, mapper, self.groups, self.size, self.limit, progress, _END, _FULL)
                self.records += taken
                if out is None:
                    if item is _END:
                        return index
                    key, value = item  # not a tuple (the engine's readers make none)
                    progress[0] = index + 1
                    out = mapper(key, value)
                    if out is not None:
                        self.extend(out)
                elif item is _END:
                    self.extend(out)  # not a generator: extend names a non-iterable
                elif item is _FULL:
                    self.spill()
                    self._extend(out, out, _END)  # the rest of the record's pairs
                else:
                    self._extend(out, out, item)  # the handed-back pair, then the rest
        finally:
            self.mapped = progress[0]
            self.progress = None

    def _add_grouped(self, key: Any, value: Any) -> None:
        tv = type(value)
        if tv not in _SCALARS or (tv is int and not _INT_MIN <= value <= _INT_MAX):
            vb = encode_value(value)
            value = decode_value(vb)
            self.size += len(vb) + 64
        elif tv is str or tv is bytes:
            self.size += len(value) + 57
        elif value is None or tv is bool or (tv is int and -5 <= value <= 256):
            self.size += VALUE_SLOT_SIZE
        else:
            self.size += VALUE_SLOT_SIZE + SCALAR_OBJECT_SIZE
        try:
            group = self.groups.get(key)
        except TypeError:  # unhashable (a list key): use its canonical tuple form
            key = decode_key(encode_key(key))
            group = self.groups.get(key)
        if group is None:
            kb = encode_key(key)
            self.groups[key] = Group(kb, value)
            self.size += len(kb) + GROUP_OVERHEAD
        else:
            group.append(value)
        self.records += 1
        if self.size >= self.limit:
            self.spill()

    def spill(self) -> None:
        groups = list(self.groups.values())
        sort_groups(groups)  # combiner calls in key-byte order
        self.groups = {}
        self.size = 0
        self.running = "combiner"
        combiner = self.step.combiner
        n = self.num_partitions
        parts: list[list[tuple[bytes, bytes]]] = [[] for _ in range(n)]
        # Once per distinct key, so the framework's own calls are inlined: the default
        # hash partition (self.partition otherwise) and msgpack for the value (what it
        # cannot pack goes to encode_value, which raises the explanation); the evaluation
        # order -- key, partition, value -- is that of the calls it replaced.
        partition = None if self.partitioner is None and self.split_points is None \
            else self.partition
        n_in = n_out = 0
        for group in groups:
            n_in += len(group)
            kb = group.kb
            key = decode_key(kb)
            same_key_part = None
            out = combiner(key, group.values())
            if out.__class__ is not GeneratorType:
                out = _pairs(out)
            for pair in out:
                try:
                    k, v = pair
                except (TypeError, ValueError):
                    raise not_a_pair(pair, out) from None
                if pair.__class__ is str:
                    raise not_a_pair(pair, out)
                if k is key:  # the combiner kept its key, as usual: reuse its encoding
                    if same_key_part is None:
                        same_key_part = parts[crc32(kb) % n if partition is None
                                              else partition(kb, key)]
                    part, okb = same_key_part, kb
                else:
                    okb = encode_key(k)
                    part = parts[crc32(okb) % n if partition is None else partition(okb, k)]
                try:
                    part.append((okb, pack_value(v)))
                except PACK_ERRORS:
                    part.append((okb, encode_value(v)))
                n_out += 1
        self.running = None
        _bump(self.counters, "COMBINE_INPUT_RECORDS", n_in)
        _bump(self.counters, "COMBINE_OUTPUT_RECORDS", n_out)
        self._sort(parts)  # a no-op reorder when the combiner keeps its keys
        self.sink.spill(parts)


class _DirectCollector:
    """Map-only step: pairs go straight to the output in emission order."""

    def __init__(self, writer) -> None:
        self.writer = writer
        self.records = 0
        self.running: Optional[str] = None

    def add(self, key: Any, value: Any) -> None:
        self.writer.write(key, value)
        self.records += 1

    def extend(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        write = self.writer.write
        pair = None
        try:
            for pair in pairs:
                key, value = pair
                write(key, value)
                self.records += 1
        except (TypeError, ValueError) as exc:
            mistake = _pair_mistake(exc, pairs, pair)
            if mistake is None:
                raise
            raise mistake from None
        if pair.__class__ is str:  # "ab" unpacked as "a", "b": see the module docstring
            raise not_a_pair(pair, pairs)


# --- the records of a split -------------------------------------------------------------------
def split_records(split: Any, decode_errors: str, spelling: str = Spelling.CLI,
                  job: Optional[Job] = None) -> Iterator[tuple[Any, Any]]:
    """A map task's input records: ``(None, line)`` per line of a text split, one
    ``(path, bytes)`` for a whole file, or the pairs of a previous step's output.
    ``spelling``: how the user names options, for the hint on invalid UTF-8.  For a
    :class:`CombinedSplit`, ``job``'s task context follows the part being read."""
    if isinstance(split, TextSplit):
        # zip/repeat in C (read_lines flattens in C too): no Python frame per line
        return zip(repeat(None), read_lines(split, decode_errors, spelling))
    if isinstance(split, WholeFileSplit):
        return iter([(split.path, read_whole_file(split))])
    if isinstance(split, CombinedSplit):
        return PackedRecords(split, decode_errors, spelling, job)  # type: ignore[return-value]
    return split.records()


class PackedRecords:
    """The records of a :class:`CombinedSplit` (packed small files).

    Iterated, they are every part's records in order: ``chain`` asks for the next part's
    iterator only when the previous one is exhausted, so the job's task context is switched
    right before each part's first record (one Python frame per part, none per record).
    :meth:`by_part` gives ``(part, records)`` instead, for :func:`run_map` to run the
    per-task hooks around each file when the step has them.
    """

    def __init__(self, split: CombinedSplit, decode_errors: str, spelling: str,
                 job: Optional[Job]) -> None:
        self.split, self.job = split, job
        self.decode_errors, self.spelling = decode_errors, spelling

    def by_part(self) -> Iterator[tuple[TextSplit, Iterator[tuple[Any, Any]]]]:
        for part in self.split.parts:
            if self.job is not None:
                set_task_context(self.job, part)
            yield part, split_records(part, self.decode_errors, self.spelling)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return chain.from_iterable(records for _part, records in self.by_part())


def record_location(split: Any, index: int) -> str:
    """Where record ``index`` of ``split`` is, for error messages (file and line if text)."""
    if index < 0:
        return "before the first record"
    if isinstance(split, TextSplit):
        try:
            return f"{split.path} line {line_number_at(split, index)}"
        except Exception:  # locating is best effort; never hide the real error
            return f"record {index + 1} of {split.describe()}"
    if isinstance(split, CombinedSplit):
        try:  # count the parts' lines again (error reports only): which file holds it
            left = index
            for part in split.parts:
                lines = sum(1 for _ in read_lines(part, "replace"))
                if left < lines:
                    return record_location(part, left)
                left -= lines
        except Exception:  # locating is best effort; never hide the real error
            pass
    return f"record {index + 1} of {split.describe()}"


def split_bytes(split: Any) -> int:
    """Input bytes a split covers (BYTES_READ)."""
    if isinstance(split, TextSplit):
        return split.end - split.start
    if isinstance(split, CombinedSplit):
        return split.size
    if isinstance(split, WholeFileSplit):
        return file_size(split.path)
    return 0


def set_task_context(job: Job, split: Any) -> None:
    """The task context of a first-step map task: which file and byte range it reads (for a
    :class:`CombinedSplit`, its first part until :func:`split_records` moves on)."""
    if isinstance(split, CombinedSplit):
        split = split.parts[0]
    if isinstance(split, (TextSplit, WholeFileSplit)):
        job._set_input(split.path, getattr(split, "start", 0), getattr(split, "end", None))


# --- errors -------------------------------------------------------------------------------------
def _user_error(method: str, where: str, exc: BaseException) -> MapReduceError:
    if isinstance(exc, NotAPairError):
        return NotAPairError(f"{method} {exc}, at {where}")
    if isinstance(exc, SerializationError):
        return SerializationError(f"{method} output at {where}: {exc}")
    if isinstance(exc, SystemExit):  # the user's sys.exit(): name it, not the framework's frames
        return UserCodeError(f"{method} called sys.exit({exc.code!r}) (at {where})")
    return UserCodeError(f"{method} raised {type(exc).__name__}: {exc} (at {where})")


class TooManyBadRecords(MapReduceError):
    """More mapper failures in one task than --skip-bad-records allows."""


def reduce_error(exc: BaseException, method: str, key: Any, partition: int) -> BaseException:
    """What a reduce side's failure in ``method`` (while at ``key``) is reported as: the
    framework's own errors pass through, anything the user's code raised names the method,
    the key and the partition."""
    if isinstance(exc, MapReduceError) and \
            not isinstance(exc, (SerializationError, UserCodeError)):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return exc  # a merge (or the part file) hit a full disk: the disk's fault
    where = (f"key {key!r} of partition {partition}"
             if method == "reducer" or isinstance(exc, MapReduceError)
             and not isinstance(exc, NotAPairError) else f"partition {partition}")
    return _user_error(method, where, exc)


# --- the total-order partitioner ---------------------------------------------------------------
def split_point_bytes(job: Job, num_partitions: int) -> Optional[list[bytes]]:
    """The encoded split points of the job's total-order partitioner
    (:meth:`Job.total_order_split_points`), or None when the job does not define one.

    Called once per map task.  Keys encode order-preservingly, so partitioning by
    ``bisect_right`` over encoded bytes puts a key where ``bisect_right`` over the keys
    would (for keys Python can compare) and needs no Python call per record.  Points that
    are not a sequence of at most ``num_partitions - 1`` keys in ascending order are the
    job's mistake, refused with a JobDefinitionError (not retried), as are points that are
    not keys; a raise inside the hook is reported naming the hook (and retried).
    """
    if not type(job)._overrides("total_order_split_points"):
        return None
    name = f"{type(job).__name__}.total_order_split_points({num_partitions})"
    points = job.total_order_split_points(num_partitions)
    if isinstance(points, (str, bytes)) or not hasattr(points, "__len__"):
        raise JobDefinitionError(f"{name} returned {_show(points)} "
                                 f"({type(points).__name__}); expected a list of keys")
    if len(points) > num_partitions - 1:
        raise JobDefinitionError(f"{name} returned {len(points)} split points; at most "
                                 f"{num_partitions - 1} for {num_partitions} partitions")
    encoded = []
    for point in points:
        try:
            encoded.append(encode_key(point))
        except SerializationError as exc:
            raise JobDefinitionError(f"{name}: split point {_show(point)} is not a key: "
                                     f"{exc}") from None
    for i in range(1, len(encoded)):
        if encoded[i] < encoded[i - 1]:
            raise JobDefinitionError(f"{name}: split points must be in ascending order, "
                                     f"but {_show(points[i - 1])} comes before "
                                     f"{_show(points[i])}")
    return encoded


# --- the map task -------------------------------------------------------------------------------
@dataclass
class MapOutcome:
    """What a map task produced: its counters, the skipped records, and either the map output
    (a step with reducers) or what the writer's ``finish()`` returned (a map-only step)."""

    counters: dict
    skipped: list[str]
    map_output: Optional[MapOutput] = None
    output: Any = None
    output_bytes: int = 0
    output_crc32: Optional[int] = None
    records_in: int = 0


def run_map(job: Job, step: Step, split: Any, records: Iterable[tuple[Any, Any]], *,
            partitions: int, sort_buffer: int, sort_values: bool,
            sink: Optional[MapSink] = None, writer: Any = None, skip_bad_records: int = 0,
            describe: str = "map task", spelling: str = Spelling.CLI) -> MapOutcome:
    """Run one map task: ``records`` through the step's mapper (with its hooks, the
    combiner and the sort buffer) into ``sink`` when the step has ``partitions`` reducers,
    or straight into ``writer`` when it is map-only.  ``split`` locates records for error
    messages; ``describe`` names the task in them, ``spelling`` says how to name options in
    them (``--skip-bad-records`` or ``skip_bad_records``)."""
    counters: dict = {}
    buffer_class: Any = None
    if partitions:
        partitioner = job.partitioner if type(job)._overrides("partitioner") else None
        try:
            split_points = split_point_bytes(job, partitions)
        except JobDefinitionError:
            raise
        except (Exception, SystemExit) as exc:
            raise _user_error("total_order_split_points", describe, exc) from exc
        # Map-side combining needs a combiner; under SORT_VALUES values are sorted (and so
        # encoded) before the combiner sees them, which only SortBuffer does.
        buffer_class = (CombiningBuffer if step.combiner is not None and not sort_values
                        else SORT_BUFFER)
        collector: Any = buffer_class(step, partitions, sort_buffer, sort_values, sink,
                                      counters, partitioner, split_points)
    else:
        collector = _DirectCollector(writer)
    extend = collector.extend
    c_extend = collector._c.extend if isinstance(collector, NativeSortBuffer) else None
    mapper: Callable = step.mapper or identity_mapper
    # The identity mapper is not called: the input records are the map output pairs.
    identity = mapper is identity_mapper
    skipped: list[str] = []
    index = -1
    method = "combiner_init"
    out = None
    outcome = MapOutcome(counters, skipped)
    # Packed small files with per-task hooks: mapper_init/mapper_final run around each file,
    # so a job that reads self.input_path in mapper_init (jobs/join.py tags a file's records
    # there) sees exactly what it saw when every file was a task of its own.
    segments: Iterable = records.by_part() if isinstance(records, PackedRecords) and (
        step.mapper_init is not None or step.mapper_final is not None) else [(split, records)]
    where = split  # the split (or packed file) the current records come from
    try:
        if step.combiner_init is not None and partitions:
            extend(_pairs(step.combiner_init()))
        for where, part_records in segments:
            index = -1
            method = "mapper_init"
            if step.mapper_init is not None:
                extend(_pairs(step.mapper_init()))
            method = "mapper"
            if identity:
                # All records in one call: the buffer's loop encodes and partitions them, no
                # Python call per record.  The collector counts a record once it took it,
                # so its count locates a failing record.
                before = collector.records
                try:
                    extend(part_records)
                except BaseException:
                    index = collector.records - before
                    raise
                index = collector.records - before - 1
            elif skip_bad_records:
                index = _map_skipping(where, mapper, extend, part_records, skipped,
                                      skip_bad_records, describe,
                                      BY_NAME["skip_bad_records"].spelled(spelling))
            elif buffer_class is CombiningBuffer:
                # The per-record loop in C (map_group): no Python frame of ours per record
                try:
                    index = collector.map_records(mapper, part_records)
                except BaseException:
                    index = collector.mapped
                    raise
            elif c_extend is not None:
                # The C sort buffer's extend called from here: no Python frame of the
                # buffer's per record, only when C hands something back (full, ...).
                more = collector.extend_more
                for index, (key, value) in enumerate(part_records):
                    out = mapper(key, value)
                    if out is not None and (r := c_extend(out)) is not None:
                        more(r, out)
            else:
                for index, (key, value) in enumerate(part_records):
                    out = mapper(key, value)
                    if out is not None:
                        extend(out)
            outcome.records_in += index + 1
            method = "mapper_final"
            if step.mapper_final is not None:
                extend(_pairs(step.mapper_final()))
        method = "map output"
        if partitions:
            outcome.map_output = collector.finish()
        else:
            outcome.output, outcome.output_bytes = writer.finish()
            outcome.output_crc32 = getattr(writer, "crc32", None)
    except MapReduceError as exc:
        if not isinstance(exc, (SerializationError, UserCodeError)):
            raise  # the framework's own errors (bad input, corrupt data) are already clear
        raise _map_error(where, describe, collector, method, index, exc) from exc
    except SystemExit as exc:  # sys.exit() in a job method
        raise _map_error(where, describe, collector, method, index, exc) from exc
    except Exception as exc:
        if collector.running is None and method == "map output":
            raise  # not user code: writing the map output failed (e.g. disk full)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a spill hit a full disk: the disk's fault, not the mapper's
        mistake = _not_iterable(exc, out) if method == "mapper" and \
            collector.running is None else None
        if mistake is not None:
            raise _map_error(where, describe, collector, method, index, mistake) from None
        raise _map_error(where, describe, collector, method, index, exc) from exc
    _bump(counters, "MAP_INPUT_RECORDS", outcome.records_in)
    if skipped:
        _bump(counters, "SKIPPED_RECORDS", len(skipped))
    _bump(counters, "MAP_OUTPUT_RECORDS", collector.records)
    input_bytes = split_bytes(split)
    _bump(counters, "BYTES_READ", input_bytes)
    if not partitions and outcome.output is not None:
        _bump(counters, "OUTPUT_RECORDS", collector.records)
        _bump(counters, "BYTES_WRITTEN", outcome.output_bytes)
    for key, amount in job._take_counters().items():
        counters[key] = counters.get(key, 0) + amount
    return outcome


def _map_skipping(split: Any, mapper: Callable, extend: Callable, records: Iterable,
                  skipped: list[str], limit: int, describe: str, option: str) -> int:
    """The map loop under --skip-bad-records: a record whose mapper raises is logged,
    counted and dropped whole (its pairs are buffered per record, so none leak out)."""
    index = -1
    for index, (key, value) in enumerate(records):
        try:
            pairs = list(_checked(mapper(key, value)))
        except NotAPairError:
            raise  # a mistake in the job's code, not a bad record
        except Exception as exc:
            where = record_location(split, index)
            skipped.append(f"{where}: {type(exc).__name__}: {exc}")
            print(f"mapreduce: skipping bad record at {where}: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            if len(skipped) > limit:
                raise TooManyBadRecords(
                    f"more than {option}={limit} bad records in "
                    f"{describe}; last: {skipped[-1]}") from exc
            continue
        extend(pairs)
    return index


def _map_error(split: Any, describe: str, collector: Any, method: str, index: int,
               exc: BaseException) -> MapReduceError:
    # A combiner runs inside add() when the buffer fills, so the collector knows best
    # which job method was running when the error came.
    culprit = collector.running or method
    where = record_location(split, index) if culprit == "mapper" else describe
    return _user_error(culprit, where, exc)


# --- the reduce task ----------------------------------------------------------------------------
@dataclass
class ReduceOutcome:
    counters: dict
    output: Any = None
    output_bytes: int = 0
    output_crc32: Optional[int] = None


def run_reduce(job: Job, step: Step, batches: Iterable[list[tuple[bytes, bytes]]],
               writer: Any, *, partition: int, sort_values: bool) -> ReduceOutcome:
    """Run one reduce task: ``batches`` (lists of ``(key bytes, value bytes)`` records, merged
    in key order, stable) grouped by key through the step's reducer and its hooks into
    ``writer``."""
    counters: dict = {}
    write = writer.write
    reducer = step.reducer
    groups = 0
    key: Any = None
    method = "reducer_init"
    records_out = 0
    out = None
    try:
        if step.reducer_init is not None:
            for k, v in _checked(step.reducer_init()):
                write(k, v)
                records_out += 1
        method = "reducer"
        raw_lines = (getattr(writer, "write_raw_lines", None)
                     if native is not None and not sort_values else None)
        if reducer is identity_reducer and raw_lines is not None:
            # raw_value output of the identity reducer: ASCII str values become lines in C
            # (native.raw_value_lines), no decoding, no Python step per record; any other
            # value is decoded and written here, one record, as on the path below.
            lines, last = native.raw_value_lines, None
            write_values = writer.write_values
            for batch in batches:
                if type(batch) is not list:
                    batch = list(batch)
                start, n = 0, len(batch)
                while True:
                    data, stop, new_groups, last = lines(batch, start, last)
                    raw_lines(data)
                    groups += new_groups
                    records_out += stop - start
                    if stop == n:
                        break
                    kb, vb = batch[stop]
                    if kb != last:
                        groups += 1
                        last = kb
                    key = decode_key(kb)
                    records_out += write_values(key, (decode_value(vb),))
                    start = stop + 1
            batches = ()
        grouped = grouped_values(batches, sort_values)
        if reducer is identity_reducer:
            # Not called: each merged group goes to the writer whole, the key decoded once
            # (the same bytes as writing each pair the identity reducer would yield).
            write_values = getattr(writer, "write_values", None) or _write_each(write)
            for kb, values in grouped:
                key = decode_key(kb)
                groups += 1
                records_out += write_values(key, values)
        else:
            for kb, values in grouped:
                key = decode_key(kb)
                groups += 1
                # values: a lazy iterator over the group (no Python frame per value).
                out = reducer(key, values)
                if out is not None:
                    for pair in out:
                        try:
                            k, v = pair
                        except (TypeError, ValueError):
                            raise not_a_pair(pair, out) from None
                        if pair.__class__ is str:  # "ab" unpacks as "a", "b": never a pair
                            raise not_a_pair(pair, out)
                        write(k, v)
                        records_out += 1
        if step.reducer_final is not None:
            method = "reducer_final"
            for k, v in _checked(step.reducer_final()):
                write(k, v)
                records_out += 1
        output, output_bytes = writer.finish()
    except (Exception, SystemExit) as exc:  # SystemExit: sys.exit() in a job method
        if method == "reducer":
            exc = _not_iterable(exc, out) or exc
        error = reduce_error(exc, method, key, partition)
        if error is exc:
            raise
        raise error from exc
    _bump(counters, "REDUCE_INPUT_GROUPS", groups)
    _bump(counters, "REDUCE_OUTPUT_RECORDS", records_out)
    _bump(counters, "OUTPUT_RECORDS", records_out)
    _bump(counters, "BYTES_WRITTEN", output_bytes)
    for name, amount in job._take_counters().items():
        counters[name] = counters.get(name, 0) + amount
    return ReduceOutcome(counters, output, output_bytes, getattr(writer, "crc32", None))


def _write_each(write: Callable[[Any, Any], Any]) -> Callable[[Any, Iterable[Any]], int]:
    """``write_values`` for a writer that only has ``write(key, value)``."""
    def write_values(key: Any, values: Iterable[Any]) -> int:
        n = 0
        for value in values:
            write(key, value)
            n += 1
        return n
    return write_values


def position(frame: Any) -> Optional[str]:
    """Where the task running in ``frame``'s thread is, read off the kernel loop's frame:
    the record (file and line) of a map task, the key of a reduce task; None if no kernel
    loop is on the stack.  For a task that times out (see mapreduce.pool)."""
    while frame is not None:
        code = frame.f_code
        if code is run_map.__code__ or code is _map_skipping.__code__:
            local = frame.f_locals
            split, index = local.get("split"), local.get("index", -1)
            live = getattr(local.get("collector"), "progress", None)
            if live is not None:  # CombiningBuffer.map_records: run_map's index is not live
                index = live[0]
            method = local.get("method", "mapper")
            if split is not None and method == "mapper":
                return f"{record_location(split, index)} (in the mapper)"
            return f"{local.get('describe', 'the map task')} (in {method})"
        if code is run_reduce.__code__:
            local = frame.f_locals
            return (f"key {local.get('key')!r} of partition {local.get('partition')} "
                    f"(in {local.get('method')})")
        frame = frame.f_back
    return None


__all__ = ["run_map", "run_reduce", "MapOutcome", "ReduceOutcome", "SortBuffer",
           "NativeSortBuffer",
           "CombiningBuffer", "UserCodeError", "NotAPairError", "TooManyBadRecords",
           "RECORD_OVERHEAD", "split_records", "record_location", "split_bytes",
           "set_task_context", "reduce_error", "position"]
