"""Taking stake: a node's slash (share of its stake, jail), and the ledger legs of any take
from a node's or validator's stake (slash, forfeited claim bond).

A take comes out of the unbonding stake first, then the bonded stake (``domain.claims``): the
aggregate says how much is from each, and the legs here move exactly that from the
``unbonding:<id>`` and ``stake:<id>`` accounts, so the ledger's stake accounts always hold what
the aggregate says (the audit checks them against each other).
"""

from __future__ import annotations

from domain.claims import compute_slash_amount
from domain.ledger import BURN_ACCOUNT, stake_account, transfer, unbonding_account
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
    misses: int = 0,
) -> None:
    """Slash ``slash_bps`` of the node's bonded and unbonding stake and jail it:
    ``slash_to_consumer_bps`` to the harmed account (when there is one), the rest burned.
    ``misses``: the failed attestation challenges the slash is for (rules v3)."""
    amount = compute_slash_amount(node.stake, node.unbonding, ctx.policy)
    from_unbonding = node.slash(
        amount=amount,
        reason=reason,
        evidence=evidence,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
        misses=misses,
    )
    to_harmed = amount * ctx.policy.slash_to_consumer_bps // BPS if harmed_account else 0
    await take_stake(
        uow,
        node.id,
        amount=amount,
        from_unbonding=from_unbonding,
        legs=(
            (harmed_account or BURN_ACCOUNT, to_harmed, "slash to harmed consumer"),
            (BURN_ACCOUNT, amount - to_harmed, "slash burned"),
        ),
        transfer_prefix=f"{ctx.command_id}:slash",
        ctx=ctx,
    )


async def take_stake(
    uow: UnitOfWork,
    holder_id: str,
    *,
    amount: int,
    from_unbonding: int,
    legs: tuple[tuple[str, int, str], ...],
    transfer_prefix: str,
    ctx: CommandContext,
) -> None:
    """Move ``amount`` of ``holder_id``'s stake to ``legs`` (account, amount, reason; their
    amounts sum to ``amount``): ``from_unbonding`` of it out of the unbonding account, the
    rest out of the bonded one, each source paying the legs in order."""
    if sum(leg_amount for _, leg_amount, _ in legs) != amount:
        raise AssertionError(f"legs of a take of {amount} do not add up")
    sources = [
        (unbonding_account(holder_id), from_unbonding),
        (stake_account(holder_id), amount - from_unbonding),
    ]
    index = 0
    for account_id, leg_amount, reason in legs:
        while leg_amount > 0:
            source_index = next(i for i, (_, left) in enumerate(sources) if left > 0)
            source_id, left = sources[source_index]
            part = min(left, leg_amount)
            transfer(
                await uow.account(source_id),
                await uow.account(account_id),
                transfer_id=f"{transfer_prefix}:{index}",
                amount=part,
                reason=reason,
                now_ns=ctx.now_ns,
            )
            sources[source_index] = (source_id, left - part)
            leg_amount -= part
            index += 1
