"""Schemathesis past authentication (issue 16): every state-changing operation, signed.

The OpenAPI document is taken from the app with each command route's envelope ``body``
described by its command type (``adapters.ledger_api.routes``), so schemathesis generates
command bodies of the right shape; the hook ``sign_case`` then wraps each into an envelope
of the route's kind, signed for the network by a funded actor (the operator for operator
kinds), with the path's ids repeated in the body. Every answer must be no 5xx and conform to
the schema, at least ``SIGNED_CASES_MIN`` cases are signed in one run, and the ledger the
fuzzing wrote audits clean afterwards (the last test of this module).
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar.testing import TestClient
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.ledger_api.client import ApiClient
from adapters.ledger_api.routes import COMMAND_ROUTES, CommandRoute
from api.app import create_app
from api.state import ApiDeps
from domain.commands import Deposit
from proofs.envelope import from_command_envelope, sign_command
from tests.forgery import replay
from tests.unit.api.conftest import Clock, make_deps, seeded
from validator.audit_rules import OPERATOR_KINDS

SIGNED_CASES_MIN = 1_000
EXAMPLES_PER_OPERATION = 12
FUNDS = 10**12
ACTOR_FIELDS = ("node_id", "validator_id", "account_owner", "owner", "consumer")
"""Body fields that name the actor when the actor acts for itself: set to the signer, so
more cases pass the ownership checks and reach the rules behind them."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

OPERATOR, ACTOR = seeded("fuzz-operator"), seeded("fuzz-actor")
ROUTES_BY_PATH: dict[str, CommandRoute] = {r.path: r for r in COMMAND_ROUTES.values()}
signed_statuses: Counter[int] = Counter()
operations_run: set[str] = set()


def build_app() -> tuple[Any, ApiDeps, Clock, str]:
    clock = Clock()
    path = Path(tempfile.mkdtemp(prefix="flop-fuzz-signed-"))
    # The per-actor rate limit has its own tests; here every case should reach the rules.
    deps = make_deps(path, OPERATOR, clock, actor_commands_burst=1_000_000)
    app = create_app(deps)
    with TestClient(app) as http:
        operator = ApiClient(identity=OPERATOR, http=http, clock_ns=clock)
        for owner in (ACTOR, OPERATOR):
            operator.send(
                Deposit(
                    account_owner=owner.id, amount=FUNDS, chain_reference=f"fuzz-deposit-{owner.id}"
                )
            )
        network_id = operator.get_network_id()
    return app, deps, clock, network_id


def describe_command_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with each command route's request body replaced by its command's schema
    (what the hook signs into an envelope)."""
    types = [route.body_type for route in COMMAND_ROUTES.values()]
    refs, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/Command_{name}"
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update({f"Command_{name}": schema for name, schema in components.items()})
    by_type = dict(zip(types, refs, strict=True))
    for path, operations in document["paths"].items():
        route = ROUTES_BY_PATH.get(path)
        if route is not None and "post" in operations:
            content = {"application/json": {"schema": by_type[route.body_type]}}
            operations["post"]["requestBody"] = {"required": True, "content": content}
    return document


APP, DEPS, CLOCK, NETWORK_ID = build_app()
with TestClient(APP) as _http:
    DOCUMENT = describe_command_bodies(_http.get("/schema/openapi.json").json())
# OpenAI's POSTs take a bearer key, not an envelope (issue 18; test_openapi_fuzz runs them)
OPENAI_POSTS = ["/v1/chat/completions", "/v1/completions"]
schema = schemathesis.openapi.from_dict(DOCUMENT).include(method="POST").exclude(path=OPENAI_POSTS)
schema.app = APP
POST_OPERATIONS = {
    p for p, ops in DOCUMENT["paths"].items() if "post" in ops and p not in OPENAI_POSTS
}


def sign_case(case: schemathesis.Case) -> None:
    """The hook: wrap the generated command body in a signed envelope of the route's kind."""
    route = ROUTES_BY_PATH[case.path]
    body = dict(case.body) if isinstance(case.body, dict) else {}
    signer = OPERATOR if route.kind in OPERATOR_KINDS else ACTOR
    for name in ACTOR_FIELDS:
        if name in body:
            body[name] = signer.id
    for name in route.path_fields:
        body[name] = (case.path_parameters or {}).get(name, body.get(name))
    envelope = sign_command(
        signer,
        route.kind,
        body,
        nonce=secrets.token_hex(12),
        issued_at_ns=CLOCK.now_ns,
        network=NETWORK_ID,
    )
    case.body = msgspec.to_builtins(from_command_envelope(envelope))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
@pytest.mark.slow
def test_signed_commands_conform_to_the_openapi(case: schemathesis.Case) -> None:
    sign_case(case)
    response = case.call_and_validate(checks=CHECKS)
    signed_statuses[response.status_code] += 1
    operations_run.add(case.path)
    CLOCK.advance(0.001)


@pytest.mark.slow
def test_the_fuzzed_ledger_audits_clean() -> None:
    if operations_run != POST_OPERATIONS:
        pytest.skip(f"the signed fuzz ran {len(operations_run)} of {len(POST_OPERATIONS)} ops")
    signed = sum(signed_statuses.values())
    print(f"signed cases by status: {dict(sorted(signed_statuses.items()))}")
    assert signed >= SIGNED_CASES_MIN
    assert signed_statuses[401] < signed  # signed envelopes reach the rules behind the auth
    records = asyncio.run(DEPS.store.read_all(1, 1_000_000))
    replayer = replay(records)
    replayer.check_genesis()
    assert replayer.head_position == len(records)
