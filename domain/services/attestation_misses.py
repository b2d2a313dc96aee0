"""The slash for repeated attestation failures (rules v3).

A failed or missed challenge revokes the node's attestation and is counted
(``domain.node``); once ``probe_misses_slash`` are counted, the node is slashed
``slash_bps`` of its stake, burned (no consumer was harmed), with the digests of the failed
rounds' certificates as evidence, and the count starts again.
"""

from __future__ import annotations

from domain.node import Node
from domain.services.context import CommandContext
from domain.services.slashing import slash_node
from domain.services.unit_of_work import UnitOfWork

MISSES_SLASH_REASON = "attestation challenges failed"


async def slash_if_misses_due(uow: UnitOfWork, node: Node, ctx: CommandContext) -> None:
    """After a failed challenge: slash the node when its failures reached the threshold."""
    if not node.is_misses_slash_due(ctx.policy):
        return
    await slash_node(
        uow,
        node,
        reason=MISSES_SLASH_REASON,
        evidence=node.compute_misses_evidence(),
        harmed_account=None,
        ctx=ctx,
        misses=node.failed_challenges,
    )
