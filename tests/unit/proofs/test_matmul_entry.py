"""The entry check of a data matmul's fraud proof (proofs.fraud.is_matmul_entry_wrong): no
honest entry of any dtype is provable, a changed one is (int8 by one unit), and a claim whose
rows are not under the roots proves nothing."""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np
import pytest

from proofs.fraud import is_matmul_entry_wrong, open_entry_claim
from proofs.matmul_data import find_wrong_entry
from proofs.matrix_rows import compute_columns_root, compute_rows_root

M, K, N = 12, 33, 10
NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def _storage(array: np.ndarray, dtype: str) -> np.ndarray:
    return array.view(np.uint16) if dtype == "bfloat16" else array


def _honest(dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A, B and C = A·B rounded as the node does (float32 accumulation, one rounding), in
    the dtypes' storage (bfloat16 as bits)."""
    rng = np.random.default_rng(5)
    if dtype == "int8":
        a = rng.integers(-128, 128, (M, K), dtype=np.int8)
        b = rng.integers(-128, 128, (K, N), dtype=np.int8)
        return a, b, (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    a = rng.standard_normal((M, K)).astype(NUMPY_DTYPES[dtype])
    b = rng.standard_normal((K, N)).astype(NUMPY_DTYPES[dtype])
    c = (a.astype(np.float32) @ b.astype(np.float32)).astype(NUMPY_DTYPES[dtype])
    return _storage(a, dtype), _storage(b, dtype), _storage(c, dtype)


def _is_wrong(a: np.ndarray, b: np.ndarray, c: np.ndarray, dtype: str, claim: object) -> bool:
    c_dtype = "int32" if dtype == "int8" else dtype
    return is_matmul_entry_wrong(
        dtype=dtype,
        m=M,
        k=K,
        n=N,
        a_rows_root=compute_rows_root(a, dtype),
        b_cols_root=compute_columns_root(b, dtype),
        commitment=compute_rows_root(c, c_dtype),
        claim=claim,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int8"])
def test_no_honest_entry_is_provable_and_a_changed_one_is(dtype: str) -> None:
    a, b, c = _honest(dtype)
    assert find_wrong_entry(a, b, c, dtype) is None
    assert not any(
        _is_wrong(a, b, c, dtype, open_entry_claim(a, b, c, dtype, i, j))
        for i in range(M)
        for j in range(N)
    )
    forged = c.copy()
    if dtype == "int8":
        forged[4, 6] += 1
    else:
        values = forged.view(NUMPY_DTYPES[dtype]) if dtype == "bfloat16" else forged
        values[4, 6] = NUMPY_DTYPES[dtype](float(values[4, 6]) + 0.5 * K)
    assert find_wrong_entry(a, b, forged, dtype) == (4, 6)
    assert _is_wrong(a, b, forged, dtype, open_entry_claim(a, b, forged, dtype, 4, 6))


def test_a_claim_with_rows_off_their_roots_proves_nothing() -> None:
    a, b, c = _honest("int8")
    forged = c.copy()
    forged[1, 2] += 7
    claim = open_entry_claim(a, b, forged, "int8", 1, 2)
    assert _is_wrong(a, b, forged, "int8", claim)
    other_a = a.copy()
    other_a[1, 0] ^= 1
    moved = [
        dataclasses.replace(claim, a_row=open_entry_claim(other_a, b, forged, "int8", 1, 2).a_row),
        dataclasses.replace(claim, row=2),
        dataclasses.replace(claim, column=3),
        dataclasses.replace(claim, c_path=[]),
        dataclasses.replace(claim, b_column=claim.b_column[:-1]),
    ]
    assert not any(_is_wrong(a, b, forged, "int8", m) for m in moved)
