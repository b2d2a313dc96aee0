"""``apikey.create`` and ``apikey.revoke`` (issue 18, item 1; rules v5): a consumer's
delegations, always under the signer's own account (``domain.api_keys``)."""

from __future__ import annotations

from domain import commands as c
from domain.api_keys import ApiKey, compute_api_key_id, compute_api_key_stream_id, is_expired
from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork


async def handle_create_api_key(uow: UnitOfWork, cmd: c.CreateApiKey, ctx: CommandContext) -> str:
    """Record a delegation under the signer: the envelope's signature is what makes the signer
    the consumer, so no one creates a key that spends another's account."""
    ctx.require_rules_v5("apikey.create")
    if compute_api_key_id(cmd.key_hash) != cmd.key_id:
        raise Rejection(
            f"key_id {cmd.key_id} is not the SHA-256 of key_hash",
            code=RejectionCode.APIKEY_ID_MISMATCH,
        )
    if is_expired(cmd.expires_ns, ctx.now_ns):
        raise Rejection(
            f"expires_ns {cmd.expires_ns} has passed", code=RejectionCode.APIKEY_EXPIRED
        )
    if await uow.get(ApiKey, compute_api_key_stream_id(cmd.key_id)) is not None:
        raise InvalidTransition(
            f"api key {cmd.key_id} exists already", code=RejectionCode.APIKEY_ALREADY_CREATED
        )
    key = ApiKey.create(
        key_hash=cmd.key_hash,
        consumer=ctx.actor,
        spend_limit=cmd.spend_limit,
        expires_ns=cmd.expires_ns,
        now_ns=ctx.now_ns,
    )
    uow.add(key)
    return key.id


async def handle_revoke_api_key(uow: UnitOfWork, cmd: c.RevokeApiKey, ctx: CommandContext) -> str:
    """End a delegation: only the consumer who signed it may (an operator may not either)."""
    ctx.require_rules_v5("apikey.revoke")
    key = await uow.require(ApiKey, compute_api_key_stream_id(cmd.key_id))
    if key.consumer != ctx.actor:
        raise Unauthorized(
            f"api key {cmd.key_id} is not {ctx.actor}'s", code=RejectionCode.APIKEY_NOT_OWNED
        )
    key.revoke(now_ns=ctx.now_ns)
    return key.id
