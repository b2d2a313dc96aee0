"""Every workload on the CPU: execute, commit, verify; and every kind of tampering caught."""

from __future__ import annotations

import hashlib
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
from proofs.matmul import MATRIX_SIZE_MAX, commit_rows
from proofs.matmul_product import (
    decode_entries,
    decode_product_proof,
    encode_entries,
    encode_product_proof,
)

CPU = torch.device("cpu")
NODE = Identity.from_seed(b"node".ljust(32, b"\0"))
OTHER = Identity.from_seed(b"other".ljust(32, b"\0"))
WORKLOADS: dict[str, dict[str, Any]] = {
    "matmul": {"n": 96, "seed": "s"},
    "inference": {"seed": "model", "batch": 40, "width": 32, "depth": 2},
    "zk-prove": {"circuit": "poseidon_preimage", "inputs": '{"a": 1, "b": 2}', "setup_seed": 3},
}
OPENINGS_SEED = hashlib.sha256(b"round randomness").digest()
"""A stand-in for the beacon randomness of the round judging the result."""


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
        openings_seed=OPENINGS_SEED,
        # The zk-prove workload here uses setup_seed test keys, as a devnet's policy allows.
        insecure_setups_allowed=True,
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


def test_matmul_entry_changed_under_the_old_root_is_caught(
    bundles: dict[str, ResultBundle],
) -> None:
    proof = decode_product_proof(bundles["matmul"].proof)
    c = decode_entries(proof.product, proof.n)
    assert c is not None
    c[40, 7] += 1
    tampered = msgspec.structs.replace(proof, product=encode_entries(c))
    forged = _with_proof(bundles["matmul"], encode_product_proof(tampered))
    assert check("job-1", "matmul", forged) == "proof_invalid"


def test_wrong_matmul_entry_committed_consistently_is_caught(
    bundles: dict[str, ResultBundle],
) -> None:
    """A node commits (root, manifest, proof all agree) to a C with one wrong entry."""
    proof = decode_product_proof(bundles["matmul"].proof)
    c = decode_entries(proof.product, proof.n)
    assert c is not None
    c[95, 95] -= 1
    root = commit_rows(c.astype("float32"))
    tampered = msgspec.structs.replace(proof, root=root, product=encode_entries(c))
    bundle = msgspec.structs.replace(bundles["matmul"], commitment=root)
    forged = _with_proof(bundle, encode_product_proof(tampered), commitment=root)
    assert check("job-1", "matmul", forged) == "proof_invalid"


def test_truncated_matmul_product_is_caught(bundles: dict[str, ResultBundle]) -> None:
    proof = decode_product_proof(bundles["matmul"].proof)
    tampered = msgspec.structs.replace(proof, product=proof.product[:-3])
    forged = _with_proof(bundles["matmul"], encode_product_proof(tampered))
    assert check("job-1", "matmul", forged) == "proof_invalid"


def test_wrong_inference_output_is_caught(bundles: dict[str, ResultBundle]) -> None:
    proof = decode_inference_proof(bundles["inference"].proof)
    shifted = bytes([proof.outputs[0] ^ 0x40]) + proof.outputs[1:]
    tampered = msgspec.structs.replace(proof, outputs=shifted)
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
            openings_seed=OPENINGS_SEED,
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


def _with_proof(
    bundle: ResultBundle, proof: bytes, *, commitment: bytes | None = None
) -> ResultBundle:
    """The node re-signs its manifest over the tampered proof (so only the proof can fail)."""
    replaced = msgspec.structs.replace(bundle, proof=proof)
    return _resign(replaced, job_id="job-1", signer=NODE, commitment=commitment)


def _resign(
    bundle: ResultBundle,
    *,
    job_id: str,
    signer: Identity,
    params: dict[str, Any] | None = None,
    commitment: bytes | None = None,
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
        commitment=commitment or manifest.commitment,
    )
    body = msgspec.msgpack.encode(manifest)
    artifact = msgspec.msgpack.encode(SignedManifest(body, signer.sign(MANIFEST_TAG + body)))
    return msgspec.structs.replace(bundle, job_id=job_id, artifact=artifact)
