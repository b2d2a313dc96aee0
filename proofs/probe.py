"""The mathematics of the validators' hardware probes (issue 15): operands, products,
commitments, openings and their check.

Operands. A (n×k) and B (k×m) are int8 matrices from a counter-based generator, so that a
validator derives any one row of A or column of B alone in O(k), without the rest. The probe
seed gives four little-endian 64-bit words ``w = SHA-256(OPERAND_TAG || u32 len(seed) ||
seed)``; A uses (w0, w1), B uses (w2, w3). Row i of A (column j of B) is the SplitMix64
stream (Steele, Lea and Flood, "Fast Splittable Pseudorandom Number Generators", OOPSLA 2014;
the constants of Vigna's splitmix64.c) seeded with ``s = mix64(mix64(w0 + i·γ) ^ w1)``: block
q of the row is ``mix64(s + (q+1)·γ)``, and its eight little-endian bytes, read as int8, are
entries 8q..8q+7 (of the row of A, or of the column of B). k is a multiple of 8.
``mix64(z)``: z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
z ^= z >> 31, all mod 2^64; γ = 0x9E3779B97F4A7C15. A torch device reproduces it in int64
(the same bits: two's complement wraps like uint64, right shifts masked to be logical).

Product. C = A·B taken exactly and reduced mod 2^32 (an int8 product has magnitude at most
2^14, so any k-chunk of up to 2^17 terms sums exactly in int32, 2^39 in float64), each row
committed as little-endian uint32 bytes.

Commitment. The RFC 6962 Merkle root (``proofs.merkle``) over leaves ``SHA-256(0x00 ||
ROW_TAG || u32 len(key) || key || u64 index || row)``: the RFC 6962 leaf hash of the tagged
row, where ``index`` is the leaf's position in the tree. The key is the probe seed for the
compute probe and the validator's read key for the memory probe, whose read phase commits
only to the rows ``choose_rows(key, memory_n, memory_read_rows)`` picks, in that (sorted)
order: leaf p then holds row ``rows[p]`` of the working set.

Openings. ``choose_rows`` and ``choose_columns`` draw distinct indices (a partial
Fisher–Yates shuffle with unbiased u64 draws from SHA-256 in counter mode) from randomness
fixed only after the commitment arrived (the validator's signature over it). A validator
checks an opened row by its path and by recomputing ``entries_per_row`` of its entries, each
in O(k) (``check_opening``); a node that computed a fraction f of the rows wrongly escapes s
openings with probability (1-f)^s.

numpy only: validators check without torch.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt

from proofs.invariants import require
from proofs.merkle import (
    PROOF_LENGTH_MAX,
    TREE_SIZE_MAX,
    inclusion_proofs_from_hashes,
    root_from_hashes,
    verify_inclusion,
)

OPERAND_TAG = b"flopledger/probe/operands/v1\x00"
ROW_TAG = b"flopledger/probe/row/v1\x00"
ROWS_TAG = b"flopledger/probe/choose-rows/v1\x00"
COLUMNS_TAG = b"flopledger/probe/choose-columns/v1\x00"
LEAF_PREFIX = b"\x00"
"""RFC 6962 §2.1: a leaf hash starts with 0x00, an interior node with 0x01."""

ENTRIES_PER_BLOCK = 8
"""int8 entries in one 64-bit generator output."""
ROW_ENTRY_BYTES = 4
MODULUS = 2**32
SIDE_MAX = 16_384
"""Most columns of a committed row (64 KiB of uint32): the bound a row's size is checked at."""
KEY_BYTES_MAX = 256
INDEX_MAX = 2**63 - 1
"""Leaf positions a decoded opening may carry (msgspec bounds are int64)."""
CHOICES_MAX = 1 << 24
"""Most indices one choice draws (a named bound on its loop)."""
_K_CHUNK_MAX = 1 << 20
"""Inner entries summed per float64 product in ``compute_product`` (exact below 2^39)."""
_ENTRY_CHUNK = 1 << 18
"""Inner entries derived at a time for one entry (bounds the validator's memory)."""

GAMMA = np.uint64(0x9E3779B97F4A7C15)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)

OK = "ok"
OPENING_PATH_INVALID = "opening_path_invalid"
OPENING_ROW_SIZE = "opening_row_size"
OPENING_ENTRY_WRONG = "opening_entry_wrong"
OPENING_INDEX_UNEXPECTED = "opening_index_unexpected"

Int8Matrix = npt.NDArray[np.int8]
U64Array = npt.NDArray[np.uint64]


class RowOpening(msgspec.Struct, frozen=True):
    """One opened leaf: its position in the tree, the row's bytes, its RFC 6962 audit path."""

    index: Annotated[int, msgspec.Meta(ge=0, le=INDEX_MAX)]
    row: Annotated[bytes, msgspec.Meta(max_length=ROW_ENTRY_BYTES * SIDE_MAX)]
    path: Annotated[list[bytes], msgspec.Meta(max_length=PROOF_LENGTH_MAX)]


