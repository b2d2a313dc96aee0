"""Input limits, validation paths, and the 500 that hides internals behind a request id."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from adapters.ledger_api.wire import PAGE_LIMIT_MAX
from api.app import REQUEST_BODY_BYTES_MAX, create_app
from tests.unit.api.conftest import ApiEnv, Clock, make_deps, seeded


def test_body_over_the_limit_is_413(api_env: ApiEnv) -> None:
    response = api_env.http.post(
        "/v1/jobs",
        content=b"{" + b" " * REQUEST_BODY_BYTES_MAX + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_page_limit_at_the_bound_and_past_it(api_env: ApiEnv) -> None:
    assert api_env.http.get("/v1/nodes", params={"limit": PAGE_LIMIT_MAX}).status_code == 200
    response = api_env.http.get("/v1/nodes", params={"limit": PAGE_LIMIT_MAX + 1})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "limit"


def test_validation_error_names_the_field(api_env: ApiEnv) -> None:
    response = api_env.http.post("/v1/jobs", json={"kind": "job.submit", "body": {}})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


def test_malformed_json_is_a_4xx_problem(api_env: ApiEnv) -> None:
    response = api_env.http.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_bug_is_a_500_with_a_request_id_and_no_internals(tmp_path: Path) -> None:
    clock = Clock()
    deps = make_deps(tmp_path, seeded("operator"), clock)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    deps.store.head = broken  # type: ignore[method-assign,assignment]
    with TestClient(create_app(deps)) as http:
        response = http.get("/v1/events")
    assert response.status_code == 500
    problem = response.json()
    assert problem["code"] == "internal_error"
    assert problem["request_id"] == response.headers["x-request-id"]
    assert "secret" not in response.text


def test_health_ready_metrics(api_env: ApiEnv) -> None:
    assert api_env.http.get("/health").json()["status"] == "ok"
    assert api_env.http.get("/ready").json()["checks"] == {"store": "ok"}
    api_env.http.get("/v1/nodes")
    metrics = api_env.http.get("/metrics").text
    assert "flop_http_requests_total" in metrics
    assert 'route="/v1/nodes"' in metrics
    assert "flop_http_request_duration_seconds_bucket" in metrics
    assert "flop_events_appended_total" in metrics
