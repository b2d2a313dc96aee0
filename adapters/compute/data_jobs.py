"""Jobs on the consumer's own inputs (issue 17): what the node runs and the validator checks
for each data form of ``domain.workloads``, and what the consumer's client gets back.

Inputs. ``inputs`` maps each input name of the job (``domain.workloads.input_digests``:
``a``/``b``, ``model``/``x``, ``witness``) to the object's plaintext bytes. For a public job
the bytes must hash (SHA-256) to the digest the params name; for a private one the params name
the sealed object, whose digest and AEAD tags the caller checks while opening it. A data
matmul whose params carry ``a_rows_root`` and ``b_cols_root`` runs only when they are the
roots of the inputs (``proofs.matrix_rows.compute_input_roots``): they are what a fraud proof
is checked against, so a node must not commit a result under roots that are not its inputs',
and a validator fails such a result.

Proof objects (the downloadable result, sealed for the consumer when the job is private):
data matmul, C's ``.npy`` itself, committed by the root over its canonical rows; data
inference, ``proofs.inference_commitment.InferenceProof`` (its result file the outputs as a
float32 ``.npy``); zk-prove with a witness, the proof artifact as for inline inputs, its
SHA-256 the commitment. ``result_file_from_proof`` and ``check_result_commitment`` are what
``flopledger job result`` uses, for seeded jobs too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np
import torch

from adapters.compute.inference_data import (
    ModelFileError,
    encode_outputs,
    run_inference_data,
    verify_inference_data,
)
from adapters.compute.matmul_data import run_matmul_data, verify_matmul_data
from adapters.compute.runtime import ExecutionEnvironment
from adapters.compute.workloads import (
    InferenceDataParams,
    MatmulDataParams,
    MatmulParams,
    WorkloadParams,
    WorkloadParamsError,
    ZkProveParams,
    input_digests,
    parse_params,
)
from domain.workloads import compute_mlp_layer_dims
from proofs.inference_commitment import decode_inference_proof, encode_inference_proof, get_outputs
from proofs.matmul import commit_rows
from proofs.matmul_data import result_dtype
from proofs.matmul_product import decode_entries, decode_product_proof
from proofs.matrix_rows import compute_input_roots, compute_rows_root
from proofs.npy import NpyError, encode_npy, read_npy


class DataRun(msgspec.Struct, frozen=True, kw_only=True):
    """A data job's proof object and commitment, where it ran and how long it took."""

    proof: bytes
    commitment: bytes
    environment: ExecutionEnvironment | None
    compute_ns: int
    total_ns: int


def is_data_job(params: WorkloadParams) -> bool:
    """Whether the job runs on input objects (a data form)."""
    return bool(input_digests(params))


def check_inputs(params: WorkloadParams, inputs: Mapping[str, bytes] | None) -> str:
    """``"ok"``, or why ``inputs`` are not the job's: ``inputs_missing`` (an input name
    absent), ``inputs_mismatch`` (a public job's bytes do not hash to the named digest),
    ``inputs_malformed`` (a data matmul's roots are not its inputs'). Never raises."""
    digests = input_digests(params)
    if inputs is None or any(name not in inputs for name in digests):
        return "inputs_missing"
    if not params.encrypted:
        for name, digest in digests.items():
            if hashlib.sha256(inputs[name]).hexdigest() != digest:
                return "inputs_mismatch"
    if isinstance(params, MatmulDataParams) and params.a_rows_root is not None:
        try:
            roots = compute_input_roots(
                inputs["a"], inputs["b"], dtype=params.dtype, m=params.m, k=params.k, n=params.n
            )
        except NpyError:
            return "inputs_malformed"
        if roots != (params.a_rows_root, params.b_cols_root):
            return "inputs_malformed"
    return "ok"


def run_data_job(
    params: WorkloadParams,
    inputs: Mapping[str, bytes] | None,
    device: torch.device,
    *,
    run_zk: Any,
) -> DataRun:
    """Execute a data job (WorkloadParamsError, NpyError or ModelFileError when its inputs
    do not fit: the node releases the job). ``run_zk(params) -> (proof, compute_ns)`` runs
    a zk-prove job whose witness has been merged into its inputs."""
    verdict = check_inputs(params, inputs)
    if verdict != "ok" or inputs is None:
        raise WorkloadParamsError(f"the job's input objects do not fit: {verdict}")
    if isinstance(params, MatmulDataParams):
        dims = {"dtype": params.dtype, "m": params.m, "k": params.k, "n": params.n}
        matmul = run_matmul_data(inputs["a"], inputs["b"], device=device, **dims)  # type: ignore[arg-type]
        return DataRun(
            proof=matmul.result,
            commitment=matmul.commitment,
            environment=matmul.environment,
            compute_ns=matmul.matmul_ns,
            total_ns=matmul.total_ns,
        )
    if isinstance(params, InferenceDataParams):
        run = run_inference_data(
            inputs["model"],
            inputs["x"],
            layer_dims=compute_mlp_layer_dims(params),
            batch=params.batch,
            input_dim=params.input_dim,
            device=device,
        )
        return DataRun(
            proof=encode_inference_proof(run.proof),
            commitment=run.proof.root,
            environment=run.environment,
            compute_ns=run.forward_ns,
            total_ns=run.total_ns,
        )
    if isinstance(params, ZkProveParams):
        proof, prove_ns = run_zk(merge_witness(params, inputs["witness"]))
        return DataRun(
            proof=proof,
            commitment=hashlib.sha256(proof).digest(),
            environment=None,
            compute_ns=prove_ns,
            total_ns=prove_ns,
        )
    raise WorkloadParamsError(f"{type(params).__name__} has no input objects")


