"""matmul and inference on CUDA, compared with the CPU results (skipped without CUDA).

matmul must be bit-identical (exact integer products in float32, TF32 off); inference must
agree within ``proofs.inference_commitment``'s tolerance, item by item, and the CUDA result
must pass the validators' (CPU) check.
"""

from __future__ import annotations

import pytest
import torch

from adapters.compute.inference_model import compute_outputs, run_inference, verify_inference
from adapters.compute.runtime import enable_determinism, is_cuda_available
from adapters.compute.torch_matmul import run_matmul, run_matmul_job
from adapters.compute.workloads import InferenceParams, compute_job_seed
from proofs.inference_commitment import is_output_close
from proofs.matmul import verify_proof
from proofs.matmul_product import verify_product_proof

REASON = (
    "no CUDA device: torch "
    f"{torch.__version__} sees {torch.cuda.device_count() if is_cuda_available() else 0} GPUs"
)
pytestmark = pytest.mark.skipif(not is_cuda_available(), reason=REASON)
CUDA, CPU = torch.device("cuda", 0), torch.device("cpu")


def test_matmul_on_cuda_equals_cpu() -> None:
    enable_determinism()
    seed = b"gpu-matmul"
    on_gpu = run_matmul(seed, 2048, CUDA)
    on_cpu = run_matmul(seed, 2048, CPU)
    assert on_gpu.proof.root == on_cpu.proof.root
    assert on_gpu.environment.device == "cuda" and verify_proof(on_gpu.proof)
    job = run_matmul_job(seed, 2048, CUDA)
    assert job.proof.root == on_cpu.proof.root
    assert verify_product_proof(job.proof, b"beacon randomness")


def test_inference_on_cuda_is_within_tolerance_of_cpu() -> None:
    params = InferenceParams(seed="gpu-model", batch=256)
    job_seed = compute_job_seed("job-gpu", params.seed)
    indices = list(range(params.batch))
    gpu, _ = compute_outputs(params, job_seed, indices, CUDA)
    cpu, _ = compute_outputs(params, job_seed, indices, CPU)
    assert all(is_output_close(g.tobytes(), c.tobytes()) for g, c in zip(gpu, cpu, strict=True))
    run = run_inference("job-gpu", params, CUDA)
    assert run.environment.device == "cuda"
    assert verify_inference("job-gpu", params, run.proof, b"beacon randomness")
