"""Slashing a node: take a share of its bonded stake, jail it, and move the money."""

from __future__ import annotations

from domain.ledger import BURN_ACCOUNT, stake_account, transfer
from domain.node import Node
from domain.policy import BPS
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork


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
