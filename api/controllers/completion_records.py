"""LLM completions' ledger records (issue 18): a completion signer opens and aborts them, the
serving node commits them, anyone reads one.

Under ``/v1/completion-records``, not ``/v1/completions``: that POST is OpenAI's (the
endpoint that streams a completion; ``api.controllers.openai``), which runs these commands."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted, CompletionAccepted, CompletionRecordView
from api.commands import run_command
from api.controllers.common import COMMAND_ERRORS, READ_ERRORS, SignedEnvelope, to_accepted
from api.errors import ApiError
from api.state import Deps
from domain.completions import COMPLETION_ID_PATTERN, Completion, compute_completion_stream_id
from domain.errors import RejectionCode
from domain.services.queries import get_aggregate

PATH = "/v1/completion-records"
OPEN_ROUTE = COMMAND_ROUTES["completion.open"]
COMMIT_ROUTE = COMMAND_ROUTES["completion.commit"]
ABORT_ROUTE = COMMAND_ROUTES["completion.abort"]
COMMIT_VERDICT_ROUTE = COMMAND_ROUTES["completion.commit_verdict"]
RECORD_VERDICT_ROUTE = COMMAND_ROUTES["completion.record_verdict"]
EXPIRE_ROUTE = COMMAND_ROUTES["completion.expire"]

CompletionIdPath = Annotated[
    str, Parameter(pattern=COMPLETION_ID_PATTERN, description="completion id (cmpl-...)")
]


class CompletionRecordController(Controller):
    """``/v1/completion-records``: completion commands and their records (rules v5)."""

    path = PATH
    tags = ("completions",)

    @post(
        OPEN_ROUTE.compute_handler_path(PATH),
        operation_id="openCompletion",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def open_completion(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CompletionAccepted:
        """Open a completion under a consumer's key (``completion.open``, a completion
        signer's); its escrow is held at once."""
        result = await run_command(deps, request, data, OPEN_ROUTE)
        accepted = to_accepted(result)
        completion_id = result.subject.removeprefix(f"{Completion.STREAM_TYPE}:")
        return CompletionAccepted(**msgspec.structs.asdict(accepted), completion_id=completion_id)

    @post(
        COMMIT_ROUTE.compute_handler_path(PATH),
        operation_id="commitCompletion",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def commit(
        self,
        deps: Deps,
        request: Request[Any, Any, Any],
        completion_id: CompletionIdPath,
        data: SignedEnvelope,
    ) -> CommandAccepted:
        """The serving node's usage and commitment (``completion.commit``), settled at once."""
        return to_accepted(await run_command(deps, request, data, COMMIT_ROUTE))

    @post(
        ABORT_ROUTE.compute_handler_path(PATH),
        operation_id="abortCompletion",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def abort(
        self,
        deps: Deps,
        request: Request[Any, Any, Any],
        completion_id: CompletionIdPath,
        data: SignedEnvelope,
    ) -> CommandAccepted:
        """Void an uncommitted completion (``completion.abort``)."""
        return to_accepted(await run_command(deps, request, data, ABORT_ROUTE))

    @post(
        COMMIT_VERDICT_ROUTE.compute_handler_path(PATH),
        operation_id="commitCompletionVerdict",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def commit_verdict(
        self,
        deps: Deps,
        request: Request[Any, Any, Any],
        completion_id: CompletionIdPath,
        data: SignedEnvelope,
    ) -> CommandAccepted:
        """A drawn validator's salted verdict hash on a sampled completion."""
        return to_accepted(await run_command(deps, request, data, COMMIT_VERDICT_ROUTE))

    @post(
        RECORD_VERDICT_ROUTE.compute_handler_path(PATH),
        operation_id="recordCompletionVerdict",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def record_verdict(
        self,
        deps: Deps,
        request: Request[Any, Any, Any],
        completion_id: CompletionIdPath,
        data: SignedEnvelope,
    ) -> CommandAccepted:
        """Reveal a committed, BLS-signed verdict; a quorum decides the check."""
        return to_accepted(await run_command(deps, request, data, RECORD_VERDICT_ROUTE))

    @post(
        EXPIRE_ROUTE.compute_handler_path(PATH),
        operation_id="expireCompletion",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def expire(
        self,
        deps: Deps,
        request: Request[Any, Any, Any],
        completion_id: CompletionIdPath,
        data: SignedEnvelope,
    ) -> CommandAccepted:
        """Crank an overdue completion: abort it past its window, or move its round on."""
        return to_accepted(await run_command(deps, request, data, EXPIRE_ROUTE))

    @get("/{completion_id:str}", operation_id="getCompletionRecord", responses=READ_ERRORS)
    async def get_record(self, deps: Deps, completion_id: CompletionIdPath) -> CompletionRecordView:
        """One completion's record: opening, usage, charge, settlement and check."""
        completion = await get_aggregate(
            deps.store, Completion, compute_completion_stream_id(completion_id)
        )
        if completion is None:
            raise ApiError(
                RejectionCode.COMPLETION_NOT_FOUND, f"no completion {completion_id}", status=404
            )
        return msgspec.convert(completion.view(), CompletionRecordView)
