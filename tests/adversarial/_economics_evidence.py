"""Every slash of the economics simulation cites evidence that checks, read from the log.

- A node's slash for a rejected result cites the quorum certificate that rejected it: the
  certificate is recorded in the log (``JobRejected``), its message is the fail verdict on
  the committed result, and its aggregate signature verifies against the round's validators.
- A slash for a result proven wrong (a validator's pass vote, or the node of a passed wrong
  result) points at a fraud proof recorded in the log (``FraudProven`` of the job's
  decision), which the ledger's own deterministic check accepts again here; a validator's
  cited evidence is its pass vote, whose BLS signature must verify.
- A forfeited claim bond (not a slash, but money taken from stake) names a job this node
  claimed last, for which it committed no result, after the claim's window closed, and it
  goes to that job's consumer.
Any other slash is named as a problem until this module knows how to check it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from domain.events import datetime_to_ns, decode_event, rebuild
from domain.job import Job, WorkloadSpec
from domain.ledger import user_account
from domain.records import Record
from domain.services.fraud import decode_evidence
from domain.services.fraud_checks import check_fraud_evidence
from domain.services.queries import get_aggregate
from domain.validators import Validator
from proofs import bls
from proofs.quorum import decode_qc, verdict_message, verify_qc
from tests.adversarial._economics import World

FORFEIT = "ClaimBondForfeited"


@dataclass
class Proven:
    """A decision proven wrong: the job, the judged commitment, its node, the evidence."""

    job_id: str
    commitment: bytes
    node_id: str
    passed: bool
    evidence: bytes


@dataclass
class Log:
    """What the checks look up: certificates, fraud proofs, workloads, streams."""

    certificates: dict[bytes, tuple[str, int]] = field(default_factory=dict)
    decisions: dict[str, Any] = field(default_factory=dict)
    proven: list[Proven] = field(default_factory=list)
    workloads: dict[str, WorkloadSpec] = field(default_factory=dict)
    streams: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))


async def find_evidence_problems(world: World, records: list[Record]) -> list[str]:
    log = _index(records)
    problems = []
    for record in records:
        if not record.event_type.endswith("Slashed") and record.event_type != FORFEIT:
            continue
        event = decode_event(record)
        where = f"{record.event_type} of {record.stream_id} at {record.position}"
        if record.event_type == FORFEIT:
            problem = _find_forfeit_problem(log, record, event)
        else:
            problem = await _find_problem(world, log, record, event)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


async def _find_problem(world: World, log: Log, record: Record, event: Any) -> str:
    evidence: bytes = event.evidence
    if not evidence:
        return "no evidence"
    if record.event_type == "NodeSlashed" and evidence in log.certificates:
        job_id, version = log.certificates[evidence]
        job = rebuild(log.streams[job_id][:version], Job)
        if await _is_rejection_certificate(world, job, evidence):
            return ""
        return "the certificate does not verify"
    if record.event_type == "NodeSlashed":
        proof = next((p for p in log.proven if p.evidence == evidence), None)
        if proof is None or proof.node_id != record.stream_id or not proof.passed:
            return f"evidence of no known kind ({evidence[:40]!r})"
        return "" if _is_fraud_proof(log, proof) else "the fraud proof does not check"
    if record.event_type == "ValidatorSlashed":
        return await _find_validator_problem(world, log, record.stream_id, event)
    return f"a slash of no known kind ({record.event_type})"


async def _find_validator_problem(world: World, log: Log, validator_id: str, event: Any) -> str:
    proof = next(
        (p for p in log.proven if event.evidence_key == _fraud_key(p.job_id, p.commitment)),
        None,
    )
    if proof is None:
        return f"evidence key {event.evidence_key} names no fraud proof in the log"
    if not _is_fraud_proof(log, proof):
        return "the fraud proof does not check"
    validator = await get_aggregate(world.net.store, Validator, validator_id)
    assert validator is not None
    message = verdict_message(proof.job_id, proof.commitment, True)
    if not bls.verify(validator.bls_public_key, message, event.evidence):
        return "the cited pass vote is not this validator's signature"
    return ""


def _find_forfeit_problem(log: Log, record: Record, event: Any) -> str:
    """The bond is forfeited for the job's latest claim, held by this node, with no result
    committed after it and its window closed; the money goes to the job's consumer."""
    claim, committed, consumer = None, False, ""
    for job_record in log.streams[event.job_id]:
        if job_record.position > record.position:
            break
        if job_record.event_type in ("JobSubmitted", "JobClaimed", "ResultCommitted"):
            job_event: Any = decode_event(job_record)
            if job_record.event_type == "JobSubmitted":
                consumer = job_event.consumer
            elif job_record.event_type == "JobClaimed":
                claim, committed = job_event, False
            else:
                committed = True
    if claim is None or claim.node_id != record.stream_id:
        return f"{event.job_id}'s last claim is not this node's"
    if committed:
        return "the node committed a result for the claim"
    if datetime_to_ns(event.timestamp) <= claim.result_due_ns:
        return "the claim's window was still open"
    if event.to_account != user_account(consumer):
        return f"the bond went to {event.to_account}, not the job's consumer"
    return ""


def _index(records: list[Record]) -> Log:
    log = Log()
    for record in records:
        log.streams[record.stream_id].append(record)
        if record.event_type not in (
            "JobSubmitted",
            "JobRejected",
            "DecisionRecorded",
            "FraudProven",
        ):
            continue
        event: Any = decode_event(record)
        if record.event_type == "JobSubmitted":
            log.workloads[record.stream_id] = event.workload
        elif record.event_type == "JobRejected":
            log.certificates[event.certificate] = (record.stream_id, record.version)
        elif record.event_type == "DecisionRecorded":
            log.decisions[record.stream_id] = event
        else:
            decision = log.decisions[record.stream_id]
            log.proven.append(
                Proven(
                    decision.job_id,
                    decision.commitment,
                    decision.node_id,
                    decision.passed,
                    event.evidence,
                )
            )
    return log


def _is_fraud_proof(log: Log, proof: Proven) -> bool:
    """The ledger's own deterministic check of the recorded evidence, run again."""
    finding = check_fraud_evidence(
        job_id=proof.job_id,
        node_id=proof.node_id,
        workload=log.workloads[proof.job_id],
        commitment=proof.commitment,
        evidence=decode_evidence(proof.evidence),
    )
    return finding is None


def _fraud_key(job_id: str, commitment: bytes) -> str:
    return f"fraud:job:{job_id}:{commitment.hex()}"


async def _is_rejection_certificate(world: World, job: Job | None, evidence: bytes) -> bool:
    if job is None or job.result is None:
        return False
    keys = []
    for validator_id in job.validators:
        validator = await get_aggregate(world.net.store, Validator, validator_id)
        assert validator is not None
        keys.append(validator.bls_public_key)
    qc = decode_qc(evidence)
    expected = verdict_message(job.id, job.result.commitment, False)
    return qc.message == expected and verify_qc(keys, qc, threshold=1)
