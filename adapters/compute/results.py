"""Result artifacts: what a node uploads for a job and what a validator reads back.

For every job the agent uploads two objects to the artifact store (addressed by hex SHA-256)
and commits their digests with ``job.commit_result``:

- **artifact** (``artifact_digest``): a ``SignedManifest`` (msgpack) — ``manifest`` is the
  msgpack of ``ResultManifest`` (job id, node id, kind, params, commitment, proof digest,
  execution environment: device, dtype, library versions; timings), ``signature`` is the
  node's Ed25519 signature over ``MANIFEST_TAG || manifest``.
- **proof** (``proof_digest``), by kind: ``matmul`` a
  ``proofs.matmul_product.MatmulProductProof`` (msgpack: all of C, at most 48 MiB),
  ``inference`` a ``proofs.inference_commitment.InferenceProof`` (msgpack: every output, at
  most 16 MiB), ``zk-prove`` an ``adapters.compute.zk_prover.ZkProofArtifact`` (JSON); a
  data matmul (issue 17) C's ``.npy`` itself, the file the consumer downloads
  (``adapters.compute.data_jobs``; at n = 4096 in float32 64 MiB plus the header: the NATS
  object store streams objects in chunks). The
  whole result travels because what a validator checks is drawn only after the commit, from
  the job's ``openings_seed`` (issue 14, attack 3). Every object is under the artifact
  store's 64 MiB limit (``adapters.nats.objects.ARTIFACT_BYTES_MAX``).
- **commitment**: the Merkle root over result rows (matmul; for a data matmul in C's own
  dtype) or outputs (inference); for zk-prove the SHA-256 of the proof bytes.

The consumer's client turns the (opened) proof object into its result file with
``result_file_from_proof`` and checks it against the settled commitment with
``check_result_commitment`` (both re-exported from ``adapters.compute.data_jobs``).

``verify_result`` is the validator's whole check, returning a stable reason code; it takes
the job's ``openings_seed`` (the beacon randomness of the round judging the result).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
import torch

from adapters.compute.data_jobs import check_inputs as check_inputs
from adapters.compute.data_jobs import check_result_commitment as check_result_commitment
from adapters.compute.data_jobs import is_data_job, merge_witness, run_data_job, verify_data_job
from adapters.compute.data_jobs import result_file_from_proof as result_file_from_proof
from adapters.compute.inference_model import run_inference, verify_inference
from adapters.compute.runtime import ExecutionEnvironment
from adapters.compute.torch_matmul import run_matmul_job
from adapters.compute.workloads import (
    InferenceParams,
    MatmulParams,
    WorkloadParams,
    WorkloadParamsError,
    ZkProveParams,
    compute_job_seed,
    encode_params,
    parse_params,
)
from adapters.compute.zk_prover import (
    check_zk,
    decode_zk_artifact,
    encode_zk_artifact,
    run_zk_prove,
)
from proofs.circuits import compute_binding
from proofs.identity import Identity, verify_signature
from proofs.inference_commitment import decode_inference_proof, encode_inference_proof
from proofs.matmul_product import (
    decode_product_proof,
    encode_product_proof,
    verify_product_proof,
)

MANIFEST_TAG = b"flopledger/result-manifest/v1\x00"
MANIFEST_VERSION = 1
DIGEST_BYTES = 32

Digest = Annotated[bytes, msgspec.Meta(min_length=DIGEST_BYTES, max_length=DIGEST_BYTES)]


class ResultManifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who computed what, where, with which libraries, and how long it took."""

    version: int = MANIFEST_VERSION
    job_id: str
    node_id: str
    kind: str
    params: dict[str, str | int | bool]
    commitment: Digest
    proof_digest: Digest
    environment: ExecutionEnvironment | None
    compute_ns: int
    total_ns: int


class SignedManifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The manifest's bytes and the node's signature over them."""

    manifest: bytes
    signature: bytes


class ResultBundle(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a node commits for a job: the three digests and the two objects."""

    job_id: str
    commitment: bytes
    artifact: bytes
    proof: bytes

    @property
    def artifact_digest(self) -> bytes:
        return hashlib.sha256(self.artifact).digest()

    @property
    def proof_digest(self) -> bytes:
        return hashlib.sha256(self.proof).digest()


def execute_workload(
    job_id: str,
    kind: str,
    raw_params: dict[str, Any],
    identity: Identity,
    device: torch.device,
    *,
    zkey_bytes: bytes | None = None,
    inputs: Mapping[str, bytes] | None = None,
) -> ResultBundle:
    """Run a job's workload on ``device`` and build its signed result bundle. A data form
    (issue 17) runs on ``inputs``, its input objects' plaintext by name
    (``adapters.compute.data_jobs``); WorkloadParamsError, NpyError or ModelFileError (all
    ValueError) when they do not fit the job."""
    params = parse_params(kind, raw_params)
    environment: ExecutionEnvironment | None = None
    if is_data_job(params):

        def run_zk(merged: ZkProveParams) -> tuple[bytes, int]:
            binding = compute_binding(job_id, identity.id)
            zk = run_zk_prove(merged, binding=binding, zkey_bytes=zkey_bytes)
            return encode_zk_artifact(zk.artifact), zk.prove_ns

        data = run_data_job(params, inputs, device, run_zk=run_zk)
        proof, commitment, environment = data.proof, data.commitment, data.environment
        compute_ns, total_ns = data.compute_ns, data.total_ns
    elif isinstance(params, MatmulParams):
        run = run_matmul_job(compute_job_seed(job_id, params.seed), params.n, device)
        proof, commitment = encode_product_proof(run.proof), run.proof.root
        environment, compute_ns, total_ns = run.environment, run.matmul_ns, run.total_ns
    elif isinstance(params, InferenceParams):
        inference = run_inference(job_id, params, device)
        proof, commitment = encode_inference_proof(inference.proof), inference.proof.root
        environment, compute_ns = inference.environment, inference.forward_ns
        total_ns = inference.total_ns
    elif isinstance(params, ZkProveParams):
        zk = run_zk_prove(
            params, binding=compute_binding(job_id, identity.id), zkey_bytes=zkey_bytes
        )
        proof = encode_zk_artifact(zk.artifact)
        commitment = hashlib.sha256(proof).digest()
        compute_ns = total_ns = zk.prove_ns
    else:
        raise WorkloadParamsError(f"{kind}: no executor for {type(params).__name__}")
    manifest = ResultManifest(
        job_id=job_id,
        node_id=identity.id,
        kind=kind,
        params=encode_params(params),
        commitment=commitment,
        proof_digest=hashlib.sha256(proof).digest(),
        environment=environment,
        compute_ns=compute_ns,
        total_ns=total_ns,
    )
    return ResultBundle(
        job_id=job_id,
        commitment=commitment,
        artifact=sign_manifest(manifest, identity),
        proof=proof,
    )


def sign_manifest(manifest: ResultManifest, identity: Identity) -> bytes:
    """The artifact bytes: the manifest and the node's signature over it."""
    body = msgspec.msgpack.encode(manifest)
    return msgspec.msgpack.encode(SignedManifest(body, identity.sign(MANIFEST_TAG + body)))


def decode_manifest(artifact: bytes, node_id: str) -> ResultManifest | None:
    """The manifest when the artifact parses and ``node_id`` signed it, else None."""
    try:
        signed = msgspec.msgpack.decode(artifact, type=SignedManifest)
        if not verify_signature(node_id, MANIFEST_TAG + signed.manifest, signed.signature):
            return None
        return msgspec.msgpack.decode(signed.manifest, type=ResultManifest)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None


