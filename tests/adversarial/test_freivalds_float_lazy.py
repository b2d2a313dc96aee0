"""A lazy node skips a float32 data matmul and still hopes to pass the validators'
Freivalds check (``adapters.compute.matmul_data.verify_matmul_data``): it commits to C = 0,
to half the product, or to the product with one row negated or left zero. At k = n = 2048
on random normal data a worst-case rounding tolerance (about 2·10^3) is as large as
|(A·B·r)_i| itself (about 1.6·10^3), so most rows of such a C would pass (one row negated
or zeroed did); the check must refuse them all while the honest products (numpy's and
torch's float32 matmul) pass.

The node commits to its C (``compute_rows_root``) before the vectors are drawn, as in the
protocol; every verdict comes from the validator's own entry point."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

from adapters.compute.matmul_data import verify_matmul_data
from proofs.matrix_rows import compute_rows_root
from tests.npy_files import npy_bytes

SEED = b"beacon randomness of the round"
NUMPY_16 = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def _inputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2048)
    return (
        rng.standard_normal((n, n), dtype=np.float32),
        rng.standard_normal((n, n), dtype=np.float32),
    )


def _verdict(a_npy: bytes, b_npy: bytes, c: np.ndarray, dtype: str = "float32") -> str:
    n = c.shape[0]
    c = np.ascontiguousarray(c)
    stored = c.view(np.uint16) if dtype == "bfloat16" else c
    return verify_matmul_data(
        a_npy,
        b_npy,
        npy_bytes(c),
        dtype=dtype,
        m=n,
        k=n,
        n=n,
        commitment=compute_rows_root(stored, dtype),
        openings_seed=SEED,
    )


def test_lazy_results_fail_and_honest_ones_pass_at_2048() -> None:
    a, b = _inputs(2048)
    a_npy, b_npy = npy_bytes(a), npy_bytes(b)
    honest = a @ b
    assert honest.dtype == np.float32
    negated_row, zeroed_row = honest.copy(), honest.copy()
    negated_row[0] = -negated_row[0]
    zeroed_row[0] = 0.0
    lazy = {
        "zeros": np.zeros_like(honest),
        "half": (0.5 * (a.astype(np.float64) @ b.astype(np.float64))).astype(np.float32),
        "row 0 negated": negated_row,
        "row 0 zeroed": zeroed_row,
    }
    verdicts = {name: _verdict(a_npy, b_npy, c) for name, c in lazy.items()}
    assert verdicts == dict.fromkeys(lazy, "proof_invalid")
    with torch.no_grad():
        torch_product = torch.matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert _verdict(a_npy, b_npy, honest) == "ok"
    assert _verdict(a_npy, b_npy, torch_product) == "ok"


@pytest.mark.slow
def test_a_zero_result_fails_and_the_honest_one_passes_at_4096() -> None:
    a, b = _inputs(4096)
    a_npy, b_npy = npy_bytes(a), npy_bytes(b)
    assert _verdict(a_npy, b_npy, np.zeros((4096, 4096), np.float32)) == "proof_invalid"
    assert _verdict(a_npy, b_npy, a @ b) == "ok"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_lazy_16_bit_results_fail_and_the_honest_one_passes(dtype: str) -> None:
    """C's own rounding (2^-11, 2^-8) only widens the honest slack: under the worst-case
    bound at n = 2048 a negated row passed, and a zero bfloat16 C as well."""
    n, kind = 2048, NUMPY_16[dtype]
    a32, b32 = _inputs(n)
    a, b = a32.astype(kind), b32.astype(kind)
    product = a.astype(np.float32) @ b.astype(np.float32)
    negated_row = product.copy()
    negated_row[0] = -negated_row[0]
    a_npy, b_npy = npy_bytes(a), npy_bytes(b)
    for c, verdict in (
        (np.zeros((n, n), np.float32), "proof_invalid"),
        (negated_row, "proof_invalid"),
        (product, "ok"),
    ):
        assert _verdict(a_npy, b_npy, c.astype(kind), dtype) == verdict
