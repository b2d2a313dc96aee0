"""Appending costs money (issue 16, item 8; rules v4).

A command that only moves the signer's own stake (bonding, unbonding) changes no one else's
state, so an attacker can repeat it to grow the log or to move whatever is derived from the
log head (the draw-grinding attack of issue 14 appended 1-unit bonds). Under rules v4 each
such command pays ``LedgerPolicy.log_fee`` from the signer's account to the treasury, in the
same command; with too little money the command is refused (``insufficient_funds``) and
nothing is written. Validator registration costs its minimum stake instead
(``handlers_nodes.handle_register_validator``).
"""

from __future__ import annotations

from domain.ledger import TREASURY_ACCOUNT, transfer, user_account
from domain.policy import RULES_V4
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork

LOG_FEE_KINDS = frozenset({"stake.bond", "stake.unbond"})
"""The command kinds that pay the log fee: each only moves its signer's own stake."""


async def charge_log_fee(uow: UnitOfWork, ctx: CommandContext) -> None:
    """Move ``log_fee`` from the signer's account to the treasury (rules v4 and later)."""
    fee = ctx.policy.log_fee
    if ctx.policy.rules_version < RULES_V4 or fee == 0:
        return
    transfer(
        await uow.account(user_account(ctx.actor)),
        await uow.account(TREASURY_ACCOUNT),
        transfer_id=f"{ctx.command_id}:log_fee",
        amount=fee,
        reason="log fee",
        now_ns=ctx.now_ns,
    )