def verify_result(
    *,
    job_id: str,
    node_id: str,
    kind: str,
    raw_params: dict[str, Any],
    commitment: bytes,
    artifact_digest: bytes,
    proof_digest: bytes,
    artifact: bytes,
    proof: bytes,
    openings_seed: bytes,
    zkey_bytes: bytes | None = None,
    insecure_setups_allowed: bool = False,
    inputs: Mapping[str, bytes] | None = None,
) -> str:
    """The validator's check of a committed result: ``"ok"`` or the first failed rule's code
    (``artifact_digest_mismatch``, ``proof_digest_mismatch``, ``manifest_invalid``,
    ``manifest_mismatch``, ``params_invalid``, then for a data form ``inputs_missing``,
    ``inputs_mismatch``, ``inputs_malformed`` (``adapters.compute.data_jobs.check_inputs``),
    then ``proof_malformed``, ``commitment_mismatch``, ``insecure_setup``, ``proof_invalid``).
    ``openings_seed`` (the job's beacon randomness, drawn after the commit) chooses what is
    recomputed: Freivalds vectors (matmul), items (inference); a zk proof is checked whole,
    bound to the job and node. ``insecure_setups_allowed`` is the ledger policy's (zk-prove
    ``setup_seed`` keys). ``inputs``: a data form's input objects' plaintext by name. Never
    raises on bad node input."""
    if hashlib.sha256(artifact).digest() != artifact_digest:
        return "artifact_digest_mismatch"
    if hashlib.sha256(proof).digest() != proof_digest:
        return "proof_digest_mismatch"
    manifest = decode_manifest(artifact, node_id)
    if manifest is None:
        return "manifest_invalid"
    if (manifest.job_id, manifest.node_id, manifest.kind) != (job_id, node_id, kind) or (
        manifest.commitment,
        manifest.proof_digest,
    ) != (commitment, proof_digest):
        return "manifest_mismatch"
    try:
        params = parse_params(kind, raw_params)
    except WorkloadParamsError:
        return "params_invalid"
    if manifest.params != encode_params(params):
        return "manifest_mismatch"
    if isinstance(params, ZkProveParams):
        if is_data_job(params):
            verdict = check_inputs(params, inputs)
            if verdict != "ok" or inputs is None:
                return verdict
            try:
                params = merge_witness(params, inputs["witness"])
            except WorkloadParamsError:
                return "inputs_malformed"
        binding = compute_binding(job_id, node_id)
        return _verify_zk_proof(
            params, commitment, proof, zkey_bytes, binding, insecure_setups_allowed
        )
    if is_data_job(params):
        return verify_data_job(params, inputs, commitment, proof, openings_seed)
    return _verify_proof(job_id, params, commitment, proof, openings_seed)


def _verify_proof(
    job_id: str, params: WorkloadParams, commitment: bytes, proof: bytes, openings_seed: bytes
) -> str:
    try:
        if isinstance(params, MatmulParams):
            matmul = decode_product_proof(proof)
            if matmul.root != commitment:
                return "commitment_mismatch"
            seed = compute_job_seed(job_id, params.seed)
            fits = (matmul.seed, matmul.n) == (seed, params.n)
            passed = fits and verify_product_proof(matmul, openings_seed)
            return "ok" if passed else "proof_invalid"
        if isinstance(params, InferenceParams):
            inference = decode_inference_proof(proof)
            if inference.root != commitment:
                return "commitment_mismatch"
            passed = verify_inference(job_id, params, inference, openings_seed)
            return "ok" if passed else "proof_invalid"
        raise TypeError(f"no proof check for {type(params).__name__}")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "proof_malformed"


def _verify_zk_proof(
    params: ZkProveParams,
    commitment: bytes,
    proof: bytes,
    zkey: bytes | None,
    binding: int,
    insecure_setups_allowed: bool,
) -> str:
    """A zk-prove result: the proof bytes are the commitment, the proof binds the job and
    node (``binding``), the key is one the policy accepts (``check_zk``)."""
    if hashlib.sha256(proof).digest() != commitment:
        return "commitment_mismatch"
    try:
        artifact = decode_zk_artifact(proof)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "proof_malformed"
    return check_zk(
        params,
        artifact,
        binding=binding,
        zkey_bytes=zkey,
        insecure_setups_allowed=insecure_setups_allowed,
    )
