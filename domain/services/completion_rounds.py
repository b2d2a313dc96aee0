"""The sampled check of a committed completion (issue 18): whether it is checked, and what its
verdict round's decision moves (``domain.services.rounds``, ``COMPLETION_ROUND``).

A committed completion asks the beacon for randomness (``request_sampling``); the epoch that
closes after the commit decides, with ``domain.completions.is_sampled``, whether validators
check it (``sample_completion``). Not sampled: cleared, for good. Sampled: drawn validators
re-run one prefill over prompt + completion and vote. A pass moves nothing (the completion was
paid at its commit) but the signers' fees, from the checks pool every completion paid into. A
fail slashes the node the charges it was paid in the challenge window before the commit times
``completion_slash_multiple``, capped by its stake: out of the slash the rejected completion's
consumer gets its charge back and the signers their fees; the rest is burned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from domain.beacon import PURPOSE_ASSIGN, Participant, Waiting
from domain.completions import (
    CLEARED_NO_CHECKER,
    CLEARED_NO_VALIDATOR,
    CLEARED_UNSAMPLED,
    COMPLETION_CHECKS_ACCOUNT,
    Completion,
    compute_check_fee,
    compute_window_slash,
    is_sampled,
)
from domain.ledger import BURN_ACCOUNT, user_account
from domain.node import Node
from domain.services.context import CommandContext
from domain.services.draws import get_participants, has_eligible, request_draw
from domain.services.escrow import transfer_payouts
from domain.services.slashing import take_stake
from domain.services.unit_of_work import UnitOfWork
from domain.settlement import Payout
from domain.validators import Validator
from proofs.quorum import completion_verdict_message


def compute_completion_verdict_message(stream_id: str, commitment: bytes, passed: bool) -> bytes:
    """What a verdict on the completion of stream ``stream_id`` signs
    (``proofs.quorum.completion_verdict_message`` over its completion id). An id that names
    no completion stream gets a message no validator signs (no completion id holds a NUL), so
    one piece of equivocation evidence has one subject id, and one evidence key."""
    prefix = f"{Completion.STREAM_TYPE}:"
    completion_id = stream_id[len(prefix) :] if stream_id.startswith(prefix) else "\0" + stream_id
    return completion_verdict_message(completion_id, commitment, passed)


def compute_excluded_owners(completion: Completion) -> frozenset[str]:
    """Who may not judge a completion: its provider's validators and the node itself."""
    return frozenset({completion.provider, completion.node_id})


def compute_non_checkers(
    participants: Iterable[Participant],
    model_id: str,
    check_models_of: Callable[[str], Iterable[str]],
) -> frozenset[str]:
    """The participants that did not declare ``model_id`` (``check_models_of``: a validator
    id -> the models it declared): they cannot replay the completion's bundle, so a draw
    never picks them (issue 18). The ledger and the audit both call this."""
    return frozenset(
        p.validator_id for p in participants if model_id not in check_models_of(p.validator_id)
    )


async def get_non_checkers(
    uow: UnitOfWork, completion: Completion, participants: tuple[Participant, ...]
) -> frozenset[str]:
    """``compute_non_checkers`` over the validators' declarations as the log stands now."""
    declared = {
        p.validator_id: (await uow.require(Validator, p.validator_id)).check_models
        for p in participants
    }
    return compute_non_checkers(participants, completion.model_id, declared.__getitem__)


def compute_unjudged_reason(participants: tuple[Participant, ...], completion: Completion) -> str:
    """Why nobody was drawn: no validator may judge it at all, or none declared its model."""
    if has_eligible(participants, compute_excluded_owners(completion)):
        return CLEARED_NO_CHECKER
    return CLEARED_NO_VALIDATOR


