"""Delegated API keys (issue 18, item 1): a consumer creates and revokes its own; anyone
reads a key's record by id (hash, cap, spent, expiry, revocation; never a secret)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import ApiKeyView, CommandAccepted
from api.commands import run_command
from api.controllers.common import COMMAND_ERRORS, READ_ERRORS, SignedEnvelope, to_accepted
from api.errors import ApiError
from api.state import Deps
from domain.api_keys import API_KEY_ID_PATTERN, ApiKey, compute_api_key_stream_id
from domain.errors import RejectionCode
from domain.services.queries import get_aggregate

PATH = "/v1/apikeys"
CREATE_ROUTE = COMMAND_ROUTES["apikey.create"]
REVOKE_ROUTE = COMMAND_ROUTES["apikey.revoke"]

KeyIdPath = Annotated[
    str, Parameter(min_length=64, max_length=64, pattern=API_KEY_ID_PATTERN, description="hex")
]


class ApiKeyController(Controller):
    """``/v1/apikeys``: consumers' spending delegations (rules v5)."""

    path = PATH
    tags = ("apikeys",)

    @post(
        CREATE_ROUTE.compute_handler_path(PATH),
        operation_id="createApiKey",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def create(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Delegate spending under the signer's account to a key (``apikey.create``)."""
        return to_accepted(await run_command(deps, request, data, CREATE_ROUTE))

    @post(
        REVOKE_ROUTE.compute_handler_path(PATH),
        operation_id="revokeApiKey",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def revoke(
        self, deps: Deps, request: Request[Any, Any, Any], key_id: KeyIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """End one of the signer's delegations (``apikey.revoke``)."""
        return to_accepted(await run_command(deps, request, data, REVOKE_ROUTE))

    @get("/{key_id:str}", operation_id="getApiKey", responses=READ_ERRORS)
    async def get_key(self, deps: Deps, key_id: KeyIdPath) -> ApiKeyView:
        """One key's record: hash, cap, spent, expiry, revocation."""
        key = await get_aggregate(deps.store, ApiKey, compute_api_key_stream_id(key_id))
        if key is None:
            raise ApiError(RejectionCode.APIKEY_NOT_FOUND, f"no api key {key_id}", status=404)
        return msgspec.convert(key.view(), ApiKeyView)
