"""A node's claims on the ledger (``domain.claims``): reserved in the command that claims the
job, released when the job leaves the node's hands, and the claim bond forfeited to the
consumer when the node does not deliver."""

from __future__ import annotations

import msgspec

from domain.claims import compute_release_fee
from domain.job import CLAIMED, RESULT_COMMITTED, VERIFIED, Job
from domain.key_releases import get_inputs_key_released_at, is_private_params
from domain.ledger import user_account
from domain.node import Node
from domain.policy import RULES_V3, RULES_V5
from domain.reputation import REJECTED
from domain.reputation import VERIFIED as RESULT_VERIFIED
from domain.scheduling import check_commit, compute_earliest_claim_ns
from domain.services.context import CommandContext
from domain.services.slashing import take_stake
from domain.services.unit_of_work import UnitOfWork


def reserve_claim(job: Job, node: Node, ctx: CommandContext) -> None:
    """The job was just claimed by ``node``: reserve its slash and claim bond, and record
    when the node could first claim it (rules v3, for the audit)."""
    earliest_ns = 0
    if ctx.policy.rules_version >= RULES_V3:
        earliest_ns = compute_earliest_claim_ns(job, node, now_ns=ctx.now_ns, policy=ctx.policy)
    node.reserve_claim(
        job_id=job.id,
        max_price=job.max_price,
        due_ns=job.result_due_ns,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
        earliest_ns=earliest_ns,
    )


async def commit_claim(uow: UnitOfWork, job: Job, ctx: CommandContext) -> None:
    """The claiming node committed ``job``'s result: it must still be active, not jailed and
    covered (``scheduling.check_commit``); its device is free again."""
    node = await uow.require(Node, job.node_id)
    check_commit(job, node)
    node.commit_claim(job_id=job.id, now_ns=ctx.now_ns)


async def release_claim_if_left(
    uow: UnitOfWork,
    job: Job,
    holder: str,
    *,
    reason: str,
    ctx: CommandContext,
    outcome: str = "",
) -> None:
    """End ``holder``'s reservation for ``job`` once the job is no longer in its hands
    (decided, released, reassigned, expired). Claims made before claims were reserved
    have none: nothing to release. ``outcome`` counts for the node's reputation under rules
    v3 (``domain.reputation``)."""
    if not holder or (job.state in (CLAIMED, RESULT_COMMITTED) and job.node_id == holder):
        return
    node = await uow.require(Node, holder)
    node.release_claim(
        job_id=job.id, reason=reason, now_ns=ctx.now_ns, outcome=_counted(outcome, ctx)
    )


async def forfeit_claim_bond(
    uow: UnitOfWork, job: Job, holder: str, *, release_fee: bool, ctx: CommandContext
) -> int:
    """Pay the job's consumer out of ``holder``'s stake: the whole claim bond for a missed
    result window, or (``release_fee``) the share of it for the time the job was held.

    Under rules v5 a private job's node owes nothing for the time before its inputs key was
    released to it (``domain.key_releases``): the release fee runs from the key's release,
    and nothing is due when no key came. So a consumer who holds its key back, or releases
    one that does not open, cannot make the node pay for the wait. Returns what was taken."""
    node = await uow.require(Node, holder)
    claim = node.claims.get(job.id)
    if claim is None:
        return 0
    if ctx.policy.rules_version >= RULES_V5 and is_private_params(job.workload.params):
        keyed_at_ns = get_inputs_key_released_at(job, holder)
        if keyed_at_ns is None:
            return 0
        claim = msgspec.structs.replace(claim, claimed_at_ns=max(claim.claimed_at_ns, keyed_at_ns))
    due = compute_release_fee(claim, ctx.now_ns) if release_fee else claim.claim_bond
    to_account = user_account(job.consumer)
    amount, from_unbonding = node.forfeit_claim_bond(
        job_id=job.id,
        amount=due,
        to_account=to_account,
        reason="released late" if release_fee else "result window missed",
        now_ns=ctx.now_ns,
    )
    if amount == 0:
        return 0
    await take_stake(
        uow,
        node.id,
        amount=amount,
        from_unbonding=from_unbonding,
        legs=((to_account, amount, f"claim bond of {job.id} forfeited"),),
        transfer_prefix=f"{ctx.command_id}:claim_bond",
        ctx=ctx,
    )
    return amount


async def release_claim_if_decided(uow: UnitOfWork, job: Job, ctx: CommandContext) -> None:
    """The job's verdict round was just decided: its node's claim ends (a rejection slashes
    the node after this, out of the stake the claim reserved); the outcome counts for its
    reputation under rules v3."""
    node = await uow.require(Node, job.node_id)
    outcome = RESULT_VERIFIED if job.state == VERIFIED else REJECTED
    node.release_claim(
        job_id=job.id, reason="result decided", now_ns=ctx.now_ns, outcome=_counted(outcome, ctx)
    )


def _counted(outcome: str, ctx: CommandContext) -> str:
    """``outcome`` where reputation counts it (records under rules v3), else nothing."""
    return outcome if ctx.policy.rules_version >= RULES_V3 else ""
