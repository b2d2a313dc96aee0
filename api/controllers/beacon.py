"""The randomness beacon (``domain.beacon``): validators' contributions, closings, its state."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted
from api.commands import run_command
from api.controllers.common import COMMAND_ERRORS, READ_ERRORS, SignedEnvelope, to_accepted
from api.errors import ApiError
from api.state import Deps
from domain.beacon import BEACON_STREAM_ID, Beacon
from domain.errors import RejectionCode
from domain.services.queries import get_aggregate

PATH = "/v1/beacon"
CONTRIBUTE_ROUTE = COMMAND_ROUTES["beacon.contribute"]
CLOSE_ROUTE = COMMAND_ROUTES["beacon.close"]


class BeaconController(Controller):
    """``/v1/beacon``."""

    path = PATH
    tags = ("beacon",)

    @post(
        CONTRIBUTE_ROUTE.compute_handler_path(PATH),
        operation_id="contributeBeacon",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def contribute(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """A snapshot validator's BLS signature for the open epoch (``beacon.contribute``)."""
        return to_accepted(await run_command(deps, request, data, CONTRIBUTE_ROUTE))

    @post(
        CLOSE_ROUTE.compute_handler_path(PATH),
        operation_id="closeBeacon",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def close(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Close an epoch past its deadline, drawing its subjects' validators
        (``beacon.close``)."""
        return to_accepted(await run_command(deps, request, data, CLOSE_ROUTE))

    @get("/", operation_id="getBeacon", responses=READ_ERRORS)
    async def get_beacon(self, deps: Deps) -> dict[str, object]:
        """The last closed epoch and value, the open epoch, the subjects waiting."""
        beacon = await get_aggregate(deps.store, Beacon, BEACON_STREAM_ID)
        if beacon is None:
            raise ApiError(RejectionCode.BEACON_NOT_FOUND, "no epoch was opened yet", status=404)
        return beacon.view()
