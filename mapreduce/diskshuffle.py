"""The disk shuffle back end (``--mode disk``, the default).

Map side: every time a map task's sort buffer fills, :class:`DiskMapSink.spill` writes the
sorted, combined records as one run file (all partitions, see ``docs/run-format.md``) in the
attempt's directory.  At the end of the task, ``finish`` merges the spills partition by
partition into one map output file with a per-partition index.  More spills than
``--merge-factor`` are first merged in intermediate passes of at most that many files each, so
no merge ever holds more than ``merge-factor`` open runs (one block of each in memory).

Reduce side: :class:`DiskReduceSource` reads partition r of every committed map output.  With
more runs than the merge factor it merges consecutive groups into single-partition run files
in the attempt directory (an on-disk merge pass), until the final merge is at most
merge-factor wide; the final merge streams straight into the reducer.

Merges only ever combine *consecutive* runs, which keeps every merge stable (see
:mod:`mapreduce.shuffle`).  Memory is bounded by (merge factor x block size), never by the
size of a partition or of one key's values.
"""
from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from mapreduce.codec import decode_key, decode_value
from mapreduce.errors import CorruptDataError
from mapreduce.layout import commit_file
from mapreduce.runfile import RunReader, RunWriter, read_partition
from mapreduce.shuffle import (MapOutput, MapSink, PairSink, Record, ReduceSource, Shuffle,
                               StepInput, merge_blocks)

#: Flush a pair sink's buffered records to its run file every this many raw bytes.
PAIR_SINK_FLUSH_BYTES = 1 << 20


def _bump(counters: dict, name: str, amount: int = 1) -> None:
    key = ("framework", name)
    counters[key] = counters.get(key, 0) + amount


#: A run to merge: one partition of a run file, or ``(path, None)`` for all its partitions.
Run = tuple  # (path, partition or None)


def _merge_runs(runs: list[Run], out_path: str, num_partitions: int, sort_values: bool,
                fsync: bool) -> Any:
    """Merge ``runs`` (stable, in run order) into a new run file.

    Whole files (partition ``None``, the map side) merge partition by partition into a file
    with ``num_partitions`` partitions; single partitions (the reduce side) merge into a
    one-partition file.
    """
    with ExitStack() as stack:
        readers = [stack.enter_context(RunReader(path)) for path, _ in runs]
        whole_files = runs[0][1] is None
        with RunWriter(out_path, num_partitions if whole_files else 1) as writer:
            if whole_files:
                for p in range(num_partitions):
                    _write_merged(writer, p, [pair_blocks(r, p) for r in readers
                                              if r.partition_records(p)], sort_values)
            else:
                _write_merged(writer, 0, [pair_blocks(r, p) for r, (_, p) in zip(readers, runs)],
                              sort_values)
            return writer.close(fsync=fsync)


def _merge_passes(runs: list[Run], prefix: str, merge_factor: int, num_partitions: int,
                  sort_values: bool, counters: dict) -> list[Run]:
    """Intermediate merge passes until at most ``merge_factor`` runs are left.

    Each pass merges consecutive groups of ``merge_factor`` runs (consecutive: that keeps the
    merge stable) into files named after the attempt's ``prefix``, and deletes the inputs that
    were the attempt's own files (never a committed map output)."""
    level = 0
    while len(runs) > merge_factor:
        merged: list[Run] = []
        for i in range(0, len(runs), merge_factor):
            group = runs[i:i + merge_factor]
            if len(group) == 1:
                merged.append(group[0])
                continue
            out = f"{prefix}merge-{level}-{i // merge_factor:05d}.run"
            _merge_runs(group, out, num_partitions, sort_values, fsync=False)
            for path, _ in group:
                if path.startswith(prefix):
                    os.remove(path)
            merged.append((out, group[0][1] if group[0][1] is None else 0))
        runs = merged
        level += 1
        _bump(counters, "MERGE_PASSES")
    return runs


def pair_blocks(reader: RunReader, partition: int) -> Iterator[list[Record]]:
    """A partition of a run file as blocks of (key, value) pairs (one run-file block each)."""
    return reader.iter_partition_blocks(partition)


def _write_merged(writer: RunWriter, partition: int, runs: list[Iterator[list[Record]]],
                  sort_values: bool) -> None:
    """Merge ``runs`` into ``partition`` of ``writer`` a batch at a time (no per-record loop)."""
    append = writer.append_records
    for batch in merge_blocks(runs, sort_values):
        append(partition, batch)


