"""Errors of the OpenAI-compatible routes in OpenAI's shape (issue 18, item 1).

OpenAI clients read ``{"error": {"message", "type", "param", "code"}}`` and choose an
exception class by status (the official ``openai`` package: 400 BadRequestError, 401
AuthenticationError, 404 NotFoundError, 429 RateLimitError, 5xx InternalServerError), so these
routes answer in that shape, not problem+json; the rest of the API keeps RFC 9457
(``api.errors``). The ledger's rejection codes map here in one table (``STATUS_BY_REJECTION``);
the code itself travels as ``code`` where OpenAI has no word of its own.

A spent delegation is 429 ``insufficient_quota``, as OpenAI answers an exhausted quota, with
``x-should-retry: false``: the official clients retry a 429 unless told not to, and a cap does
not lift by waiting.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec

from domain.errors import FlopError, OperatingError, RejectionCode
from proofs.envelope import EnvelopeError

INVALID_REQUEST = "invalid_request_error"
INSUFFICIENT_QUOTA = "insufficient_quota"
SERVER_ERROR = "server_error"
SHOULD_RETRY_HEADER = "x-should-retry"
RETRY_AFTER_S = 1
REQUEST_ID_HEADER = "x-request-id"

_log = structlog.get_logger("flopledger.api.openai")


class ErrorBody(msgspec.Struct, frozen=True):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(msgspec.Struct, frozen=True):
    """OpenAI's error object: the body of every error of these routes, and the ``data`` of a
    stream's error event."""

    error: ErrorBody


