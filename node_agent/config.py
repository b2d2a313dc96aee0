"""The agent's settings, validated once at start-up, and every bound it runs under."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from domain.policy import SECOND_NS

CONCURRENCY_PER_DEVICE_MAX = 8
POLL_JOBS_LIMIT = 100
"""Open jobs read per poll of the API."""
CANDIDATES_MAX = 1_000
"""Jobs remembered as claim candidates at once; offers past this are dropped."""
IGNORED_JOBS_MAX = 10_000
"""Jobs remembered as not for us (bounded: oldest forgotten first)."""
RETRY_BACKOFF_INITIAL_S = 0.2
RETRY_BACKOFF_MAX_S = 5.0
CLAIM_RETRY_S = 1.0
"""Wait before trying a claim again that was refused as too early for our region."""
DEFAULT_STAGGER_S = 5.0
"""The ledger's default ``region_stagger_ns``; offers from other regions wait this per tier."""
SERVED_MODELS_MAX = 16
"""Models one node serves at most (the ledger's bound on one advertisement)."""
LLM_CAPACITY_MAX = 64
"""Completions of one model served at once at most (the ledger's bound on a capacity)."""
LLM_ENDPOINT_CHARS_MAX = 256


class AgentConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What ``flopledger agent`` was started with."""

    region: str
    price: Annotated[int, msgspec.Meta(ge=1)]
    api_url: str
    nats_url: str | None = None
    state_dir: Path
    stake: Annotated[int, msgspec.Meta(ge=0)] = 1_000
    gpu_class: str | None = None
    concurrency_per_device: Annotated[int, msgspec.Meta(ge=1, le=CONCURRENCY_PER_DEVICE_MAX)] = 1
    shutdown_deadline_s: Annotated[float, msgspec.Meta(gt=0, le=3_600)] = 30.0
    poll_interval_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 2.0
    heartbeat_interval_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    reattest_margin_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 600.0
    """Ask for the next attestation challenge this long before the current one lapses."""
    region_stagger_s: Annotated[float, msgspec.Meta(ge=0, le=3_600)] = DEFAULT_STAGGER_S
    prefer_cuda: bool = True
    # issue 18: the completion server (``node_agent.llm_serving``); no models: none runs
    serve_models: Annotated[tuple[str, ...], msgspec.Meta(max_length=SERVED_MODELS_MAX)] = ()
    llm_listen: str | None = None
    """``HOST:PORT`` the completion server listens on (port 0: any free port)."""
    llm_capacity: Annotated[int, msgspec.Meta(ge=1, le=LLM_CAPACITY_MAX)] = 1
    """Completions of each served model generated at once."""
    llm_endpoint: (
        Annotated[str, msgspec.Meta(max_length=LLM_ENDPOINT_CHARS_MAX, pattern="^https?://")] | None
    ) = None
    """The URL advertised to the API (default ``http://`` + the listening address)."""

    def __post_init__(self) -> None:
        if len(set(self.serve_models)) != len(self.serve_models):
            raise ValueError("--serve-model names a model twice")
        if self.serve_models and self.llm_listen is None:
            raise ValueError("--serve-model needs --llm-listen HOST:PORT")
        if self.llm_listen is not None:
            parse_listen(self.llm_listen)

    @property
    def region_stagger_ns(self) -> int:
        return int(self.region_stagger_s * SECOND_NS)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for an IPv6 host) as host and port; ValueError otherwise."""
    host, separator, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host or not port.isdigit() or not 0 <= int(port) <= 65_535:
        raise ValueError(f"--llm-listen wants HOST:PORT, not {listen!r}")
    return host, int(port)
