"""Commitments to the rows (and columns) of a consumer's matrices, in their own dtype.

Canonical rows. A row of a matrix of dtype ``float32``, ``float16``, ``bfloat16``, ``int8``
or ``int32`` is its entries' little-endian bytes in that dtype (``proofs.npy.STORAGE``;
bfloat16 as its 16-bit pattern), with a floating-point -0.0 written as +0.0: hardware may
produce either sign of zero for the same value, and the two are equal numbers. Integers have
one zero and are written as they are.

Roots. RFC 6962 Merkle roots (``proofs.merkle``) over canonical rows: ``compute_rows_root``
over the m rows of an m×k matrix (the result commitment of a data matmul job, over C; the
consumer's ``a_rows_root`` over A), ``compute_columns_root`` over the n columns of a k×n
matrix (``b_cols_root`` over B), each column read top to bottom. The consumer's client
computes ``a_rows_root`` and ``b_cols_root`` from its files (``compute_input_roots``) and puts
them in the job's params: they let anyone prove a single wrong entry of C to the ledger in
O(k + n) bytes and work (``proofs.matmul_data``, ``proofs.fraud``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from proofs.merkle import (
    inclusion_proof_from_hashes,
    leaf_hash,
    root_from_hashes,
    verify_inclusion,
)
from proofs.npy import STORAGE, read_npy

LEAF_PREFIX = b"\x00"
"""RFC 9162 §2.1.1: a leaf is hashed as SHA-256(0x00 || data) (``proofs.merkle.leaf_hash``)."""

_SIGN_ONLY = {"float32": 0x80000000, "float16": 0x8000, "bfloat16": 0x8000}
_UNSIGNED: dict[int, np.dtype[np.unsignedinteger[Any]]] = {
    4: np.dtype("<u4"),
    2: np.dtype("<u2"),
    1: np.dtype("u1"),
}


def canonical_rows(matrix: npt.NDArray[np.generic], dtype: str) -> npt.NDArray[np.generic]:
    """``matrix`` (held as ``STORAGE[dtype]``) as a C-ordered little-endian array whose rows'
    bytes are the canonical rows (a -0.0 replaced by +0.0)."""
    values = np.ascontiguousarray(matrix, dtype=np.dtype(STORAGE[dtype]))
    sign_only = _SIGN_ONLY.get(dtype)
    if sign_only is None:
        return values
    bits = values.view(_UNSIGNED[values.dtype.itemsize])
    negative_zero = bits == sign_only
    if not np.any(negative_zero):
        return values
    return np.where(negative_zero, 0, bits).astype(bits.dtype).view(values.dtype)


def compute_row_hashes(matrix: npt.NDArray[np.generic], dtype: str) -> list[bytes]:
    """RFC 6962 leaf hashes of the canonical rows of a 2-d ``matrix``."""
    rows = canonical_rows(matrix, dtype)
    raw = memoryview(rows.reshape(len(rows), -1).view(np.uint8).data).cast("B")
    width = rows[0].nbytes if len(rows) else 0
    hashes = []
    for i in range(len(rows)):  # hashlib reads the row in place: no copy of C
        digest = hashlib.sha256(LEAF_PREFIX)
        digest.update(raw[i * width : (i + 1) * width])
        hashes.append(digest.digest())
    return hashes


def compute_rows_root(matrix: npt.NDArray[np.generic], dtype: str) -> bytes:
    """The Merkle root over the canonical rows of a 2-d ``matrix``."""
    return root_from_hashes(compute_row_hashes(matrix, dtype))


def compute_columns_root(matrix: npt.NDArray[np.generic], dtype: str) -> bytes:
    """The Merkle root over the canonical columns of a 2-d ``matrix`` (rows of its
    transpose)."""
    return compute_rows_root(np.asarray(matrix).T, dtype)


def open_row(matrix: npt.NDArray[np.generic], dtype: str, index: int) -> tuple[bytes, list[bytes]]:
    """Row ``index``'s canonical bytes and its inclusion path under ``compute_rows_root``."""
    rows = canonical_rows(matrix, dtype)
    path = inclusion_proof_from_hashes(compute_row_hashes(rows, dtype), index)
    return rows[index].tobytes(), path


def open_column(
    matrix: npt.NDArray[np.generic], dtype: str, index: int
) -> tuple[bytes, list[bytes]]:
    """Column ``index``'s canonical bytes and its path under ``compute_columns_root``."""
    return open_row(np.asarray(matrix).T, dtype, index)


def is_row_included(
    row: bytes, index: int, size: int, path: Sequence[bytes], root: bytes, *, row_bytes: int
) -> bool:
    """Whether ``row`` (exactly ``row_bytes`` long) is leaf ``index`` of the ``size``-leaf
    tree ``root``. Never raises."""
    if not isinstance(row, bytes) or len(row) != row_bytes:
        return False
    return verify_inclusion(leaf_hash(row), index, size, list(path), root)


def decode_row(row: bytes, dtype: str) -> npt.NDArray[np.generic]:
    """A canonical row's entries, held as ``STORAGE[dtype]``."""
    return np.frombuffer(row, dtype=np.dtype(STORAGE[dtype]))


def compute_input_roots(
    a_npy: bytes, b_npy: bytes, *, dtype: str, m: int, k: int, n: int
) -> tuple[str, str]:
    """The consumer's ``a_rows_root`` and ``b_cols_root`` (hex) of its A (m×k) and B (k×n)
    ``.npy`` files, for a job's params (``proofs.npy.NpyError`` when a file does not fit)."""
    a = read_npy(a_npy, dtype, (m, k))
    b = read_npy(b_npy, dtype, (k, n))
    return compute_rows_root(a, dtype).hex(), compute_columns_root(b, dtype).hex()
