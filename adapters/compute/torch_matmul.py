"""The matmul executor on torch: C = A·B on CUDA when present, CPU otherwise, then, for a
job, the commitment and the whole product of ``proofs.matmul_product`` (``run_matmul_job``),
or, for a hardware attestation, the Fiat–Shamir row openings of ``proofs.matmul``
(``run_matmul``). The agent MUST match ``proofs.matmul``'s input derivation and row encoding
bit for bit; validators check with it, without torch.

Inputs are expanded from SHAKE-256 on the host (as ``proofs.matmul.derive_inputs``), moved to
the device as bytes (a quarter of the float32 size) and mapped to [-8, 7] there. The product
is exact in float32 (``proofs.matmul``, "Exactness bound"), so CPU and GPU give identical C.
Rows are hashed once: root, row selection and audit paths all come from the same hashes.
"""

from __future__ import annotations

import hashlib
import struct
import time

import msgspec
import numpy as np
import torch

from adapters.compute.runtime import ExecutionEnvironment, describe_environment, synchronize
from proofs.matmul import (
    DEFAULT_OPENINGS,
    INPUT_TAG,
    MATRIX_SIZE_MAX,
    SEED_BYTES_MAX,
    MatmulProof,
    RowOpening,
    select_rows,
)
from proofs.matmul_product import MatmulProductProof, make_product_proof
from proofs.merkle import inclusion_proofs_from_hashes, leaf_hash, root_from_hashes

ENTRY_MASK = 0x0F
ENTRY_OFFSET = 8.0


class MatmulRun(msgspec.Struct, frozen=True, kw_only=True):
    """One executed matmul: its proof, where it ran, and how long the product took."""

    proof: MatmulProof
    environment: ExecutionEnvironment
    matmul_ns: int
    total_ns: int


class MatmulJobRun(msgspec.Struct, frozen=True, kw_only=True):
    """One executed matmul job: the whole product as its proof, where it ran, how long."""

    proof: MatmulProductProof
    environment: ExecutionEnvironment
    matmul_ns: int
    total_ns: int


def derive_inputs_torch(seed: bytes, n: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A and B on ``device``, equal to ``proofs.matmul.derive_inputs(seed, n)``."""
    if not (isinstance(seed, bytes) and len(seed) <= SEED_BYTES_MAX):
        raise ValueError(f"seed: bytes of at most {SEED_BYTES_MAX}")
    if not 1 <= n <= MATRIX_SIZE_MAX:
        raise ValueError(f"n in 1..{MATRIX_SIZE_MAX}")
    header = INPUT_TAG + struct.pack(">I", len(seed)) + seed + struct.pack(">I", n)
    stream = bytearray(hashlib.shake_256(header).digest(2 * n * n))
    raw = torch.frombuffer(stream, dtype=torch.uint8).to(device)
    values = (raw & ENTRY_MASK).to(torch.float32) - ENTRY_OFFSET
    return values[: n * n].reshape(n, n), values[n * n :].reshape(n, n)


def compute_product(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, int]:
    """C = A·B (float32) as a host array, and the nanoseconds the product itself took."""
    synchronize(a.device)
    started = time.perf_counter_ns()
    c = torch.matmul(a, b)
    synchronize(a.device)
    elapsed = time.perf_counter_ns() - started
    return c.cpu().numpy(), elapsed


def make_proof(c: np.ndarray, seed: bytes, openings: int = DEFAULT_OPENINGS) -> MatmulProof:
    """Commit to C's canonical rows and open the rows the commitment selects."""
    canonical = np.ascontiguousarray(c, dtype="<f4") + np.float32(0.0)  # -0.0 -> +0.0
    rows = [canonical[i].tobytes() for i in range(len(canonical))]
    hashes = [leaf_hash(row) for row in rows]
    root = root_from_hashes(hashes)
    indices = select_rows(seed, len(rows), root, openings)
    paths = inclusion_proofs_from_hashes(hashes, indices)
    opened = [
        RowOpening(index=i, row=rows[i], proof=path) for i, path in zip(indices, paths, strict=True)
    ]
    return MatmulProof(seed=seed, n=len(rows), root=root, openings=opened)


def run_matmul(
    seed: bytes, n: int, device: torch.device, openings: int = DEFAULT_OPENINGS
) -> MatmulRun:
    """Derive, multiply, commit, open: the attestation's executor for one device."""
    started = time.perf_counter_ns()
    a, b = derive_inputs_torch(seed, n, device)
    c, matmul_ns = compute_product(a, b)
    proof = make_proof(c, seed, openings)
    return MatmulRun(
        proof=proof,
        environment=describe_environment(device, torch.float32),
        matmul_ns=matmul_ns,
        total_ns=time.perf_counter_ns() - started,
    )


def run_matmul_job(seed: bytes, n: int, device: torch.device) -> MatmulJobRun:
    """Derive, multiply, commit, ship all of C: a matmul job's executor for one device (the
    rows a validator checks are drawn after the commit, so none can be left out)."""
    started = time.perf_counter_ns()
    a, b = derive_inputs_torch(seed, n, device)
    c, matmul_ns = compute_product(a, b)
    proof = make_product_proof(c, seed)
    return MatmulJobRun(
        proof=proof,
        environment=describe_environment(device, torch.float32),
        matmul_ns=matmul_ns,
        total_ns=time.perf_counter_ns() - started,
    )
