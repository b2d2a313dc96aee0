"""Fraud proofs: small, deterministic demonstrations that a committed result is wrong.

The ledger (``domain.services.fraud``) and the audit run these checks on what a challenger
presents, so a validator's pass vote on a wrong result is provable without trusting anyone:

- **matmul row** (``is_matmul_row_wrong``): a row of C with its RFC 9162 inclusion path
  (§2.1.3.2) to the committed root whose bytes differ from that row of A·B recomputed from
  the job's inputs (``proofs.matmul.derive_inputs``; one row costs deriving A and B and
  n² multiply-adds). The path proves the node committed that row; the recomputation proves
  it wrong. An honest row never passes: the product is exact (``proofs.matmul``).
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

from proofs import groth16
from proofs.job_seed import compute_job_seed
from proofs.matmul import MATRIX_SIZE_MAX, canonical_row_bytes, derive_inputs
from proofs.merkle import leaf_hash, verify_inclusion


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
