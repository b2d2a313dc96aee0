"""Objects: an uploader records that its upload to the object store completed (issue 16)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted
from api.commands import run_command
from api.controllers.common import COMMAND_ERRORS, SignedEnvelope, to_accepted
from api.state import Deps

PATH = "/v1/objects"
STORED_ROUTE = COMMAND_ROUTES["object.record_stored"]


class ObjectController(Controller):
    """``/v1/objects``: object-stored records (nodes and operators, rules v4)."""

    path = PATH
    tags = ("objects",)

    @post(
        STORED_ROUTE.compute_handler_path(PATH),
        operation_id="recordObjectStored",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def record_stored(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Record an object stored by its signer (``object.record_stored``)."""
        return to_accepted(await run_command(deps, request, data, STORED_ROUTE))
