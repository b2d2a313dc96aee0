"""Attack 3 of issue 14: grinding the spot checks.

The items a validator re-ran were derived from the node's own commitment (Fiat–Shamir), so a
lazy node computed part of the batch, filled the rest with garbage and retried commitments
offline until no garbage item was opened: 25% of 256 inference items skipped, about 2·10^4
tries, under a second. The rule: the node ships the whole result, and what is checked is
drawn from the job's ``openings_seed``, beacon randomness revealed after the commitment is
recorded; grinding before the commit buys nothing, so a node wrong on a fraction f of items
escapes with probability (1-f)^s per job (s = 32: 1.0e-4 for f = 25%), and a wrong matmul
entry anywhere escapes Freivalds with probability 2^-32.

The attacker here uses the real proof code and grinds as long as it takes against everything
it knows when it commits: the job's ``openings_seed`` is still empty then.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import torch

from adapters.compute.inference_model import compute_outputs
from adapters.compute.results import ResultManifest, sign_manifest, verify_result
from adapters.compute.workloads import (
    InferenceParams,
    compute_job_seed,
    encode_params,
    parse_params,
)
from domain.job import REJECTED, SUBMITTED, Job
from domain.node import Node
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, b64, make_validator_keys
from proofs.identity import Identity
from proofs.inference_commitment import (
    DEFAULT_ITEM_OPENINGS,
    encode_inference_proof,
    make_inference_proof,
    select_items,
)
from proofs.matmul import compute_product, derive_inputs
from proofs.matmul_product import encode_product_proof, make_product_proof
from proofs.merkle import inclusion_proof_from_hashes, leaf_hash, node_hash, root_from_hashes
from tests.adversarial._harness import LOG_FEE, get_money_total, start_network

LAZY, CONSUMER = Identity.from_seed(b"\x51" * 32), Identity.from_seed(b"\x52" * 32)
VALIDATORS = [make_validator_keys(50 + i) for i in range(3)]
NODE_STAKE, VALIDATOR_STAKE = 5_000, 2_000
INFERENCE = {"seed": "model", "batch": 256, "width": 16, "depth": 1, "output_dim": 4}
SKIPPED_FRACTION = 0.25
SEED_AT_COMMIT = b""
"""What the node can know of the openings seed when it commits: nothing yet."""
ROUND_SEEDS = [hashlib.sha256(b"beacon round %d" % i).digest() for i in range(8)]
"""Stand-ins for the beacon randomness a round draws after the commit: a fixed set."""
JOBS = ["job-lazy-0", "job-lazy-1", "job-lazy-2"]


class LazyResult:
    """What the lazy node commits and uploads for one job."""

    def __init__(
        self, job_id: str, kind: str, params: dict[str, object], proof: bytes, root: bytes
    ) -> None:
        manifest = ResultManifest(
            job_id=job_id,
            node_id=LAZY.id,
            kind=kind,
            params=encode_params(parse_params(kind, params)),
            commitment=root,
            proof_digest=hashlib.sha256(proof).digest(),
            environment=None,
            compute_ns=1,
            total_ns=1,
        )
        self.job_id, self.kind, self.params = job_id, kind, params
        self.proof, self.commitment = proof, root
        self.artifact = sign_manifest(manifest, LAZY)

    def verdict(self, openings_seed: bytes) -> str:
        """The validators' check of this result under the round's randomness."""
        return verify_result(
            job_id=self.job_id,
            node_id=LAZY.id,
            kind=self.kind,
            raw_params=dict(self.params),
            commitment=self.commitment,
            artifact_digest=hashlib.sha256(self.artifact).digest(),
            proof_digest=hashlib.sha256(self.proof).digest(),
            artifact=self.artifact,
            proof=self.proof,
            openings_seed=openings_seed,
        )


def grind_lazy_inference(
    job_id: str, seed_at_commit: bytes = SEED_AT_COMMIT
) -> tuple[LazyResult, int]:
    """Compute 75% of the items, then vary the garbage in one skipped item until the items
    drawn from what the node knows at commit time miss every skipped one; (result, tries)."""
    params = parse_params("inference", INFERENCE)
    assert isinstance(params, InferenceParams)
    batch, skipped_count = params.batch, int(params.batch * SKIPPED_FRACTION)
    job_seed = compute_job_seed(job_id, params.seed)
    computed = list(range(batch - skipped_count))
    values, _ = compute_outputs(params, job_seed, computed, torch.device("cpu"))
    width = 4 * params.output_dim
    rows = [row.astype("<f4").tobytes() for row in values] + [bytes(width)] * skipped_count
    skipped = set(range(len(computed), batch))
    hashes = [leaf_hash(row) for row in rows]
    varied = batch - 1
    path = inclusion_proof_from_hashes(hashes, varied)
    for tries in itertools.count(1):
        rows[varied] = tries.to_bytes(width, "big")
        root = _root_from_path(leaf_hash(rows[varied]), varied, path)
        drawn = select_items(seed_at_commit, batch, root, DEFAULT_ITEM_OPENINGS)
        if not skipped & set(drawn):
            break
    assert root == root_from_hashes([leaf_hash(row) for row in rows])
    proof = make_inference_proof(job_seed, rows, params.output_dim)
    return LazyResult(job_id, "inference", INFERENCE, encode_inference_proof(proof), root), tries


def test_lazy_inference_node_grinding_offline_is_caught_after_the_commit() -> None:
    for job_id in JOBS:
        lazy, tries = grind_lazy_inference(job_id)
        # With openings the node can compute when it commits (the old rule) the grind passes
        assert lazy.verdict(SEED_AT_COMMIT) == "ok", (job_id, tries)
        # ... under the round's randomness, drawn after the commit, it fails every time.
        assert [lazy.verdict(seed) for seed in ROUND_SEEDS] == ["proof_invalid"] * len(
            ROUND_SEEDS
        ), (job_id, tries)


def test_lazy_matmul_node_skipping_rows_is_caught_whatever_it_grinds() -> None:
    """A quarter of C's rows left at zero: Freivalds over all of C, whatever the round."""
    n = 64
    for job_id in JOBS:
        job_seed = compute_job_seed(job_id, "")
        a, b = derive_inputs(job_seed, n)
        c = compute_product(a, b)
        c[n - n // 4 :] = np.float32(0.0)
        proof = make_product_proof(c, job_seed)
        lazy = LazyResult(job_id, "matmul", {"n": n}, encode_product_proof(proof), proof.root)
        assert {lazy.verdict(seed) for seed in [SEED_AT_COMMIT, *ROUND_SEEDS]} == {"proof_invalid"}


async def test_lazy_node_grinding_before_its_commit_is_rejected_and_slashed() -> None:
    """Played on the ledger: the node reads its job (``openings_seed`` still empty), grinds,
    commits; the beacon then seeds the round; honest validators check under the job's seed
    and vote; the node is slashed. One job per network (a slashed node is jailed)."""
    for round_index in range(2):
        net = await start_network()
        job_id = await _lazy_node_with_a_claimed_job(net, round_index)
        before = await get_aggregate(net.store, Job, job_id)
        assert before is not None and before.openings_seed == b""
        lazy, _ = grind_lazy_inference(job_id, before.openings_seed)
        body = {
            "job_id": job_id,
            "commitment": b64(lazy.commitment),
            "artifact_digest": b64(hashlib.sha256(lazy.artifact).digest()),
            "proof_digest": b64(hashlib.sha256(lazy.proof).digest()),
        }
        await net.run(LAZY, "job.commit_result", body)
        await net.run_beacon()

        job = await get_aggregate(net.store, Job, job_id)
        assert job is not None and job.round is not None and job.openings_seed != b""
        verdict = lazy.verdict(job.openings_seed)
        assert verdict == "proof_invalid"
        drawn = [k for k in VALIDATORS if k.identity.id in job.round.validators]
        await net.vote_round(job_id, [(k, verdict == "ok") for k in drawn], verdict)

        job = await get_aggregate(net.store, Job, job_id)
        node = await get_aggregate(net.store, Node, LAZY.id)
        assert job is not None and node is not None
        assert job.state in (REJECTED, SUBMITTED) and LAZY.id in job.excluded_nodes
        assert node.stake == NODE_STAKE - NODE_STAKE * net.policy.slash_bps // 10_000
        assert await get_money_total(net) == 0


async def _lazy_node_with_a_claimed_job(net: LocalNetwork, round_index: int) -> str:
    await net.deposit(LAZY, NODE_STAKE + LOG_FEE)
    await net.register_active_node(LAZY, region="eu-west", price=100, stake=NODE_STAKE)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, VALIDATOR_STAKE)
        await net.register_validator(keys, stake=VALIDATOR_STAKE)
    await net.deposit(CONSUMER, 10_000)
    submitted = await net.run(
        CONSUMER,
        "job.submit",
        {
            "workload": {"kind": "inference", "gpu_class_min": "consumer", "params": INFERENCE},
            "max_price": 1_000 + round_index,  # another job (id) in each round
            "region": "eu-west",
            "redundancy": len(VALIDATORS),
            "deadline_ns": net.now_ns + 3_600 * 10**9,
        },
    )
    await net.run(LAZY, "job.claim", {"job_id": submitted.subject, "node_id": LAZY.id})
    return submitted.subject


def _root_from_path(leaf: bytes, index: int, path: list[bytes]) -> bytes:
    """The root of a power-of-two tree from a leaf hash and its audit path (leaf upwards)."""
    node = leaf
    for sibling in path:
        node = node_hash(node, sibling) if index % 2 == 0 else node_hash(sibling, node)
        index //= 2
    return node
