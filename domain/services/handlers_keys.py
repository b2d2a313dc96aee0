"""``key.register`` and ``job.release_key`` (issue 17, item 2; rules v5), and the lapse of a
private job's claim whose inputs key never came (``job.expire``)."""

from __future__ import annotations

from domain import commands as c
from domain.encryption_keys import EncryptionKey, compute_encryption_key_id
from domain.job import Job
from domain.key_releases import KeyRelease, is_claim_lapsed
from domain.node import Node
from domain.policy import RULES_V5
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork


async def handle_register_encryption_key(
    uow: UnitOfWork, cmd: c.RegisterEncryptionKey, ctx: CommandContext
) -> str:
    """Register (or rotate) the signer's encryption key: the envelope's Ed25519 signature is
    the binding of the key to the actor, so the key is always the signer's own."""
    ctx.require_rules_v5("key.register")
    key = await uow.get(EncryptionKey, compute_encryption_key_id(ctx.actor))
    if key is None:
        key = EncryptionKey.register(actor=ctx.actor, public_key=cmd.public_key, now_ns=ctx.now_ns)
        uow.add(key)
    else:
        key.rotate(public_key=cmd.public_key, now_ns=ctx.now_ns)
    return key.id


async def handle_release_job_key(uow: UnitOfWork, cmd: c.ReleaseJobKey, ctx: CommandContext) -> str:
    """Record a wrapped data key, under the rules of ``domain.key_releases``."""
    ctx.require_rules_v5("job.release_key")
    job = await uow.require(Job, cmd.job_id)
    key = await uow.get(EncryptionKey, compute_encryption_key_id(cmd.recipient))
    job.release_key(
        KeyRelease(
            sender=ctx.actor,
            recipient=cmd.recipient,
            purpose=cmd.purpose,
            attempt=cmd.attempt,
            recipient_key=cmd.recipient_key,
            wrapped=cmd.wrapped,
            at_ns=ctx.now_ns,
        ),
        registered_key=key.public_key if key is not None else None,
        claimed_at_ns=await get_claimed_at_ns(uow, job),
        policy=ctx.policy,
    )
    return job.id


async def lapse_claim_if_due(uow: UnitOfWork, job: Job, ctx: CommandContext) -> bool:
    """Under rules v5, send a claimed private job whose inputs key did not reach its node
    in time back to the market (or expire it past its deadline): no bond is forfeited, the
    node is not blamed and the attempt is given back. Returns whether the claim lapsed."""
    if ctx.policy.rules_version < RULES_V5:
        return False
    claimed_at_ns = await get_claimed_at_ns(uow, job)
    if not is_claim_lapsed(job, claimed_at_ns=claimed_at_ns, policy=ctx.policy, now_ns=ctx.now_ns):
        return False
    job.lapse_claim(now_ns=ctx.now_ns)
    if ctx.now_ns > job.deadline_ns:
        job.expire(now_ns=ctx.now_ns)
    return True


async def get_claimed_at_ns(uow: UnitOfWork, job: Job) -> int:
    """When the current claim was made, from the node's claim reservation (every claim
    under rules v2 or later has one); the job's offer time when there is none."""
    if not job.node_id:
        return job.offered_at_ns
    node = await uow.get(Node, job.node_id)
    claim = node.claims.get(job.id) if node is not None else None
    return claim.claimed_at_ns if claim is not None else job.offered_at_ns
