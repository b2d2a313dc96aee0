"""The matmul executor on the consumer's own matrices: C = A·B on torch (CUDA when present),
returned as C's ``.npy`` and its commitment; and the validator's check of a delivered C.

Arithmetic (what ``proofs.matmul_data``'s bound assumes): float32 inputs multiply in float32
with TF32 off; float16 and bfloat16 inputs accumulate in float32 (on CUDA cuBLAS with the
reduced-precision reductions off, on the CPU by upcasting, as CPU half kernels may not) and
the product is rounded once to the input dtype; int8 products are computed in float64, exact
since every partial sum is an integer below 2^26 (k <= 4096), and returned as int32.

Result. C's ``.npy`` (``proofs.npy.encode_npy``: int32 for int8, else the input dtype; a
-0.0 written as +0.0) is the proof object a node uploads and the file the consumer
downloads; the result commitment is the RFC 6962 root over its canonical rows
(``proofs.matrix_rows.compute_rows_root``).
"""

from __future__ import annotations

import time

import msgspec
import numpy as np
import numpy.typing as npt
import torch

from adapters.compute.runtime import (
    ExecutionEnvironment,
    describe_environment,
    enable_determinism,
    synchronize,
)
from proofs.matmul_data import check_product, derive_vectors, result_dtype
from proofs.matrix_rows import canonical_rows, compute_rows_root
from proofs.npy import NpyError, encode_npy, read_npy

TORCH_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
}


class MatmulDataRun(msgspec.Struct, frozen=True, kw_only=True):
    """One executed data matmul: C's ``.npy``, its commitment, where and how long."""

    result: bytes
    commitment: bytes
    environment: ExecutionEnvironment
    matmul_ns: int
    total_ns: int


def read_inputs(
    a_npy: bytes, b_npy: bytes, *, dtype: str, m: int, k: int, n: int
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.generic]]:
    """A (m×k) and B (k×n) from their ``.npy`` bytes; NpyError names the file and the fault."""
    try:
        a = read_npy(a_npy, dtype, (m, k))
    except NpyError as exc:
        raise NpyError(f"input a: {exc}") from exc
    try:
        b = read_npy(b_npy, dtype, (k, n))
    except NpyError as exc:
        raise NpyError(f"input b: {exc}") from exc
    return a, b


def run_matmul_data(
    a_npy: bytes, b_npy: bytes, *, dtype: str, m: int, k: int, n: int, device: torch.device
) -> MatmulDataRun:
    """Parse A and B, multiply on ``device``, encode C and commit to its rows."""
    started = time.perf_counter_ns()
    enable_determinism()
    a, b = read_inputs(a_npy, b_npy, dtype=dtype, m=m, k=k, n=n)
    c, matmul_ns = compute_product(a, b, dtype, device)
    c_dtype = result_dtype(dtype)
    canonical = canonical_rows(c, c_dtype)
    return MatmulDataRun(
        result=encode_npy(canonical, c_dtype),
        commitment=compute_rows_root(canonical, c_dtype),
        environment=describe_environment(device, TORCH_DTYPES[dtype]),
        matmul_ns=matmul_ns,
        total_ns=time.perf_counter_ns() - started,
    )


def compute_product(
    a: npt.NDArray[np.generic], b: npt.NDArray[np.generic], dtype: str, device: torch.device
) -> tuple[npt.NDArray[np.generic], int]:
    """C (held as ``proofs.npy.STORAGE`` of C's dtype) and the product's nanoseconds."""
    ta, tb = to_torch(a, dtype, device), to_torch(b, dtype, device)
    synchronize(device)
    started = time.perf_counter_ns()
    if dtype == "int8":
        tc = torch.matmul(ta.to(torch.float64), tb.to(torch.float64)).to(torch.int32)
    elif dtype == "float32" or device.type == "cuda":
        tc = torch.matmul(ta, tb)
    else:
        tc = torch.matmul(ta.to(torch.float32), tb.to(torch.float32)).to(TORCH_DTYPES[dtype])
    synchronize(device)
    elapsed = time.perf_counter_ns() - started
    return from_torch(tc, result_dtype(dtype)), elapsed


def to_torch(array: npt.NDArray[np.generic], dtype: str, device: torch.device) -> torch.Tensor:
    """A tensor of ``dtype`` on ``device`` from an array held as ``proofs.npy.STORAGE``."""
    if dtype == "bfloat16":
        bits = torch.from_numpy(np.array(array, dtype=np.uint16).view(np.int16))
        return bits.view(torch.bfloat16).to(device)
    return torch.from_numpy(np.array(array)).to(device)


def from_torch(tensor: torch.Tensor, dtype: str) -> npt.NDArray[np.generic]:
    """A host array held as ``proofs.npy.STORAGE`` of ``dtype``."""
    host = tensor.detach().cpu().contiguous()
    if dtype == "bfloat16":
        return host.view(torch.int16).numpy().view(np.uint16)
    return host.numpy()


def verify_matmul_data(
    a_npy: bytes,
    b_npy: bytes,
    c_npy: bytes,
    *,
    dtype: str,
    m: int,
    k: int,
    n: int,
    commitment: bytes,
    openings_seed: bytes,
) -> str:
    """The validator's check of a delivered C: ``"ok"``, ``"inputs_malformed"`` (A or B is
    not the job's), ``"proof_malformed"`` (C is no ``.npy`` of C's dtype and m×n),
    ``"commitment_mismatch"`` (C's rows are not the committed ones) or ``"proof_invalid"``
    (Freivalds refuses it). Never raises on bad node input."""
    try:
        a, b = read_inputs(a_npy, b_npy, dtype=dtype, m=m, k=k, n=n)
    except NpyError:
        return "inputs_malformed"
    try:
        c = read_npy(c_npy, result_dtype(dtype), (m, n))
    except NpyError:
        return "proof_malformed"
    if compute_rows_root(c, result_dtype(dtype)) != commitment:
        return "commitment_mismatch"
    try:
        vectors = derive_vectors(openings_seed, commitment, n, dtype)
    except ValueError:
        return "proof_invalid"  # an openings seed the protocol never draws
    return "ok" if check_product(a, b, c, dtype, vectors) else "proof_invalid"
