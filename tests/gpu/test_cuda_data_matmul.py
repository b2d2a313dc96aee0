"""Data matmul on CUDA (skipped without CUDA): for every dtype the GPU's C passes the
validators' CPU Freivalds check and is within the stated rounding bound of numpy's float64
product (cuBLAS with TF32 and reduced-precision reductions off accumulates in float32);
int8 equals the exact int64 product. Inference on the consumer's MLP passes too."""

from __future__ import annotations

import io

import ml_dtypes
import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_safetensors

from adapters.compute.inference_data import run_inference_data, verify_inference_data
from adapters.compute.matmul_data import run_matmul_data, verify_matmul_data
from adapters.compute.runtime import is_cuda_available
from tests.npy_files import NUMPY_DTYPES, npy_bytes

REASON = (
    "no CUDA device: torch "
    f"{torch.__version__} sees {torch.cuda.device_count() if is_cuda_available() else 0} GPUs"
)
pytestmark = pytest.mark.skipif(not is_cuda_available(), reason=REASON)
CUDA = torch.device("cuda", 0)
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
M, K, N = 640, 1536, 512


@pytest.mark.parametrize("dtype", list(NUMPY_DTYPES))
def test_data_matmul_on_cuda_verifies_and_is_within_the_bound(dtype: str) -> None:
    rng = np.random.default_rng(7)
    if dtype == "int8":
        a = rng.integers(-128, 128, (M, K), dtype=np.int8)
        b = rng.integers(-128, 128, (K, N), dtype=np.int8)
    else:
        a = rng.standard_normal((M, K)).astype(NUMPY_DTYPES[dtype])
        b = rng.standard_normal((K, N)).astype(NUMPY_DTYPES[dtype])
    run = run_matmul_data(npy_bytes(a), npy_bytes(b), dtype=dtype, m=M, k=K, n=N, device=CUDA)
    assert run.environment.device == "cuda"
    verdict = verify_matmul_data(
        npy_bytes(a),
        npy_bytes(b),
        run.result,
        dtype=dtype,
        m=M,
        k=K,
        n=N,
        commitment=run.commitment,
        openings_seed=b"beacon",
    )
    assert verdict == "ok"
    c = np.load(io.BytesIO(run.result), allow_pickle=False)
    if dtype == "int8":
        assert np.array_equal(c.astype(np.int64), a.astype(np.int64) @ b.astype(np.int64))
        return
    c = c.view(ml_dtypes.bfloat16) if dtype == "bfloat16" else c
    gamma = K * 2.0**-24 / (1 - K * 2.0**-24)
    beta = gamma + UNIT_ROUNDOFF[dtype] * (1 + gamma)
    magnitudes = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(c.astype(np.float64) - exact) <= beta * magnitudes * (1 + 1e-9))


def test_data_inference_on_cuda_passes_the_cpu_check() -> None:
    rng = np.random.default_rng(8)
    dims = [(256, 64), (256, 256), (16, 256)]
    tensors = {}
    for i, (fan_out, fan_in) in enumerate(dims):
        weight = rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)
        tensors[f"layers.{i}.weight"] = weight.astype(np.float32)
        tensors[f"layers.{i}.bias"] = rng.standard_normal(fan_out).astype(np.float32)
    model = save_safetensors(tensors)
    x = npy_bytes(rng.standard_normal((512, 64)).astype(np.float32))
    run = run_inference_data(model, x, layer_dims=dims, batch=512, input_dim=64, device=CUDA)
    verdict = verify_inference_data(
        model, x, run.proof, layer_dims=dims, batch=512, input_dim=64, openings_seed=b"b"
    )
    assert verdict == "ok"