def derive_operand_words(seed: bytes) -> tuple[int, int, int, int]:
    """The four generator words of a probe seed: (w0, w1) for A, (w2, w3) for B."""
    require(isinstance(seed, bytes) and len(seed) <= KEY_BYTES_MAX, "seed: at most 256 bytes")
    digest = hashlib.sha256(OPERAND_TAG + struct.pack(">I", len(seed)) + seed).digest()
    words = struct.unpack("<4Q", digest)
    return words[0], words[1], words[2], words[3]


def derive_a_rows(seed: bytes, rows: npt.ArrayLike, k: int) -> Int8Matrix:
    """Rows ``rows`` of A, shape (len(rows), k), int8."""
    w0, w1, _, _ = derive_operand_words(seed)
    return _derive_lines(w0, w1, rows, k)


def derive_b_cols(seed: bytes, cols: npt.ArrayLike, k: int) -> Int8Matrix:
    """Columns ``cols`` of B, shape (k, len(cols)), int8."""
    _, _, w2, w3 = derive_operand_words(seed)
    return _derive_lines(w2, w3, cols, k).T


def compute_product(seed: bytes, n: int, m: int, k: int) -> npt.NDArray[np.uint32]:
    """C = A·B mod 2^32, (n, m) uint32: the reference an honest device must equal."""
    require(n >= 1 and m >= 1, "n >= 1 and m >= 1")
    a, b = derive_a_rows(seed, np.arange(n), k), derive_b_cols(seed, np.arange(m), k)
    total = np.zeros((n, m), dtype=np.int64)
    for start in range(0, k, _K_CHUNK_MAX):
        chunk = slice(start, min(k, start + _K_CHUNK_MAX))
        total += (a[:, chunk].astype(np.float64) @ b[chunk].astype(np.float64)).astype(np.int64)
    return (total & (MODULUS - 1)).astype(np.uint32)


def compute_entry(seed: bytes, i: int, j: int, k: int) -> int:
    """C[i, j] mod 2^32, exactly, in O(k) (one row of A, one column of B)."""
    return compute_entries(seed, i, [j], k)[0]


def compute_entries(seed: bytes, i: int, columns: Sequence[int], k: int) -> list[int]:
    """C[i, j] mod 2^32 for each j of ``columns``: row i of A derived once."""
    w0, w1, w2, w3 = derive_operand_words(seed)
    total = np.zeros(len(columns), dtype=np.int64)
    for start in range(0, k, _ENTRY_CHUNK):
        size = min(_ENTRY_CHUNK, k - start)
        a = _derive_lines(w0, w1, [i], size, start=start)[0].astype(np.float64)
        b = _derive_lines(w2, w3, list(columns), size, start=start).astype(np.float64)
        # exact: each chunk's sum is an integer below 2^14·2^18 (float64 holds 2^53); the
        # int64 total wraps mod 2^64, which keeps it right mod 2^32 whatever k is.
        total += (b @ a).astype(np.int64)
    return [int(v) & (MODULUS - 1) for v in total]


def encode_row(row: npt.ArrayLike) -> bytes:
    """A row of C as committed: little-endian uint32 bytes."""
    return np.ascontiguousarray(row, dtype="<u4").tobytes()


def compute_row_leaf(key: bytes, index: int, row: bytes | memoryview) -> bytes:
    """The leaf hash of the row at position ``index`` of a commitment keyed by ``key``."""
    digest = hashlib.sha256(_leaf_prefix(key, index))
    digest.update(row)
    return digest.digest()


def compute_row_leaves(key: bytes, rows_bytes: Sequence[bytes | memoryview]) -> list[bytes]:
    """The leaf hashes of rows in tree order."""
    return [compute_row_leaf(key, index, row) for index, row in enumerate(rows_bytes)]


def compute_rows_root(leaves: Sequence[bytes]) -> bytes:
    """The commitment: the RFC 6962 root over the leaf hashes."""
    return root_from_hashes(leaves)


def open_rows(
    key: bytes,
    rows_bytes: Sequence[bytes] | Mapping[int, bytes],
    indices: Sequence[int],
    leaves: Sequence[bytes] | None = None,
) -> list[RowOpening]:
    """The leaves at positions ``indices`` with their paths. ``leaves``: the committed leaf
    hashes, when the caller kept them (``rows_bytes`` may then map only the opened positions
    to their rows); else they are hashed again from ``rows_bytes``, every committed row."""
    if leaves is None:
        if isinstance(rows_bytes, Mapping):
            raise ValueError("without their leaves, every committed row is needed, in order")
        hashes = compute_row_leaves(key, rows_bytes)
    else:
        hashes = list(leaves)
    paths = inclusion_proofs_from_hashes(hashes, indices)
    return [
        RowOpening(index=i, row=bytes(rows_bytes[i]), path=path)
        for i, path in zip(indices, paths, strict=True)
    ]


def choose_rows(randomness: bytes, n: int, count: int) -> list[int]:
    """``min(count, n)`` distinct row indices in [0, n), sorted."""
    prefix = ROWS_TAG + _length_prefixed(randomness) + struct.pack(">QQ", n, count)
    return _choose(prefix, n, count)


