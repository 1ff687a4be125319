"""The shuffle protocol, and the in-memory back end (``--mode memory``).

A shuffle back end moves map output to reduce tasks.  The coordinator holds a
:class:`Shuffle` and asks it for small, picklable *specs* that are shipped to worker processes
inside task descriptions; there the task code calls them without knowing which back end it
got (the runner injects the back end, task code never branches on the mode):

* :meth:`Shuffle.map_sink` -> a :class:`MapSink`: receives each sorted, combined spill of a
  map task (``spill``) and at the end produces the task's :class:`MapOutput` (``finish``).
* :meth:`Shuffle.reduce_source` -> a :class:`ReduceSource`: yields one partition's records
  from every map output, merged in key order.
* :meth:`Shuffle.pair_sink` -> a :class:`PairSink`: the output of a non-final step (or of a
  map-only step that is not the last), which the next step reads back through
  :meth:`Shuffle.step_input`.

Records are ``(key_bytes, value_bytes)`` pairs (see :mod:`mapreduce.codec`).  Ordering is
by key bytes only, and every merge is *stable*: records with equal keys keep the order of
their runs (spill order inside a map task, map-task order across tasks).  So without
``SORT_VALUES`` a reducer sees a key's values in the order the mappers emitted them over the
input, whatever the split size, worker count, sort buffer or merge factor.  With
``SORT_VALUES`` the value bytes are order-preserving too and records sort by (key, value).

The memory back end keeps map output in RAM: a map task returns each partition as one packed
byte string (msgpack of the flat record list) to the coordinator, which hands the strings of
partition r to reduce task r.  Nothing touches disk, and the sort buffer, spills and combiner
calls are exactly those of the disk back end, so both modes produce byte-identical output.

With the C core active (:mod:`mapreduce.core`, ``docs/core.md``) the merge is
``_core.Merge``, the reduce loop's grouping by key with batched value decoding is
``_core.GroupBy`` (:func:`grouped_values`), and memory mode packs and unpacks partitions with
``_core.BlockPacker`` / ``unpack_pairs``; the Python code here stays the reference.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from itertools import accumulate, chain, groupby, islice, repeat, tee
from operator import itemgetter
from typing import Any, Iterable, Iterator, Optional

from mapreduce.codec import (decode_key, decode_value, decode_value_unchecked,
                             decode_values_unchecked, unpack_values)
from mapreduce.core import native
from mapreduce.runfile import pack_flat, unpack_flat

Record = tuple  # (key_bytes, value_bytes)
_KEY = itemgetter(0)
_VALUE = itemgetter(1)
_unpack_values = unpack_values


def merge_blocks(runs: list[Iterator[list[Record]]], sort_values: bool) -> Iterator[list[Record]]:
    """Stable k-way merge of sorted runs given as blocks (lists of records); yields batches.

    With the C core active this is ``_core.Merge``: a loser tree over the runs' current
    records (ties to the lower run: stable) that yields the records taken so far whenever a
    run's block is used up, before reading that run's next block -- the same records in the
    same order, in batches of at most one block per run, so the same memory bound.  C
    requires records to be ``(bytes, bytes)`` tuples (TypeError otherwise), which is all the
    engine passes.  The pure-Python merge below is the reference:

    Instead of a per-record heap (``heapq.merge`` runs Python code for every record), each
    round holds one block per run and emits everything that is already final, letting
    Timsort -- which finds the sorted slices and merges them in C -- order the batch:

    * ``bound`` = the smallest last key among the current blocks; every record of any run
      with a key below ``bound`` is final;
    * records *equal* to ``bound`` are final for runs up to and including ``first``, the
      first run whose block ends at ``bound`` (runs before it hold all their ``bound``
      records already; ``first``'s later blocks follow its current ones, and runs after it
      must wait, which keeps equal keys in run order -- stability);
    * ``first``'s block is then used up and its next block is read.

    Each round consumes a whole block, so memory stays at one block per run, even when one
    key spans many blocks.  Under ``sort_values`` records compare as whole (key, value)
    tuples; otherwise by key bytes only.
    """
    key = None if sort_values else _KEY
    blocks: list[list[Record]] = []
    sources: list[Iterator[list[Record]]] = []
    for run in runs:
        it = iter(run)
        for block in it:
            if block:
                blocks.append(block)
                sources.append(it)
                break
    while len(blocks) > 1:
        lasts = [b[-1] if sort_values else b[-1][0] for b in blocks]
        bound = min(lasts)
        first = lasts.index(bound)
        batch: list[Record] = []
        for i, block in enumerate(blocks):
            if i == first:
                batch.extend(block)
                blocks[i] = []
                continue
            cut = (bisect_right if i < first else bisect_left)(block, bound, key=key)
            if cut:
                batch.extend(block[:cut])
                blocks[i] = block[cut:]
        batch.sort(key=key)  # stable; the slices are sorted runs in run order
        yield batch
        kept_blocks, kept_sources = [], []
        for block, source in zip(blocks, sources):
            if not block:
                block = next((b for b in source if b), None)
                if block is None:
                    continue
            kept_blocks.append(block)
            kept_sources.append(source)
        blocks, sources = kept_blocks, kept_sources
    if blocks:  # one run left: pass its blocks through
        yield blocks[0]
        yield from sources[0]


#: The pure-Python merge, whichever core is active (the reference tests compare C with).
py_merge_blocks = merge_blocks
if native is not None:
    merge_blocks = native.Merge  # noqa: F811 -- same batches' records, in C


def record_blocks(records: Iterable[Record], size: int = 4096) -> Iterator[list[Record]]:
    """Cut a record iterable into blocks for :func:`merge_blocks`."""
    if isinstance(records, list):
        yield records
        return
    it = iter(records)
    while True:
        block = list(islice(it, size))
        if not block:
            return
        yield block


def merge_sorted(runs: list[Iterable[Record]], sort_values: bool) -> Iterator[Record]:
    """Stable k-way merge of sorted record runs (records with equal keys keep run order)."""
    if len(runs) == 1:
        return iter(runs[0])
    return chain.from_iterable(merge_blocks([record_blocks(r) for r in runs], sort_values))


def flat_pairs(flat: list[bytes]) -> Iterator[Record]:
    it = iter(flat)
    return zip(it, it)


@dataclass
class MapOutput:
    """What a committed map task produced for the reducers (picklable, small for disk)."""

    location: Any                       # disk: file path; memory: list of packed bytes
    partition_records: list[int]
    partition_bytes: list[int]          # bytes a reducer reads for each partition


class MapSink(ABC):
    """Receives one map attempt's sorted spills; lives in the worker."""

    counters: dict

    @abstractmethod
    def spill(self, partitions: list[list[Record]]) -> None:
        """Take one sorted run per partition (lists may be empty)."""

    @abstractmethod
    def finish(self) -> MapOutput:
        """Merge the spills into the attempt's map output."""


