"""Validators: registration (BLS key with proof of possession) and reads."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted, ValidatorList, ValidatorView
from api.commands import run_command
from api.controllers.common import (
    COMMAND_ERRORS,
    DEFAULT_LIMIT,
    LIST_ERRORS,
    READ_ERRORS,
    ActorPath,
    Limit,
    Offset,
    SignedEnvelope,
    make_page,
    to_accepted,
)
from api.errors import ApiError
from api.state import Deps
from domain.errors import RejectionCode
from domain.services.queries import get_aggregate
from domain.validators import Validator

PATH = "/v1/validators"
REGISTER_ROUTE = COMMAND_ROUTES["validator.register"]
REPORT_EQUIVOCATION_ROUTE = COMMAND_ROUTES["validator.report_equivocation"]
DECLARE_MODELS_ROUTE = COMMAND_ROUTES["validator.declare_models"]  # issue 18


class ValidatorController(Controller):
    """``/v1/validators``."""

    path = PATH
    tags = ("validators",)

    @post(
        REGISTER_ROUTE.compute_handler_path(PATH),
        operation_id="registerValidator",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def register(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Register the signing key as a validator (``validator.register``)."""
        return to_accepted(await run_command(deps, request, data, REGISTER_ROUTE))

    @post(
        REPORT_EQUIVOCATION_ROUTE.compute_handler_path(PATH),
        operation_id="reportEquivocation",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def report_equivocation(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Prove a validator signed conflicting verdicts (``validator.report_equivocation``)."""
        return to_accepted(await run_command(deps, request, data, REPORT_EQUIVOCATION_ROUTE))

    @post(
        DECLARE_MODELS_ROUTE.compute_handler_path(PATH),
        operation_id="declareCheckModels",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def declare_models(
        self,
        deps: Deps,
        request: Request[Any, Any, Any],
        validator_id: ActorPath,
        data: SignedEnvelope,
    ) -> CommandAccepted:
        """The registered models the validator checks: a sampled completion is drawn only
        to its model's declarers (``validator.declare_models``, issue 18)."""
        return to_accepted(await run_command(deps, request, data, DECLARE_MODELS_ROUTE))

    @get("/", operation_id="listValidators", responses=LIST_ERRORS)
    async def list_validators(
        self, deps: Deps, offset: Offset = 0, limit: Limit = DEFAULT_LIMIT
    ) -> ValidatorList:
        """Validators in order of registration."""
        views, total = await deps.read_model.list(
            Validator.STREAM_TYPE, {}, offset=offset, limit=limit
        )
        items = [msgspec.convert(v, ValidatorView) for v in views]
        return ValidatorList(items=items, page=make_page(offset, limit, len(items), total))

    @get("/{validator_id:str}", operation_id="getValidator", responses=READ_ERRORS)
    async def get_validator(self, deps: Deps, validator_id: ActorPath) -> ValidatorView:
        """One validator."""
        validator = await get_aggregate(deps.store, Validator, validator_id)
        if validator is None:
            raise ApiError(
                RejectionCode.VALIDATOR_NOT_FOUND, f"no validator {validator_id}", status=404
            )
        return msgspec.convert(validator.view(), ValidatorView)