async def request_sampling(uow: UnitOfWork, completion: Completion, ctx: CommandContext) -> None:
    """After the commit: wait for the next beacon epoch, whose value decides the sampling and
    the draw; with a sample rate of 0, or nobody to judge it (no validator, or none that
    declared its model), the completion clears now."""
    participants = await get_participants(uow, ctx.policy)
    if ctx.policy.completion_sample_rate_ppm == 0:
        completion.clear(reason=CLEARED_UNSAMPLED, now_ns=ctx.now_ns)
        return
    non_checkers = await get_non_checkers(uow, completion, participants)
    checkers = tuple(p for p in participants if p.validator_id not in non_checkers)
    if not has_eligible(checkers, compute_excluded_owners(completion)):
        completion.clear(
            reason=compute_unjudged_reason(participants, completion), now_ns=ctx.now_ns
        )
        return
    waiting = Waiting(
        completion.SUBJECT_KIND,
        completion.id,
        completion.round_seed(),
        PURPOSE_ASSIGN,
        0,
        ctx.policy.redundancy_min,
    )
    await request_draw(
        uow, waiting, participants=participants, policy=ctx.policy, now_ns=ctx.now_ns
    )


def sample_completion(
    completion: Completion, randomness: bytes, epoch: int, ctx: CommandContext
) -> bool:
    """Whether the draw's ``randomness`` (beacon epoch ``epoch``) samples the completion; one
    it does not sample is cleared, with the randomness that decided it."""
    if is_sampled(randomness, completion.completion_id, ctx.policy.completion_sample_rate_ppm):
        return True
    completion.clear(
        reason=CLEARED_UNSAMPLED, now_ns=ctx.now_ns, randomness=randomness, epoch=epoch
    )
    return False


async def decide_completion(
    uow: UnitOfWork,
    completion: Completion,
    passed: bool,
    certificate: bytes,
    signers: tuple[str, ...],
    ctx: CommandContext,
) -> None:
    """What a decided round moves: the signers' fees from the pool on a pass; the slash,
    the consumer's refund and the fees out of it on a fail."""
    owners = [user_account((await uow.require(Validator, v)).owner) for v in signers]
    fee = compute_check_fee(completion.charge, len(owners), ctx.policy)
    if passed:
        fees = await _pay_from_pool(uow, completion, owners, fee, ctx)
        completion.record_verified(certificate=certificate, fees=fees, now_ns=ctx.now_ns)
        return
    node = await uow.require(Node, completion.node_id)
    window_charges = node.compute_window_charges(
        until_ns=completion.committed_at_ns, window_ns=ctx.policy.completion_challenge_window_ns
    )
    slash = compute_window_slash(window_charges, node.stake + node.unbonding, ctx.policy)
    refund = min(completion.charge, slash)
    per_signer = min(fee, (slash - refund) // len(owners)) if owners else 0
    fees = tuple(Payout(owner, per_signer, "validator") for owner in owners if per_signer)
    if slash:
        from_unbonding = node.slash(
            amount=slash,
            reason=f"completion {completion.completion_id} rejected",
            evidence=certificate,
            policy=ctx.policy,
            now_ns=ctx.now_ns,
        )
        legs = (
            (user_account(completion.consumer), refund, "refund of a rejected completion"),
            *((p.account, p.amount, "fee for rejecting a completion") for p in fees),
            (BURN_ACCOUNT, slash - refund - per_signer * len(fees), "slash burned"),
        )
        await take_stake(
            uow,
            node.id,
            amount=slash,
            from_unbonding=from_unbonding,
            legs=legs,
            transfer_prefix=f"{ctx.command_id}:slash",
            ctx=ctx,
        )
    completion.record_rejected(
        certificate=certificate,
        window_charges=window_charges,
        slash=slash,
        refund=refund,
        fees=fees,
        now_ns=ctx.now_ns,
    )


async def _pay_from_pool(
    uow: UnitOfWork,
    completion: Completion,
    owners: list[str],
    fee: int,
    ctx: CommandContext,
) -> tuple[Payout, ...]:
    """Pay each signer ``fee`` from the checks pool, as far as the pool holds."""
    if not owners:
        return ()
    pool = await uow.account(COMPLETION_CHECKS_ACCOUNT)
    per_signer = min(fee, max(pool.available, 0) // len(owners))
    if per_signer == 0:
        return ()
    fees = tuple(Payout(owner, per_signer, "validator") for owner in owners)
    await transfer_payouts(
        uow,
        pool,
        fees,
        transfer_prefix=f"{completion.id}:check",
        describe=lambda _: f"fee for checking {completion.completion_id}",
        now_ns=ctx.now_ns,
    )
    return fees