class ReduceSource(ABC):
    counters: dict

    @abstractmethod
    def open_batches(self) -> Iterator[list[Record]]:
        """The partition's records from every map output, merged by key (stable), in
        batches: lists of records, a merge round's worth (a few blocks), or a whole run
        that the memory back end passes through unmerged."""

    def open(self) -> Iterator[Record]:
        """:meth:`open_batches`, flattened to records."""
        return chain.from_iterable(self.open_batches())


class PairSink(ABC):
    """Unsorted output of an intermediate step, in emission order."""

    @abstractmethod
    def write(self, key_bytes: bytes, value_bytes: bytes) -> None: ...

    @abstractmethod
    def finish(self) -> tuple[Any, int]:
        """Return (location, bytes written)."""


class StepInput(ABC):
    """Records of an intermediate step's output, read as the next step's input split."""

    @abstractmethod
    def records(self) -> Iterator[tuple[Any, Any]]: ...

    @abstractmethod
    def describe(self) -> str: ...


class Shuffle(ABC):
    """Coordinator-side factory of the specs above."""

    name: str
    #: Do committed map and step outputs survive the coordinator (so they may be journaled)?
    durable: bool

    @abstractmethod
    def verify(self, location: Any) -> bool:
        """Is a committed output still intact (every checksum read and checked)?"""

    @abstractmethod
    def map_sink(self, prefix: str, num_partitions: int, merge_factor: int,
                 sort_values: bool) -> MapSink: ...

    @abstractmethod
    def commit_map_output(self, output: MapOutput, final_path: str) -> MapOutput: ...

    @abstractmethod
    def reduce_source(self, outputs: list[MapOutput], partition: int, prefix: str,
                      merge_factor: int, sort_values: bool) -> ReduceSource: ...

    @abstractmethod
    def pair_sink(self, prefix: str) -> PairSink: ...

    @abstractmethod
    def commit_step_output(self, location: Any, final_path: str) -> Any: ...

    @abstractmethod
    def step_input(self, location: Any, label: str) -> StepInput: ...


def merge_into_partitions(spills: list[list[list[Record]]], num_partitions: int,
                          sort_values: bool) -> Iterator[tuple[int, Iterator[Record]]]:
    """For each partition, the stable merge of that partition across in-memory spills."""
    for p in range(num_partitions):
        runs = [s[p] for s in spills if s[p]]
        yield p, merge_sorted(runs, sort_values) if runs else iter(())


