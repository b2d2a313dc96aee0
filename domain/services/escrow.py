"""A job's escrow at its end: paid out on settlement, or given back on a refund; and the
fees of a rejection, paid out of the rejected node's slash (issue 14, attack 5)."""

from __future__ import annotations

from collections.abc import Callable

from domain.job import Job
from domain.ledger import (
    TREASURY_ACCOUNT,
    Account,
    escrow_account,
    post_hold,
    transfer,
    user_account,
    void_hold,
)
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork
from domain.settlement import Payout, compute_rejection_fees, compute_settlement
from domain.validators import Validator


async def settle_job(
    uow: UnitOfWork, job: Job, signers: tuple[str, ...], ctx: CommandContext
) -> None:
    """Post the escrow hold and pay the provider, the certificate's signers and the
    treasury; the rest goes back to the consumer."""
    consumer = await uow.account(user_account(job.consumer))
    escrow = await uow.account(escrow_account(job.id))
    post_hold(consumer, escrow, transfer_id=job.escrow_hold_id, now_ns=ctx.now_ns)
    validator_owners = []
    for validator_id in signers:
        validator_owners.append(user_account((await uow.require(Validator, validator_id)).owner))
    payouts = compute_settlement(
        price=job.price,
        max_price=job.max_price,
        provider_account=user_account(job.provider),
        validator_accounts=tuple(validator_owners),
        consumer_account=user_account(job.consumer),
        treasury_account=TREASURY_ACCOUNT,
        policy=ctx.policy,
    )
    await transfer_payouts(
        uow,
        escrow,
        payouts,
        transfer_prefix=f"{job.id}:settle",
        describe=lambda payout: f"{payout.role} for {job.id}",
        now_ns=ctx.now_ns,
    )
    job.settle(payouts=payouts, now_ns=ctx.now_ns)


async def transfer_payouts(
    uow: UnitOfWork,
    source: Account,
    payouts: tuple[Payout, ...],
    *,
    transfer_prefix: str,
    describe: Callable[[Payout], str],
    now_ns: int,
) -> None:
    """Move each payout from ``source`` to its account, transfer ids ``<prefix>:<index>`` (the
    ids and reasons stored histories hold: re-execution compares them byte for byte)."""
    for index, payout in enumerate(payouts):
        transfer(
            source,
            await uow.account(payout.account),
            transfer_id=f"{transfer_prefix}:{index}",
            amount=payout.amount,
            reason=describe(payout),
            now_ns=now_ns,
        )


async def refund_job(uow: UnitOfWork, job: Job, ctx: CommandContext) -> None:
    """Void the escrow hold of an expired job: the consumer gets it all back."""
    amount = void_hold(
        await uow.account(user_account(job.consumer)),
        await uow.account(escrow_account(job.id)),
        transfer_id=job.escrow_hold_id,
        now_ns=ctx.now_ns,
    )
    job.refund(amount=amount, now_ns=ctx.now_ns)


async def pay_rejection_fees(
    uow: UnitOfWork, job: Job, signers: tuple[str, ...], ctx: CommandContext
) -> tuple[Payout, ...]:
    """Pay the signers of a failing certificate out of what the job's escrow account holds:
    the rejected node's slash share meant for the consumer, credited there by the caller.
    Each signer gets the fee it would have got for a pass (capped by what is there), the
    consumer the rest. The consumer's held escrow is never touched, so a node that cheats
    again and again pays the validators from its own stake and cannot drain the consumer.
    Returns the validators' payouts."""
    escrow = await uow.account(escrow_account(job.id))
    owners = []
    for validator_id in signers:
        owners.append(user_account((await uow.require(Validator, validator_id)).owner))
    payouts = compute_rejection_fees(
        price=job.price,
        available=escrow.balance,
        validator_accounts=tuple(owners),
        consumer_account=user_account(job.consumer),
        policy=ctx.policy,
    )
    await transfer_payouts(
        uow,
        escrow,
        payouts,
        transfer_prefix=f"{job.id}:reject:{job.attempt}",
        describe=lambda payout: f"{payout.role} for rejecting {job.id}",
        now_ns=ctx.now_ns,
    )
    return tuple(p for p in payouts if p.role == "validator")
