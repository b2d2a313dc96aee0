"""Liveness epochs (``domain.liveness``): probers' reports, closings, an epoch's state."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted
from api.commands import run_command
from api.controllers.common import COMMAND_ERRORS, READ_ERRORS, SignedEnvelope, to_accepted
from api.errors import ApiError
from api.state import Deps
from domain.errors import RejectionCode
from domain.liveness import LivenessEpoch
from domain.services.queries import get_aggregate

PATH = "/v1/liveness"
REPORT_ROUTE = COMMAND_ROUTES["liveness.report"]
CLOSE_ROUTE = COMMAND_ROUTES["liveness.close"]
EpochPath = Annotated[int, Parameter(ge=0, le=2**53 - 1, description="liveness epoch")]


class LivenessController(Controller):
    """``/v1/liveness``."""

    path = PATH
    tags = ("liveness",)

    @post(
        REPORT_ROUTE.compute_handler_path(PATH),
        operation_id="reportLiveness",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def report(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """A prober's up/down bits and RTTs for its nodes in one epoch (``liveness.report``)."""
        return to_accepted(await run_command(deps, request, data, REPORT_ROUTE))

    @post(
        CLOSE_ROUTE.compute_handler_path(PATH),
        operation_id="closeLiveness",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def close(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Decide an epoch whose reports are in (``liveness.close``)."""
        return to_accepted(await run_command(deps, request, data, CLOSE_ROUTE))

    @get("/{epoch:int}", operation_id="getLivenessEpoch", responses=READ_ERRORS)
    async def get_epoch(self, deps: Deps, epoch: EpochPath) -> dict[str, object]:
        """An epoch's snapshot of probers, who reported, the nodes named, whether closed."""
        found = await get_aggregate(deps.store, LivenessEpoch, LivenessEpoch.stream_id(epoch))
        if found is None:
            raise ApiError(
                RejectionCode.LIVENESS_NOT_FOUND, f"no report for epoch {epoch} yet", status=404
            )
        return found.view()
