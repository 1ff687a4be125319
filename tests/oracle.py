"""A naive, single-process reference implementation of a job run (the test oracle).

It re-implements the documented semantics with plain Python and no engine code except the
codec (key/value encodings) and the output line format:

* Input: each text file is read as lines (split on ``\\n``; one ``\\r`` before a ``\\n`` is
  dropped; a last line without newline is a line).  A plain file of ``size`` bytes larger than
  ``split_size`` is cut into ``ceil(size / split_size)`` map tasks; a line belongs to the task
  whose byte range holds its *first byte*.  Files of at most ``split_size`` bytes (empty ones
  too) are packed: consecutive ones share one map task, read one after the other, while
  their sizes add up to at most ``split_size`` (Hadoop's CombineFileInputFormat); such a
  task runs ``mapper_init`` / ``mapper_final`` around each of its files.  Map tasks run in
  file order, then offset order.
* Every task gets a fresh Job instance: ``*_init`` / ``*_final`` run once per task.
* Map output of a step with a reducer is grouped by encoded key with a *stable* sort of all
  map emissions in task order (no combiner: the jobs we check have associative, commutative
  combiners that cannot change the result).  Partition = ``crc32(encode_key(key)) % R``.
  With ``SORT_VALUES`` each key's values are sorted in their natural order instead.
* A reducer sees the canonical key (``decode_key(encode_key(k))``) and the values as they
  come back from the value encoding (msgpack; under SORT_VALUES the key encoding).
* Final step: part file per reduce partition (or per map task when map-only) holding
  ``format_line(k, v)`` for every output pair in order (``OUTPUT_PROTOCOL = "raw_value"``:
  the value alone and a newline).  Intermediate step: each output
  (partition order, or map task order when map-only) becomes one map task of the next step,
  its records round-tripped through the encodings.
* ``prepare()`` runs once, on a job instance of its own, with the input paths; every task's
  job gets what it returned as ``side_data``.  A job overriding ``partitioner`` has its
  partition chosen by ``partitioner(key as emitted, R)`` instead of the hash; one defining
  ``total_order_split_points`` by ``bisect.bisect_right`` over the points in their natural
  order (:func:`natural_key`; the engine compares encoded bytes instead).
* With ``skip_bad_records``, a record whose mapper raises is dropped whole (none of its pairs
  kept) and counted in ``SKIPPED_RECORDS``; it still counts as a map input record.
"""
from __future__ import annotations

import bisect
import itertools
import math
import os
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from mapreduce.codec import decode_key, decode_value, encode_key, encode_value
from mapreduce.output import format_line

FRAMEWORK = "framework"


# --- input ---------------------------------------------------------------------------------
def file_lines(data: bytes) -> list[tuple[int, str]]:
    """``(offset of the line's first byte, text)`` for every line of a file's content."""
    out = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            raw, nxt = data[pos:], len(data)
        else:
            raw, nxt = data[pos:nl], nl + 1
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        out.append((pos, raw.decode("utf-8")))
        pos = nxt
    return out


class Packed(list):
    """A map task's records that come from several packed files; ``segments`` holds them
    file by file (the per-task hooks run around each)."""

    def __init__(self) -> None:
        super().__init__()
        self.segments: list[list[tuple[Any, Any]]] = []


