"""Encryption keys (issue 17, item 2): an actor registers its X25519 key; anyone reads it to
wrap a job's data key to that actor."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted, EncryptionKeyView
from api.commands import run_command
from api.controllers.common import (
    COMMAND_ERRORS,
    READ_ERRORS,
    ActorPath,
    SignedEnvelope,
    to_accepted,
)
from api.errors import ApiError
from api.state import Deps
from domain.encryption_keys import EncryptionKey, compute_encryption_key_id
from domain.errors import RejectionCode
from domain.services.queries import get_aggregate

PATH = "/v1/keys"
REGISTER_ROUTE = COMMAND_ROUTES["key.register"]


class KeyController(Controller):
    """``/v1/keys``: registered encryption keys (rules v5)."""

    path = PATH
    tags = ("keys",)

    @post(
        REGISTER_ROUTE.compute_handler_path(PATH),
        operation_id="registerEncryptionKey",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def register(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Register or rotate the signer's encryption key (``key.register``)."""
        return to_accepted(await run_command(deps, request, data, REGISTER_ROUTE))

    @get("/{actor_id:str}", operation_id="getEncryptionKey", responses=READ_ERRORS)
    async def get_key(self, deps: Deps, actor_id: ActorPath) -> EncryptionKeyView:
        """One actor's registered encryption key."""
        key = await get_aggregate(deps.store, EncryptionKey, compute_encryption_key_id(actor_id))
        if key is None:
            raise ApiError(
                RejectionCode.ENCRYPTION_KEY_NOT_FOUND,
                f"{actor_id} has registered no encryption key",
                status=404,
            )
        return msgspec.convert(key.view(), EncryptionKeyView)
