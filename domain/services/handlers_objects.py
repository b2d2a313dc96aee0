"""``object.record_stored`` (issue 16, item 6; rules v4): an uploader records a stored object."""

from __future__ import annotations

from domain import commands as c
from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.job import Job
from domain.node import Node
from domain.objects import StoredObject, compute_object_id, is_artifact_lost_reason
from domain.policy import RULES_V4, RULES_V5
from domain.services.context import CommandContext
from domain.services.fees import charge_log_fee
from domain.services.unit_of_work import UnitOfWork


async def handle_record_object_stored(
    uow: UnitOfWork, cmd: c.RecordObjectStored, ctx: CommandContext
) -> str:
    """Record an upload, checked in this order: rules v4 in force, signed by the uploader it
    names, the uploader a registered node or an operator (the API) before rules v5, not
    recorded before. From rules v5 any signer records its own uploads (issue 17: a consumer
    records its inputs, which ``job.submit`` then requires), and one that is neither a node
    nor an operator pays the log fee for it (``domain.services.fees``): a record changes no
    one else's state, so it must not be free to append."""
    if ctx.policy.rules_version < RULES_V4:
        raise Rejection("object.record_stored needs rules v4", code=RejectionCode.RULES_V4_REQUIRED)
    if cmd.uploader != ctx.actor:
        raise Unauthorized(
            f"an object stored by {cmd.uploader} is recorded by its uploader, not {ctx.actor}",
            code=RejectionCode.OBJECT_UPLOADER_MISMATCH,
        )
    is_known = ctx.actor in ctx.policy.operators or await uow.get(Node, ctx.actor) is not None
    if ctx.policy.rules_version < RULES_V5 and not is_known:
        raise Unauthorized(
            f"{ctx.actor} is neither a registered node nor an operator",
            code=RejectionCode.OBJECT_UPLOADER_UNKNOWN,
        )
    object_id = compute_object_id(cmd.digest, cmd.uploader)
    if await uow.get(StoredObject, object_id) is not None:
        raise InvalidTransition(
            f"{object_id} is already recorded", code=RejectionCode.OBJECT_ALREADY_RECORDED
        )
    if not is_known:  # rules v5: anyone, for the log fee
        await charge_log_fee(uow, ctx)
    stored = StoredObject.record(
        digest=cmd.digest, size_bytes=cmd.size_bytes, uploader=cmd.uploader, now_ns=ctx.now_ns
    )
    uow.add(stored)
    return stored.id


async def is_artifact_loss_excused(
    uow: UnitOfWork, job: Job, signers: tuple[str, ...], ctx: CommandContext
) -> bool:
    """Whether a rejected result is the store's fault, not the node's (rules v4): every
    rejecting signer gave ``artifact_lost``, and the node recorded both its artifact and its
    proof as stored. A single signer who read the artifacts and found them wrong is enough
    to make the rejection the node's."""
    if ctx.policy.rules_version < RULES_V4 or job.result is None or not signers:
        return False
    if not all(is_artifact_lost_reason(job.verdicts[v].reason) for v in signers):
        return False
    for digest in (job.result.artifact_digest, job.result.proof_digest):
        if await uow.get(StoredObject, compute_object_id(digest, job.node_id)) is None:
            return False
    return True
