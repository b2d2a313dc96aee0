"""Prometheus metrics: requests and latencies per route, events appended, jobs by state.

Each app has its own registry (several apps can live in one test process).
"""

from __future__ import annotations

import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    """The API's collectors, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flop_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flop_http_request_duration_seconds",
            "HTTP request latency by method and route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.events_appended = Counter(
            "flop_events_appended",
            "Events appended to the log by commands this process executed",
            registry=self.registry,
        )
        self.jobs = Gauge(
            "flop_jobs", "Jobs by state, as of the last read", ["state"], registry=self.registry
        )

    def set_jobs(self, counts: dict[str, int]) -> None:
        for state, count in counts.items():
            self.jobs.labels(state=state).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def make_metrics_middleware(metrics: ApiMetrics) -> Any:
    """An ASGI middleware factory that counts and times every routed HTTP request."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = {"code": 500}

            async def send_wrapper(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_wrapper)
            finally:
                route = _route_of(scope)
                method = scope.get("method", "")
                metrics.requests.labels(method, route, str(status["code"])).inc()
                metrics.latency.labels(method, route).observe(time.perf_counter() - started)

        return wrapped

    return middleware


def _route_of(scope: Scope) -> str:
    template = scope.get("path_template")
    return str(template) if template else "unmatched"
