"""Benchmark inputs, generated with numpy directly (fast, deterministic, no framework code).

* :func:`zipf_text` -- whitespace-separated lowercase words whose frequencies follow Zipf's
  law, lines of 4..20 words separated by single spaces, ``\\n``-terminated, no empty lines,
  no leading or trailing blanks (so ``line.split()``, ``str.split()`` and
  ``tr -s ' ' '\\n'`` all see the same tokens).
* :func:`tera_records` -- TeraGen-style 100-byte records, the layout of ``jobs/teragen.py``::

      cols  0..9    key: 10 random characters in '!'..'~' (94 symbols)
      col   10      ' '
      cols 11..42   the row id, 32 upper-case hex digits, zero padded
      col   43      ' '
      cols 44..98   filler: 55 letters, the alphabet rotated by (row id mod 26)
      col   99      '\\n'

  The keys come from numpy's PCG64 (seeded per block of rows), not from teragen's
  splitmix64, so the bytes differ from ``jobs/teragen.py``'s while the format is the same.
  One row in a thousand copies the key of another row of its block, so ties occur and the
  comparison with ``sort -s`` checks that ties keep input order.
* :func:`tiny_files` -- ``count`` one-line files, for per-task overhead.

Every generator writes ``PATH`` plus ``PATH.meta.json`` (its parameters and the actual size)
and, called again with the same parameters while both exist and the size matches, reuses
the file instead of writing it again.  Output depends only on the parameters (the seed).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Callable

import numpy as np

GENERATOR_VERSION = 1
MiB = 1 << 20

# --------------------------------------------------------------------------------------------
# reuse
# --------------------------------------------------------------------------------------------


def _meta_path(path: str) -> str:
    return path + ".meta.json"


def _reusable(path: str, params: dict) -> bool:
    try:
        with open(_meta_path(path), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    if meta.get("params") != params:
        return False
    try:
        if os.path.isdir(path):
            return len(os.listdir(path)) == meta.get("files")
        return os.path.getsize(path) == meta.get("bytes")
    except OSError:
        return False


def _generate(path: str, params: dict, write: Callable[[str], dict]) -> tuple[str, bool]:
    """Write ``path`` with ``write(tmp_path)`` unless reusable; (path, reused)."""
    if _reusable(path, params):
        return path, True
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    for stale in (tmp, path):
        if os.path.isdir(stale):
            shutil.rmtree(stale)
    extra = write(tmp)
    os.replace(tmp, path)
    meta = {"params": params, **extra}
    with open(_meta_path(path), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return path, False


# --------------------------------------------------------------------------------------------
# Zipf text
# --------------------------------------------------------------------------------------------

LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
MAX_WORD = 12


def zipf_vocabulary(vocab: int, seed: int) -> list[bytes]:
    """``vocab`` distinct lowercase words of 2..12 letters, most frequent (rank 0) first;
    shorter words tend to get the higher ranks, as in natural language (with the default
    exponent 1.0 the mean token is about 4 letters, 5 bytes with its separator)."""
    rng = np.random.default_rng([seed, 0])
    words: set[bytes] = set()
    while len(words) < vocab:
        n = vocab - len(words)
        lengths = rng.integers(2, MAX_WORD + 1, size=n)
        lengths = np.minimum(lengths, rng.integers(2, MAX_WORD + 1, size=n))  # favour short
        letters = rng.integers(0, 26, size=(n, MAX_WORD))
        for row, length in zip(LETTERS[letters], lengths):
            words.add(row[:length].tobytes())
    ordered = sorted(words)                      # deterministic order before the noise
    noise = rng.normal(0.0, 3.0, size=len(ordered))
    order = np.argsort([len(w) + n for w, n in zip(ordered, noise)], kind="stable")
    return [ordered[i] for i in order]


def write_zipf_text(path: str, size: int, seed: int = 1, vocab: int = 100_000,
                    exponent: float = 1.0, chunk_tokens: int = 1 << 20) -> dict:
    """Write about ``size`` bytes (cut at a line end, never more) of Zipf text to ``path``."""
    words = zipf_vocabulary(vocab, seed)
    # Two rows per word: "word " and "word\n", zero-padded to a fixed width.
    table = np.zeros((2 * vocab, MAX_WORD + 1), dtype=np.uint8)
    for i, w in enumerate(words):
        table[i, :len(w)] = np.frombuffer(w, dtype=np.uint8)
        table[i, len(w)] = ord(" ")
        table[vocab + i, :len(w)] = np.frombuffer(w, dtype=np.uint8)
        table[vocab + i, len(w)] = ord("\n")
    weights = 1.0 / np.arange(1, vocab + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    rng = np.random.default_rng([seed, 1])
    written = tokens = lines = 0
    with open(path, "wb") as f:
        while written < size:
            ranks = np.searchsorted(cdf, rng.random(chunk_tokens), side="right")
            ranks = np.minimum(ranks, vocab - 1)
            # Line lengths 4..20 words; the chunk ends at a line end.
            per_line = rng.integers(4, 21, size=chunk_tokens // 4 + 1)
            ends = np.cumsum(per_line)
            ends = ends[ends <= chunk_tokens]
            ranks = ranks[:ends[-1]]
            eol = np.zeros(len(ranks), dtype=np.int64)
            eol[ends - 1] = vocab
            data = table[ranks + eol].ravel()
            data = data[data != 0].tobytes()
            if written + len(data) > size:           # cut at the last line end that fits
                cut = data.rfind(b"\n", 0, size - written) + 1
                data = data[:cut]
                if not data:
                    break
            f.write(data)
            written += len(data)
            lines += data.count(b"\n")
            tokens += len(data.split())  # cheap enough per chunk, exact
            if written >= size - 4 * MAX_WORD * 20:  # within one line of the target
                break
    return {"bytes": written, "tokens": tokens, "lines": lines}


def zipf_text(path: str, size: int, seed: int = 1) -> tuple[str, bool]:
    params = {"kind": "zipf_text", "version": GENERATOR_VERSION, "size": size, "seed": seed,
              "vocab": 100_000, "exponent": 1.0}
    return _generate(path, params, lambda tmp: write_zipf_text(tmp, size, seed))


# --------------------------------------------------------------------------------------------
# TeraGen-style records
# --------------------------------------------------------------------------------------------

RECORD_BYTES = 100
_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
BLOCK_ROWS = 1 << 20


def tera_block(start: int, count: int, seed: int) -> np.ndarray:
    """Rows ``start .. start+count-1`` as a (count, 100) uint8 array (one block's worth)."""
    rng = np.random.default_rng([seed, 2, start])
    rec = np.empty((count, RECORD_BYTES), dtype=np.uint8)
    rec[:, :10] = rng.integers(33, 127, size=(count, 10), dtype=np.uint8)
    dup = np.flatnonzero(rng.random(count) < 0.001)           # ~0.1% ties
    if len(dup):
        rec[dup, :10] = rec[rng.integers(0, count, size=len(dup)), :10]
    rows = np.arange(start, start + count, dtype=np.uint64)
    rec[:, 10] = ord(" ")
    rec[:, 11:27] = ord("0")                                  # row ids < 2**64: 16 zeros
    for j in range(16):
        shift = np.uint64(4 * (15 - j))
        rec[:, 27 + j] = _HEX[((rows >> shift) & np.uint64(0xF)).astype(np.intp)]
    rec[:, 43] = ord(" ")
    rot = (rows % np.uint64(26)).astype(np.int64)
    rec[:, 44:99] = ord("A") + (rot[:, None] + np.arange(55)[None, :]) % 26
    rec[:, 99] = ord("\n")
    return rec


def write_tera_records(path: str, rows: int, seed: int = 7) -> dict:
    with open(path, "wb") as f:
        for start in range(0, rows, BLOCK_ROWS):
            f.write(tera_block(start, min(BLOCK_ROWS, rows - start), seed).tobytes())
    return {"bytes": rows * RECORD_BYTES, "rows": rows}


def tera_records(path: str, rows: int, seed: int = 7) -> tuple[str, bool]:
    params = {"kind": "tera_records", "version": GENERATOR_VERSION, "rows": rows, "seed": seed}
    return _generate(path, params, lambda tmp: write_tera_records(tmp, rows, seed))


# --------------------------------------------------------------------------------------------
# many tiny files
# --------------------------------------------------------------------------------------------

def write_tiny_files(directory: str, count: int) -> dict:
    os.makedirs(directory, exist_ok=True)
    for i in range(count):
        with open(os.path.join(directory, f"tiny-{i:05d}.txt"), "w", encoding="ascii") as f:
            f.write(f"file {i} says hello to file {(i * 7) % count}\n")
    return {"files": count}


def tiny_files(directory: str, count: int) -> tuple[str, bool]:
    params = {"kind": "tiny_files", "version": GENERATOR_VERSION, "count": count}
    return _generate(directory, params, lambda tmp: write_tiny_files(tmp, count))


# --------------------------------------------------------------------------------------------
# many small files (real-shaped input: a man-page tree)
# --------------------------------------------------------------------------------------------

def write_small_files(directory: str, count: int, size: int, seed: int = 3) -> dict:
    """``count`` files holding about ``size`` bytes of Zipf text in all, cut at line ends
    with log-normal sizes (many of a few KB, a few of 100 KB and more, like a man-page tree),
    in 24 subdirectories; every 8th file is gzip-compressed and every 13th bzip2-compressed
    (``.gz`` / ``.bz2``).  Deterministic for (count, size, seed)."""
    import bz2
    import gzip

    os.makedirs(directory, exist_ok=True)
    text_path = os.path.join(directory, "_all.txt")
    write_zipf_text(text_path, size, seed)
    with open(text_path, "rb") as f:
        text = f.read()
    os.remove(text_path)
    rng = np.random.default_rng([seed, 2])
    weights = rng.lognormal(0.0, 1.0, size=count)
    cuts = np.cumsum(weights / weights.sum() * len(text)).astype(np.int64)
    start = 0
    plain = compressed = 0
    for i in range(count):
        end = len(text) if i == count - 1 else max(start, int(cuts[i]))
        if end < len(text):
            nl = text.find(b"\n", end)
            end = len(text) if nl < 0 else nl + 1
        data = text[start:end]
        start = end
        sub = os.path.join(directory, f"man{i % 24:02d}")
        os.makedirs(sub, exist_ok=True)
        name = os.path.join(sub, f"page-{i:05d}")
        if i % 8 == 0:
            name, data = name + ".gz", gzip.compress(data, 6, mtime=0)
            compressed += 1
        elif i % 13 == 0:
            name, data = name + ".bz2", bz2.compress(data, 9)
            compressed += 1
        else:
            name += ".txt"
            plain += 1
        with open(name, "wb") as f:
            f.write(data)
    return {"files": 24, "count": count, "text_bytes": len(text), "plain": plain,
            "compressed": compressed}


def small_files(directory: str, count: int, size: int, seed: int = 3) -> tuple[str, bool]:
    params = {"kind": "small_files", "version": GENERATOR_VERSION, "count": count,
              "size": size, "seed": seed}
    return _generate(directory, params, lambda tmp: write_small_files(tmp, count, size, seed))
