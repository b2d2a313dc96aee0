"""Canaries: operators seal a canary before planting it and reveal it after its decision."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted
from api.commands import run_command
from api.controllers.common import COMMAND_ERRORS, SignedEnvelope, to_accepted
from api.state import Deps

PATH = "/v1/canaries"
SEAL_ROUTE = COMMAND_ROUTES["canary.seal"]
REVEAL_ROUTE = COMMAND_ROUTES["canary.reveal"]


class CanaryController(Controller):
    """``/v1/canaries``: canary commands (operators only)."""

    path = PATH
    tags = ("canaries",)

    @post(
        SEAL_ROUTE.compute_handler_path(PATH),
        operation_id="sealCanary",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def seal(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Seal a canary's digest before its job is submitted (``canary.seal``)."""
        return to_accepted(await run_command(deps, request, data, SEAL_ROUTE))

    @post(
        REVEAL_ROUTE.compute_handler_path(PATH),
        operation_id="revealCanary",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def reveal(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Reveal a decided canary; its pass voters are slashed (``canary.reveal``)."""
        return to_accepted(await run_command(deps, request, data, REVEAL_ROUTE))
