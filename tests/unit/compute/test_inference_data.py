"""Inference on the consumer's own safetensors MLP and .npy inputs: the node's outputs equal
the MLP computed here in float64 within the stated tolerance, validators re-running sampled
items accept them and refuse a changed output, and files of the wrong shape are refused."""

from __future__ import annotations

import io

import msgspec
import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_safetensors

from adapters.compute.inference_data import (
    ModelFileError,
    encode_outputs,
    run_inference_data,
    verify_inference_data,
)
from proofs.inference_commitment import InferenceProof, make_inference_proof
from proofs.npy import NpyError
from tests.npy_files import npy_bytes

CPU = torch.device("cpu")
BATCH, INPUT_DIM, WIDTH, OUTPUT_DIM, DEPTH = 40, 12, 16, 5, 3
LAYER_DIMS = [(WIDTH, INPUT_DIM), (WIDTH, WIDTH), (OUTPUT_DIM, WIDTH)]
SEED = b"beacon randomness"


def _model(
    rng: np.random.Generator, dims: list[tuple[int, int]] = LAYER_DIMS
) -> dict[str, np.ndarray]:
    tensors = {}
    for i, (fan_out, fan_in) in enumerate(dims):
        tensors[f"layers.{i}.weight"] = (
            rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)
        ).astype(np.float32)
        tensors[f"layers.{i}.bias"] = rng.standard_normal(fan_out).astype(np.float32)
    return tensors


def _files(seed: int = 0) -> tuple[dict[str, np.ndarray], bytes, np.ndarray, bytes]:
    rng = np.random.default_rng(seed)
    tensors = _model(rng)
    x = rng.standard_normal((BATCH, INPUT_DIM)).astype(np.float32)
    return tensors, save_safetensors(tensors), x, npy_bytes(x)


def _mlp_float64(tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    hidden = x.astype(np.float64)
    for i in range(DEPTH):
        hidden = hidden @ tensors[f"layers.{i}.weight"].astype(np.float64).T
        hidden = hidden + tensors[f"layers.{i}.bias"].astype(np.float64)
        if i < DEPTH - 1:
            hidden = np.maximum(hidden, 0.0)
    return hidden


def _verify(model: bytes, x: bytes, proof: InferenceProof) -> str:
    return verify_inference_data(
        model,
        x,
        proof,
        layer_dims=LAYER_DIMS,
        batch=BATCH,
        input_dim=INPUT_DIM,
        openings_seed=SEED,
    )


def test_the_consumers_mlp_runs_verifies_and_matches_float64_within_tolerance() -> None:
    tensors, model, x, x_npy = _files()
    run = run_inference_data(
        model, x_npy, layer_dims=LAYER_DIMS, batch=BATCH, input_dim=INPUT_DIM, device=CPU
    )
    outputs = np.load(io.BytesIO(encode_outputs(run.proof)), allow_pickle=False)
    assert outputs.shape == (BATCH, OUTPUT_DIM) and outputs.dtype == np.float32
    expected = _mlp_float64(tensors, x)
    assert np.all(np.abs(outputs - expected) <= 1e-4 + 1e-3 * np.abs(expected))
    assert _verify(model, x_npy, run.proof) == "ok"


def test_a_changed_output_or_other_inputs_are_refused() -> None:
    _, model, x, x_npy = _files()
    run = run_inference_data(
        model, x_npy, layer_dims=LAYER_DIMS, batch=BATCH, input_dim=INPUT_DIM, device=CPU
    )
    rows = [
        bytearray(run.proof.outputs[i * 4 * OUTPUT_DIM : (i + 1) * 4 * OUTPUT_DIM])
        for i in range(BATCH)
    ]
    forged_rows = [bytes(np.full(OUTPUT_DIM, 7.0, np.float32).tobytes()) for _ in rows]
    forged = make_inference_proof(run.proof.seed, forged_rows, OUTPUT_DIM)
    assert _verify(model, x_npy, forged) == "proof_invalid"
    other_x = npy_bytes(x + np.float32(1.0))
    assert _verify(model, other_x, run.proof) == "proof_invalid"
    tampered = msgspec.structs.replace(run.proof, outputs=run.proof.outputs[:-4] + b"\0\0\0\0")
    assert _verify(model, x_npy, tampered) == "proof_invalid"


BAD_MODELS = {
    "not safetensors": lambda t: b"\0" * 64,
    "a tensor missing": lambda t: save_safetensors(
        {k: v for k, v in t.items() if k != "layers.2.bias"}
    ),
    "an extra tensor": lambda t: save_safetensors({**t, "layers.3.bias": t["layers.2.bias"]}),
    "float64 weights": lambda t: save_safetensors(
        {**t, "layers.0.weight": t["layers.0.weight"].astype(np.float64)}
    ),
    "transposed weights": lambda t: save_safetensors(
        {**t, "layers.1.weight": np.ascontiguousarray(t["layers.0.weight"].T)}
    ),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_a_model_file_of_another_shape_is_refused(case: str) -> None:
    tensors, _, _, x_npy = _files()
    model = BAD_MODELS[case](tensors)
    with pytest.raises(ModelFileError):
        run_inference_data(
            model, x_npy, layer_dims=LAYER_DIMS, batch=BATCH, input_dim=INPUT_DIM, device=CPU
        )
    assert (
        _verify(model, x_npy, make_inference_proof(b"", [bytes(4 * OUTPUT_DIM)], OUTPUT_DIM))
        == "inputs_malformed"
    )


def test_inputs_of_another_shape_are_refused() -> None:
    _, model, x, _ = _files()
    with pytest.raises(NpyError, match="input x"):
        run_inference_data(
            model,
            npy_bytes(x[:-1]),
            layer_dims=LAYER_DIMS,
            batch=BATCH,
            input_dim=INPUT_DIM,
            device=CPU,
        )
    with pytest.raises(NpyError, match="input x"):
        run_inference_data(
            model,
            npy_bytes(x.astype(np.float16)),
            layer_dims=LAYER_DIMS,
            batch=BATCH,
            input_dim=INPUT_DIM,
            device=CPU,
        )