# --- the in-memory back end --------------------------------------------------------------
@dataclass
class MemoryMapSink(MapSink):
    num_partitions: int
    sort_values: bool
    spills: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)

    def spill(self, partitions: list[list[Record]]) -> None:
        self.spills.append(partitions)

    def finish(self) -> MapOutput:
        packed, records, sizes = [], [], []
        for _, merged in merge_into_partitions(self.spills, self.num_partitions, self.sort_values):
            if native is not None:
                # One block without a size limit is exactly pack_flat's bytes.
                packer = native.BlockPacker(_UNBOUNDED)
                packer.add_pairs(list(merged))
                data, count, _ = packer.flush() or (pack_flat([]), 0, 0)
            else:
                flat = [b for rec in merged for b in rec]
                data = pack_flat(flat)
                count = len(flat) // 2
            packed.append(data)
            records.append(count)
            sizes.append(len(data))
        self.spills = []
        return MapOutput(packed, records, sizes)


#: A BlockPacker target no partition reaches: memory mode packs a partition as one array.
_UNBOUNDED = 1 << 62


@dataclass
class MemoryReduceSource(ReduceSource):
    packed_runs: list[bytes]
    sort_values: bool
    counters: dict = field(default_factory=dict)
    record_counts: Optional[list[int]] = None  # of each packed run, when known

    def open_batches(self) -> Iterator[list[Record]]:
        counts = self.record_counts or [None] * len(self.packed_runs)
        runs = [[_unpack_run(data, count)] for data, count in zip(self.packed_runs, counts)]
        return merge_blocks(runs, self.sort_values)


def _unpack_run(data: bytes, count: Optional[int]) -> list[Record]:
    """A packed memory-mode run as records (in C when the core is and the count is known)."""
    if native is not None and count is not None:
        pairs = native.unpack_pairs(data, count)
        if pairs is not None:
            return pairs
    return list(flat_pairs(unpack_flat(data)))


@dataclass
class MemoryPairSink(PairSink):
    flat: list = field(default_factory=list)

    def write(self, key_bytes: bytes, value_bytes: bytes) -> None:
        self.flat.append(key_bytes)
        self.flat.append(value_bytes)

    def finish(self) -> tuple[Any, int]:
        data = pack_flat(self.flat)
        self.flat = []
        return data, len(data)


@dataclass
class MemoryStepInput(StepInput):
    data: bytes
    label: str

    def records(self) -> Iterator[tuple[Any, Any]]:
        for kb, vb in flat_pairs(unpack_flat(self.data)):
            yield decode_key(kb), decode_value(vb)

    def describe(self) -> str:
        return self.label


class MemoryShuffle(Shuffle):
    """Map outputs travel through the coordinator's memory; nothing is written to disk."""

    name = "memory"
    durable = False

    def verify(self, location: Any) -> bool:
        return False  # lost with the coordinator that held it

    def map_sink(self, prefix: str, num_partitions: int, merge_factor: int,
                 sort_values: bool) -> MapSink:
        return MemoryMapSink(num_partitions, sort_values)

    def commit_map_output(self, output: MapOutput, final_path: str) -> MapOutput:
        return output

    def reduce_source(self, outputs: list[MapOutput], partition: int, prefix: str,
                      merge_factor: int, sort_values: bool) -> ReduceSource:
        used = [o for o in outputs if o.partition_records[partition]]
        return MemoryReduceSource([o.location[partition] for o in used], sort_values,
                                  record_counts=[o.partition_records[partition] for o in used])

    def pair_sink(self, prefix: str) -> PairSink:
        return MemoryPairSink()

    def commit_step_output(self, location: Any, final_path: str) -> Any:
        return location

    def step_input(self, location: Any, label: str) -> StepInput:
        return MemoryStepInput(location, label)


#: Values are decoded at most this many, and at most this many encoded bytes' worth (or one
#: value, if it is larger), at a time: the bound on what is decoded ahead of the reducer.
DECODE_BATCH = 4096
DECODE_BATCH_BYTES = 1 << 20


def grouped_values(batches: Iterable[list[Record]],
                   sort_values: bool) -> Iterator[tuple[bytes, Iterator[Any]]]:
    """``(key bytes, values)`` once per run of equal keys in the merged ``batches``: what the
    reduce loop hands its reducer (the key is decoded there, once per group).  ``values``
    is a lazy iterator of the group's decoded values that streams across batches and
    decode slices, so a group bigger than memory is never collected; the semantics are
    ``itertools.groupby``'s: advancing to the next group skips what is left of this one,
    and a values iterator of a group already left yields nothing.

    With the C core active and without ``SORT_VALUES`` this is ``_core.GroupBy``: the
    same groups, the same values, decoded in the same slices at the same moments (so a
    value that fails to decode raises the same error at the same point), with no Python
    step per record.  ``SORT_VALUES`` values are key encodings, decoded one by one: that
    step keeps the reference :func:`py_grouped_values` under both cores.
    """
    if sort_values or native is None:
        return py_grouped_values(batches, sort_values)
    return native.GroupBy(batches, _unpack_values, DECODE_BATCH, DECODE_BATCH_BYTES)


