"""Inference on the consumer's own model and inputs: an MLP read from a safetensors file, run
on its ``x`` (``.npy``), outputs committed per item; validators re-run sampled items.

Model file (safetensors, https://github.com/huggingface/safetensors, "Format"): exactly the
2·depth tensors ``layers.{i}.weight`` of shape [fan_out, fan_in] and ``layers.{i}.bias`` of
shape [fan_out], i = 0..depth-1, all ``F32``, with the layer sizes of
``domain.workloads.compute_mlp_layer_dims`` (input_dim -> width -> ... -> width ->
output_dim; depth 1 is one layer input_dim -> output_dim). Layer i computes
``h @ weight.T + bias`` (``torch.nn.Linear``'s convention), ReLU between layers, none after
the last. Any other tensor name, dtype or shape is refused (``ModelFileError``); the optional
``__metadata__`` string map is ignored. The file is parsed by the safetensors library (a
JSON header and raw little-endian tensors: no pickle, no code).

Inputs: ``x`` is a float32 ``.npy`` of shape [batch, input_dim] (``proofs.npy``, strict).

Result. The node commits to every item's output (``proofs.inference_commitment``: RFC 6962
root over the canonical float32 output rows, in item order) and ships them all in an
``InferenceProof`` whose ``seed`` is SHA-256 of the ``x`` file (binding the outputs to the
inputs they claim). Validators re-execute the items drawn from the job's ``openings_seed``
and the root, in numpy on the CPU, within ``proofs.inference_commitment``'s tolerance. The
consumer's result file is the outputs as a float32 ``.npy`` [batch, output_dim].
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import numpy.typing as npt
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors

from adapters.compute.inference_model import InferenceRun
from adapters.compute.runtime import describe_environment, enable_determinism, synchronize
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
from proofs.npy import NpyError, encode_npy, read_npy

WEIGHT_NAME = "layers.{index}.weight"
BIAS_NAME = "layers.{index}.bias"

Layer = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


class ModelFileError(ValueError):
    """The model file is no safetensors MLP of the job's shape (the message says why)."""


def read_model(model: bytes, layer_dims: list[tuple[int, int]]) -> list[Layer]:
    """(weight [out, in], bias [out]) per layer, float32; ModelFileError unless ``model`` is
    a safetensors file of exactly these layers (module docstring)."""
    try:
        tensors = load_safetensors(bytes(model))
    except (SafetensorError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"model: not a safetensors file: {exc}") from exc
    expected = {WEIGHT_NAME.format(index=i) for i in range(len(layer_dims))}
    expected |= {BIAS_NAME.format(index=i) for i in range(len(layer_dims))}
    if set(tensors) != expected:
        unexpected, missing = sorted(set(tensors) - expected), sorted(expected - set(tensors))
        raise ModelFileError(f"model: tensors missing {missing}, unexpected {unexpected}")
    layers: list[Layer] = []
    for index, (fan_out, fan_in) in enumerate(layer_dims):
        weight = _tensor(tensors, WEIGHT_NAME.format(index=index), (fan_out, fan_in))
        bias = _tensor(tensors, BIAS_NAME.format(index=index), (fan_out,))
        layers.append((weight, bias))
    return layers


def read_inputs(x: bytes, batch: int, input_dim: int) -> npt.NDArray[np.float32]:
    """The [batch, input_dim] float32 inputs; NpyError names the fault."""
    try:
        return read_npy(x, "float32", (batch, input_dim))  # type: ignore[return-value]
    except NpyError as exc:
        raise NpyError(f"input x: {exc}") from exc