@dataclass
class DiskMapSink(MapSink):
    prefix: str               # the attempt's file-name prefix (see mapreduce.layout)
    num_partitions: int
    merge_factor: int
    sort_values: bool
    spill_paths: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)

    def spill(self, partitions: list[list[Record]]) -> None:
        self._spill(lambda writer: [writer.write_partition(p, records)
                                    for p, records in enumerate(partitions) if records])

    def spill_sorted(self, buf: Any) -> None:
        """Spill a C sort buffer (``_core.SortBuffer``): each partition sorted and packed
        into the run file's blocks from the buffer's arena (the same bytes as spill())."""
        self._spill(lambda writer: [writer.write_sorted(p, buf)
                                    for p in range(self.num_partitions) if buf.count(p)])

    def _spill(self, write: Callable[[RunWriter], Any]) -> None:
        if not self.spill_paths:
            os.makedirs(os.path.dirname(self.prefix), exist_ok=True)
        path = f"{self.prefix}spill-{len(self.spill_paths):05d}.run"
        with RunWriter(path, self.num_partitions) as writer:
            write(writer)
            # Spills need no fsync: if the machine dies the whole attempt is redone anyway.
            stats = writer.close(fsync=False)
        self.spill_paths.append(path)
        _bump(self.counters, "SPILL_FILES")
        _bump(self.counters, "SPILLED_RECORDS", stats.records)
        _bump(self.counters, "SPILLED_BYTES", stats.file_bytes)

    def finish(self) -> MapOutput:
        os.makedirs(os.path.dirname(self.prefix), exist_ok=True)
        out = f"{self.prefix}map.out"
        runs = _merge_passes([(path, None) for path in self.spill_paths], self.prefix,
                             self.merge_factor, self.num_partitions, self.sort_values,
                             self.counters)
        paths = [path for path, _ in runs]
        if len(paths) == 1:
            os.replace(paths[0], out)
            with open(out, "rb+") as f:  # the map output must be durable before commit
                os.fsync(f.fileno())
        elif not paths:
            RunWriter(out, self.num_partitions).close(fsync=True)
        else:
            _merge_runs(runs, out, self.num_partitions, self.sort_values, fsync=True)
            for p in paths:
                os.remove(p)
            _bump(self.counters, "MERGE_PASSES")
        with RunReader(out) as reader:
            infos = [reader.partition_info(p) for p in range(self.num_partitions)]
        records = [info.records for info in infos]
        sizes = [info.end - info.offset for info in infos]  # what a reducer will read
        return MapOutput(out, records, sizes)


@dataclass
class DiskReduceSource(ReduceSource):
    paths: list[str]          # committed map outputs with records in this partition, map order
    partition: int
    prefix: str               # the attempt's file-name prefix
    merge_factor: int
    sort_values: bool
    counters: dict = field(default_factory=dict)

    def open_batches(self) -> Iterator[list[Record]]:
        runs: list[Run] = [(path, self.partition) for path in self.paths]
        if len(runs) > self.merge_factor:
            os.makedirs(os.path.dirname(self.prefix), exist_ok=True)
            runs = _merge_passes(runs, self.prefix, self.merge_factor, 1, self.sort_values,
                                 self.counters)
        return self._final_merge(runs)

    def _final_merge(self, runs: list[tuple[str, int]]) -> Iterator[list[Record]]:
        # Each reader lives as long as its block iterator and closes its file when collected.
        blocks = [pair_blocks(RunReader(path), p) for path, p in runs]
        return merge_blocks(blocks, self.sort_values)


@dataclass
class DiskPairSink(PairSink):
    path: str
    _writer: Any = None
    _flat: list = field(default_factory=list)
    _pending: int = 0

    def write(self, key_bytes: bytes, value_bytes: bytes) -> None:
        self._flat.append(key_bytes)
        self._flat.append(value_bytes)
        self._pending += len(key_bytes) + len(value_bytes)
        if self._pending >= PAIR_SINK_FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._writer = RunWriter(self.path, 1)
        if self._flat:
            self._writer.write_flat(0, self._flat)
        self._flat, self._pending = [], 0

    def finish(self) -> tuple[Any, int]:
        self._flush()
        stats = self._writer.close(fsync=True)
        return self.path, stats.file_bytes


@dataclass
class DiskStepInput(StepInput):
    path: str
    label: str

    def records(self) -> Iterator[tuple[Any, Any]]:
        for kb, vb in read_partition(self.path, 0):
            yield decode_key(kb), decode_value(vb)

    def describe(self) -> str:
        return self.label


class DiskShuffle(Shuffle):
    name = "disk"
    durable = True

    def verify(self, location: Any) -> bool:
        try:
            with RunReader(location) as reader:
                for p in range(reader.num_partitions):
                    for _ in reader.iter_partition_flat(p):
                        pass
        except CorruptDataError:
            return False
        return True

    def map_sink(self, prefix: str, num_partitions: int, merge_factor: int,
                 sort_values: bool) -> MapSink:
        return DiskMapSink(prefix, num_partitions, merge_factor, sort_values)

    def commit_map_output(self, output: MapOutput, final_path: str) -> MapOutput:
        commit_file(output.location, final_path, sync_dir=False)  # the runner fsyncs the dir
        return MapOutput(final_path, output.partition_records, output.partition_bytes)

    def reduce_source(self, outputs: list[MapOutput], partition: int, prefix: str,
                      merge_factor: int, sort_values: bool) -> ReduceSource:
        paths = [o.location for o in outputs if o.partition_records[partition]]
        return DiskReduceSource(paths, partition, prefix, merge_factor, sort_values)

    def pair_sink(self, prefix: str) -> PairSink:
        return DiskPairSink(f"{prefix}output.run")

    def commit_step_output(self, location: Any, final_path: str) -> Any:
        commit_file(location, final_path, sync_dir=False)  # the runner fsyncs the dir
        return final_path

    def step_input(self, location: Any, label: str) -> StepInput:
        return DiskStepInput(location, label)
