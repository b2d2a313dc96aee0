"""The default bounds of ``api.limits`` (kept apart so that ``flopledger.settings`` reads them
without importing the web framework)."""

from __future__ import annotations

SSE_STREAMS_MAX = 256
"""Streams one process keeps open at once (each holds a subscription to the store)."""
SSE_STREAMS_PER_CLIENT_MAX = 8
"""Streams one client address keeps open at once."""
SSE_RETRY_AFTER_S = 5
"""What a refused stream is told to wait before reconnecting."""
ACTOR_COMMANDS_PER_S = 20.0
"""Sustained signed commands per second one actor may send to one process."""
ACTOR_COMMANDS_BURST = 200
"""Commands an idle actor may send at once before the sustained rate applies."""
RATE_ACTORS_MAX = 100_000
"""Buckets kept at once; past it, the fullest (idle) ones are forgotten."""