def run_inference_data(
    model: bytes,
    x: bytes,
    *,
    layer_dims: list[tuple[int, int]],
    batch: int,
    input_dim: int,
    device: torch.device,
) -> InferenceRun:
    """Run the consumer's MLP on every item of ``x`` on ``device``, commit to the outputs
    and ship them all."""
    started = time.perf_counter_ns()
    enable_determinism()
    layers = read_model(model, layer_dims)
    inputs = read_inputs(x, batch, input_dim)
    weights = [
        (torch.from_numpy(w.copy()).to(device), torch.from_numpy(b.copy()).to(device))
        for w, b in layers
    ]
    hidden = torch.from_numpy(inputs.copy()).to(device)
    synchronize(device)
    forward_started = time.perf_counter_ns()
    with torch.no_grad():
        for index, (weight, bias) in enumerate(weights):
            hidden = torch.nn.functional.linear(hidden, weight, bias)
            if index < len(weights) - 1:
                hidden = torch.relu(hidden)
    synchronize(device)
    forward_ns = time.perf_counter_ns() - forward_started
    outputs = _canonical(hidden.cpu().numpy())
    proof = make_inference_proof(
        hashlib.sha256(x).digest(), [row.tobytes() for row in outputs], layer_dims[-1][0]
    )
    return InferenceRun(
        proof=proof,
        environment=describe_environment(device, torch.float32),
        forward_ns=forward_ns,
        total_ns=time.perf_counter_ns() - started,
    )


def verify_inference_data(
    model: bytes,
    x: bytes,
    proof: InferenceProof,
    *,
    layer_dims: list[tuple[int, int]],
    batch: int,
    input_dim: int,
    openings_seed: bytes,
    openings_required: int = DEFAULT_ITEM_OPENINGS,
) -> str:
    """The validator's check: ``"ok"``, ``"inputs_malformed"`` (the model or x is not the
    job's shape) or ``"proof_invalid"`` (the proof is for other inputs or another shape, its
    outputs are not the committed ones, or a drawn item re-executed in numpy is out of
    tolerance). Never raises on bad node input."""
    try:
        layers = read_model(model, layer_dims)
        inputs = read_inputs(x, batch, input_dim)
    except (ModelFileError, NpyError):
        return "inputs_malformed"
    if proof.seed != hashlib.sha256(x).digest():
        return "proof_invalid"
    if (proof.batch, proof.output_dim) != (batch, layer_dims[-1][0]):
        return "proof_invalid"
    outputs = get_outputs(proof)
    if outputs is None:
        return "proof_invalid"
    try:
        indices = select_items(openings_seed, proof.batch, proof.root, openings_required)
    except (ValueError, TypeError):
        return "proof_invalid"
    expected = _canonical(compute_outputs_numpy(layers, inputs[indices]))
    passed = all(
        is_output_close(outputs[i], row.tobytes(), DEFAULT_ATOL, DEFAULT_RTOL)
        for i, row in zip(indices, expected, strict=True)
    )
    return "ok" if passed else "proof_invalid"


def compute_outputs_numpy(
    layers: list[Layer], inputs: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """The MLP's outputs in numpy float32 (the validator's re-execution, without torch)."""
    hidden = inputs
    for index, (weight, bias) in enumerate(layers):
        hidden = hidden @ weight.T + bias
        if index < len(layers) - 1:
            hidden = np.maximum(hidden, np.float32(0.0))
    return hidden


def encode_outputs(proof: InferenceProof) -> bytes:
    """The consumer's result file: every output as a float32 ``.npy`` [batch, output_dim]."""
    values = np.frombuffer(proof.outputs, dtype="<f4").reshape(proof.batch, proof.output_dim)
    return encode_npy(values, "float32")


def _tensor(
    tensors: dict[str, np.ndarray], name: str, shape: tuple[int, ...]
) -> npt.NDArray[np.float32]:
    value = tensors[name]
    if value.dtype != np.float32:
        raise ModelFileError(f"model: {name} is {value.dtype}, not float32 (F32)")
    if value.shape != shape:
        raise ModelFileError(f"model: {name} has shape {list(value.shape)}, not {list(shape)}")
    return value


def _canonical(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(values, dtype="<f4") + np.float32(0.0)
