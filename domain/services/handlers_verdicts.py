"""Handlers for verdict rounds beyond a job's: drawing validators, attestation votes by a
validator quorum, and equivocation reports.

Validators are drawn by ``domain.selection`` from the active validators' stakes and the log
hash as it stands when the round opens (or is re-drawn), and the position and hash are
recorded in the event, so anyone can recompute the draw.
"""

from __future__ import annotations

from domain import commands as c
from domain.errors import Rejection, RejectionCode
from domain.ledger import BURN_ACCOUNT, stake_account, transfer
from domain.node import Node
from domain.policy import BPS, LedgerPolicy
from domain.records import Head
from domain.selection import select_validators
from domain.services.context import CommandContext
from domain.services.directories import list_members
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator
from domain.verdicts import SUBJECT_JOB, Verdict, VerdictRound, attestation_subject
from proofs import bls
from proofs.quorum import attestation_verdict_message, encode_qc, make_qc, verdict_message


class Draw:
    """The outcome of a validator draw: who, their frozen stakes, and the log head used."""

    def __init__(self, validators: tuple[str, ...], weights: tuple[int, ...], head: Head) -> None:
        self.validators, self.weights, self.head = validators, weights, head


async def draw_validators(
    uow: UnitOfWork,
    *,
    seed_id: str,
    count: int,
    policy: LedgerPolicy,
    exclude: frozenset[str] = frozenset(),
) -> Draw:
    """Draw ``count`` active validators (not in ``exclude``) from the current log head."""
    head = await uow.store.head()
    stakes = {}
    for validator_id in await list_members(uow, "validators"):
        if validator_id in exclude:
            continue
        validator = await uow.require(Validator, validator_id)
        if validator.is_active(policy):
            stakes[validator_id] = validator.stake
    chosen = select_validators(job_id=seed_id, log_hash=head.hash, stakes=stakes, count=count)
    return Draw(chosen, tuple(stakes[v] for v in chosen), head)


def compute_replacement_seed(subject: str, replacement: int) -> str:
    """The selection seed id for the ``replacement``-th re-draw of ``subject``'s round."""
    return f"{subject}/replacement/{replacement}"


async def draw_replacements(
    uow: UnitOfWork, verdict_round: VerdictRound, *, subject: str, ctx: CommandContext
) -> Draw | None:
    """Replacements for a closed round's absent validators, or None when the round must be
    given up instead (nobody absent, replacements exhausted, or nobody left to draw)."""
    absent = verdict_round.absent()
    if not (
        verdict_round.is_over(ctx.now_ns)
        and absent
        and verdict_round.replacements < ctx.policy.validator_replacements_max
    ):
        return None
    draw = await draw_validators(
        uow,
        seed_id=compute_replacement_seed(subject, verdict_round.replacements + 1),
        count=len(absent),
        policy=ctx.policy,
        exclude=frozenset(verdict_round.validators),
    )
    return draw if draw.validators else None


async def open_attestation_round(uow: UnitOfWork, node: Node, ctx: CommandContext) -> None:
    """Draw validators for a just-submitted attestation; without any, an operator decides."""
    assert node.challenge is not None
    draw = await draw_validators(
        uow,
        seed_id=attestation_subject(node.id, node.challenge.nonce),
        count=ctx.policy.attestation_validators,
        policy=ctx.policy,
    )
    if not draw.validators:
        return
    node.assign_attestation_validators(
        validators=draw.validators,
        weights=draw.weights,
        log_position=draw.head.position,
        log_hash=draw.head.hash,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
    )


async def handle_commit_attestation_verdict(
    uow: UnitOfWork, cmd: c.CommitAttestationVerdict, ctx: CommandContext
) -> str:
    node = await uow.require(Node, cmd.node_id)
    await uow.require(Validator, ctx.actor)
    node.commit_attestation_verdict(
        nonce=cmd.nonce, validator_id=ctx.actor, verdict_hash=cmd.verdict_hash, now_ns=ctx.now_ns
    )
    return node.id


async def handle_record_attestation_verdict(
    uow: UnitOfWork, cmd: c.RecordAttestationVerdict, ctx: CommandContext
) -> str:
    node = await uow.require(Node, cmd.node_id)
    validator = await uow.require(Validator, ctx.actor)
    node.require_attestation_vote(cmd.nonce)
    message = attestation_verdict_message(
        node.id, cmd.nonce, node.attestation_commitment, cmd.passed
    )
    if not bls.verify(validator.bls_public_key, message, cmd.signature):
        raise Rejection(
            "the verdict's BLS signature does not verify",
            code=RejectionCode.VERDICT_SIGNATURE_INVALID,
        )
    node.reveal_attestation_verdict(
        nonce=cmd.nonce,
        validator_id=validator.id,
        verdict=Verdict(cmd.passed, cmd.reason, cmd.signature),
        salt=cmd.salt,
        now_ns=ctx.now_ns,
    )
    await _decide_attestation_if_quorum(uow, node, cmd.nonce, ctx)
    return node.id


