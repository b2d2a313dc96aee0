"""Workload parameters, one typed Struct per kind: the contract between consumers, agents and
validators. A job's ``workload.params`` (a dict of str/int/bool in the ledger) is parsed here
once with ``parse_params``; anything else is a ``WorkloadParamsError``.

| kind        | params                                                                  |
|-------------|-------------------------------------------------------------------------|
| ``matmul``  | ``n`` (int, 1..4096, default 512), ``seed`` (str, default "")           |
| ``inference`` | ``seed`` (str: the model's weights), ``batch`` (int, 1..4096, default |
|             | 64), ``width`` (int, 8..1024, default 256), ``depth`` (int, 1..8,       |
|             | default 3), ``input_dim`` (1..1024, default 64), ``output_dim``          |
|             | (1..1024, default 16)                                                   |
| ``zk-prove`` | ``circuit`` ("poseidon_preimage" or "matvec"), ``inputs`` (JSON text:  |
|             | ``{"a": int, "b": int}`` / ``{"matrix": [[int]], "x": [int]}``), and    |
|             | the proving key: ``zkey`` (hex SHA-256 of a snarkjs .zkey in the object  |
|             | store) or ``setup_seed`` (int; INSECURE derived keys, devnets and tests) |

Job binding: matmul inputs and inference inputs derive from ``compute_job_seed(job_id,
seed)`` = SHA-256(JOB_SEED_TAG ‖ u32 len(job_id) ‖ job_id ‖ seed), so a result computed for
another job (or copied from another node's job) does not verify for this one. Inference
*weights* derive from ``seed`` alone: the model is the consumer's choice, the inputs the job's.
A zk-prove proof carries ``proofs.circuits.compute_binding(job_id, node_id)`` as its last
public input (``adapters.compute.zk_prover``); its ``setup_seed`` keys are accepted only
where the ledger's policy has ``insecure_setups_allowed``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec

from proofs.job_seed import JOB_SEED_TAG as JOB_SEED_TAG  # re-exported
from proofs.job_seed import MATMUL_N_DEFAULT
from proofs.job_seed import compute_job_seed as compute_job_seed  # re-exported
from proofs.matmul import MATRIX_SIZE_MAX

SEED_CHARS_MAX = 256
INFERENCE_BATCH_MAX = 4096
INFERENCE_WIDTH_MIN, INFERENCE_WIDTH_MAX = 8, 1024
INFERENCE_DEPTH_MAX = 8
INFERENCE_DIM_MAX = 1024
ZK_INPUTS_CHARS_MAX = 1024

WorkloadKind = Literal["matmul", "inference", "zk-prove"]
CircuitName = Literal["poseidon_preimage", "matvec"]
Seed = Annotated[str, msgspec.Meta(max_length=SEED_CHARS_MAX)]


class WorkloadParamsError(ValueError):
    """A job's params do not fit its workload kind (the message names the field)."""


class MatmulParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """C = A·B with A, B derived from the job seed (``proofs.matmul.derive_inputs``)."""

    n: Annotated[int, msgspec.Meta(ge=1, le=MATRIX_SIZE_MAX)] = MATMUL_N_DEFAULT
    seed: Seed = ""


class InferenceParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A seeded MLP (``adapters.compute.inference_model``) over ``batch`` derived inputs."""

    seed: Seed = ""
    batch: Annotated[int, msgspec.Meta(ge=1, le=INFERENCE_BATCH_MAX)] = 64
    width: Annotated[int, msgspec.Meta(ge=INFERENCE_WIDTH_MIN, le=INFERENCE_WIDTH_MAX)] = 256
    depth: Annotated[int, msgspec.Meta(ge=1, le=INFERENCE_DEPTH_MAX)] = 3
    input_dim: Annotated[int, msgspec.Meta(ge=1, le=INFERENCE_DIM_MAX)] = 64
    output_dim: Annotated[int, msgspec.Meta(ge=1, le=INFERENCE_DIM_MAX)] = 16


class ZkProveParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A Groth16 proof of a named circuit of ``proofs.circuits`` on the given inputs."""

    circuit: CircuitName
    inputs: Annotated[str, msgspec.Meta(max_length=ZK_INPUTS_CHARS_MAX)]
    zkey: Annotated[str, msgspec.Meta(pattern="^([0-9a-f]{64})?$")] = ""
    setup_seed: Annotated[int, msgspec.Meta(ge=0)] | None = None

    def decoded_inputs(self) -> dict[str, Any]:
        """``inputs`` parsed as a JSON object (raises WorkloadParamsError)."""
        try:
            value = json.loads(self.inputs)
        except ValueError as exc:
            raise WorkloadParamsError(f"zk-prove: inputs is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise WorkloadParamsError("zk-prove: inputs must be a JSON object")
        return value


WorkloadParams = MatmulParams | InferenceParams | ZkProveParams

PARAM_TYPES: dict[str, type[WorkloadParams]] = {
    "matmul": MatmulParams,
    "inference": InferenceParams,
    "zk-prove": ZkProveParams,
}


def parse_params(kind: str, params: dict[str, Any]) -> WorkloadParams:
    """The typed params of a ``kind`` job; WorkloadParamsError names the bad field."""
    param_type = PARAM_TYPES.get(kind)
    if param_type is None:
        raise WorkloadParamsError(f"unknown workload kind {kind!r}; known: {sorted(PARAM_TYPES)}")
    try:
        parsed = msgspec.convert(params, type=param_type)
    except msgspec.ValidationError as exc:
        raise WorkloadParamsError(f"{kind}: {exc}") from exc
    if isinstance(parsed, ZkProveParams):
        if (parsed.setup_seed is None) == (not parsed.zkey):
            raise WorkloadParamsError("zk-prove: give exactly one of zkey and setup_seed")
        parsed.decoded_inputs()
    return parsed


def encode_params(params: WorkloadParams) -> dict[str, Any]:
    """The ledger form of typed params (what ``job.submit`` carries); None values left out."""
    raw = msgspec.to_builtins(params)
    return {key: value for key, value in raw.items() if value is not None}
