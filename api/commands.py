"""Running a signed command for a route: check kind and path, apply Idempotency-Key, execute.

Every state-changing route goes through ``run_command``, so the rules are the same on all:
the envelope's kind must be the route's (422 ``kind_mismatch``), ids in the path must equal
the body's (422 ``path_mismatch``), and a replayed envelope is 401 ``command_replayed``
unless it comes with the Idempotency-Key that makes it a retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request

from adapters.ledger_api.wire import IDEMPOTENCY_KEY_CHARS_MAX
from api.errors import ApiError
from api.state import ApiDeps
from domain.services.ledger_service import CommandResult
from proofs.envelope import EnvelopeIn, to_command_envelope, verify_envelope

IDEMPOTENCY_HEADER = "idempotency-key"


async def run_command(
    deps: ApiDeps,
    request: Request[Any, Any, Any],
    envelope_in: EnvelopeIn,
    *,
    kind: str,
    path_fields: Mapping[str, str] | None = None,
) -> CommandResult:
    """Execute ``envelope_in`` as a ``kind`` command; raises ApiError, EnvelopeError, Rejection.

    The signature is checked first: nothing about an unauthenticated request is looked at."""
    envelope = to_command_envelope(envelope_in)
    verify_envelope(envelope, now_ns=deps.clock_ns())
    if envelope_in.kind != kind:
        raise ApiError(
            "kind_mismatch", f"this route takes {kind!r} commands, not {envelope_in.kind!r}"
        )
    for name, value in (path_fields or {}).items():
        if envelope_in.body.get(name) != value:
            raise ApiError(
                "path_mismatch", f"body field {name!r} must equal the id in the path ({value})"
            )
    key = request.headers.get(IDEMPOTENCY_HEADER)
    raw = await request.body()
    if key is not None:
        if not 1 <= len(key) <= IDEMPOTENCY_KEY_CHARS_MAX:
            raise ApiError(
                "validation_failed",
                f"Idempotency-Key must be 1..{IDEMPOTENCY_KEY_CHARS_MAX} characters",
            )
        if deps.idempotency.is_conflicting(key, raw):
            raise ApiError(
                "idempotency_key_reused", "this Idempotency-Key was used with another body"
            )
    result = await deps.service.execute(envelope, now_ns=deps.clock_ns())
    if result.replayed and key is None:
        raise ApiError(
            "command_replayed",
            f"this envelope was already executed (positions {result.first_position}.."
            f"{result.last_position}); retry with an Idempotency-Key, or sign a new nonce",
        )
    if key is not None:
        deps.idempotency.remember(key, raw)
    if not result.replayed:
        deps.metrics.events_appended.inc(result.last_position - result.first_position + 1)
    return result
