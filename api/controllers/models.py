"""Registered language models (issue 18, item 2): an operator registers one
(``POST /v1/models``, ``model.register``); anyone lists them and reads one under
``/v1/registered-models``.

The reads are not under ``/v1/models``: that path, and ``/v1/models/{model}`` below it, are
OpenAI's (the models that some active node holds warm), and a registered model's id may be any
word, ``registered`` included.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted, RegisteredModelList, RegisteredModelView
from api.commands import run_command
from api.controllers.common import (
    COMMAND_ERRORS,
    DEFAULT_LIMIT,
    LIST_ERRORS,
    READ_ERRORS,
    Filter,
    Limit,
    Offset,
    SignedEnvelope,
    make_page,
    to_accepted,
)
from api.errors import ApiError
from api.state import Deps
from domain.errors import RejectionCode
from domain.models import (
    MODEL_ID_CHARS_MAX,
    MODEL_ID_PATTERN,
    RegisteredModel,
    compute_model_stream_id,
)
from domain.services.queries import get_aggregate

PATH = "/v1"
REGISTER_ROUTE = COMMAND_ROUTES["model.register"]

ModelIdPath = Annotated[
    str,
    Parameter(
        description="registered model id",
        pattern=MODEL_ID_PATTERN,
        min_length=1,
        max_length=MODEL_ID_CHARS_MAX,
    ),
]


class ModelController(Controller):
    """Registered models: the operators' command and the reads (rules v5)."""

    path = PATH
    tags = ("models",)

    @post(
        REGISTER_ROUTE.compute_handler_path(PATH),
        operation_id="registerModel",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def register(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Register a model by its files' digest, shape and prices (``model.register``,
        signed by an operator)."""
        return to_accepted(await run_command(deps, request, data, REGISTER_ROUTE))

    @get("/registered-models", operation_id="listRegisteredModels", responses=LIST_ERRORS)
    async def list_models(
        self,
        deps: Deps,
        architecture: Filter = None,
        dtype: Filter = None,
        offset: Offset = 0,
        limit: Limit = DEFAULT_LIMIT,
    ) -> RegisteredModelList:
        """Registered models in order of registration, filtered by architecture and dtype."""
        views, total = await deps.read_model.list(
            RegisteredModel.STREAM_TYPE,
            {"architecture": architecture, "dtype": dtype},
            offset=offset,
            limit=limit,
        )
        items = [msgspec.convert(v, RegisteredModelView) for v in views]
        return RegisteredModelList(items=items, page=make_page(offset, limit, len(items), total))

    @get(
        "/registered-models/{model_id:str}",
        operation_id="getRegisteredModel",
        responses=READ_ERRORS,
    )
    async def get_model(self, deps: Deps, model_id: ModelIdPath) -> RegisteredModelView:
        """One registered model."""
        model = await get_aggregate(deps.store, RegisteredModel, compute_model_stream_id(model_id))
        if model is None:
            raise ApiError(RejectionCode.MODEL_NOT_FOUND, f"no model {model_id}", status=404)
        return msgspec.convert(model.view(), RegisteredModelView)
