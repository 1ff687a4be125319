"""Fuzz the C core's decoders with atheris: every input must give the Python result.

    python tests/fuzz_core.py -runs=200000              # a bounded run (the slow test: 20k)
    python tests/fuzz_core.py -max_total_time=1800      # the longer run docs/core.md asks for
    python tests/fuzz_core.py CORPUS_DIR -max_total_time=600   # keep what it finds

Targets, picked by the first input byte:

* ``decode_key``: C and Python give the same value or the same exception and message;
* ``unpack_pairs`` / ``unpack_flat`` on an arbitrary payload and record count (as if a block
  passed its CRC check with bytes no writer made): exactly what msgpack gives when that is
  an array of ``2 * count`` byte strings, and None (the caller's msgpack path) otherwise;
* a whole run file: the C and the Python reader give the same records or the same
  ``CorruptDataError`` (most inputs stop at a checksum, which is the point of the checks);
* ``BlockPacker`` on records cut from the input: its payloads are msgpack's bytes.

Coverage feedback comes from the instrumented Python reference (codec, runfile); the C code
is not instrumented (that needs clang's ``-fsanitize=fuzzer-no-link``; gcc is what we have),
so the fuzzer steers by the Python paths the inputs take and the C code sees every input.
Combine with the sanitizer build (docs/core.md) to catch memory errors, not just wrong
answers.  Exits non-zero with the input saved as ``crash-*`` on the first disagreement.
"""
from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import msgpack

    from mapreduce import codec, runfile

from mapreduce import _core  # noqa: E402 -- C, not instrumented

_core.set_reference(codec.py_encode_key, codec.py_decode_key)
_TMP = tempfile.mkdtemp(prefix="fuzz-core-")
_PATH = os.path.join(_TMP, "fuzz.run")


def _outcome(f, *args):
    try:
        result = f(*args)
    except Exception as exc:  # noqa: BLE001
        return ("raised", type(exc), str(exc))
    return ("returned", type(result), repr(result))


def _check_decode_key(data: bytes) -> None:
    c, py = _outcome(_core.decode_key, data), _outcome(codec.py_decode_key, data)
    if c != py:
        raise AssertionError(f"decode_key({data!r}): C {c} != Python {py}")


def _check_unpack(data: bytes, count: int) -> None:
    try:
        ref = msgpack.unpackb(data, use_list=True)
    except Exception:  # noqa: BLE001
        ref = None
    good = (type(ref) is list and len(ref) == 2 * count
            and all(type(x) is bytes for x in ref))
    flat = _core.unpack_flat(data, count)
    pairs = _core.unpack_pairs(data, count)
    # msgpack gives bytes only for bin objects, so a good payload is one C must take
    want_flat = ref if good else None
    want_pairs = list(zip(ref[::2], ref[1::2])) if good else None
    if flat != want_flat or pairs != want_pairs:
        raise AssertionError(f"unpack({data!r}, {count}): C {flat!r} / {pairs!r}, "
                             f"msgpack {ref!r}")


def _read_all(use_c: bool):
    old = runfile.native
    runfile.native = _core if use_c else None
    try:
        def read():
            with runfile.RunReader(_PATH) as r:
                return [(list(r.iter_partition_flat(p)), list(r.iter_partition_blocks(p)))
                        for p in range(r.num_partitions)]
        return _outcome(read)
    finally:
        runfile.native = old


def _check_run_file(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    c, py = _read_all(True), _read_all(False)
    if c != py:
        raise AssertionError(f"run file {data!r}: C {c} != Python {py}")


def _check_packer(fdp: atheris.FuzzedDataProvider) -> None:
    limit = fdp.ConsumeIntInRange(1, 300)
    recs = []
    while fdp.remaining_bytes() and len(recs) < 50:
        recs.append((fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40)),
                     fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))))
    packer = _core.BlockPacker(limit)
    blocks = packer.add_pairs(recs)
    last = packer.flush()
    if last is not None:
        blocks.append(last)
    flat = [b for block in blocks for b in msgpack.unpackb(block[0])]
    if flat != [b for r in recs for b in r]:
        raise AssertionError(f"BlockPacker({limit}) lost or changed records: {recs!r}")
    for data, n, _ in blocks:
        if data != msgpack.packb(msgpack.unpackb(data), use_bin_type=True) or n < 1:
            raise AssertionError(f"BlockPacker payload is not msgpack's bytes: {data!r}")


def one_input(data: bytes) -> None:
    if not data:
        return
    fdp = atheris.FuzzedDataProvider(data)
    target = fdp.ConsumeIntInRange(0, 3)
    if target == 0:
        _check_decode_key(fdp.ConsumeBytes(fdp.remaining_bytes()))
    elif target == 1:
        count = fdp.ConsumeIntInRange(0, 40)
        _check_unpack(fdp.ConsumeBytes(fdp.remaining_bytes()), count)
    elif target == 2:
        _check_run_file(fdp.ConsumeBytes(fdp.remaining_bytes()))
    else:
        _check_packer(fdp)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
