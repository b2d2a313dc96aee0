"""execute_workload / verify_result on the consumer's input objects (issue 17), and the
client's side: the result file from the proof object, checked against the commitment."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_safetensors

from adapters.compute.results import (
    ResultBundle,
    check_result_commitment,
    execute_workload,
    result_file_from_proof,
    verify_result,
)
from adapters.compute.workloads import WorkloadParamsError
from proofs.identity import Identity
from proofs.matrix_rows import compute_input_roots
from tests.npy_files import npy_bytes

NODE = Identity.from_seed(b"data-node".ljust(32, b"\0"))
CPU = torch.device("cpu")
SEED = b"beacon"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


RNG = np.random.default_rng(3)
A, B = (
    RNG.standard_normal((9, 7)).astype(np.float32),
    RNG.standard_normal((7, 5)).astype(np.float32),
)
A_NPY, B_NPY = npy_bytes(A), npy_bytes(B)
ROOTS = compute_input_roots(A_NPY, B_NPY, dtype="float32", m=9, k=7, n=5)
MATMUL = {"a": _digest(A_NPY), "b": _digest(B_NPY), "dtype": "float32", "m": 9, "k": 7, "n": 5}
MATMUL_ROOTS = {**MATMUL, "a_rows_root": ROOTS[0], "b_cols_root": ROOTS[1]}
LAYERS = {
    "layers.0.weight": RNG.standard_normal((8, 4)).astype(np.float32),
    "layers.0.bias": RNG.standard_normal(8).astype(np.float32),
    "layers.1.weight": RNG.standard_normal((3, 8)).astype(np.float32),
    "layers.1.bias": RNG.standard_normal(3).astype(np.float32),
}
MODEL, X_NPY = save_safetensors(LAYERS), npy_bytes(RNG.standard_normal((6, 4)).astype(np.float32))
INFERENCE = {
    "model": _digest(MODEL),
    "x": _digest(X_NPY),
    "batch": 6,
    "input_dim": 4,
    "output_dim": 3,
    "width": 8,
    "depth": 2,
}
WITNESS = json.dumps({"a": 3, "b": 4}).encode()
ZK = {"circuit": "poseidon_preimage", "witness": _digest(WITNESS), "setup_seed": 3}
JOBS = {
    "matmul": (MATMUL_ROOTS, {"a": A_NPY, "b": B_NPY}),
    "inference": (INFERENCE, {"model": MODEL, "x": X_NPY}),
    "zk-prove": (ZK, {"witness": WITNESS}),
}


def _verify(kind: str, params: dict[str, object], bundle: ResultBundle, inputs: object) -> str:
    return verify_result(
        job_id="job-d",
        node_id=NODE.id,
        kind=kind,
        raw_params=params,
        commitment=bundle.commitment,
        artifact_digest=bundle.artifact_digest,
        proof_digest=bundle.proof_digest,
        artifact=bundle.artifact,
        proof=bundle.proof,
        openings_seed=SEED,
        insecure_setups_allowed=True,
        inputs=inputs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("kind", list(JOBS))
def test_a_data_job_runs_verifies_and_its_result_file_checks(kind: str) -> None:
    params, inputs = JOBS[kind]
    bundle = execute_workload("job-d", kind, params, NODE, CPU, inputs=inputs)
    assert _verify(kind, params, bundle, inputs) == "ok"
    assert check_result_commitment(kind, params, bundle.commitment, bundle.proof)
    assert not check_result_commitment(kind, params, bytes(32), bundle.proof)
    assert not check_result_commitment(kind, params, bundle.commitment, bundle.proof[:-1])
    result_file_from_proof(kind, params, bundle.proof)  # decodes


def test_the_matmul_result_file_is_c_within_the_rounding_bound() -> None:
    bundle = execute_workload("job-d", "matmul", MATMUL, NODE, CPU, inputs={"a": A_NPY, "b": B_NPY})
    c = np.load(io.BytesIO(result_file_from_proof("matmul", MATMUL, bundle.proof)))
    exact = A.astype(np.float64) @ B.astype(np.float64)
    bound = 2 * (7 * 2.0**-24) * (np.abs(A.astype(np.float64)) @ np.abs(B.astype(np.float64)))
    assert c.dtype == np.float32 and np.all(np.abs(c - exact) <= bound)


def test_the_inference_result_file_holds_every_output() -> None:
    params, inputs = JOBS["inference"]
    bundle = execute_workload("job-d", "inference", params, NODE, CPU, inputs=inputs)
    outputs = np.load(io.BytesIO(result_file_from_proof("inference", params, bundle.proof)))
    x = np.load(io.BytesIO(X_NPY)).astype(np.float64)
    hidden = np.maximum(x @ LAYERS["layers.0.weight"].T + LAYERS["layers.0.bias"], 0.0)
    expected = hidden @ LAYERS["layers.1.weight"].T + LAYERS["layers.1.bias"]
    assert outputs.shape == (6, 3) and np.allclose(outputs, expected, atol=1e-4, rtol=1e-3)


def test_inputs_that_are_not_the_jobs_are_refused_by_node_and_validator() -> None:
    honest = execute_workload("job-d", "matmul", MATMUL, NODE, CPU, inputs={"a": A_NPY, "b": B_NPY})
    swapped = {"a": npy_bytes(A + np.float32(1)), "b": B_NPY}
    with pytest.raises(WorkloadParamsError, match="inputs_missing"):
        execute_workload("job-d", "matmul", MATMUL, NODE, CPU)
    with pytest.raises(WorkloadParamsError, match="inputs_mismatch"):
        execute_workload("job-d", "matmul", MATMUL, NODE, CPU, inputs=swapped)
    assert _verify("matmul", MATMUL, honest, None) == "inputs_missing"
    assert _verify("matmul", MATMUL, honest, swapped) == "inputs_mismatch"


def test_a_job_whose_roots_are_not_its_inputs_is_refused() -> None:
    """A consumer naming roots of other matrices could later 'prove' an honest C wrong
    against them: nodes do not run such a job and validators fail it."""
    other_roots = compute_input_roots(npy_bytes(A * 2), B_NPY, dtype="float32", m=9, k=7, n=5)
    params = {**MATMUL, "a_rows_root": other_roots[0], "b_cols_root": other_roots[1]}
    inputs = {"a": A_NPY, "b": B_NPY}
    with pytest.raises(WorkloadParamsError, match="inputs_malformed"):
        execute_workload("job-d", "matmul", params, NODE, CPU, inputs=inputs)
    bundle = execute_workload("job-d", "matmul", MATMUL, NODE, CPU, inputs=inputs)
    forged_manifest = execute_workload("job-d", "matmul", MATMUL_ROOTS, NODE, CPU, inputs=inputs)
    assert _verify("matmul", MATMUL_ROOTS, forged_manifest, inputs) == "ok"
    assert _verify("matmul", params, bundle, inputs) == "manifest_mismatch"


def test_a_private_jobs_plaintext_is_not_held_to_the_sealed_objects_digest() -> None:
    params = {**MATMUL, "a": "ab" * 32, "b": "cd" * 32, "encrypted": True}
    inputs = {"a": A_NPY, "b": B_NPY}
    bundle = execute_workload("job-d", "matmul", params, NODE, CPU, inputs=inputs)
    assert _verify("matmul", params, bundle, inputs) == "ok"


def test_a_zk_witness_stays_off_the_log_and_a_contradicting_one_is_refused() -> None:
    bundle = execute_workload("job-d", "zk-prove", ZK, NODE, CPU, inputs={"witness": WITNESS})
    assert "inputs" not in ZK  # the log carries the circuit, the witness digest, the key
    other = json.dumps({"a": 5, "b": 4}).encode()
    params = {**ZK, "witness": _digest(other), "inputs": '{"a": 3}'}
    with pytest.raises(WorkloadParamsError, match="contradicts"):
        execute_workload("job-d", "zk-prove", params, NODE, CPU, inputs={"witness": other})
    assert _verify("zk-prove", ZK, bundle, {"witness": WITNESS}) == "ok"
    assert _verify("zk-prove", ZK, bundle, {"witness": other}) == "inputs_mismatch"