async def handle_expire_attestation(
    uow: UnitOfWork, cmd: c.ExpireAttestation, ctx: CommandContext
) -> str:
    """Anyone may crank an attestation vote whose reveal window closed."""
    node = await uow.require(Node, cmd.node_id)
    verdict_round = node.attestation_round
    if verdict_round is None or node.challenge is None:
        raise Rejection("no attestation vote is open", code=RejectionCode.VALIDATORS_NOT_ASSIGNED)
    subject = attestation_subject(node.id, node.challenge.nonce)
    draw = await draw_replacements(uow, verdict_round, subject=subject, ctx=ctx)
    if draw is not None:
        node.replace_attestation_validators(
            replacements=draw.validators,
            weights=draw.weights,
            log_position=draw.head.position,
            log_hash=draw.head.hash,
            policy=ctx.policy,
            now_ns=ctx.now_ns,
        )
        return node.id
    node.abandon_attestation_round(policy=ctx.policy, now_ns=ctx.now_ns)
    return node.id


async def handle_report_equivocation(
    uow: UnitOfWork, cmd: c.ReportEquivocation, ctx: CommandContext
) -> str:
    """Anyone may prove that a validator signed both verdicts on one result: it is slashed
    ``equivocation_slash_bps`` of its stake (burned), once per (subject, commitment)."""
    validator = await uow.require(Validator, cmd.validator_id)
    if cmd.subject_kind == SUBJECT_JOB:
        messages = [verdict_message(cmd.subject_id, cmd.commitment, v) for v in (True, False)]
    else:
        messages = [
            attestation_verdict_message(cmd.subject_id, cmd.nonce, cmd.commitment, v)
            for v in (True, False)
        ]
    signatures = (cmd.signature_pass, cmd.signature_fail)
    for message, signature in zip(messages, signatures, strict=True):
        if not bls.verify(validator.bls_public_key, message, signature):
            raise Rejection(
                "both signatures must verify under the validator's BLS key",
                code=RejectionCode.EQUIVOCATION_SIGNATURE_INVALID,
            )
    evidence_key = (
        f"equivocation:{cmd.subject_kind}:{cmd.subject_id}:{cmd.nonce}:{cmd.commitment.hex()}"
    )
    amount = validator.stake * ctx.policy.equivocation_slash_bps // BPS
    validator.slash(
        amount=amount,
        reason=f"equivocation on {cmd.subject_kind} {cmd.subject_id}",
        evidence_key=evidence_key,
        evidence=cmd.signature_pass + cmd.signature_fail,
        now_ns=ctx.now_ns,
    )
    if amount > 0:
        transfer(
            await uow.account(stake_account(validator.id)),
            await uow.account(BURN_ACCOUNT),
            transfer_id=f"{ctx.command_id}:equivocation",
            amount=amount,
            reason=f"validator {validator.id} equivocated",
            now_ns=ctx.now_ns,
        )
    return validator.id


async def _decide_attestation_if_quorum(
    uow: UnitOfWork, node: Node, nonce: str, ctx: CommandContext
) -> None:
    verdict_round = node.attestation_round
    assert verdict_round is not None
    outcome = verdict_round.compute_outcome(ctx.policy)
    if outcome is None:
        return
    keys = [(await uow.require(Validator, v)).bls_public_key for v in verdict_round.validators]
    signers = verdict_round.majority(outcome)
    signatures = {
        verdict_round.validators.index(v): verdict_round.verdicts[v].signature for v in signers
    }
    message = attestation_verdict_message(node.id, nonce, node.attestation_commitment, outcome)
    certificate = encode_qc(make_qc(keys, signatures, message, check_signatures=False))
    if outcome:
        node.accept_attestation(certificate=certificate, policy=ctx.policy, now_ns=ctx.now_ns)
        return
    reasons = sorted({verdict_round.verdicts[v].reason for v in signers})
    node.reject_attestation(
        certificate=certificate, reason="; ".join(reasons)[:256], now_ns=ctx.now_ns
    )
    await slash_node(
        uow,
        node,
        reason="attestation rejected",
        evidence=certificate,
        harmed_account=None,
        ctx=ctx,
    )


async def slash_node(
    uow: UnitOfWork,
    node: Node,
    *,
    reason: str,
    evidence: bytes,
    harmed_account: str | None,
    ctx: CommandContext,
) -> None:
    """Slash ``slash_bps`` of the node's stake and jail it: ``slash_to_consumer_bps`` to the
    harmed account (when there is one), the rest burned."""
    amount = node.stake * ctx.policy.slash_bps // BPS
    node.slash(
        amount=amount, reason=reason, evidence=evidence, policy=ctx.policy, now_ns=ctx.now_ns
    )
    if amount == 0:
        return
    stake = await uow.account(stake_account(node.id))
    to_harmed = amount * ctx.policy.slash_to_consumer_bps // BPS if harmed_account else 0
    legs = (
        (harmed_account or BURN_ACCOUNT, to_harmed, "slash to harmed consumer"),
        (BURN_ACCOUNT, amount - to_harmed, "slash burned"),
    )
    for index, (account_id, leg_amount, leg_reason) in enumerate(legs):
        if leg_amount > 0:
            transfer(
                stake,
                await uow.account(account_id),
                transfer_id=f"{ctx.command_id}:slash:{index}",
                amount=leg_amount,
                reason=leg_reason,
                now_ns=ctx.now_ns,
            )
