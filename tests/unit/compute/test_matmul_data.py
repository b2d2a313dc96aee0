"""Data matmul on the consumer's own .npy files: every dtype's product matches numpy's within
the stated rounding bound, Freivalds passes it and refuses one changed entry, malformed or
mismatched files are refused, int8 is exact up to its bound.

Expected products and bounds are computed here, in float64 / int64, from the formulas of
``proofs.matmul_data``'s docstring (items 1 and 4), not with the code under test."""

from __future__ import annotations

import io

import ml_dtypes
import numpy as np
import pytest
import torch

from adapters.compute.matmul_data import run_matmul_data, verify_matmul_data
from proofs.matmul_data import check_product, derive_vectors
from proofs.matrix_rows import compute_rows_root
from proofs.npy import NpyError, read_npy
from tests.npy_files import NUMPY_DTYPES, npy_bytes

CPU = torch.device("cpu")
SEED = b"beacon randomness of the round"
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
M, K, N = 37, 53, 29


def _inputs(dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if dtype == "int8":
        return (
            rng.integers(-128, 128, (M, K), dtype=np.int8),
            rng.integers(-128, 128, (K, N), dtype=np.int8),
        )
    scale = rng.choice([1e-3, 1.0, 30.0], size=(M, 1))  # rows of very different magnitudes
    a = (rng.standard_normal((M, K)) * scale).astype(NUMPY_DTYPES[dtype])
    return a, rng.standard_normal((K, N)).astype(NUMPY_DTYPES[dtype])


def _load_c(result: bytes, dtype: str) -> np.ndarray:
    c = np.load(io.BytesIO(result), allow_pickle=False)
    return c.view(ml_dtypes.bfloat16) if dtype == "bfloat16" else c


def _entry_bound(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """β·|A||B| + α of the docstring, item 1, with γ_k for float32 accumulation."""
    u, k = 2.0**-24, a.shape[1]
    gamma = k * u / (1 - k * u)
    beta = gamma + UNIT_ROUNDOFF[dtype] * (1 + gamma)
    magnitudes = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    return beta * magnitudes * (1 + 1e-12) + 1e-30


def _run(dtype: str, a: np.ndarray, b: np.ndarray) -> tuple[bytes, bytes]:
    m, k = a.shape
    run = run_matmul_data(
        npy_bytes(a), npy_bytes(b), dtype=dtype, m=m, k=k, n=b.shape[1], device=CPU
    )
    return run.result, run.commitment


def _verify(dtype: str, a: np.ndarray, b: np.ndarray, c_npy: bytes, commitment: bytes) -> str:
    m, k = a.shape
    return verify_matmul_data(
        npy_bytes(a),
        npy_bytes(b),
        c_npy,
        dtype=dtype,
        m=m,
        k=k,
        n=b.shape[1],
        commitment=commitment,
        openings_seed=SEED,
    )


@pytest.mark.parametrize("dtype", list(NUMPY_DTYPES))
def test_every_dtype_matches_numpy_within_the_stated_bound_and_verifies(dtype: str) -> None:
    a, b = _inputs(dtype)
    result, commitment = _run(dtype, a, b)
    c = _load_c(result, dtype)
    if dtype == "int8":
        assert c.dtype == np.int32
        assert np.array_equal(c.astype(np.int64), a.astype(np.int64) @ b.astype(np.int64))
    else:
        assert c.dtype == NUMPY_DTYPES[dtype] and c.shape == (M, N)
        exact = a.astype(np.float64) @ b.astype(np.float64)
        assert np.all(np.abs(c.astype(np.float64) - exact) <= _entry_bound(a, b, dtype))
    assert _verify(dtype, a, b, result, commitment) == "ok"


@pytest.mark.parametrize("dtype", list(NUMPY_DTYPES))
def test_one_changed_entry_of_c_is_caught_by_freivalds(dtype: str) -> None:
    a, b = _inputs(dtype, seed=1)
    result, _ = _run(dtype, a, b)
    c = _load_c(result, dtype).copy()
    i, j = 11, 7
    if dtype == "int8":
        c[i, j] += 1
    else:
        # Beyond 2·T_i of the docstring (item 5): twice row i's whole |A||B|·1.
        row_magnitude = float(
            (np.abs(a[i].astype(np.float64)) @ np.abs(b.astype(np.float64))).sum()
        )
        c[i, j] = NUMPY_DTYPES[dtype](float(c[i, j]) + 2 * row_magnitude)
    forged = npy_bytes(c)
    c_dtype = "int32" if dtype == "int8" else dtype
    stored = c.view(np.uint16) if dtype == "bfloat16" else c
    commitment = compute_rows_root(stored, c_dtype)  # a node commits to its forged C
    assert _verify(dtype, a, b, forged, commitment) == "proof_invalid"


def test_a_result_not_matching_its_commitment_is_refused() -> None:
    a, b = _inputs("float32")
    result, commitment = _run("float32", a, b)
    assert _verify("float32", a, b, result, bytes(32)) == "commitment_mismatch"
    other_a, _ = _inputs("float32", seed=5)
    assert _verify("float32", other_a, b, result, commitment) == "proof_invalid"


def test_int8_is_exact_at_its_largest_products_and_extreme_forgeries_are_caught() -> None:
    k = 4096
    a = np.full((2, k), -128, dtype=np.int8)
    b = np.full((k, 3), -128, dtype=np.int8)
    b[:, 2] = 127
    result, commitment = _run("int8", a, b)
    c = _load_c(result, "int8")
    assert c.dtype == np.int32
    assert c[0, 0] == 128 * 128 * k and c[1, 2] == -128 * 127 * k
    assert _verify("int8", a, b, result, commitment) == "ok"
    for value in (np.iinfo(np.int32).min, np.iinfo(np.int32).max, int(c[0, 0]) - 1):
        forged = c.copy()
        forged[0, 1] = value
        root = compute_rows_root(forged, "int32")
        assert _verify("int8", a, b, npy_bytes(forged), root) == "proof_invalid"


def test_bfloat16_files_written_by_ml_dtypes_round_trip() -> None:
    a, b = _inputs("bfloat16", seed=3)
    result, commitment = _run("bfloat16", a, b)
    c = _load_c(result, "bfloat16")
    assert c.dtype == ml_dtypes.bfloat16
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(c.astype(np.float64) - exact) <= _entry_bound(a, b, "bfloat16"))
    assert _verify("bfloat16", a, b, result, commitment) == "ok"


def test_negative_zero_commits_as_positive_zero() -> None:
    a = np.array([[-1.0, 0.0]], dtype=np.float32)
    b = np.array([[0.0], [5.0]], dtype=np.float32)  # -1·0 + 0·5 = -0.0 in IEEE 754
    result, commitment = _run("float32", a, b)
    assert np.signbit(_load_c(result, "float32")).sum() == 0
    assert commitment == compute_rows_root(np.zeros((1, 1), np.float32), "float32")


def _header(text: str) -> bytes:
    body = text.encode("latin-1")
    body += b" " * (-(10 + len(body) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


GOOD = npy_bytes(np.zeros((2, 3), np.float32))
MALFORMED = {
    "no magic": b"NUMPY" + GOOD[6:],
    "truncated payload": GOOD[:-1],
    "trailing bytes": GOOD + b"\0",
    "wrong dtype": npy_bytes(np.zeros((2, 3), np.float64)),
    "big endian": npy_bytes(np.zeros((2, 3), ">f4")),
    "wrong shape": npy_bytes(np.zeros((3, 2), np.float32)),
    "one dimension": npy_bytes(np.zeros(6, np.float32)),
    "pickled objects": _header("{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }")
    + b"\0" * 48,
    "structured dtype": _header(
        "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2, 3), }"
    )
    + b"\0" * 24,
    "extra key": _header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}")
    + b"\0" * 24,
    "a call in the header": _header("{'descr': str(1), 'fortran_order': False, 'shape': (2, 3)}")
    + b"\0" * 24,
    "header over 4096 bytes": _header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + " " * 4100
    )
    + b"\0" * 24,
    "version 9": GOOD[:6] + b"\x09" + GOOD[7:],
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_or_mismatched_npy_is_refused(case: str) -> None:
    with pytest.raises(NpyError):
        read_npy(MALFORMED[case], "float32", (2, 3))
    with pytest.raises(NpyError):
        run_matmul_data(MALFORMED[case], GOOD, dtype="float32", m=2, k=3, n=3, device=CPU)


def test_a_bad_result_file_is_proof_malformed_and_bad_inputs_are_named() -> None:
    a, b = _inputs("float16")
    result, commitment = _run("float16", a, b)
    assert _verify("float16", a, b, result[:-2], commitment) == "proof_malformed"
    assert _verify("float16", a, b, npy_bytes(np.zeros((M, N), np.float32)), commitment) == (
        "proof_malformed"
    )
    with pytest.raises(NpyError, match="input b"):
        run_matmul_data(npy_bytes(a), npy_bytes(a), dtype="float16", m=M, k=K, n=N, device=CPU)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_honest_products_pass_whatever_the_shape_and_cancellation(dtype: str) -> None:
    """Shapes from 1 to 70, magnitudes over ten orders, rows that cancel exactly: the
    bound holds for every honest product (worst-case in the rounding, and for r outside a
    set of probability below 2^-120 per row)."""
    rng = np.random.default_rng(11)
    for trial in range(12):
        m, k, n = (int(x) for x in rng.integers(1, 70, size=3))
        scale = 10.0 ** rng.uniform(-4, 3 if dtype == "float16" else 6, size=(m, 1))
        a = (rng.standard_normal((m, k)) * scale).astype(NUMPY_DTYPES[dtype])
        b = rng.standard_normal((k, n)).astype(NUMPY_DTYPES[dtype])
        if trial % 3 == 0 and k > 1:
            b[1] = b[0]
            a[:, 1] = -a[:, 0]  # A·B's terms cancel pairwise
        result, commitment = _run(dtype, a, b)
        assert _verify(dtype, a, b, result, commitment) == "ok", (trial, m, k, n)


def _check(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> bool:
    vectors = derive_vectors(SEED, bytes(32), b.shape[1], "float32")
    return check_product(a, b, c, "float32", vectors)


def _tau(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """τ_i of the docstring (item 4) for float32, from numpy's float64 norms (each within far
    less than the 1% allowed for below), dropping the underflow terms (below 2^-130 here)."""
    u, k, n, lam = 2.0**-24, a.shape[1], b.shape[1], 13.0
    g_k, g_n = k * u / (1 - k * u), n * u / (1 - n * u)
    beta = g_k + u * (1 + g_k)
    r = derive_vectors(SEED, bytes(32), n, "float32")[:, 0]
    a_norms = np.linalg.norm(a.astype(np.float64), axis=1)
    b_frobenius = np.linalg.norm(b.astype(np.float64))
    v_norm = np.linalg.norm(b.astype(np.float64) @ r)
    c_norms = np.linalg.norm(c.astype(np.float64), axis=1)
    c_y = u + g_k * (1 + u)
    return (
        lam * beta * a_norms * b_frobenius
        + c_y * a_norms * v_norm
        + g_n * c_norms * np.linalg.norm(r)
    )


def test_deviations_are_judged_against_the_bound_not_the_quick_one() -> None:
    """A deviation far above an honest row's rounding but inside τ_i passes (the check's
    cheap thresholds only ever accept early, item 6); one just beyond 2·T_i = 4·τ_i fails."""
    rng = np.random.default_rng(21)
    a = rng.standard_normal((64, 256)).astype(np.float32)
    b = rng.standard_normal((256, 48)).astype(np.float32)
    c = a @ b
    tau = _tau(a, b, c)
    u, k = 2.0**-24, 256
    hoeffding = 13.0 * (k * u / (1 - k * u) + u) * np.linalg.norm(a, axis=1) * np.linalg.norm(b)
    inside, beyond = c.copy(), c.copy()
    inside[3, 5] += np.float32(0.95 * hoeffding[3])  # τ_3's leading term alone exceeds it
    beyond[3, 5] += np.float32(4 * 1.01 * tau[3])
    assert _check(a, b, c) and _check(a, b, inside)
    assert not _check(a, b, beyond)


def test_tiny_huge_and_non_finite_inputs() -> None:
    rng = np.random.default_rng(22)
    a = (rng.standard_normal((16, 32)) * 1e-30).astype(np.float32)
    b = (rng.standard_normal((32, 8)) * 1e-6).astype(np.float32)
    assert _check(a, b, a @ b)  # the quick thresholds give way to the full bound
    huge = (rng.standard_normal((16, 32)) * 1e20).astype(np.float32)
    small = (rng.standard_normal((32, 8)) * 1e-20).astype(np.float32)
    product = huge @ small
    assert np.all(np.isfinite(product))
    forged = product.copy()
    forged[0, 0] += np.float32(1e6)
    assert not _check(huge, small, forged)
    broken = a.copy()
    broken[2, 3] = np.inf
    assert not _check(broken, b, a @ b)
    broken[2, 3] = np.nan
    assert not _check(broken, b, a @ b)
