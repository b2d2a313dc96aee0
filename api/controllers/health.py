"""Liveness, readiness (store reachable; NATS when configured) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from litestar import Controller, Response, get
from prometheus_client import CONTENT_TYPE_LATEST

from adapters.ledger_api.wire import Health
from api.errors import problem_responses
from api.state import Deps
from domain.errors import StoreError
from domain.job import Job

READY_TIMEOUT_S = 2.0
NATS_DEFAULT_PORT = 4222


class HealthController(Controller):
    """``/health``, ``/ready``, ``/metrics``."""

    path = "/"
    tags = ("operations",)

    @get("/health", operation_id="health")
    async def health(self) -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @get("/ready", operation_id="ready", responses={503: problem_responses(503)[503]})
    async def ready(self, deps: Deps) -> Response[Health]:
        """Readiness: the store answers, and NATS when one is configured."""
        checks = {"store": await _check_store(deps)}
        if deps.nats_url:
            checks["nats"] = await _check_nats(deps.nats_url)
        ok = all(v == "ok" for v in checks.values())
        status = "ok" if ok else "unavailable"
        return Response(Health(status=status, checks=checks), status_code=200 if ok else 503)

    @get("/metrics", operation_id="metrics", media_type=CONTENT_TYPE_LATEST)
    async def metrics(self, deps: Deps) -> Response[bytes]:
        """Prometheus text exposition."""
        await deps.read_model.catch_up()
        deps.metrics.set_jobs(deps.read_model.count_by(Job.STREAM_TYPE, "state"))
        return Response(deps.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _check_store(deps: Deps) -> str:
    try:
        await asyncio.wait_for(deps.store.head(), READY_TIMEOUT_S)
    except (StoreError, TimeoutError) as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok"


async def _check_nats(url: str) -> str:
    first = url.split(",")[0]
    parts = urlsplit(first if "://" in first else f"nats://{first}")
    host, port = parts.hostname or "127.0.0.1", parts.port or NATS_DEFAULT_PORT
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), READY_TIMEOUT_S
        )
    except (OSError, TimeoutError) as exc:
        return f"unavailable: {type(exc).__name__}"
    writer.close()
    return "ok"
