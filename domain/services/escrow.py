"""A job's escrow at its end: paid out on settlement, or given back on a refund."""

from __future__ import annotations

from domain.job import Job
from domain.ledger import (
    TREASURY_ACCOUNT,
    escrow_account,
    post_hold,
    transfer,
    user_account,
    void_hold,
)
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork
from domain.settlement import compute_settlement
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
    for index, payout in enumerate(payouts):
        transfer(
            escrow,
            await uow.account(payout.account),
            transfer_id=f"{job.id}:settle:{index}",
            amount=payout.amount,
            reason=f"{payout.role} for {job.id}",
            now_ns=ctx.now_ns,
        )
    job.settle(payouts=payouts, now_ns=ctx.now_ns)


async def refund_job(uow: UnitOfWork, job: Job, ctx: CommandContext) -> None:
    """Void the escrow hold of an expired job: the consumer gets it all back."""
    amount = void_hold(
        await uow.account(user_account(job.consumer)),
        await uow.account(escrow_account(job.id)),
        transfer_id=job.escrow_hold_id,
        now_ns=ctx.now_ns,
    )
    job.refund(amount=amount, now_ns=ctx.now_ns)
