"""Stake: bond, request unbonding, withdraw (for nodes and validators alike)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted
from api.commands import run_command
from api.controllers.common import COMMAND_ERRORS, SignedEnvelope, to_accepted
from api.state import Deps

PATH = "/v1/stake"
BOND_ROUTE = COMMAND_ROUTES["stake.bond"]
UNBOND_ROUTE = COMMAND_ROUTES["stake.unbond"]
WITHDRAW_ROUTE = COMMAND_ROUTES["stake.withdraw"]


class StakeController(Controller):
    """``/v1/stake``: stake commands."""

    path = PATH
    tags = ("stake",)

    @post(
        BOND_ROUTE.compute_handler_path(PATH),
        operation_id="bondStake",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def bond(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Bond stake to a node or validator (``stake.bond``)."""
        return to_accepted(await run_command(deps, request, data, BOND_ROUTE))

    @post(
        UNBOND_ROUTE.compute_handler_path(PATH),
        operation_id="unbondStake",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def unbond(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Start unbonding (``stake.unbond``)."""
        return to_accepted(await run_command(deps, request, data, UNBOND_ROUTE))

    @post(
        WITHDRAW_ROUTE.compute_handler_path(PATH),
        operation_id="withdrawStake",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def withdraw(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Withdraw stake whose unbonding period is over (``stake.withdraw``)."""
        return to_accepted(await run_command(deps, request, data, WITHDRAW_ROUTE))
