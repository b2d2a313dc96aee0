"""One verdict round service for every subject kind: a job's result, a node's attestation.

``ROUND_KINDS`` says, per subject kind, which aggregate holds the round, what the validators
sign (the BLS message), whether a round must find validators, and what a decision does
(a job is settled, or its node slashed and the job reassigned; a rejected attestation slashes
the node). Everything else is written once here: opening a round with a draw, commits,
reveals with their signature check, the quorum certificate, and the crank that replaces
absent validators or abandons the round. The command kinds stay as they were (stored
envelopes carry them): each pair (``job.commit_verdict`` / ``node.attestation.commit_verdict``,
...) is one handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from domain import commands as c
from domain.errors import Rejection, RejectionCode
from domain.fraud import JobDecision, PassVote
from domain.job import Job
from domain.ledger import escrow_account, user_account
from domain.node import Node
from domain.policy import RULES_V1
from domain.services.claims import release_claim_if_decided
from domain.services.context import CommandContext
from domain.services.draws import draw_replacements, draw_validators
from domain.services.escrow import pay_rejection_fees, refund_job, settle_job
from domain.services.slashing import slash_node
from domain.services.unit_of_work import UnitOfWork
from domain.settlement import Payout
from domain.validators import Validator
from domain.verdict_subject import VotedAggregate
from domain.verdicts import SUBJECT_ATTESTATION, SUBJECT_JOB, Verdict
from proofs import bls
from proofs.quorum import attestation_verdict_message, encode_qc, make_qc, verdict_message

AfterDecision = Callable[
    [UnitOfWork, Any, bool, bytes, tuple[str, ...], CommandContext], Awaitable[None]
]


@dataclass(frozen=True)
class RoundKind:
    """What differs between subject kinds; the round itself is the same."""

    name: str
    aggregate: type[VotedAggregate]
    compute_message: Callable[[str, str, bytes, bool], bytes]
    """(subject id, nonce, commitment, passed) -> the message a verdict's BLS signature covers."""
    is_nonce_signed: bool
    """Whether ``compute_message`` covers the nonce (an attestation's challenge nonce names
    its round); where it does not, a nonce binds nothing and never tells evidence apart."""
    validators_required: bool
    """Whether a round that finds no validator is refused (else an operator decides)."""
    after_decision: AfterDecision


async def _after_job_decision(
    uow: UnitOfWork,
    job: Job,
    passed: bool,
    certificate: bytes,
    signers: tuple[str, ...],
    ctx: CommandContext,
) -> None:
    """Settle a pass; slash, pay the validators and reassign a fail. Under rules version 2
    the signers are paid either way and the decision is kept for its fraud window
    (``domain.fraud``; issue 14, attack 5)."""
    await release_claim_if_decided(uow, job, ctx)  # issue 14, attacks 4/6: the claim ends
    is_paid_either_way = ctx.policy.rules_version > RULES_V1
    pass_votes = tuple(
        PassVote(validator_id=v, signature=job.verdicts[v].signature)
        for v in job.validators
        if v in job.verdicts and job.verdicts[v].passed
    )
    judged = (job.attempt, job.node_id, job.round_commitment())
    if passed:
        await settle_job(uow, job, signers, ctx)
        fees = tuple(p for p in job.payouts if p.role == "validator")
    else:
        fees = await _reject_job(uow, job, certificate, signers, ctx, is_paid_either_way)
    if is_paid_either_way:
        attempt, node_id, commitment = judged
        decision = JobDecision.record(
            job_id=job.id,
            attempt=attempt,
            node_id=node_id,
            consumer=job.consumer,
            commitment=commitment,
            passed=passed,
            signers=signers,
            pass_votes=pass_votes,
            fees=fees,
            now_ns=ctx.now_ns,
        )
        uow.add(decision)


async def _reject_job(
    uow: UnitOfWork,
    job: Job,
    certificate: bytes,
    signers: tuple[str, ...],
    ctx: CommandContext,
    is_paid_either_way: bool,
) -> tuple[Payout, ...]:
    """Slash the node (its consumer's share through the job's escrow account, which pays the
    signers first when they are paid either way), then reassign or expire the job."""
    harmed = escrow_account(job.id) if is_paid_either_way else user_account(job.consumer)
    await slash_node(
        uow,
        await uow.require(Node, job.node_id),
        reason=f"result of {job.id} rejected",
        evidence=certificate,
        harmed_account=harmed,
        ctx=ctx,
    )
    fees: tuple[Payout, ...] = ()
    if is_paid_either_way:
        fees = await pay_rejection_fees(uow, job, signers, ctx)
    if not job.reassign_or_expire(reason="result rejected", policy=ctx.policy, now_ns=ctx.now_ns):
        await refund_job(uow, job, ctx)
    return fees


async def _after_attestation_decision(
    uow: UnitOfWork,
    node: Node,
    passed: bool,
    certificate: bytes,
    signers: tuple[str, ...],
    ctx: CommandContext,
) -> None:
    if passed:
        return
    await slash_node(
        uow,
        node,
        reason="attestation rejected",
        evidence=certificate,
        harmed_account=None,
        ctx=ctx,
    )


JOB_ROUND = RoundKind(
    name=SUBJECT_JOB,
    aggregate=Job,
    compute_message=lambda subject_id, _nonce, commitment, passed: verdict_message(
        subject_id, commitment, passed
    ),
    is_nonce_signed=False,
    validators_required=True,
    after_decision=_after_job_decision,
)
ATTESTATION_ROUND = RoundKind(
    name=SUBJECT_ATTESTATION,
    aggregate=Node,
    compute_message=attestation_verdict_message,
    is_nonce_signed=True,
    validators_required=False,
    after_decision=_after_attestation_decision,
)
ROUND_KINDS: dict[str, RoundKind] = {kind.name: kind for kind in (JOB_ROUND, ATTESTATION_ROUND)}