def choose_columns(randomness: bytes, row: int, m: int, count: int) -> list[int]:
    """``min(count, m)`` distinct columns of row ``row`` to recompute, sorted."""
    prefix = COLUMNS_TAG + _length_prefixed(randomness) + struct.pack(">QQQ", row, m, count)
    return _choose(prefix, m, count)


def check_opening(
    *,
    seed: bytes,
    key: bytes,
    root: bytes,
    n_leaves: int,
    m: int,
    k: int,
    opening: RowOpening,
    columns: Sequence[int],
    rows: Sequence[int] | None = None,
) -> str:
    """``OK`` or why an opened leaf is wrong. ``rows``: the rows of C the leaves hold, in
    tree order (the memory read phase); None when leaf p holds row p. Checks in order: the
    position, the row's size, the path to ``root``, then each entry of ``columns`` recomputed.
    Never raises on what the node sent; a caller's bad argument is a ValueError."""
    require(all(0 <= j < m for j in columns), "columns lie in [0, m)")
    require(rows is None or len(rows) == n_leaves, "one row index per leaf")
    index, row, path = opening.index, opening.row, opening.path
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n_leaves:
        return OPENING_INDEX_UNEXPECTED
    if not isinstance(row, bytes) or len(row) != ROW_ENTRY_BYTES * m:
        return OPENING_ROW_SIZE
    leaf = compute_row_leaf(key, index, row)
    if not isinstance(path, list) or not verify_inclusion(leaf, index, n_leaves, path, root):
        return OPENING_PATH_INVALID
    if columns:
        claimed = np.frombuffer(row, dtype="<u4")[list(columns)]
        i = index if rows is None else rows[index]
        expected = compute_entries(seed, i, columns, k)
        if [int(v) for v in claimed] != expected:
            return OPENING_ENTRY_WRONG
    return OK


def _derive_lines(
    w_a: int, w_b: int, lines: npt.ArrayLike, k: int, *, start: int = 0
) -> Int8Matrix:
    """Entries [start, start + k) of lines (rows of A, columns of B), one SplitMix64 stream
    per line, as a (len(lines), k) int8 array."""
    require(k >= ENTRIES_PER_BLOCK and k % ENTRIES_PER_BLOCK == 0, "k: a positive multiple of 8")
    require(start >= 0 and start % ENTRIES_PER_BLOCK == 0, "start: a multiple of 8")
    index = np.asarray(lines, dtype=np.int64)
    require(index.ndim == 1 and bool(np.all(index >= 0)), "line indices: non-negative, 1-D")
    states = _mix64(_mix64(np.uint64(w_a) + index.astype(np.uint64) * GAMMA) ^ np.uint64(w_b))
    first = start // ENTRIES_PER_BLOCK + 1
    blocks_count = k // ENTRIES_PER_BLOCK
    steps = np.arange(first, first + blocks_count, dtype=np.uint64) * GAMMA
    blocks = _mix64(states[:, np.newaxis] + steps[np.newaxis, :])
    return blocks.astype("<u8", copy=False).view(np.int8).reshape(len(index), k)


def _mix64(z: U64Array) -> U64Array:
    """SplitMix64's output function (splitmix64.c), elementwise, mod 2^64."""
    z = z ^ (z >> np.uint64(30))
    z *= MIX_1
    z ^= z >> np.uint64(27)
    z *= MIX_2
    z ^= z >> np.uint64(31)
    return z


def _choose(prefix: bytes, size: int, count: int) -> list[int]:
    """A partial Fisher–Yates shuffle of range(size) driven by SHA-256(prefix || u64 block):
    the first min(count, size) positions, sorted. Bounded: one accepted draw per position."""
    require(size >= 0 and 0 <= count <= CHOICES_MAX, f"size >= 0, count in 0..{CHOICES_MAX}")
    if count >= size:
        return list(range(size))  # every position: what the shuffle gives, sorted, at once
    draws = _draws(prefix)
    swapped: dict[int, int] = {}
    chosen: list[int] = []
    for position in range(min(count, size)):
        span = size - position
        limit = (1 << 64) - (1 << 64) % span  # draws at or past it would bias the modulo
        draw = next(value for value in draws if value < limit)
        target = position + draw % span
        chosen.append(swapped.get(target, target))
        swapped[target] = swapped.get(position, position)
    return sorted(chosen)


def _draws(prefix: bytes) -> Iterator[int]:
    block = 0
    while True:
        yield from struct.unpack(">4Q", hashlib.sha256(prefix + struct.pack(">Q", block)).digest())
        block += 1


def _leaf_prefix(key: bytes, index: int) -> bytes:
    require(0 <= index <= TREE_SIZE_MAX, "a leaf index is a uint64")
    return LEAF_PREFIX + ROW_TAG + _length_prefixed(key) + struct.pack(">Q", index)


def _length_prefixed(value: bytes) -> bytes:
    require(isinstance(value, bytes) and len(value) <= KEY_BYTES_MAX, "at most 256 bytes")
    return struct.pack(">I", len(value)) + value
