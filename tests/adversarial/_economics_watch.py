"""Who watches the validators in the economics simulation: a challenger and the canaries.

- The **challenger** (an outsider with its own key) re-checks every decided matmul round
  that has pass votes, at ``VERIFY_COST`` a check, and where the judged C has a row that is
  not A·B's proves it with ``job.prove_fraud`` (the row and its Merkle path): the ledger
  slashes the pass voters and pays the challenger its share.
- The **canary planter** (the operators: the network's operator key, a consumer key and
  one fresh node per canary) plants canaries at the policy's ``canary_rate_bps`` of the
  jobs: it seals ``compute_canary_digest(job id, salt)`` before the job exists, submits the
  job, has its node commit a matmul C with one wrong row, and once the round is decided
  reveals it (with the fraud proof when anyone passed it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.compute.results import ResultBundle
from adapters.compute.workloads import compute_job_seed
from domain.canary import compute_canary_digest
from domain.errors import Rejection
from domain.events import decode_event
from domain.fraud import JobDecision
from domain.policy import BPS
from domain.services.handlers_jobs import compute_job_id
from domain.services.ledger_service import compute_command_id
from flopledger.network import LocalNetwork, b64
from proofs.envelope import sign_command
from proofs.identity import Identity
from proofs.matmul import canonical_row_bytes, compute_product, derive_inputs
from proofs.merkle import inclusion_proof_from_hashes, leaf_hash
from tests.adversarial import _economics_work as work

CANARY_WRONG_ROW = 3
READ_BATCH = 1_000


@dataclass
class Watchers:
    """The challenger's and the planter's keys and what they have seen and planted."""

    challenger: Identity
    planter_consumer: Identity
    planter_nodes: list[Identity] = field(default_factory=list)
    seen_position: int = 0
    canaries_due: float = 0.0
    canaries: dict[str, bytes] = field(default_factory=dict)
    """Planted canary job id -> its salt (revealed after the decision)."""
    planted: int = 0
    checks: int = 0
    proofs: int = 0


def compute_canary_count(watchers: Watchers, jobs: int, rate_bps: int) -> int:
    """How many canaries to plant with ``jobs`` new jobs, keeping the policy's rate."""
    watchers.canaries_due += jobs * rate_bps / BPS
    count = int(watchers.canaries_due)
    watchers.canaries_due -= count
    return count


async def plant_canary(
    net: LocalNetwork, watchers: Watchers, node: Identity, body: dict[str, Any]
) -> str:
    """Seal a canary, submit its job (``body``) as the planter's consumer and claim it with
    the planter's ``node``; returns the job id (the caller commits its known-bad result)."""
    watchers.planted += 1
    nonce = f"canary-{watchers.planted}"
    consumer = watchers.planter_consumer
    job_id = compute_job_id(compute_command_id(consumer.id, nonce))
    salt = hashlib.sha256(f"{consumer.id}/{nonce}".encode()).digest()
    await net.run(net.operator, "canary.seal", {"digest": b64(compute_canary_digest(job_id, salt))})
    envelope = sign_command(consumer, "job.submit", body, nonce=nonce, issued_at_ns=net.now_ns)
    assert (await net.service.execute(envelope, now_ns=net.now_ns)).subject == job_id
    await net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id})
    watchers.canaries[job_id] = salt
    return job_id


def make_canary_bundle(job_id: str, node: Identity) -> ResultBundle:
    """The job's true C with row ``CANARY_WRONG_ROW`` changed: a known-bad result, in the
    format an honest node uploads."""
    params = work.get_matmul_params()
    a, b = derive_inputs(compute_job_seed(job_id, params.seed), params.n)
    c = compute_product(a, b)
    c[CANARY_WRONG_ROW] += np.float32(1.0)
    return work.make_matmul_bundle(job_id, node, c)


async def watch(net: LocalNetwork, watchers: Watchers, proofs: dict[bytes, bytes]) -> int:
    """Read the decisions recorded since the last look: reveal decided canaries, and
    challenge the pass votes on a wrong matmul C (``proofs``: proof object by commitment).
    Returns how many results the challenger checked."""
    checks = watchers.checks
    while records := await net.store.read_all(watchers.seen_position + 1, READ_BATCH):
        watchers.seen_position = records[-1].position
        for record in records:
            if record.event_type != "DecisionRecorded":
                continue
            decision = decode_event(record)
            assert isinstance(decision, JobDecision.DecisionRecorded)
            await _on_decision(net, watchers, decision, proofs)
    return watchers.checks - checks


async def _on_decision(
    net: LocalNetwork,
    watchers: Watchers,
    decision: JobDecision.DecisionRecorded,
    proofs: dict[bytes, bytes],
) -> None:
    job_id, attempt = decision.job_id, decision.attempt
    evidence = None
    if decision.pass_votes:
        watchers.checks += 1
        evidence = find_wrong_row(job_id, proofs.get(decision.commitment, b""))
    if job_id in watchers.canaries:
        body: dict[str, Any] = {
            "job_id": job_id,
            "attempt": attempt,
            "salt": b64(watchers.canaries.pop(job_id)),
        }
        if decision.pass_votes:
            body["evidence"] = evidence
        await net.run(net.operator, "canary.reveal", body)
    elif evidence is not None:
        try:
            await net.run(
                watchers.challenger,
                "job.prove_fraud",
                {"job_id": job_id, "attempt": attempt, "evidence": evidence},
            )
            watchers.proofs += 1
        except Rejection:
            pass  # not a matmul job, or no longer challengeable: the check found nothing


def find_wrong_row(job_id: str, proof: bytes) -> dict[str, Any] | None:
    """A fraud proof against a matmul result: its first row that is not A·B's, with the
    Merkle path to the committed root; None when every row is right or it is no matmul."""
    rows = work.decode_matmul_rows(proof)
    params = work.get_matmul_params()
    if rows is None or len(rows) != params.n:
        return None
    a, b = derive_inputs(compute_job_seed(job_id, params.seed), params.n)
    expected = [canonical_row_bytes(row) for row in compute_product(a, b)]
    wrong = next((i for i, (r, e) in enumerate(zip(rows, expected, strict=True)) if r != e), None)
    if wrong is None:
        return None
    hashes = [leaf_hash(row) for row in rows]
    return {
        "type": "matmul_row",
        "index": wrong,
        "row": b64(rows[wrong]),
        "path": [b64(h) for h in inclusion_proof_from_hashes(hashes, wrong)],
    }
