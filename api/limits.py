"""Denial-of-service limits of one API process (issue 16, item 8).

Two bounds, each a named constant with a setting to change it:

- ``StreamSlots``: Server-Sent Events streams open at once, in the whole process and per
  client address. A stream past either cap is answered 503 ``too_many_streams`` with
  ``Retry-After`` (problem+json), before anything is read or subscribed.
- ``ActorRateLimiter``: a token bucket per signing actor. Every signed command spends one
  token once its signature verified (an unsigned or forged request cannot drain someone
  else's bucket); an empty bucket answers 429 ``rate_limited`` with ``Retry-After`` saying
  when the next token is due. The table of buckets is bounded (``RATE_ACTORS_MAX``): full
  buckets are dropped first, being no different from a new one.

Both are per process: behind a load balancer the effective cap is the sum over processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from api.errors import ApiError
from api.limit_bounds import (
    ACTOR_COMMANDS_BURST,
    ACTOR_COMMANDS_PER_S,
    RATE_ACTORS_MAX,
    SSE_RETRY_AFTER_S,
    SSE_STREAMS_MAX,
    SSE_STREAMS_PER_CLIENT_MAX,
)

TOO_MANY_STREAMS = "too_many_streams"
RATE_LIMITED = "rate_limited"
RETRY_AFTER_HEADER = "Retry-After"


class LimitExceeded(ApiError):
    """A request refused by a limit; carries the seconds a client should wait."""

    def __init__(self, code: str, detail: str, *, status: int, retry_after_s: int) -> None:
        super().__init__(
            code, detail, status=status, headers={RETRY_AFTER_HEADER: str(retry_after_s)}
        )
        self.retry_after_s = retry_after_s


class StreamSlots:
    """Counts open streams per process and per client; ``acquire`` refuses past a cap."""

    def __init__(
        self,
        streams_max: int = SSE_STREAMS_MAX,
        per_client_max: int = SSE_STREAMS_PER_CLIENT_MAX,
    ) -> None:
        if streams_max < 1 or per_client_max < 1:
            raise ValueError("stream caps must be at least 1")
        self.streams_max = streams_max
        self.per_client_max = per_client_max
        self.open = 0
        self._by_client: dict[str, int] = {}

    def acquire(self, client: str) -> None:
        """Take a slot for ``client``; LimitExceeded (503) when a cap is reached."""
        if self.open >= self.streams_max:
            raise LimitExceeded(
                TOO_MANY_STREAMS,
                f"this server has {self.open} event streams open, its limit; retry in "
                f"{SSE_RETRY_AFTER_S} s or page with GET /v1/events",
                status=503,
                retry_after_s=SSE_RETRY_AFTER_S,
            )
        held = self._by_client.get(client, 0)
        if held >= self.per_client_max:
            raise LimitExceeded(
                TOO_MANY_STREAMS,
                f"client {client} has {held} event streams open, the limit per client; "
                "close one (one stream carries every record) and retry",
                status=503,
                retry_after_s=SSE_RETRY_AFTER_S,
            )
        self._by_client[client] = held + 1
        self.open += 1

    def release(self, client: str) -> None:
        """Give back a slot taken by ``acquire``."""
        held = self._by_client.get(client, 0)
        if held <= 1:
            self._by_client.pop(client, None)
        else:
            self._by_client[client] = held - 1
        self.open = max(0, self.open - 1)


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


@dataclass
class ActorRateLimiter:
    """A token bucket per actor, refilled at ``per_s`` up to ``burst``."""

    per_s: float = ACTOR_COMMANDS_PER_S
    burst: int = ACTOR_COMMANDS_BURST
    clock_s: Callable[[], float] = time.monotonic
    actors_max: int = RATE_ACTORS_MAX
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.per_s <= 0 or self.burst < 1 or self.actors_max < 1:
            raise ValueError("a rate limit needs per_s > 0, burst >= 1 and actors_max >= 1")

    def spend(self, actor: str) -> None:
        """Take one token from ``actor``'s bucket; LimitExceeded (429) when it is empty."""
        now = self.clock_s()
        bucket = self._buckets.get(actor)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[actor] = _Bucket(float(self.burst), now)
        refilled = bucket.tokens + (now - bucket.updated_s) * self.per_s
        bucket.tokens = min(float(self.burst), refilled)
        bucket.updated_s = now
        if bucket.tokens < 1.0:
            wait_s = max(1, math.ceil((1.0 - bucket.tokens) / self.per_s))
            raise LimitExceeded(
                RATE_LIMITED,
                f"actor {actor} sent more than {self.burst} commands at once or "
                f"{self.per_s:g} a second; retry in {wait_s} s",
                status=429,
                retry_after_s=wait_s,
            )
        bucket.tokens -= 1.0

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self.actors_max:
            return
        full_after_s = self.burst / self.per_s
        for actor in [a for a, b in self._buckets.items() if now - b.updated_s >= full_after_s]:
            del self._buckets[actor]
        while len(self._buckets) >= self.actors_max:  # all busy: forget the oldest
            del self._buckets[next(iter(self._buckets))]
