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

    @property
    def region_stagger_ns(self) -> int:
        return int(self.region_stagger_s * SECOND_NS)
