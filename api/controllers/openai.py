"""OpenAI-compatible routes (issue 18): ``GET /v1/models`` (``list_warm_models``),
``GET /v1/models/{model}``,
``POST /v1/chat/completions`` and ``POST /v1/completions``.

Thin: the bearer key names a delegation (``domain.api_keys``: its id is the hex SHA-256 of
the key's SHA-256), the body is checked (``api.openai_wire``), and the completion is routed,
opened under that delegation, relayed and settled by ``api.openai_relay``. Errors on these
routes are OpenAI's shape (``api.openai_errors``), not problem+json. The model list is
public, as everything it is made of is on the ledger: the registered models that some active
node holds warm.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import Parameter
from litestar.response import Stream
from litestar.types import ExceptionHandlersMap

from api.completion_ledger import CompletionLedger
from api.llm_router import get_warm_models, read_active_node_views
from api.openai_errors import (
    handle_openai_exception,
    invalid_api_key,
    model_not_found,
    openai_error_responses,
    unavailable,
)
from api.openai_relay import (
    RunningCompletion,
    collect_chat,
    collect_text,
    start_completion,
    stream_chat,
    stream_text,
)
from api.openai_wire import (
    ModelCard,
    ModelList,
    OpenAIRequest,
    decode_chat_request,
    decode_text_request,
    to_llm_request,
)
from api.state import ApiDeps, Deps
from domain.api_keys import (
    ApiKey,
    compute_api_key_hash,
    compute_api_key_id,
    compute_api_key_stream_id,
    is_expired,
)
from domain.models import MODEL_ID_CHARS_MAX, RegisteredModel, compute_model_stream_id
from domain.services.queries import get_aggregate
from proofs.llm_request import SEED_MAX

REGION_HEADER = "x-flop-region"
API_KEY_CHARS_MAX = 256
FINGERPRINT_HEX_CHARS = 16
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

COMPLETION_ERRORS = openai_error_responses(400, 401, 404, 413, 429, 500, 502, 503)
MODEL_ERRORS = openai_error_responses(404, 500, 503)
ModelPath = Annotated[str, Parameter(description="model id (an unknown or overlong one: 404)")]


class OpenAIController(Controller):
    """The OpenAI-compatible surface (rules v5: completions on the ledger)."""

    path = "/v1"
    tags = ("openai",)
    # Litestar reads this per controller (a class attribute, not shared state): these routes
    # answer in OpenAI's shape, the rest of the API in problem+json.
    exception_handlers: ExceptionHandlersMap | None = {Exception: handle_openai_exception}  # noqa: RUF012

    @get("/models/{model:str}", operation_id="getWarmModel", responses=MODEL_ERRORS)
    async def get_model(self, deps: Deps, model: ModelPath) -> ModelCard:
        """One model, if registered and held warm by an active node (else 404)."""
        warm = get_warm_models(await read_active_node_views(deps.read_model))
        card = await _get_card(deps, model) if model in warm else None
        if card is None:
            raise model_not_found(model)
        return card

    @post(
        "/chat/completions",
        operation_id="createChatCompletion",
        status_code=200,
        responses=COMPLETION_ERRORS,
    )
    async def create_chat_completion(
        self, deps: Deps, request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """OpenAI's chat completion: one object, or with ``stream`` server-sent chunks
        ending ``data: [DONE]``."""
        key_id = await authenticate(deps, request)
        body = decode_chat_request(await request.body())
        run = await _start(deps, request, key_id, body)
        if body.is_stream:
            return _sse(run, stream_chat(run))
        return Response(await collect_chat(run), headers=_run_headers(run))

    @post(
        "/completions",
        operation_id="createCompletion",
        status_code=200,
        responses=COMPLETION_ERRORS,
    )
    async def create_completion(self, deps: Deps, request: Request[Any, Any, Any]) -> Response[Any]:
        """OpenAI's (legacy) text completion of one prompt, whole or streamed."""
        key_id = await authenticate(deps, request)
        body = decode_text_request(await request.body())
        run = await _start(deps, request, key_id, body)
        if body.is_stream:
            return _sse(run, stream_text(run))
        return Response(await collect_text(run), headers=_run_headers(run))