VoteCommand = (
    c.CommitVerdict | c.CommitAttestationVerdict | c.RecordVerdict | c.RecordAttestationVerdict
)


async def open_round(
    uow: UnitOfWork, kind: RoundKind, subject: VotedAggregate, *, count: int, ctx: CommandContext
) -> None:
    """Draw ``count`` validators from the log head as it stands and open the round."""
    draw = await draw_validators(uow, seed_id=subject.round_seed(), count=count, policy=ctx.policy)
    if not draw.validators and not kind.validators_required:
        return
    subject.assign_validators(
        validators=draw.validators,
        weights=draw.weights,
        log_position=draw.head.position,
        log_hash=draw.head.hash,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
    )


async def handle_commit_verdict(
    uow: UnitOfWork, cmd: c.CommitVerdict | c.CommitAttestationVerdict, ctx: CommandContext
) -> str:
    """An assigned validator commits a salted hash of its verdict (commit phase)."""
    kind, subject_id, nonce = _target(cmd)
    subject = await uow.require(kind.aggregate, subject_id)
    await uow.require(Validator, ctx.actor)
    subject.commit_verdict(
        validator_id=ctx.actor, verdict_hash=cmd.verdict_hash, now_ns=ctx.now_ns, nonce=nonce
    )
    return subject.id


async def handle_record_verdict(
    uow: UnitOfWork, cmd: c.RecordVerdict | c.RecordAttestationVerdict, ctx: CommandContext
) -> str:
    """Reveal a committed, BLS-signed verdict; on quorum, decide the round."""
    kind, subject_id, nonce = _target(cmd)
    subject = await uow.require(kind.aggregate, subject_id)
    validator = await uow.require(Validator, ctx.actor)
    subject.require_revealable(nonce)
    message = kind.compute_message(
        subject.id, subject.round_nonce(), subject.round_commitment(), cmd.passed
    )
    if not bls.verify(validator.bls_public_key, message, cmd.signature):
        raise Rejection(
            "the verdict's BLS signature does not verify",
            code=RejectionCode.VERDICT_SIGNATURE_INVALID,
        )
    subject.reveal_verdict(
        validator_id=validator.id,
        verdict=Verdict(cmd.passed, cmd.reason, cmd.signature),
        salt=cmd.salt,
        now_ns=ctx.now_ns,
        nonce=nonce,
    )
    await _decide_if_quorum(uow, kind, subject, ctx)
    return subject.id


async def handle_expire_attestation(
    uow: UnitOfWork, cmd: c.ExpireAttestation, ctx: CommandContext
) -> str:
    """Anyone may crank an attestation vote whose reveal window closed."""
    node = await uow.require(Node, cmd.node_id)
    await rotate_round(uow, node, ctx)
    return node.id


async def rotate_round(uow: UnitOfWork, subject: VotedAggregate, ctx: CommandContext) -> None:
    """After the reveal window: replace absent validators by a re-draw, or (nobody absent,
    replacements exhausted, nobody left to draw) abandon the round."""
    verdict_round = subject.get_open_round()
    if verdict_round is None:
        raise Rejection(
            f"no vote is open on {subject.round_subject()}",
            code=RejectionCode.VALIDATORS_NOT_ASSIGNED,
        )
    draw = await draw_replacements(uow, verdict_round, subject=subject.round_seed(), ctx=ctx)
    if draw is None:
        subject.abandon_round(policy=ctx.policy, now_ns=ctx.now_ns)
        return
    subject.replace_absent_validators(
        replacements=draw.validators,
        weights=draw.weights,
        log_position=draw.head.position,
        log_hash=draw.head.hash,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
    )


async def build_certificate(
    uow: UnitOfWork,
    kind: RoundKind,
    subject: VotedAggregate,
    signers: tuple[str, ...],
    passed: bool,
) -> bytes:
    """One aggregate BLS signature of ``signers`` over the subject's decision, indexed by
    the round's ordered validator set (the quorum certificate)."""
    validators = subject.validators
    keys = [(await uow.require(Validator, vid)).bls_public_key for vid in validators]
    signatures = {validators.index(v): subject.verdicts[v].signature for v in signers}
    message = kind.compute_message(
        subject.id, subject.round_nonce(), subject.round_commitment(), passed
    )
    return encode_qc(make_qc(keys, signatures, message, check_signatures=False))


async def _decide_if_quorum(
    uow: UnitOfWork, kind: RoundKind, subject: VotedAggregate, ctx: CommandContext
) -> None:
    passed = subject.compute_quorum_outcome(ctx.policy)
    if passed is None:
        return
    signers = subject.majority_validators(passed)
    certificate = await build_certificate(uow, kind, subject, signers, passed)
    subject.decide_round(certificate=certificate, policy=ctx.policy, now_ns=ctx.now_ns)
    await kind.after_decision(uow, subject, passed, certificate, signers, ctx)


def _target(cmd: VoteCommand) -> tuple[RoundKind, str, str | None]:
    """The round kind, subject id and challenge nonce (attestations only) a vote names."""
    if isinstance(cmd, c.CommitVerdict | c.RecordVerdict):
        return JOB_ROUND, cmd.job_id, None
    return ATTESTATION_ROUND, cmd.node_id, cmd.nonce
