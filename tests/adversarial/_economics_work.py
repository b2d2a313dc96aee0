"""What each node strategy of the economics simulation uploads and commits for a job.

Results are real: the honest node runs the project's executor (``execute_workload``), and
every other strategy builds its proof with the project's proof code, so the validators'
real check (``verify_result``) judges them. The workloads are small (``WORKLOADS``): enough
items for spot checks to matter, fast enough for hundreds of jobs.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import torch

from adapters.compute.inference_model import compute_outputs
from adapters.compute.results import (
    ResultBundle,
    ResultManifest,
    decode_manifest,
    execute_workload,
    sign_manifest,
    verify_result,
)
from adapters.compute.workloads import (
    InferenceParams,
    MatmulParams,
    WorkloadParams,
    compute_job_seed,
    encode_params,
    parse_params,
)
from domain.job import Job
from proofs.identity import Identity
from proofs.inference_commitment import encode_inference_proof, make_inference_proof
from proofs.matmul import canonical_row_bytes
from proofs.matmul_product import (
    decode_entries,
    decode_product_proof,
    encode_product_proof,
    make_product_proof,
)

CPU = torch.device("cpu")
INFERENCE: dict[str, Any] = {
    "kind": "inference",
    "gpu_class_min": "consumer",
    "params": {
        "seed": "econ",
        "batch": 256,
        "width": 8,
        "depth": 1,
        "input_dim": 4,
        "output_dim": 2,
    },
}
MATMUL: dict[str, Any] = {
    "kind": "matmul",
    "gpu_class_min": "consumer",
    "params": {"n": 32, "seed": "econ"},
}
WORKLOADS = (INFERENCE, MATMUL)
"""The consumers' jobs alternate between the two kinds whose checks sample: inference items
(a few of 256 re-run) and matmul (C checked against A·B; a wrong row has a fraud proof)."""
LAZY_SKIPPED_ITEMS = 26
"""Items of an inference batch of 256 a lazy node never computes (about 10%, the issue's
figure). A matmul of n = 32 it computes whole: every row of it is checked."""
GARBAGE_ENTRY_MAX = 64
GRIND_TRIES_MAX = 2_000
"""How many commitments a lazy node tries, offline, before it commits (per job)."""


@dataclass(frozen=True)
class Work:
    """What a node did for a job: the bundle it commits (None: nothing) and how much of the
    workload it computed (1.0 whole, 0.0 none), which is its off-ledger compute cost."""

    bundle: ResultBundle | None
    computed_fraction: float


def do_honest(job_id: str, identity: Identity, workload: dict[str, Any]) -> Work:
    """Run the workload with the project's executor, as a node agent does. What it reports
    of its machine and timings is fixed (the node's own say, never checked), so a seed
    replays the same log on any machine."""
    bundle = execute_workload(job_id, workload["kind"], workload["params"], identity, CPU)
    manifest = decode_manifest(bundle.artifact, identity.id)
    assert manifest is not None
    fixed = msgspec.structs.replace(manifest, environment=None, compute_ns=1, total_ns=1)
    return Work(msgspec.structs.replace(bundle, artifact=sign_manifest(fixed, identity)), 1.0)


def do_lazy(job_id: str, identity: Identity, workload: dict[str, Any], rng: random.Random) -> Work:
    """Inference: compute all but ``LAZY_SKIPPED_ITEMS`` items, fill the rest with made-up
    outputs, and grind: vary the made-up outputs until the items the node can foresee being
    opened (if the rules let it foresee any) are all computed ones. Matmul: honest."""
    if workload["kind"] != "inference":
        return do_honest(job_id, identity, workload)
    params = _inference_params()
    job_seed = compute_job_seed(job_id, params.seed)
    skipped = set(rng.sample(range(params.batch), LAZY_SKIPPED_ITEMS))
    computed = [i for i in range(params.batch) if i not in skipped]
    outputs, _ = compute_outputs(params, job_seed, computed, CPU)
    rows: list[bytes] = [b""] * params.batch
    for index, row in zip(computed, outputs, strict=True):
        rows[index] = _canonical_row(row)
    proof = None
    for attempt in range(GRIND_TRIES_MAX):
        for index in skipped:
            rows[index] = _canonical_row(np.full(params.output_dim, attempt, dtype=np.float32))
        proof = make_inference_proof(job_seed, rows, params.output_dim)
        foreseen = _foreseen_openings(proof)
        if foreseen is None or not foreseen & skipped:
            break
    assert proof is not None
    fraction = len(computed) / params.batch
    return Work(
        _bundle(job_id, identity, params, proof.root, encode_inference_proof(proof)), fraction
    )


def do_garbage(
    job_id: str, identity: Identity, workload: dict[str, Any], rng: random.Random
) -> Work:
    """Compute nothing: random outputs, committed with a well-formed proof and manifest."""
    if workload["kind"] == "matmul":
        return _garbage_matmul(job_id, identity, rng)
    params = _inference_params()
    job_seed = compute_job_seed(job_id, params.seed)
    values = np.array(
        [rng.uniform(-1, 1) for _ in range(params.batch * params.output_dim)], dtype=np.float32
    ).reshape(params.batch, params.output_dim)
    rows = [_canonical_row(row) for row in values]
    proof = make_inference_proof(job_seed, rows, params.output_dim)
    return Work(_bundle(job_id, identity, params, proof.root, encode_inference_proof(proof)), 0.0)


def verify_job(job: Job, artifacts: dict[bytes, bytes]) -> str:
    """The honest validator's check: the project's ``verify_result`` on the uploaded objects,
    with the randomness of the job's round (``openings_seed``), as the validator daemon."""
    result = job.result
    assert result is not None
    return verify_result(
        job_id=job.id,
        node_id=job.node_id,
        kind=job.workload.kind,
        raw_params=dict(job.workload.params),
        commitment=result.commitment,
        artifact_digest=result.artifact_digest,
        proof_digest=result.proof_digest,
        artifact=artifacts.get(result.artifact_digest, b""),
        proof=artifacts.get(result.proof_digest, b""),
        openings_seed=job.openings_seed,
    )


def make_matmul_bundle(job_id: str, identity: Identity, c: Any) -> ResultBundle:
    """A matmul result bundle for the product ``c`` (right or wrong), in the node's format."""
    params = get_matmul_params()
    proof = make_product_proof(c, compute_job_seed(job_id, params.seed))
    return _bundle(job_id, identity, params, proof.root, encode_product_proof(proof))


def decode_matmul_rows(proof: bytes) -> list[bytes] | None:
    """The rows of C a matmul proof object carries (canonical float32 bytes), or None when
    it does not parse."""
    try:
        decoded = decode_product_proof(proof)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    entries = decode_entries(decoded.product, decoded.n)
    if entries is None:
        return None
    return [canonical_row_bytes(row) for row in entries.astype(np.float32)]


def _garbage_matmul(job_id: str, identity: Identity, rng: random.Random) -> Work:
    n = get_matmul_params().n
    values = [rng.randint(-GARBAGE_ENTRY_MAX, GARBAGE_ENTRY_MAX) for _ in range(n * n)]
    c = np.array(values, dtype=np.float32).reshape(n, n)
    return Work(make_matmul_bundle(job_id, identity, c), 0.0)


def get_matmul_params() -> MatmulParams:
    params = parse_params("matmul", MATMUL["params"])
    assert isinstance(params, MatmulParams)
    return params


def _bundle(
    job_id: str, identity: Identity, params: WorkloadParams, root: bytes, proof: bytes
) -> ResultBundle:
    manifest = ResultManifest(
        job_id=job_id,
        node_id=identity.id,
        kind="matmul" if isinstance(params, MatmulParams) else "inference",
        params=encode_params(params),
        commitment=root,
        proof_digest=hashlib.sha256(proof).digest(),
        environment=None,
        compute_ns=1,
        total_ns=1,
    )
    return ResultBundle(
        job_id=job_id, commitment=root, artifact=sign_manifest(manifest, identity), proof=proof
    )


def _foreseen_openings(proof: Any) -> set[int] | None:
    """The items the node knows will be opened when it commits: those its own proof opens
    when the openings follow from its commitment (Fiat-Shamir); None when it cannot know."""
    openings = getattr(proof, "openings", None)
    return None if openings is None else {o.index for o in openings}


def _inference_params() -> InferenceParams:
    params = parse_params("inference", INFERENCE["params"])
    assert isinstance(params, InferenceParams)
    return params


def _canonical_row(row: Any) -> bytes:
    return (np.ascontiguousarray(row, dtype="<f4") + np.float32(0.0)).tobytes()
