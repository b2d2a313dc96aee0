"""One verdict round service for every subject kind: a job's result, a node's attestation,
a sampled completion (issue 18).

``ROUND_KINDS`` says, per subject kind, which aggregate holds the round, what the validators
sign (the BLS message), whether a round must find validators, and what a decision does
(a job is settled, or its node slashed and the job reassigned; a rejected attestation slashes
the node). Everything else is written once here: opening a round with a draw, commits,
reveals with their signature check, the quorum certificate, and the crank that replaces
absent validators, escalates a split round (more validators join it) or abandons the
round. The command kinds stay as they were (stored envelopes carry them): each pair
(``job.commit_verdict`` / ``node.attestation.commit_verdict``, ...) is one handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from domain import commands as c
from domain.beacon import (
    PURPOSE_ASSIGN,
    PURPOSE_REPLACE,
    Epoch,
    Participant,
    Waiting,
    compute_draw,
    compute_draw_randomness,
)
from domain.completions import COMMITTED as COMPLETION_COMMITTED
from domain.completions import Completion, compute_completion_stream_id
from domain.errors import Rejection, RejectionCode
from domain.fraud import JobDecision, PassVote
from domain.invariants import present
from domain.job import EXPIRED, RESULT_COMMITTED, Job
from domain.ledger import escrow_account, user_account
from domain.node import Node
from domain.policy import RULES_V1, RULES_V3
from domain.services.attestation_misses import slash_if_misses_due
from domain.services.claims import release_claim_if_decided, release_claim_if_left
from domain.services.completion_rounds import (
    compute_completion_verdict_message,
    compute_excluded_owners,
    compute_unjudged_reason,
    decide_completion,
    get_non_checkers,
    sample_completion,
)
from domain.services.context import CommandContext
from domain.services.draws import (
    compute_replacement_seed,
    get_beacon,
    get_participants,
    has_eligible,
    request_draw,
)
from domain.services.escrow import pay_rejection_fees, refund_job, settle_job
from domain.services.handlers_objects import is_artifact_loss_excused
from domain.services.slashing import slash_node
from domain.services.unit_of_work import UnitOfWork
from domain.settlement import Payout
from domain.validators import Validator
from domain.verdict_subject import VotedAggregate
from domain.verdicts import (
    SUBJECT_ATTESTATION,
    SUBJECT_COMPLETION,
    SUBJECT_JOB,
    Verdict,
    is_escalation_allowed,
)
from proofs import bls
from proofs.quorum import (
    attestation_verdict_message,
    encode_qc,
    make_qc,
    verdict_message,
)

NonJudges = Callable[[UnitOfWork, Any, tuple[Participant, ...]], Awaitable[frozenset[str]]]
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
    excluded_owners: Callable[[Any], frozenset[str]]
    """The ids whose validators may not judge the subject: its provider (the node's owner)
    and the node itself (issue 14, attack 9: a provider's own validators are excluded)."""
    sample: Callable[[Any, bytes, int, CommandContext], bool] | None = None
    """For a subject judged only when sampled (a completion): called with the draw's
    randomness and beacon epoch before the draw; False means it is not judged (and it
    recorded so)."""
    non_judges: NonJudges | None = None
    """The participants that cannot judge the subject, never drawn for it (a completion:
    the validators that did not declare its model); None: every participant can."""


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
    signers first when they are paid either way), then reassign or expire the job. Under
    rules v4 a rejection only for artifacts the node recorded as stored and the store lost
    slashes nobody (``domain.objects``; issue 16, item 6)."""
    lost = await is_artifact_loss_excused(uow, job, signers, ctx)
    if not lost:
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
    if is_paid_either_way and not lost:  # a lost artifact leaves no slash share to pay from
        fees = await pay_rejection_fees(uow, job, signers, ctx)
    reason = "artifacts lost by the store" if lost else "result rejected"
    if not job.reassign_or_expire(reason=reason, policy=ctx.policy, now_ns=ctx.now_ns):
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
    """A rejected attestation slashes the node; under rules v3 a failure is counted instead
    (the node deactivated) and slashes at ``probe_misses_slash`` failures."""
    if passed:
        return
    if ctx.policy.rules_version >= RULES_V3:
        await slash_if_misses_due(uow, node, ctx)
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
    excluded_owners=lambda job: frozenset({job.provider, job.node_id}),
)
ATTESTATION_ROUND = RoundKind(
    name=SUBJECT_ATTESTATION,
    aggregate=Node,
    compute_message=attestation_verdict_message,
    is_nonce_signed=True,
    validators_required=False,
    after_decision=_after_attestation_decision,
    excluded_owners=lambda node: frozenset({node.owner, node.id}),
)
COMPLETION_ROUND = RoundKind(
    name=SUBJECT_COMPLETION,
    aggregate=Completion,
    compute_message=lambda subject_id, _nonce, commitment, passed: (
        compute_completion_verdict_message(subject_id, commitment, passed)
    ),
    is_nonce_signed=False,
    validators_required=False,
    after_decision=decide_completion,
    excluded_owners=compute_excluded_owners,
    sample=sample_completion,
    non_judges=get_non_checkers,
)
ROUND_KINDS: dict[str, RoundKind] = {
    kind.name: kind for kind in (JOB_ROUND, ATTESTATION_ROUND, COMPLETION_ROUND)
}

VoteCommand = (
    c.CommitVerdict
    | c.CommitAttestationVerdict
    | c.CommitCompletionVerdict
    | c.RecordVerdict
    | c.RecordAttestationVerdict
    | c.RecordCompletionVerdict
)


async def open_round(
    uow: UnitOfWork, kind: RoundKind, subject: VotedAggregate, *, count: int, ctx: CommandContext
) -> None:
    """Ask the beacon for the randomness of the subject's draw: the round opens when the
    epoch that seeds it closes (``complete_draw``), so nothing known now (the log head, the
    moment of this command) steers who is drawn. Without an eligible validator a job is
    refused, and an attestation is left to an operator."""
    participants = await get_participants(uow, ctx.policy)
    if not has_eligible(participants, kind.excluded_owners(subject)):
        if kind.validators_required:
            raise Rejection(
                "no validator with stake is available",
                code=RejectionCode.NO_VALIDATORS_AVAILABLE,
            )
        return
    waiting = Waiting(kind.name, subject.id, subject.round_seed(), PURPOSE_ASSIGN, 0, count)
    await request_draw(
        uow, waiting, participants=participants, policy=ctx.policy, now_ns=ctx.now_ns
    )


async def handle_commit_verdict(
    uow: UnitOfWork,
    cmd: c.CommitVerdict | c.CommitAttestationVerdict | c.CommitCompletionVerdict,
    ctx: CommandContext,
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
    uow: UnitOfWork,
    cmd: c.RecordVerdict | c.RecordAttestationVerdict | c.RecordCompletionVerdict,
    ctx: CommandContext,
) -> str:
    """Reveal a committed, BLS-signed verdict; on quorum, decide the round."""
    kind, subject_id, nonce = _target(cmd)
    subject = await uow.require(kind.aggregate, subject_id)
    validator = await uow.require(Validator, ctx.actor)
    subject.require_pending_reveal(validator.id, nonce)
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
    """After the reveal window: have absent validators replaced by a re-draw seeded by the
    next beacon epoch (so cranking at a chosen moment chooses nothing); in a split round
    (everybody revealed, no quorum; rules v2) have as many fresh validators as sit drawn the
    same way to join it (an escalation: a side with over 1/3 of the drawn stake must not
    turn a decision into a free retry); or (replacements exhausted, nobody left to draw)
    abandon the round."""
    kind = ROUND_KINDS[subject.SUBJECT_KIND]
    verdict_round = subject.get_open_round()
    if verdict_round is None:
        await _require_not_waiting(uow, kind, subject)
        raise Rejection(
            f"no vote is open on {subject.round_subject()}",
            code=RejectionCode.VALIDATORS_NOT_ASSIGNED,
        )
    replacement = verdict_round.replacements + 1
    is_split = verdict_round.is_over(ctx.now_ns) and is_escalation_allowed(
        verdict_round, ctx.policy
    )
    waiting = Waiting(
        kind.name,
        subject.id,
        compute_replacement_seed(subject.round_seed(), replacement),
        PURPOSE_REPLACE,
        replacement,
        len(verdict_round.validators) if is_split else len(verdict_round.absent()),
    )
    beacon = await get_beacon(uow)
    if beacon.is_waiting(waiting):
        raise Rejection(
            f"the re-draw of {subject.round_subject()} waits for a beacon epoch",
            code=RejectionCode.RANDOMNESS_PENDING,
        )
    participants = await get_participants(uow, ctx.policy)
    excluded = kind.excluded_owners(subject)
    undrawable = set(verdict_round.validators)  # sitting, or unable to judge it
    undrawable |= await _get_non_judges(uow, kind, subject, participants)
    if not (
        verdict_round.is_over(ctx.now_ns)
        and (verdict_round.absent() or is_split)
        and verdict_round.replacements < ctx.policy.validator_replacements_max
        and has_eligible(
            tuple(p for p in participants if p.validator_id not in undrawable), excluded
        )
    ):
        # (a job's handler refunds it if this expired it)
        subject.abandon_round(policy=ctx.policy, now_ns=ctx.now_ns)
        return
    await request_draw(
        uow, waiting, participants=participants, policy=ctx.policy, now_ns=ctx.now_ns
    )


async def complete_draw(
    uow: UnitOfWork, waiting: Waiting, epoch: Epoch, value: bytes, ctx: CommandContext
) -> None:
    """The epoch seeding ``waiting`` closed with ``value``: draw from its snapshot and open
    the round (or replace the absent). A subject that moved on meanwhile (an attestation
    decided by an operator, a new challenge) is skipped; a draw that finds nobody gives the
    subject up as a round without quorum would."""
    kind = ROUND_KINDS[waiting.kind]
    subject = await uow.get(kind.aggregate, waiting.aggregate_id)
    if subject is None or not _still_waits(subject, waiting):
        return
    randomness = compute_draw_randomness(value, waiting.seed_id)
    head = await uow.head()
    verdict_round = subject.current_round
    if waiting.purpose == PURPOSE_ASSIGN:
        if kind.sample is not None and not kind.sample(subject, randomness, epoch.number, ctx):
            return
        validators, weights = compute_draw(
            epoch.participants,
            randomness=randomness,
            count=waiting.count,
            excluded_owners=kind.excluded_owners(subject),
            excluded=await _get_non_judges(uow, kind, subject, epoch.participants),
        )
        if not validators:
            await _give_up_unjudged(uow, subject, epoch, ctx)
            return
        subject.assign_validators(
            validators=validators,
            weights=weights,
            log_position=head.position,
            log_hash=head.hash,
            policy=ctx.policy,
            now_ns=ctx.now_ns,
            randomness=randomness,
            beacon_epoch=epoch.number,
        )
        return
    verdict_round = present(verdict_round, "_still_waits found the round open")
    validators, weights = compute_draw(
        epoch.participants,
        randomness=randomness,
        count=waiting.count,  # the absent, or (an escalation) as many as sit
        excluded_owners=kind.excluded_owners(subject),
        excluded=frozenset(verdict_round.validators)
        | await _get_non_judges(uow, kind, subject, epoch.participants),
    )
    if not validators:
        holder = subject.node_id if isinstance(subject, Job) else ""
        subject.abandon_round(policy=ctx.policy, now_ns=ctx.now_ns)
        await _after_abandon(uow, subject, holder, ctx)
        return
    subject.replace_absent_validators(
        replacements=validators,
        weights=weights,
        log_position=head.position,
        log_hash=head.hash,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
        randomness=randomness,
        beacon_epoch=epoch.number,
    )


def _still_waits(subject: VotedAggregate, waiting: Waiting) -> bool:
    """Whether ``subject`` is still where it was when it asked for ``waiting``."""
    verdict_round = subject.current_round
    if waiting.purpose == PURPOSE_ASSIGN:
        if isinstance(subject, Job):
            ready = subject.state == RESULT_COMMITTED
        elif isinstance(subject, Completion):
            ready = subject.state == COMPLETION_COMMITTED
        else:
            ready = isinstance(subject, Node) and bool(subject.attestation_commitment)
        return ready and verdict_round is None and subject.round_seed() == waiting.seed_id
    return (
        subject.get_open_round() is not None
        and verdict_round is not None
        and verdict_round.replacements + 1 == waiting.replacement
        and compute_replacement_seed(subject.round_seed(), waiting.replacement) == waiting.seed_id
    )


async def _require_not_waiting(uow: UnitOfWork, kind: RoundKind, subject: VotedAggregate) -> None:
    beacon = await get_beacon(uow)
    if beacon.is_waiting_for(kind.name, subject.id):
        raise Rejection(
            f"the validators of {subject.round_subject()} are drawn when a beacon epoch closes",
            code=RejectionCode.RANDOMNESS_PENDING,
        )


async def _get_non_judges(
    uow: UnitOfWork, kind: RoundKind, subject: VotedAggregate, participants: tuple[Participant, ...]
) -> frozenset[str]:
    """The ``participants`` never drawn for ``subject`` (``RoundKind.non_judges``)."""
    if kind.non_judges is None:
        return frozenset()
    return await kind.non_judges(uow, subject, participants)


async def _give_up_unjudged(
    uow: UnitOfWork, subject: VotedAggregate, epoch: Epoch, ctx: CommandContext
) -> None:
    """Nobody eligible in the seeding epoch's snapshot: a job goes back to the market (as
    after a round without quorum); a completion clears unjudged (nobody may judge it, or
    nobody declared its model); an attestation is left to an operator."""
    if isinstance(subject, Completion):
        reason = compute_unjudged_reason(epoch.participants, subject)
        subject.clear(reason=reason, now_ns=ctx.now_ns)
    if isinstance(subject, Job):
        holder = subject.node_id
        subject.give_up_unjudged(policy=ctx.policy, now_ns=ctx.now_ns)
        await _after_abandon(uow, subject, holder, ctx)


async def _after_abandon(
    uow: UnitOfWork, subject: VotedAggregate, holder: str, ctx: CommandContext
) -> None:
    """What ``job.expire`` does after a round it gave up: the node's claim ends, and an
    expired job is refunded."""
    if not isinstance(subject, Job):
        return
    await release_claim_if_left(uow, subject, holder, reason="no validator quorum", ctx=ctx)
    if subject.state == EXPIRED:
        await refund_job(uow, subject, ctx)


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
    if isinstance(cmd, c.CommitCompletionVerdict | c.RecordCompletionVerdict):
        return COMPLETION_ROUND, compute_completion_stream_id(cmd.completion_id), None
    return ATTESTATION_ROUND, cmd.node_id, cmd.nonce
