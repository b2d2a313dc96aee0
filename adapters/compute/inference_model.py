"""The inference workload: a small MLP whose weights derive from a seed (no downloads).

Model. ``depth`` hidden layers of ``width`` units with tanh, then a linear output layer.
Layer l's weight matrix (fan_out × fan_in) and bias (fan_out) are read from
``SHAKE-256(WEIGHT_TAG || u32 len(seed) || seed || u32 l)`` as little-endian uint16 values u,
mapped to ``(u / 32768 - 1) / sqrt(fan_in)``: uniform in [-1, 1) scaled like a standard init.
Item i's input (``input_dim`` values) comes from ``SHAKE-256(INPUT_TAG || job seed || u32 i)``
the same way, unscaled. Each item is computed independently of the others, so a validator
re-executes just the opened items. Deterministic algorithms are on; CPU results were
bit-identical across runs, thread counts and processes here; across devices and batch shapes
they agree within ``proofs.inference_commitment``'s tolerance. The node ships every output;
the validator re-runs the items drawn from the job's ``openings_seed`` after the commit.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import struct
import time
from functools import lru_cache

import msgspec
import numpy as np
import torch

from adapters.compute.runtime import (
    ExecutionEnvironment,
    describe_environment,
    enable_determinism,
    synchronize,
)
from adapters.compute.workloads import InferenceParams, compute_job_seed
from proofs.inference_commitment import (
    DEFAULT_ATOL,
    DEFAULT_ITEM_OPENINGS,
    DEFAULT_RTOL,
    InferenceProof,
    get_outputs,
    is_output_close,
    make_inference_proof,
    select_items,
)

WEIGHT_TAG = b"flopledger/inference/weights/v1\x00"
INPUT_TAG = b"flopledger/inference/inputs/v1\x00"
MODEL_CACHE_MAX = 8
UINT16_HALF = 32768.0


class InferenceRun(msgspec.Struct, frozen=True, kw_only=True):
    """One executed batch: its proof, where it ran, and how long the forward pass took."""

    proof: InferenceProof
    environment: ExecutionEnvironment
    forward_ns: int
    total_ns: int


def build_model(params: InferenceParams) -> torch.nn.Sequential:
    """The MLP of ``params`` on the CPU, weights from ``params.seed`` (module docstring)."""
    dims = [params.input_dim, *([params.width] * params.depth), params.output_dim]
    seed = params.seed.encode()
    layers: list[torch.nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
        linear = torch.nn.Linear(fan_in, fan_out)
        header = WEIGHT_TAG + struct.pack(">I", len(seed)) + seed + struct.pack(">I", index)
        values = _uniform(header, fan_out * (fan_in + 1)) / np.float32(np.sqrt(fan_in))
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(values[: fan_out * fan_in].reshape(fan_out, -1)))
            linear.bias.copy_(torch.from_numpy(values[fan_out * fan_in :]))
        layers.append(linear)
        if index < len(dims) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers).eval()


def derive_item_inputs(job_seed: bytes, indices: list[int], input_dim: int) -> np.ndarray:
    """The inputs of the given items (rows), float32."""
    rows = [_uniform(INPUT_TAG + job_seed + struct.pack(">I", i), input_dim) for i in indices]
    return np.stack(rows)


def run_inference(job_id: str, params: InferenceParams, device: torch.device) -> InferenceRun:
    """Run the whole batch on ``device``, commit to the outputs and ship them all."""
    started = time.perf_counter_ns()
    enable_determinism()
    job_seed = compute_job_seed(job_id, params.seed)
    outputs, forward_ns = compute_outputs(params, job_seed, list(range(params.batch)), device)
    rows = [row.tobytes() for row in _canonical(outputs)]
    proof = make_inference_proof(job_seed, rows, params.output_dim)
    return InferenceRun(
        proof=proof,
        environment=describe_environment(device, torch.float32),
        forward_ns=forward_ns,
        total_ns=time.perf_counter_ns() - started,
    )


def compute_outputs(
    params: InferenceParams, job_seed: bytes, indices: list[int], device: torch.device
) -> tuple[np.ndarray, int]:
    """Outputs (float32, one row per item) of the given items, and the forward pass's ns."""
    model = _cached_model(params)
    if device.type != "cpu":  # the cached model stays on the CPU for every thread
        model = copy.deepcopy(model).to(device)
    inputs = torch.from_numpy(derive_item_inputs(job_seed, indices, params.input_dim)).to(device)
    synchronize(device)
    started = time.perf_counter_ns()
    with torch.no_grad():
        outputs = model(inputs)
    synchronize(device)
    return outputs.cpu().numpy(), time.perf_counter_ns() - started


def verify_inference(
    job_id: str,
    params: InferenceParams,
    proof: InferenceProof,
    openings_seed: bytes,
    *,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    openings_required: int = DEFAULT_ITEM_OPENINGS,
) -> bool:
    """The validator's check: the proof is for this job and shape, its outputs are the
    committed ones, and the items drawn from ``openings_seed`` (the job's beacon randomness),
    re-executed on the CPU, are each within tolerance. Never raises on bad node input."""
    if proof.seed != compute_job_seed(job_id, params.seed):
        return False
    if (proof.batch, proof.output_dim) != (params.batch, params.output_dim):
        return False
    outputs = get_outputs(proof)
    if outputs is None:
        return False
    try:
        indices = select_items(openings_seed, proof.batch, proof.root, openings_required)
    except (ValueError, TypeError):
        return False
    expected, _ = compute_outputs(params, proof.seed, indices, torch.device("cpu"))
    rows = [row.tobytes() for row in _canonical(expected)]
    return all(
        is_output_close(outputs[i], row, atol, rtol) for i, row in zip(indices, rows, strict=True)
    )


@lru_cache(maxsize=MODEL_CACHE_MAX)
def _cached_model(params: InferenceParams) -> torch.nn.Sequential:
    return build_model(params)


def _uniform(header: bytes, count: int) -> np.ndarray:
    raw = np.frombuffer(hashlib.shake_256(header).digest(2 * count), dtype="<u2")
    return (raw.astype(np.float32) / np.float32(UINT16_HALF)) - np.float32(1.0)


def _canonical(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype="<f4") + np.float32(0.0)