def verify_data_job(
    params: WorkloadParams,
    inputs: Mapping[str, bytes] | None,
    commitment: bytes,
    proof: bytes,
    openings_seed: bytes,
) -> str:
    """The validator's check of a data matmul or inference result (reason codes of
    ``adapters.compute.results.verify_result`` and ``check_inputs``). Never raises on bad
    node input."""
    verdict = check_inputs(params, inputs)
    if verdict != "ok" or inputs is None:
        return verdict
    if isinstance(params, MatmulDataParams):
        return verify_matmul_data(
            inputs["a"],
            inputs["b"],
            proof,
            dtype=params.dtype,
            m=params.m,
            k=params.k,
            n=params.n,
            commitment=commitment,
            openings_seed=openings_seed,
        )
    if isinstance(params, InferenceDataParams):
        try:
            inference = decode_inference_proof(proof)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return "proof_malformed"
        if inference.root != commitment:
            return "commitment_mismatch"
        return verify_inference_data(
            inputs["model"],
            inputs["x"],
            inference,
            layer_dims=compute_mlp_layer_dims(params),
            batch=params.batch,
            input_dim=params.input_dim,
            openings_seed=openings_seed,
        )
    raise TypeError(f"no data check for {type(params).__name__}")


def merge_witness(params: ZkProveParams, witness: bytes) -> ZkProveParams:
    """The params with the witness object's private inputs merged into ``inputs`` (the
    public part), as the inline form carries them; WorkloadParamsError when the witness is
    no JSON object or names an input the public part gives another value."""
    try:
        private = json.loads(witness)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WorkloadParamsError(f"zk-prove: the witness is not JSON: {exc}") from exc
    if not isinstance(private, dict):
        raise WorkloadParamsError("zk-prove: the witness must be a JSON object")
    public = params.decoded_inputs()
    clashing = sorted(k for k in private if k in public and public[k] != private[k])
    if clashing:
        raise WorkloadParamsError(f"zk-prove: the witness contradicts inputs on {clashing}")
    merged = json.dumps({**public, **private}, separators=(",", ":"))
    return msgspec.structs.replace(params, inputs=merged, witness=None)


def result_file_from_proof(kind: str, params: Mapping[str, Any], proof_plain: bytes) -> bytes:
    """The file ``flopledger job result`` writes from a job's (opened) proof object: C's
    ``.npy`` for matmul (float32 for a seeded job), the outputs' ``.npy`` for inference, the
    proof artifact (JSON) for zk-prove. ValueError when the proof does not decode."""
    typed = parse_params(kind, params)
    try:
        if isinstance(typed, MatmulDataParams):
            read_npy(proof_plain, result_dtype(typed.dtype), (typed.m, typed.n))
            return proof_plain
        if isinstance(typed, MatmulParams):
            product = decode_product_proof(proof_plain)
            entries = decode_entries(product.product, product.n)
            if entries is None:
                raise ValueError("the matmul proof's product is not n² entries")
            return encode_npy(entries.astype(np.float32), "float32")
        if isinstance(typed, ZkProveParams):
            return proof_plain
        return encode_outputs(decode_inference_proof(proof_plain))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"the {kind} proof object does not decode: {exc}") from exc


def check_result_commitment(
    kind: str, params: Mapping[str, Any], commitment: bytes, proof_plain: bytes
) -> bool:
    """Whether the (opened) proof object is the result the ledger settled: its commitment
    recomputed from it equals ``commitment``. Never raises."""
    try:
        typed = parse_params(kind, params)
        if isinstance(typed, MatmulDataParams):
            c_dtype = result_dtype(typed.dtype)
            c = read_npy(proof_plain, c_dtype, (typed.m, typed.n))
            return compute_rows_root(c, c_dtype) == commitment
        if isinstance(typed, MatmulParams):
            product = decode_product_proof(proof_plain)
            entries = decode_entries(product.product, product.n)
            return entries is not None and commit_rows(entries.astype(np.float32)) == commitment
        if isinstance(typed, ZkProveParams):
            return hashlib.sha256(proof_plain).digest() == commitment
        inference = decode_inference_proof(proof_plain)
        return get_outputs(inference) is not None and inference.root == commitment
    except (WorkloadParamsError, NpyError, ModelFileError, ValueError, msgspec.MsgspecError):
        return False
