"""Schemathesis over the OpenAPI document: no 5xx, and every answer conforms to the schema.

Runs in-process (ASGI) on a MemoryEventStore holding a little history, so reads find things.
The SSE feed waits for new records forever and is left out (tested in test_events_log).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from litestar.testing import TestClient

from adapters.ledger_api.client import ApiClient
from api.app import create_app
from domain.commands import Deposit
from tests.chain_tx import fresh_chain_reference
from tests.unit.api.conftest import Clock, make_deps, seeded

FUZZ_EXAMPLES_MAX = 12


def build_seeded_app() -> Litestar:
    clock, operator = Clock(), seeded("operator")
    deps = make_deps(Path(tempfile.mkdtemp(prefix="flop-fuzz-")), operator, clock)
    app = create_app(deps)
    with TestClient(app) as http:
        client = ApiClient(identity=operator, http=http, clock_ns=clock)
        client.send(
            Deposit(
                account_owner=seeded("c").id, amount=100, chain_reference=fresh_chain_reference()
            )
        )
    return app


schema = schemathesis.openapi.from_asgi("/schema/openapi.json", build_seeded_app()).exclude(
    path="/v1/events/stream"
)


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES_MAX,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi(case: schemathesis.Case) -> None:
    case.call_and_validate()
