"""Equivocation reports: proof that a validator signed both verdicts on one subject."""

from __future__ import annotations

from domain import commands as c
from domain.errors import InvalidTransition, Rejection, RejectionCode
from domain.ledger import BURN_ACCOUNT
from domain.policy import BPS
from domain.services.context import CommandContext
from domain.services.rounds import ROUND_KINDS
from domain.services.slashing import take_stake
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator
from proofs import bls


async def handle_report_equivocation(
    uow: UnitOfWork, cmd: c.ReportEquivocation, ctx: CommandContext
) -> str:
    """Anyone may prove that a validator signed both verdicts on one result: it is slashed
    ``equivocation_slash_bps`` of its bonded and unbonding stake (burned), once per
    (validator, subject, round).

    The evidence key is made of what the signatures cover only: for a job, its id and the
    result commitment; for an attestation, the node, the challenge nonce and the answer. A
    nonce the messages do not cover is dropped, so resending one piece of evidence with
    another nonce is the same evidence (``evidence_already_used``; issue 14, attack 7)."""
    validator = await uow.require(Validator, cmd.validator_id)
    kind = ROUND_KINDS[cmd.subject_kind]
    nonce = cmd.nonce if kind.is_nonce_signed else ""
    messages = [
        kind.compute_message(cmd.subject_id, nonce, cmd.commitment, passed)
        for passed in (True, False)
    ]
    signatures = (cmd.signature_pass, cmd.signature_fail)
    for message, signature in zip(messages, signatures, strict=True):
        if not bls.verify(validator.bls_public_key, message, signature):
            raise Rejection(
                "both signatures must verify under the validator's BLS key",
                code=RejectionCode.EQUIVOCATION_SIGNATURE_INVALID,
            )
    evidence_key = compute_evidence_key(cmd.subject_kind, cmd.subject_id, nonce, cmd.commitment)
    if not kind.is_nonce_signed and is_round_slashed(
        validator.slashed_for, cmd.subject_kind, cmd.subject_id, cmd.commitment
    ):
        raise InvalidTransition(
            "this equivocation was already slashed (under a key written with a nonce)",
            code=RejectionCode.EVIDENCE_ALREADY_USED,
        )
    # Unbonding stake stays slashable until it is withdrawn (issue 14, attack 4).
    amount = (validator.stake + validator.unbonding) * ctx.policy.equivocation_slash_bps // BPS
    from_unbonding = validator.slash(
        amount=amount,
        reason=f"equivocation on {cmd.subject_kind} {cmd.subject_id}",
        evidence_key=evidence_key,
        evidence=cmd.signature_pass + cmd.signature_fail,
        now_ns=ctx.now_ns,
    )
    await take_stake(
        uow,
        validator.id,
        amount=amount,
        from_unbonding=from_unbonding,
        legs=((BURN_ACCOUNT, amount, f"validator {validator.id} equivocated"),),
        transfer_prefix=f"{ctx.command_id}:equivocation",
        ctx=ctx,
    )
    return validator.id


def compute_evidence_key(kind: str, subject_id: str, nonce: str, commitment: bytes) -> str:
    """``equivocation:<kind>:<subject id>:<signed nonce or empty>:<commitment hex>``."""
    return f"equivocation:{kind}:{subject_id}:{nonce}:{commitment.hex()}"


def is_round_slashed(slashed_for: set[str], kind: str, subject_id: str, commitment: bytes) -> bool:
    """Whether a key of this (kind, subject, commitment) with any nonce was used: reports
    written before job nonces left the key stored one per nonce, so a store slashed then is
    not slashed once more for the same round under the nonce-free key."""
    prefix, suffix = f"equivocation:{kind}:{subject_id}:", f":{commitment.hex()}"
    return any(
        key.startswith(prefix) and key.endswith(suffix) and len(key) >= len(prefix) + len(suffix)
        for key in slashed_for
    )
