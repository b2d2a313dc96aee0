"""Running a signed command for a route: check kind and path, apply Idempotency-Key, execute.

Every state-changing route goes through ``run_command`` with its row of the command table
(``adapters.ledger_api.routes``), so the rules are the same on all: the envelope's kind must
be the route's (422 ``kind_mismatch``), ids in the path must equal the body's (422
``path_mismatch``), and a replayed envelope is 401 ``command_replayed`` unless it comes with
the Idempotency-Key that makes it a retry. The signature is verified once, by the command bus
(``LedgerService.execute``); these checks need no more than the envelope and run as its
``admit`` step, after the signature and before anything is read, so nothing about an
unauthenticated request is looked at.

An Idempotency-Key is bound to the first authenticated body it comes with, in that step and
whatever the command's outcome (``domain.ports.IdempotencyKeys``: one table for every
replica of a PostgreSQL store): the same key with another body is 409
``idempotency_key_reused`` on any replica, and the same body again answers the first result,
which the ledger rebuilds from the command's (actor, nonce).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from litestar import Request

from adapters.ledger_api.routes import CommandRoute
from adapters.ledger_api.wire import IDEMPOTENCY_KEY_CHARS_MAX
from api.errors import ApiError
from api.state import ApiDeps
from domain.services.ledger_service import CommandResult
from proofs.envelope import CommandEnvelope, EnvelopeIn, to_command_envelope

IDEMPOTENCY_HEADER = "idempotency-key"


async def run_command(
    deps: ApiDeps, request: Request[Any, Any, Any], envelope_in: EnvelopeIn, route: CommandRoute
) -> CommandResult:
    """Execute ``envelope_in`` as a command of ``route``; raises ApiError, EnvelopeError,
    Rejection. The route's checks run once the command bus has verified the signature."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    raw = await request.body()

    async def admit(envelope: CommandEnvelope) -> None:
        deps.rate.spend(envelope.actor)  # after the signature: nobody drains another's bucket
        check_route(envelope_in, route, request.path_params)
        if key is not None:
            await claim_idempotency_key(deps, key, raw)

    envelope = to_command_envelope(envelope_in)
    result = await deps.service.execute(envelope, now_ns=deps.clock_ns(), admit=admit)
    if result.replayed and key is None:
        raise ApiError(
            "command_replayed",
            f"this envelope was already executed (positions {result.first_position}.."
            f"{result.last_position}); retry with an Idempotency-Key, or sign a new nonce",
        )
    if not result.replayed:
        deps.metrics.events_appended.inc(result.last_position - result.first_position + 1)
    return result


def check_route(
    envelope_in: EnvelopeIn, route: CommandRoute, path_params: Mapping[str, Any]
) -> None:
    """The envelope's kind is the route's, and ids in the path equal the body's."""
    if envelope_in.kind != route.kind:
        raise ApiError(
            "kind_mismatch",
            f"this route takes {route.kind!r} commands, not {envelope_in.kind!r}",
        )
    for name in route.path_fields:
        value = path_params.get(name)
        if envelope_in.body.get(name) != value:
            raise ApiError(
                "path_mismatch", f"body field {name!r} must equal the id in the path ({value})"
            )


async def claim_idempotency_key(deps: ApiDeps, key: str, raw: bytes) -> None:
    """A well-formed key, bound to this body now or before (never to another)."""
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_CHARS_MAX:
        raise ApiError(
            "validation_failed",
            f"Idempotency-Key must be 1..{IDEMPOTENCY_KEY_CHARS_MAX} characters",
        )
    if not await deps.idempotency.claim(key, hashlib.sha256(raw).digest()):
        raise ApiError("idempotency_key_reused", "this Idempotency-Key was used with another body")
