"""The command table: every kind has one route (or is executed in process only), the API
mounts exactly those routes, and the client derives kind and path from a typed command."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from adapters.ledger_api.client import ApiClient
from adapters.ledger_api.routes import COMMAND_ROUTES, IN_PROCESS_KINDS, get_route
from domain import commands as c
from proofs.envelope import EnvelopeIn
from tests.unit.api.conftest import ApiEnv, seeded

NODE = seeded("node-1")


def test_every_kind_is_routed_or_in_process_never_both() -> None:
    assert set(COMMAND_ROUTES) | IN_PROCESS_KINDS == set(c.COMMAND_TYPES)
    assert not set(COMMAND_ROUTES) & IN_PROCESS_KINDS


def test_path_parameters_are_fields_of_the_body_type() -> None:
    for route in COMMAND_ROUTES.values():
        fields = set(route.body_type.__struct_fields__)
        assert set(route.path_fields) <= fields, route


def test_the_api_mounts_exactly_the_routes_of_the_table(api_env: ApiEnv) -> None:
    document = api_env.http.get("/schema/openapi.json").json()
    posted = {path for path, operations in document["paths"].items() if "post" in operations}
    # OpenAI's two POSTs take a bearer key, not a signed command (issue 18)
    assert posted - {"/v1/chat/completions", "/v1/completions"} == {
        route.path for route in COMMAND_ROUTES.values()
    }


def test_send_derives_kind_and_path_from_the_command() -> None:
    seen: list[tuple[str, EnvelopeIn]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, msgspec.json.decode(request.content, type=EnvelopeIn)))
        accepted: dict[str, Any] = {
            "command_id": "c" * 64,
            "kind": "job.claim",
            "subject": "job-1",
            "first_position": 5,
            "last_position": 6,
        }
        return httpx.Response(200, json=accepted)

    http = httpx.Client(base_url="http://ledger", transport=httpx.MockTransport(answer))
    client = ApiClient(identity=NODE, http=http, network_id="devnet-1")
    result = client.send(c.ClaimJob(job_id="job-1", node_id=NODE.id))
    [(path, envelope)] = seen
    assert envelope.network == "devnet-1"
    assert path == "/v1/jobs/job-1/claim"
    assert (envelope.kind, envelope.body, envelope.actor) == (
        "job.claim",
        {"job_id": "job-1", "node_id": NODE.id},
        NODE.id,
    )
    assert (result.subject, result.first_position, result.last_position) == ("job-1", 5, 6)
    assert get_route(c.ClaimJob(job_id="j", node_id=NODE.id)).kind == "job.claim"
