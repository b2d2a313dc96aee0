"""Every error the API returns, mapped to RFC 9457 problem+json in this one place.

Each error has a stable ``code`` and a stable ``type`` URI (``PROBLEM_TYPE_BASE + code``).
Statuses follow the error's kind: envelope failures are 401/403/422, rule rejections 403, 404,
409 or 422, operating errors 503. Bad input never yields a 5xx; a 500 (a bug) carries only a
request id, which is also logged with the traceback.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from domain.errors import (
    ClaimConflict,
    FlopError,
    InsufficientFunds,
    InvalidTransition,
    NotFound,
    OperatingError,
    Rejection,
    RejectionCode,
    Unauthorized,
)
from proofs.envelope import BadSignature, EnvelopeError, ExpiredEnvelope, WrongActor
from proofs.request_auth import RequestAuthError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://flopledger.dev/problems/"
REQUEST_ID_HEADER = "x-request-id"
FIELD_ERRORS_MAX = 16

_log = structlog.get_logger("flopledger.api")

# Codes whose status differs from their class's default (see _status_of).
STATUS_BY_CODE: dict[str, int] = {
    # the actor is not a key: the command cannot be authenticated
    RejectionCode.ENVELOPE_MALFORMED: 401,
    RejectionCode.SIGNATURE_INVALID: 401,
    RejectionCode.ENVELOPE_EXPIRED: 401,
    "command_replayed": 401,
    RejectionCode.NONCE_ALREADY_USED: 401,
    RejectionCode.NETWORK_MISMATCH: 401,  # issue 16, item 9: signed for another network
    RejectionCode.ACTOR_MISMATCH: 403,
    "kind_mismatch": 422,
    "path_mismatch": 422,
    "validation_failed": 422,
    RejectionCode.UNKNOWN_COMMAND_KIND: 422,
    RejectionCode.COMMAND_BODY_INVALID: 422,
    "idempotency_key_reused": 409,
    RejectionCode.TOO_MUCH_CONTENTION: 503,
    "tree_size_out_of_range": 404,  # that tree does not exist (yet)
    RejectionCode.ARTIFACT_TOO_LARGE: 413,  # issue 17: an upload over the policy's limit
}

TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Command not authenticated",
    403: "Actor not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with current state",
    413: "Request body too large",
    422: "Request cannot be processed",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class FieldError(msgspec.Struct, frozen=True):
    """One invalid field: its JSON path (``$.body.amount``) and what is wrong."""

    path: str
    message: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, plus a stable ``code`` and optional field errors."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    request_id: str | None = None
    errors: list[FieldError] | None = None


class ApiError(Exception):
    """An error raised by the API layer itself (kind or path mismatch, bad proof range...)."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status or STATUS_BY_CODE.get(code, 422)
        self.headers = headers or {}


def problem_type(code: str) -> str:
    """The stable type URI of an error code."""
    return f"{PROBLEM_TYPE_BASE}{code}"


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI declarations of the problem responses a route can return."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=TITLES.get(status, "Error"),
            generate_examples=False,
            examples=[Example(summary=TITLES.get(status, "Error"), value=_example(status))],
        )
        for status in sorted(set(statuses))
    }


def make_problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    detail: str,
    errors: list[FieldError] | None = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    """A problem+json response for ``request``."""
    problem = Problem(
        type=problem_type(code),
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
        code=code,
        request_id=request_id,
        errors=errors,
    )
    return Response(
        problem, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers or {}
    )


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """The app's single exception handler: every error becomes problem+json."""
    if isinstance(exc, ApiError):
        return make_problem_response(
            request, status=exc.status, code=exc.code, detail=exc.detail, headers=exc.headers
        )
    if isinstance(exc, EnvelopeError | FlopError | RequestAuthError):
        code = str(exc.code)
        return make_problem_response(
            request, status=_status_of(exc), code=code, detail=str(exc) or code
        )
    if isinstance(exc, ValidationException):
        errors = _field_errors(exc.extra)
        detail = "; ".join(f"{e.path}: {e.message}" for e in errors) or str(exc.detail)
        return make_problem_response(
            request, status=422, code="validation_failed", detail=detail, errors=errors
        )
    if isinstance(exc, HTTPException):
        return _from_http_exception(request, exc)
    request_id = uuid.uuid4().hex
    _log.exception("api_internal_error", request_id=request_id, path=request.url.path)
    return make_problem_response(
        request,
        status=500,
        code="internal_error",
        detail=f"an internal error occurred; quote request id {request_id}",
        request_id=request_id,
        headers={REQUEST_ID_HEADER: request_id},
    )


def _status_of(exc: EnvelopeError | FlopError | RequestAuthError) -> int:
    code = str(exc.code)
    if code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    if isinstance(exc, RequestAuthError):
        return 401
    if isinstance(exc, BadSignature | ExpiredEnvelope):
        return 401
    if isinstance(exc, WrongActor | Unauthorized):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidTransition | ClaimConflict):
        return 409
    if isinstance(exc, InsufficientFunds | Rejection | EnvelopeError):
        return 422
    if isinstance(exc, OperatingError):
        return 503
    return 500


def _from_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    if isinstance(exc, NotFoundException):
        code = "route_not_found"
    elif isinstance(exc, NotAuthorizedException):
        code = "not_authorized"
    elif status == 413:
        code = "request_too_large"
    elif status == 405:
        code = "method_not_allowed"
    else:
        code = f"http_{status}"
    headers = dict(exc.headers or {})
    if status >= 500:
        # Litestar raises 5xx HTTPExceptions only for its own faults: hide the details.
        return handle_exception(request, RuntimeError(str(exc.detail)))
    return make_problem_response(
        request, status=status, code=code, detail=str(exc.detail), headers=headers
    )


def _field_errors(extra: Any) -> list[FieldError]:
    items = extra if isinstance(extra, list) else [extra] if extra else []
    result = []
    for item in items[:FIELD_ERRORS_MAX]:
        if isinstance(item, dict):
            key = item.get("key") or item.get("source") or "$"
            message = str(item.get("message", "invalid"))
            path = _path_in_message(message) or str(key)
            result.append(FieldError(path=path, message=message))
        else:
            result.append(FieldError(path="$", message=str(item)))
    return result


def _path_in_message(message: str) -> str | None:
    """msgspec names the failing field as ``at `$.a.b```; surface it as the path."""
    marker = "at `"
    start = message.rfind(marker)
    if start < 0:
        return None
    end = message.find("`", start + len(marker))
    return message[start + len(marker) : end] if end > 0 else None


def _example(status: int) -> dict[str, object]:
    codes = {
        400: "http_400",
        401: RejectionCode.SIGNATURE_INVALID,
        403: RejectionCode.ACTOR_NOT_AUTHORIZED,
        404: RejectionCode.NOT_FOUND,
        405: "method_not_allowed",
        409: RejectionCode.INVALID_TRANSITION,
        413: "request_too_large",
        422: "validation_failed",
        429: "rate_limited",
        500: "internal_error",
        503: "store_unavailable",
    }
    code = codes.get(status, f"http_{status}")
    return {
        "type": problem_type(code),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": "what went wrong, in a sentence",
        "instance": "/v1/jobs",
        "code": code,
    }
