"""Prometheus metrics: requests and latencies per route, events appended, jobs by state, and
per node the time to first token and tokens/s of the completions relayed (issue 18, item 3).

Each app has its own registry (several apps can live in one test process). The completion
figures are also kept as a moving average per node (``NodeLatencies``), which the router
reads to prefer the nodes that answer fastest (``api.llm_router``).
"""

from __future__ import annotations

import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TTFT_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
TOKENS_PER_S_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
COMPLETION_OUTCOMES = ("committed", "node_failed", "client_gone", "refused")
EWMA_WEIGHT = 0.2
"""Weight of the newest measurement in a node's moving average (about the last 5 count)."""
NODES_TRACKED_MAX = 10_000


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

        self.llm_ttft = Histogram(
            "flop_llm_time_to_first_token_seconds",
            "Time from calling a node to its first token, per node and model",
            ["node_id", "model"],
            buckets=TTFT_BUCKETS_S,
            registry=self.registry,
        )
        self.llm_tokens_per_s = Histogram(
            "flop_llm_tokens_per_second",
            "Tokens a second after the first, per node and model",
            ["node_id", "model"],
            buckets=TOKENS_PER_S_BUCKETS,
            registry=self.registry,
        )
        self.llm_completions = Counter(
            "flop_llm_completions",
            "Completions relayed, by model and outcome (" + ", ".join(COMPLETION_OUTCOMES) + ")",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.node_latencies = NodeLatencies()

    def observe_completion(
        self, *, node_id: str, model: str, ttft_s: float, tokens_per_s: float | None
    ) -> None:
        """One completion's time to first token and (past its first token) tokens/s."""
        self.llm_ttft.labels(node_id, model).observe(ttft_s)
        if tokens_per_s is not None:
            self.llm_tokens_per_s.labels(node_id, model).observe(tokens_per_s)
        self.node_latencies.observe(node_id, ttft_s=ttft_s, tokens_per_s=tokens_per_s)

    def set_jobs(self, counts: dict[str, int]) -> None:
        for state, count in counts.items():
            self.jobs.labels(state=state).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class NodeLatencies:
    """Moving averages of each node's time to first token and tokens/s, as this process
    measured them (no other process's; nothing on the ledger)."""

    def __init__(self, *, nodes_max: int = NODES_TRACKED_MAX) -> None:
        self.nodes_max = nodes_max
        self._ttft_s: dict[str, float] = {}
        self._tokens_per_s: dict[str, float] = {}

    def observe(self, node_id: str, *, ttft_s: float, tokens_per_s: float | None) -> None:
        if node_id not in self._ttft_s and len(self._ttft_s) >= self.nodes_max:
            oldest = next(iter(self._ttft_s))  # insertion order: the longest unmeasured first
            self._ttft_s.pop(oldest)
            self._tokens_per_s.pop(oldest, None)
        self._ttft_s[node_id] = _ewma(self._ttft_s.pop(node_id, None), ttft_s)
        if tokens_per_s is not None:
            self._tokens_per_s[node_id] = _ewma(self._tokens_per_s.get(node_id), tokens_per_s)

    def get_ttft_s(self, node_id: str) -> float | None:
        return self._ttft_s.get(node_id)

    def get_tokens_per_s(self, node_id: str) -> float | None:
        return self._tokens_per_s.get(node_id)


def _ewma(previous: float | None, value: float) -> float:
    return value if previous is None else previous + EWMA_WEIGHT * (value - previous)


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
