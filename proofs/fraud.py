"""Fraud proofs: small, deterministic demonstrations that a committed result is wrong.

The ledger (``domain.services.fraud``) and the audit run these checks on what a challenger
presents, so a validator's pass vote on a wrong result is provable without trusting anyone:

- **matmul row** (``is_matmul_row_wrong``): a row of C with its RFC 9162 inclusion path
  (§2.1.3.2) to the committed root whose bytes differ from that row of A·B recomputed from
  the job's inputs (``proofs.matmul.derive_inputs``; one row costs deriving A and B and
  n² multiply-adds). The path proves the node committed that row; the recomputation proves
  it wrong. An honest row never passes: the product is exact (``proofs.matmul``).
- **matmul entry** (``is_matmul_entry_wrong``, a data matmul job whose params carry the
  consumer's ``a_rows_root`` and ``b_cols_root``): entry (i, j) of C, with A's row i, B's
  column j and C's row i each shown under its root (RFC 9162 §2.1.3.2), beyond the rounding
  bound of A's row i · B's column j (exactly different for int8;
  ``proofs.matmul_data.is_entry_wrong``). O(k + n) bytes and work: what a Freivalds failure
  localises (``proofs.matmul_data.find_wrong_entry``), checked without the matrices.
- **Groth16** (``is_groth16_artifact_wrong``): the proof artifact whose SHA-256 is the
  commitment, which is not a valid proof of the job's statement: its public signals are not
  the job's, or the Groth16 check (``proofs.groth16.verify``) fails under the job's key.

Every function returns a bool and never raises on bad input (a malformed proof is no proof).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from proofs import groth16
from proofs.job_seed import compute_job_seed
from proofs.matmul import MATRIX_SIZE_MAX, canonical_row_bytes, derive_inputs
from proofs.matmul_data import INPUT_DTYPES, is_entry_wrong, result_dtype
from proofs.matrix_rows import decode_row, is_row_included, open_column, open_row
from proofs.merkle import leaf_hash, verify_inclusion
from proofs.npy import STORAGE


@dataclass(frozen=True)
class ZkStatement:
    """What a zk-prove job's proof must prove: the verification key and public signals."""

    verification_key: groth16.VerificationKey
    public: list[str]


def is_matmul_row_wrong(
    *,
    job_id: str,
    seed: str,
    n: int,
    root: bytes,
    index: int,
    row: bytes,
    path: Sequence[bytes],
) -> bool:
    """True iff ``row`` is leaf ``index`` of the ``n``-leaf tree ``root`` (by ``path``) and
    differs from row ``index`` of A·B for the job's inputs. Never raises."""
    if not (isinstance(n, int) and 1 <= n <= MATRIX_SIZE_MAX and isinstance(row, bytes)):
        return False
    if not (isinstance(index, int) and 0 <= index < n):
        return False
    if not verify_inclusion(leaf_hash(row), index, n, list(path), root):
        return False
    try:
        a, b = derive_inputs(compute_job_seed(job_id, seed), n)
    except (ValueError, TypeError):
        return False
    # float32 is exact here: every partial sum is an integer below 64·n <= 2^18 < 2^24
    # (``proofs.matmul``, "Exactness bound"), and it spares a float64 copy of B.
    expected = np.matmul(a[index], b, dtype=np.float32)
    return row != canonical_row_bytes(expected)


@dataclass(frozen=True)
class MatmulEntryClaim:
    """What a matmul entry fraud proof shows: entry (row, column) of the C committed as
    ``commitment``, with A's row, B's column and C's row and their inclusion paths."""

    row: int
    column: int
    a_row: bytes
    a_path: Sequence[bytes]
    b_column: bytes
    b_path: Sequence[bytes]
    c_row: bytes
    c_path: Sequence[bytes]


def is_matmul_entry_wrong(
    *,
    dtype: str,
    m: int,
    k: int,
    n: int,
    a_rows_root: bytes,
    b_cols_root: bytes,
    commitment: bytes,
    claim: MatmulEntryClaim,
) -> bool:
    """True iff the claim's rows are the committed ones (A's row i under ``a_rows_root``,
    B's column j under ``b_cols_root``, C's row i under ``commitment``) and C's entry (i, j)
    is beyond the rounding bound of A's row i · B's column j. Never raises."""
    if dtype not in INPUT_DTYPES or not all(
        isinstance(d, int) and 1 <= d <= MATRIX_SIZE_MAX for d in (m, k, n)
    ):
        return False
    i, j = claim.row, claim.column
    if not (isinstance(i, int) and isinstance(j, int) and 0 <= i < m and 0 <= j < n):
        return False
    size, c_size = (np.dtype(STORAGE[d]).itemsize for d in (dtype, result_dtype(dtype)))
    included = (
        is_row_included(claim.a_row, i, m, claim.a_path, a_rows_root, row_bytes=k * size)
        and is_row_included(claim.b_column, j, n, claim.b_path, b_cols_root, row_bytes=k * size)
        and is_row_included(claim.c_row, i, m, claim.c_path, commitment, row_bytes=n * c_size)
    )
    if not included:
        return False
    c_entry = decode_row(claim.c_row, result_dtype(dtype))[j : j + 1]
    return is_entry_wrong(
        decode_row(claim.a_row, dtype), decode_row(claim.b_column, dtype), c_entry, dtype
    )


def open_entry_claim(
    a: npt.NDArray[np.generic],
    b: npt.NDArray[np.generic],
    c: npt.NDArray[np.generic],
    dtype: str,
    row: int,
    column: int,
) -> MatmulEntryClaim:
    """The claim for entry (row, column): A's row, B's column and C's row (canonical bytes)
    with their paths under ``a_rows_root``, ``b_cols_root`` and the result commitment."""
    a_row, a_path = open_row(a, dtype, row)
    b_column, b_path = open_column(b, dtype, column)
    c_row, c_path = open_row(c, result_dtype(dtype), row)
    return MatmulEntryClaim(row, column, a_row, a_path, b_column, b_path, c_row, c_path)


def is_groth16_artifact_wrong(
    *, commitment: bytes, artifact: bytes, circuit: str, statement: ZkStatement
) -> bool:
    """True iff ``artifact`` hashes to ``commitment`` and is no valid proof of ``statement``
    for ``circuit`` (another circuit, other public signals, or a failing pairing check; an
    artifact that does not even decode is wrong too). Never raises."""
    if not isinstance(artifact, bytes) or hashlib.sha256(artifact).digest() != commitment:
        return False
    try:
        decoded: Any = msgspec.json.decode(artifact)
        if not isinstance(decoded, dict) or decoded.get("circuit") != circuit:
            return True
        if decoded.get("public") != statement.public:
            return True
        proof = groth16.decode_proof(decoded.get("proof"))
        public = groth16.decode_public(decoded.get("public"), statement.verification_key.n_public)
    except (ValueError, TypeError, msgspec.MsgspecError):
        return True
    return not groth16.verify(statement.verification_key, proof, public)
