"""The node agent's torch path reproduces ``derive_inputs`` and the committed product bit for
bit (CPU here; tests/gpu covers CUDA)."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import numpy as np
import pytest

from proofs import matmul

torch = pytest.importorskip("torch")


def _torch_inputs(seed: bytes, n: int) -> tuple[Any, Any]:
    """The derivation written the way the module docstring tells a torch agent to."""
    header = matmul.INPUT_TAG + struct.pack(">I", len(seed)) + seed + struct.pack(">I", n)
    stream = bytearray(hashlib.shake_256(header).digest(2 * n * n))
    values = (torch.frombuffer(stream, dtype=torch.uint8) & 15).to(torch.float32) - 8
    return values[: n * n].reshape(n, n), values[n * n :].reshape(n, n)


def test_torch_derivation_and_product_match_numpy() -> None:
    seed, n = b"torch-agent", 192
    ta, tb = _torch_inputs(seed, n)
    a, b = matmul.derive_inputs(seed, n)
    assert np.array_equal(ta.numpy(), a) and np.array_equal(tb.numpy(), b)
    torch_c = (ta @ tb).numpy()
    assert matmul.commit_rows(torch_c) == matmul.commit_rows(matmul.compute_product(a, b))
    assert matmul.verify_proof(matmul.make_matmul_proof(torch_c, seed))