def text_map_tasks(files: list[bytes], split_size: int) -> list[list[tuple[Any, Any]]]:
    """The records ``(None, line)`` of every map task of a text input, in task order."""
    tasks: list[list[tuple[Any, Any]]] = []
    pack: Optional[Packed] = None
    pack_bytes = 0
    for data in files:
        if len(data) <= split_size:
            if pack is None or pack_bytes + len(data) > split_size:
                pack, pack_bytes = Packed(), 0
                tasks.append(pack)
            segment = [(None, line) for _offset, line in file_lines(data)]
            pack.segments.append(segment)
            pack.extend(segment)
            pack_bytes += len(data)
            continue
        pack = None
        n = math.ceil(len(data) / split_size)
        mine: list[list[tuple[Any, Any]]] = [[] for _ in range(n)]
        for offset, line in file_lines(data):
            mine[offset // split_size].append((None, line))
        tasks.extend(mine)
    return tasks


# --- natural order for SORT_VALUES (independent of the key encoding) -----------------------
def natural_key(v: Any) -> tuple:
    if v is None:
        return (0,)
    if isinstance(v, (bool, int, float)):
        return (1, v)
    if isinstance(v, str):
        return (2, v)
    if isinstance(v, bytes):
        return (3, v)
    if isinstance(v, (tuple, list)):
        return (4, tuple(natural_key(e) for e in v))
    raise TypeError(f"not an orderable value: {v!r}")


# --- running ---------------------------------------------------------------------------------
@dataclass
class Expected:
    parts: dict[str, bytes]                    # part file name -> content
    counters: dict[str, int]                   # framework counters the oracle can predict
    user_counters: dict[str, dict[str, int]] = field(default_factory=dict)


def _pairs(result: Optional[Iterable[Any]]) -> list[tuple[Any, Any]]:
    return [] if result is None else [(k, v) for k, v in result]


def _roundtrip(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    return [(decode_key(encode_key(k)), decode_value(encode_value(v))) for k, v in pairs]


def part_name(i: int) -> str:
    return f"part-{i:05d}"


def run_oracle(job_class: type, files: list[bytes], split_size: int, reducers: int, *,
               input_paths: Optional[list[str]] = None,
               skip_bad_records: bool = False) -> Expected:
    counters: dict[str, int] = {}
    side_data: dict = {}
    if "prepare" in _overridden(job_class):
        assert input_paths is not None, "a job with prepare() needs input_paths"
        side_data = job_class().prepare(list(input_paths)) or {}
    custom_partitioner = "partitioner" in _overridden(job_class)
    total_order = "total_order_split_points" in _overridden(job_class)

    def new_job() -> Any:
        job = job_class()
        job.side_data = side_data
        return job
    user: dict[tuple[str, str], int] = {}

    def bump(name: str, n: int) -> None:
        counters[name] = counters.get(name, 0) + n

    def take_user(job: Any) -> None:
        for k, n in job._take_counters().items():
            user[k] = user.get(k, 0) + n

    nsteps = len(job_class().steps())
    has_combiner = False
    tasks = text_map_tasks(files, split_size)
    parts: dict[str, bytes] = {}
    for s in range(nsteps):
        final = s == nsteps - 1
        # --- map phase: one fresh job per task ---------------------------------------------
        emitted: list[list[tuple[Any, Any]]] = []
        map_only = None
        for records in tasks:
            job = new_job()
            step = job.steps()[s]
            map_only = step.reducer is None
            has_combiner |= step.combiner is not None
            out: list[tuple[Any, Any]] = []
            if step.combiner_init is not None and not map_only:
                out += _pairs(step.combiner_init())
            for segment in getattr(records, "segments", None) or [records]:
                if step.mapper_init is not None:
                    out += _pairs(step.mapper_init())
                for key, value in segment:
                    if step.mapper is None:
                        out.append((key, value))
                    elif skip_bad_records:
                        try:
                            mine = _pairs(step.mapper(key, value))
                        except Exception:
                            bump("SKIPPED_RECORDS", 1)
                            continue
                        out += mine
                    else:
                        out += _pairs(step.mapper(key, value))
                if step.mapper_final is not None:
                    out += _pairs(step.mapper_final())
            if step.combiner_final is not None and not map_only:
                out += _pairs(step.combiner_final())
            take_user(job)
            if s == 0:  # job level: the job's input (docs/job-json.md)
                bump("MAP_INPUT_RECORDS", len(records))
            bump("MAP_OUTPUT_RECORDS", len(out))
            emitted.append(out)
        if map_only:
            if final:  # job level: the job's output
                bump("OUTPUT_RECORDS", sum(len(o) for o in emitted))
            outputs = emitted
        else:
            # --- shuffle: stable sort of every emission, in task order ---------------------
            sort_values = bool(job_class.SORT_VALUES)
            everything = [(k, encode_key(k), v) for o in emitted for k, v in o]
            bump("REDUCE_INPUT_RECORDS", len(everything))
            by_part: list[list[tuple[bytes, Any]]] = [[] for _ in range(reducers)]
            chooser = new_job()
            if total_order:  # Python's bisect over the natural order, not encoded bytes
                points = [natural_key(x) for x in chooser.total_order_split_points(reducers)]
            for k, kb, v in everything:
                if total_order:
                    p = bisect.bisect_right(points, natural_key(k))
                else:
                    p = (chooser.partitioner(k, reducers) if custom_partitioner
                         else zlib.crc32(kb) % reducers)
                by_part[p].append((kb, v))
            outputs = []
            for p in range(reducers):
                records = sorted(by_part[p], key=lambda r: r[0])  # stable
                job = new_job()
                step = job.steps()[s]
                out = []
                if step.reducer_init is not None:
                    out += _pairs(step.reducer_init())
                groups = 0
                for kb, group in itertools.groupby(records, key=lambda r: r[0]):
                    groups += 1
                    if sort_values:
                        values = sorted((decode_key(encode_key(v)) for _, v in group),
                                        key=natural_key)
                    else:
                        values = [decode_value(encode_value(v)) for _, v in group]
                    out += _pairs(step.reducer(decode_key(kb), iter(values)))
                if step.reducer_final is not None:
                    out += _pairs(step.reducer_final())
                take_user(job)
                bump("REDUCE_INPUT_GROUPS", groups)
                bump("REDUCE_OUTPUT_RECORDS", len(out))
                if final:
                    bump("OUTPUT_RECORDS", len(out))
                outputs.append(out)
        if final:
            raw = getattr(job_class, "OUTPUT_PROTOCOL", "json") == "raw_value"
            for i, out in enumerate(outputs):
                if raw:  # the value alone, one per line (str as UTF-8, bytes as they are)
                    parts[part_name(i)] = b"".join(
                        (v.encode("utf-8") if isinstance(v, str) else bytes(v)) + b"\n"
                        for _, v in out)
                else:
                    parts[part_name(i)] = "".join(format_line(k, v)
                                                  for k, v in out).encode("utf-8")
        else:
            tasks = [_roundtrip(o) for o in outputs]
    if has_combiner:
        counters.pop("REDUCE_INPUT_RECORDS", None)  # the combiner shrinks it
    tree: dict[str, dict[str, int]] = {}
    for (group, name), n in sorted(user.items()):
        tree.setdefault(group, {})[name] = n
    return Expected(parts, counters, tree)


def _overridden(job_class: type) -> set[str]:
    """Names of the Job methods ``job_class`` (or a base below Job) defines itself."""
    from mapreduce.job import Job
    return {name for name in ("prepare", "partitioner", "total_order_split_points")
            if getattr(job_class, name) is not getattr(Job, name)}


def write_inputs(directory: str, files: list[bytes]) -> list[str]:
    """Write each of ``files`` (contents) as ``input-N.txt`` in ``directory``: the paths, in
    order (the oracle numbers its map tasks in the same order)."""
    paths = []
    for i, data in enumerate(files):
        path = os.path.join(directory, f"input-{i}.txt")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths


def read_parts(output_dir: str) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(output_dir)):
        if name.startswith("part-"):
            with open(os.path.join(output_dir, name), "rb") as f:
                out[name] = f.read()
    return out
