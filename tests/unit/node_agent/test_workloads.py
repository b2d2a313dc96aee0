"""Every workload on the CPU: execute, commit, verify; and every kind of tampering caught."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import msgspec
import pytest
import torch

from adapters.compute.results import (
    MANIFEST_TAG,
    ResultBundle,
    SignedManifest,
    execute_workload,
    verify_result,
)
from adapters.compute.workloads import (
    INFERENCE_BATCH_MAX,
    WorkloadParamsError,
    compute_job_seed,
    encode_params,
    parse_params,
)
from proofs.identity import Identity
from proofs.inference_commitment import decode_inference_proof, encode_inference_proof
from proofs.matmul import MATRIX_SIZE_MAX, decode_matmul_proof, encode_matmul_proof

CPU = torch.device("cpu")
NODE = Identity.from_seed(b"node".ljust(32, b"\0"))
OTHER = Identity.from_seed(b"other".ljust(32, b"\0"))
WORKLOADS: dict[str, dict[str, Any]] = {
    "matmul": {"n": 96, "seed": "s"},
    "inference": {"seed": "model", "batch": 40, "width": 32, "depth": 2},
    "zk-prove": {"circuit": "poseidon_preimage", "inputs": '{"a": 1, "b": 2}', "setup_seed": 3},
}


def check(job_id: str, kind: str, bundle: ResultBundle, node: Identity = NODE) -> str:
    return verify_result(
        job_id=job_id,
        node_id=node.id,
        kind=kind,
        raw_params=WORKLOADS[kind],
        commitment=bundle.commitment,
        artifact_digest=bundle.artifact_digest,
        proof_digest=bundle.proof_digest,
        artifact=bundle.artifact,
        proof=bundle.proof,
    )


@pytest.fixture(scope="module")
def bundles() -> dict[str, ResultBundle]:
    return {k: execute_workload("job-1", k, p, NODE, CPU) for k, p in WORKLOADS.items()}


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_honest_result_verifies(bundles: dict[str, ResultBundle], kind: str) -> None:
    assert check("job-1", kind, bundles[kind]) == "ok"


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_result_copied_to_another_job_or_node_is_caught(
    bundles: dict[str, ResultBundle], kind: str
) -> None:
    assert check("job-2", kind, bundles[kind]) == "manifest_mismatch"
    assert check("job-1", kind, bundles[kind], node=OTHER) == "manifest_invalid"


@pytest.mark.parametrize("kind", ["matmul", "inference"])
def test_copied_result_resigned_by_the_copier_fails_the_proof(kind: str) -> None:
    """A node that copies another job's rows and signs its own manifest over them."""
    honest = execute_workload("job-1", kind, WORKLOADS[kind], NODE, CPU)
    forged = _resign(honest, job_id="job-2", signer=OTHER)
    assert check("job-2", kind, forged, node=OTHER) == "proof_invalid"


def test_wrong_matmul_row_is_caught(bundles: dict[str, ResultBundle]) -> None:
    proof = decode_matmul_proof(bundles["matmul"].proof)
    first = proof.openings[0]
    bad_row = bytearray(first.row)
    bad_row[:4] = struct.pack("<f", 12345.0)
    openings = [msgspec.structs.replace(first, row=bytes(bad_row)), *proof.openings[1:]]
    tampered = msgspec.structs.replace(proof, openings=openings)
    forged = _with_proof(bundles["matmul"], encode_matmul_proof(tampered))
    assert check("job-1", "matmul", forged) == "proof_invalid"


def test_wrong_inference_output_is_caught(bundles: dict[str, ResultBundle]) -> None:
    proof = decode_inference_proof(bundles["inference"].proof)
    first = proof.openings[0]
    shifted = bytes([first.output[0] ^ 0x40]) + first.output[1:]
    openings = [msgspec.structs.replace(first, output=shifted), *proof.openings[1:]]
    tampered = msgspec.structs.replace(proof, openings=openings)
    forged = _with_proof(bundles["inference"], encode_inference_proof(tampered))
    assert check("job-1", "inference", forged) == "proof_invalid"


def test_zk_proof_of_other_inputs_is_caught() -> None:
    other = dict(WORKLOADS["zk-prove"], inputs='{"a": 1, "b": 3}')
    bundle = execute_workload("job-1", "zk-prove", other, NODE, CPU)
    assert check("job-1", "zk-prove", bundle) == "manifest_mismatch"
    params = encode_params(parse_params("zk-prove", WORKLOADS["zk-prove"]))
    forged = _resign(bundle, job_id="job-1", signer=NODE, params=params)
    assert check("job-1", "zk-prove", forged) == "proof_invalid"


def test_tampered_bytes_do_not_match_their_digests(bundles: dict[str, ResultBundle]) -> None:
    honest = bundles["matmul"]
    assert (
        verify_result(
            job_id="job-1",
            node_id=NODE.id,
            kind="matmul",
            raw_params=WORKLOADS["matmul"],
            commitment=honest.commitment,
            artifact_digest=honest.artifact_digest,
            proof_digest=honest.proof_digest,
            artifact=honest.artifact,
            proof=honest.proof + b"\0",
        )
        == "proof_digest_mismatch"
    )


def test_params_at_and_past_their_bounds() -> None:
    assert parse_params("matmul", {"n": MATRIX_SIZE_MAX}).n == MATRIX_SIZE_MAX  # type: ignore[union-attr]
    with pytest.raises(WorkloadParamsError):
        parse_params("matmul", {"n": MATRIX_SIZE_MAX + 1})
    parse_params("inference", {"batch": INFERENCE_BATCH_MAX})
    with pytest.raises(WorkloadParamsError):
        parse_params("inference", {"batch": INFERENCE_BATCH_MAX + 1})
    with pytest.raises(WorkloadParamsError):
        parse_params("zk-prove", {"circuit": "poseidon_preimage", "inputs": "{}"})
    with pytest.raises(WorkloadParamsError):
        parse_params("render", {})


def test_job_seed_binds_the_job() -> None:
    assert compute_job_seed("job-1", "s") != compute_job_seed("job-2", "s")
    assert len(compute_job_seed("job-1", "s")) == 32


def test_inference_is_deterministic_on_cpu() -> None:
    params = WORKLOADS["inference"]
    first = execute_workload("job-9", "inference", params, NODE, CPU)
    second = execute_workload("job-9", "inference", params, NODE, CPU)
    assert first.commitment == second.commitment


def _with_proof(bundle: ResultBundle, proof: bytes) -> ResultBundle:
    """The node re-signs its manifest over the tampered proof (so only the proof can fail)."""
    return _resign(msgspec.structs.replace(bundle, proof=proof), job_id="job-1", signer=NODE)


def _resign(
    bundle: ResultBundle, *, job_id: str, signer: Identity, params: dict[str, Any] | None = None
) -> ResultBundle:
    from adapters.compute.results import ResultManifest

    signed = msgspec.msgpack.decode(bundle.artifact, type=SignedManifest)
    manifest = msgspec.msgpack.decode(signed.manifest, type=ResultManifest)
    manifest = msgspec.structs.replace(
        manifest,
        job_id=job_id,
        node_id=signer.id,
        proof_digest=hashlib.sha256(bundle.proof).digest(),
        params=params or manifest.params,
    )
    body = msgspec.msgpack.encode(manifest)
    artifact = msgspec.msgpack.encode(SignedManifest(body, signer.sign(MANIFEST_TAG + body)))
    return msgspec.structs.replace(bundle, job_id=job_id, artifact=artifact)
