"""Pieces every controller shares: the declared error responses, parameters, result mapping."""

from __future__ import annotations

from typing import Annotated

from litestar.openapi.spec import Example
from litestar.params import Body, Parameter, QueryParameter

from adapters.ledger_api.wire import (
    FILTER_CHARS_MAX,
    OFFSET_MAX,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    SAMPLE_ACTOR,
    CommandAccepted,
    Page,
)
from api.errors import problem_responses
from domain.services.ledger_service import CommandResult
from proofs.envelope import EnvelopeIn

COMMAND_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 503)
READ_ERRORS = problem_responses(400, 404, 422, 503)
LIST_ERRORS = problem_responses(400, 422, 503)

ACTOR_PATTERN = "^[1-9A-HJ-NP-Za-km-z]{32,44}$"
JOB_ID_PATTERN = "^[a-z0-9-]{1,64}$"
FILTER_PATTERN = "^[a-z0-9_-]+$"

ENVELOPE_EXAMPLE = {
    "kind": "job.submit",
    "body": {
        "workload": {"kind": "matmul", "gpu_class_min": "consumer", "params": {"n": 512}},
        "max_price": 1000,
        "region": "eu-west",
        "redundancy": 3,
        "deadline_ns": 1_800_003_600_000_000_000,
    },
    "actor": SAMPLE_ACTOR,
    "nonce": "n000000000001",
    "issued_at_ns": 1_800_000_000_000_000_000,
    "signature": "A" * 86 + "==",
}

SignedEnvelope = Annotated[
    EnvelopeIn,
    Body(
        title="Signed command envelope",
        description="kind, body, actor, nonce, issued_at_ns and the actor's Ed25519 signature",
        examples=[Example(summary="a signed job.submit", value=ENVELOPE_EXAMPLE)],
    ),
]
ActorPath = Annotated[
    str, Parameter(description="base58 Ed25519 public key", pattern=ACTOR_PATTERN)
]
JobIdPath = Annotated[str, Parameter(description="job id", pattern=JOB_ID_PATTERN)]
Offset = Annotated[int, Parameter(ge=0, le=OFFSET_MAX, description="items to skip")]
Limit = Annotated[int, Parameter(ge=1, le=PAGE_LIMIT_MAX, description="items per page")]
Filter = Annotated[
    str | None,
    Parameter(max_length=FILTER_CHARS_MAX, pattern=FILTER_PATTERN, required=False),
]
ActorFilter = Annotated[str | None, Parameter(pattern=ACTOR_PATTERN, required=False)]

DEFAULT_LIMIT = PAGE_LIMIT_DEFAULT


def to_accepted(result: CommandResult) -> CommandAccepted:
    """The response body of an executed (or retried) command."""
    return CommandAccepted(
        command_id=result.command_id,
        kind=result.kind,
        subject=result.subject,
        first_position=result.first_position,
        last_position=result.last_position,
    )


def make_page(offset: int, limit: int, shown: int, total: int) -> Page:
    next_offset = offset + shown if offset + shown < total else None
    return Page(offset=offset, limit=limit, total=total, next_offset=next_offset)


StateFilter = Annotated[
    str | None,
    QueryParameter(
        name="state", max_length=FILTER_CHARS_MAX, pattern=FILTER_PATTERN, required=False
    ),
]