def py_grouped_values(batches: Iterable[list[Record]],
                      sort_values: bool) -> Iterator[tuple[bytes, Iterator[Any]]]:
    """The reference of :func:`grouped_values`: ``groupby`` over :func:`decoded_records`,
    each group's values ``map(itemgetter(1), group)`` (C builtins, but a tuple, a key
    compare and an itemgetter call per record).

    Built from builtins only, so the pure-Python core pays no Python frame per group (a
    generator here cost about 250 ns a group, 45% of a reduce loop over unique keys; this
    costs about 35 ns, 360 instructions: docs/performance.md).  ``tee`` hands each
    ``(key, group)`` to both branches in the same ``zip`` step, so the groupby advances --
    leaving the previous group, as ``groupby`` requires -- only when the loop asks for the
    next group."""
    keys, groups = tee(groupby(decoded_records(batches, sort_values), _KEY))
    return zip(map(_KEY, keys), map(map, repeat(_VALUE), map(_VALUE, groups)))


def decoded_records(batches: Iterable[list[Record]],
                    sort_values: bool) -> Iterator[tuple[bytes, Any]]:
    """``(key bytes, decoded value)`` for every record of ``batches``, in order: what the
    reduce loop groups.  Keys stay encoded (they are decoded once per group); msgpack values
    are decoded a slice at a time (:func:`~mapreduce.codec.decode_values_unchecked`), one C
    call per slice instead of one per value.  ``SORT_VALUES`` values are key encodings and
    are decoded lazily, one by one."""
    if sort_values:
        return chain.from_iterable(map(_decode_key_encoded_values, batches))
    return chain.from_iterable(_decode_msgpack_values(batches))


def _decode_msgpack_values(batches: Iterable[list[Record]]) -> Iterator[Iterator[Record]]:
    if native is not None:
        return _decode_msgpack_values_c(batches)
    return _decode_msgpack_values_py(batches)


def _decode_msgpack_values_c(batches: Iterable[list[Record]]) -> Iterator[Iterator[Record]]:
    """The C core cuts the same slices as :func:`decode_slices` and builds each slice's
    msgpack array straight from the records (``_core.value_payloads``); msgpack decodes it."""
    payloads = native.value_payloads
    for batch in batches:
        if type(batch) is not list:
            batch = list(batch)
        for start, stop, data in payloads(batch, DECODE_BATCH, DECODE_BATCH_BYTES):
            keys = batch if stop - start == len(batch) else batch[start:stop]
            yield zip(map(_KEY, keys), _unpack_values(data))


def _decode_msgpack_values_py(batches: Iterable[list[Record]]) -> Iterator[Iterator[Record]]:
    for batch in batches:
        values = list(map(_VALUE, batch))
        for start, stop in decode_slices(values):
            if stop - start == len(batch):  # the usual case: the whole batch, no copies
                yield zip(map(_KEY, batch), decode_values_unchecked(values))
            else:
                yield zip(map(_KEY, batch[start:stop]),
                          decode_values_unchecked(values[start:stop]))


def decode_slices(values: list[bytes]) -> list[tuple[int, int]]:
    """``(start, stop)`` slices of ``values`` to decode together: at most DECODE_BATCH values
    and DECODE_BATCH_BYTES of them (a larger value goes alone).  Merge batches are normally
    already that small; the memory back end's single-run pass-through hands over a whole
    partition, and large values make a few records a megabyte."""
    n = len(values)
    if n <= DECODE_BATCH and sum(map(len, values)) <= DECODE_BATCH_BYTES:
        return [(0, n)] if n else []
    ends = list(accumulate(map(len, values)))  # ends[i]: bytes of values[:i + 1]
    slices = []
    start = 0
    while start < n:
        limit = (ends[start - 1] if start else 0) + DECODE_BATCH_BYTES
        stop = max(start + 1, bisect_right(ends, limit, start, min(n, start + DECODE_BATCH)))
        slices.append((start, stop))
        start = stop
    return slices


def _decode_key_encoded_values(batch: list[Record]) -> Iterator[tuple[bytes, Any]]:
    return zip(map(_KEY, batch), map(decode_key, map(_VALUE, batch)))


def value_decoder(sort_values: bool):
    """Values are msgpack normally, order-preserving key bytes under SORT_VALUES.  (The
    msgpack decoder is the frameless one: this is called once per value a reducer reads.)"""
    return decode_key if sort_values else decode_value_unchecked


__all__ = [
    "MapOutput", "MapSink", "ReduceSource", "PairSink", "StepInput", "Shuffle",
    "MemoryShuffle", "merge_sorted", "merge_blocks", "record_blocks",
    "flat_pairs", "merge_into_partitions", "value_decoder", "decoded_records", "decode_slices",
    "grouped_values",
]
