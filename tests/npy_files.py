"""Test inputs as ``.npy`` bytes, written by numpy itself (not by ``proofs.npy``, the code
under test), and the numpy dtype of each matrix dtype a data job takes."""

from __future__ import annotations

import io

import ml_dtypes
import numpy as np

NUMPY_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "int8": np.int8,
}


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as numpy's ``np.save`` writes it (no pickle)."""
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()