class OpenAIError(Exception):
    """An error answered in OpenAI's shape with ``status`` (and ``headers``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def to_envelope(self) -> ErrorEnvelope:
        return ErrorEnvelope(
            error=ErrorBody(message=self.message, type=self.type, param=self.param, code=self.code)
        )


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None
) -> OpenAIError:
    """400: the body is not a request these routes serve."""
    return OpenAIError(400, message, param=param, code=code or "invalid_value")


def invalid_api_key(message: str) -> OpenAIError:
    """401: no key, an unknown one, or one revoked or expired."""
    return OpenAIError(401, message, code="invalid_api_key")


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model `{model}` does not exist or no active node holds it warm.",
        param="model",
        code="model_not_found",
    )


def insufficient_quota(message: str, *, code: str = INSUFFICIENT_QUOTA) -> OpenAIError:
    """429 that no client should retry: the delegation's cap or the consumer's account."""
    return OpenAIError(
        429, message, type=INSUFFICIENT_QUOTA, code=code, headers={SHOULD_RETRY_HEADER: "false"}
    )


def unavailable(message: str, *, code: str) -> OpenAIError:
    """503 worth a retry: no node free for the model now, the ledger busy or down."""
    return OpenAIError(
        503, message, type=SERVER_ERROR, code=code, headers={"retry-after": str(RETRY_AFTER_S)}
    )


def node_failed(message: str) -> OpenAIError:
    """502: the node failed the completion (nothing charged: the completion was aborted)."""
    return OpenAIError(502, message, type=SERVER_ERROR, code="node_failed")


# The ledger's rejections of completion.open (and the key checks) as OpenAI errors: status,
# type and the code shown. Anything else a rule refuses is a 400 naming the ledger's code.
_KEY_REFUSED = (401, INVALID_REQUEST, "invalid_api_key")
_QUOTA = (429, INSUFFICIENT_QUOTA, INSUFFICIENT_QUOTA)
_RETRY = (503, SERVER_ERROR, None)
STATUS_BY_REJECTION: dict[str, tuple[int, str, str | None]] = {
    RejectionCode.APIKEY_NOT_FOUND: _KEY_REFUSED,
    RejectionCode.APIKEY_REVOKED: _KEY_REFUSED,
    RejectionCode.APIKEY_EXPIRED: _KEY_REFUSED,
    RejectionCode.APIKEY_SPEND_LIMIT_EXCEEDED: _QUOTA,
    RejectionCode.INSUFFICIENT_FUNDS: _QUOTA,
    RejectionCode.MODEL_NOT_FOUND: (404, INVALID_REQUEST, "model_not_found"),
    RejectionCode.COMPLETION_CONTEXT_EXCEEDED: (400, INVALID_REQUEST, "context_length_exceeded"),
    # the routed node stopped being eligible between the read and the open: another try
    # routes again
    RejectionCode.NODE_NOT_ACTIVE: _RETRY,
    RejectionCode.NODE_MODEL_NOT_WARM: _RETRY,
    RejectionCode.NODE_JAILED: _RETRY,
    RejectionCode.TOO_MUCH_CONTENTION: _RETRY,
    # this API's signer is not a completion signer of the network: its operator's fault
    RejectionCode.COMPLETION_SIGNER_NOT_ALLOWED: (503, SERVER_ERROR, "completions_unavailable"),
    RejectionCode.ACTOR_NOT_AUTHORIZED: (503, SERVER_ERROR, "completions_unavailable"),
    RejectionCode.OPERATOR_ONLY: (503, SERVER_ERROR, "completions_unavailable"),
}


def from_ledger_error(exc: FlopError | EnvelopeError) -> OpenAIError:
    """A refusal of the ledger (of a command this API signed) as an OpenAI error."""
    code = str(exc.code)
    status, kind, shown = STATUS_BY_REJECTION.get(code, (400, INVALID_REQUEST, code))
    message = str(exc) or code
    if isinstance(exc, OperatingError):
        status, kind, shown = 503, SERVER_ERROR, "ledger_unavailable"
    elif isinstance(exc, EnvelopeError):
        # an envelope this API signed and its own ledger refused: a bug or a clock far off
        _log.error("completion_envelope_refused", code=code, reason=message)
        status, kind, shown, message = 500, SERVER_ERROR, "internal_error", "internal error"
    headers: dict[str, str] = {}
    if status == 429:
        headers[SHOULD_RETRY_HEADER] = "false"
    elif status == 503:
        headers["retry-after"] = str(RETRY_AFTER_S)
    return OpenAIError(status, message, type=kind, code=shown or code, headers=headers)


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "invalid_request_error: the body is not a request these routes serve",
    401: "invalid_api_key: no key, or an unknown, revoked or expired one",
    404: "model_not_found",
    413: "the body is too large",
    429: "insufficient_quota: the key's spend limit or the consumer's account (no retry)",
    500: "server_error with a request id",
    502: "node_failed: the node failed the completion; nothing is charged",
    503: "server_error: no node free for the model now, or the ledger unavailable (retry)",
}


def openai_error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI declarations of the OpenAI-shaped errors a route can return."""
    return {
        status: ResponseSpec(
            data_container=ErrorEnvelope,
            media_type="application/json",
            description=ERROR_DESCRIPTIONS.get(status, "error"),
            generate_examples=False,
        )
        for status in sorted(set(statuses))
    }


def make_error_response(error: OpenAIError) -> Response[ErrorEnvelope]:
    return Response(
        error.to_envelope(),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def handle_openai_exception(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[ErrorEnvelope]:
    """The exception handler of the OpenAI routes: every error in OpenAI's shape; a bug is a
    500 with a request id (logged with the traceback) and no internals."""
    if isinstance(exc, OpenAIError):
        return make_error_response(exc)
    if isinstance(exc, FlopError | EnvelopeError):
        return make_error_response(from_ledger_error(exc))
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        message = str(exc.detail)
        kind = "request_too_large" if exc.status_code == 413 else f"http_{exc.status_code}"
        return make_error_response(OpenAIError(exc.status_code, message, code=kind))
    request_id = uuid.uuid4().hex
    _log.exception("openai_internal_error", request_id=request_id, path=request.url.path)
    error = OpenAIError(
        500,
        f"an internal error occurred; quote request id {request_id}",
        type=SERVER_ERROR,
        code="internal_error",
        headers={REQUEST_ID_HEADER: request_id},
    )
    return make_error_response(error)