@get(
    "/v1/models",
    operation_id="listWarmModels",
    tags=["openai"],
    responses=openai_error_responses(500, 503),
    exception_handlers={Exception: handle_openai_exception},
)
async def list_warm_models(deps: Deps) -> ModelList:
    """The registered models that at least one active node holds warm.

    A handler of its own, not the controller's: ``POST /v1/models`` is the ModelController's,
    and Litestar refuses two controllers on one path (each brings an OPTIONS handler)."""
    warm = get_warm_models(await read_active_node_views(deps.read_model))
    cards = [await _get_card(deps, model_id) for model_id in sorted(warm)]
    return ModelList(data=[card for card in cards if card is not None])


async def authenticate(deps: ApiDeps, request: Request[Any, Any, Any]) -> str:
    """The id of the live delegation the bearer key names; 401 ``invalid_api_key`` when
    there is no key, or it is unknown, revoked or expired."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise invalid_api_key(
            "You didn't provide an API key: send it as 'Authorization: Bearer <key>' "
            "(flopledger apikey create)."
        )
    if len(key) > API_KEY_CHARS_MAX:
        raise invalid_api_key("Incorrect API key provided.")
    key_id = compute_api_key_id(compute_api_key_hash(key))
    record = await get_aggregate(deps.store, ApiKey, compute_api_key_stream_id(key_id))
    if record is None:
        raise invalid_api_key("Incorrect API key provided.")
    if record.revoked_at_ns is not None:
        raise invalid_api_key(f"The API key {key_id[:12]}... was revoked by its consumer.")
    if is_expired(record.expires_ns, deps.clock_ns()):
        raise invalid_api_key(f"The API key {key_id[:12]}... has expired.")
    return key_id


async def _start(
    deps: ApiDeps, request: Request[Any, Any, Any], key_id: str, body: OpenAIRequest
) -> RunningCompletion:
    signer = deps.llm.signer
    if signer is None:
        raise unavailable(
            "This API serves no completions: it holds no completion signer key "
            "(FLOP_COMPLETION_KEY_FILE).",
            code="completions_unavailable",
        )
    model = await _get_registered(deps, body.model)
    if model is None:
        raise model_not_found(body.model)
    llm_request = to_llm_request(
        body,
        context_tokens=model.context_tokens,
        draw_seed=lambda: secrets.randbelow(SEED_MAX + 1),
    )
    return await start_completion(
        deps,
        CompletionLedger(deps, signer),
        key_id=key_id,
        request=llm_request,
        region=body.region or request.headers.get(REGION_HEADER) or None,
        include_usage=body.include_usage,
        fingerprint="fp_" + model.content_digest.hex()[:FINGERPRINT_HEX_CHARS],
    )


def _sse(run: RunningCompletion, events: Any) -> Stream:
    # The stream's own ``finally`` closes the run; the background task closes it too when
    # the client left while the stream waited on it (Litestar then drops the iterator).
    return Stream(
        events,
        media_type="text/event-stream",
        headers={**SSE_HEADERS, **_run_headers(run)},
        background=BackgroundTask(run.close),
    )


def _run_headers(run: RunningCompletion) -> dict[str, str]:
    return {"x-flop-completion-id": run.completion_id, "x-flop-node-id": run.node_id}


async def _get_registered(deps: ApiDeps, model_id: str) -> RegisteredModel | None:
    if not 1 <= len(model_id) <= MODEL_ID_CHARS_MAX:
        return None
    return await get_aggregate(deps.store, RegisteredModel, compute_model_stream_id(model_id))


async def _get_card(deps: ApiDeps, model_id: str) -> ModelCard | None:
    model = await _get_registered(deps, model_id)
    if model is None:
        return None
    return ModelCard(
        id=model.model_id, created=int(model.created_on.timestamp()), owned_by=model.registered_by
    )
