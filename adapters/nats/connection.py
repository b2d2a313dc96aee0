"""Connecting to NATS: reconnects with exponential backoff, drain on shutdown, clear errors.

Every operating error from nats-py is translated into ``NatsError`` naming the server and
the operation (``nats_errors``); connection events are logged with structlog.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.client import Server as PoolServer

from adapters.nats.errors import NatsError

CONNECT_TIMEOUT_S = 2
CONNECT_ATTEMPTS_MAX = 10
CONNECT_RETRY_WAIT_S = 0.5
RECONNECT_BACKOFF_INITIAL_S = 0.05
RECONNECT_BACKOFF_MAX_S = 5.0
RECONNECT_JITTER_FRACTION = 0.2
RECONNECT_ATTEMPTS_FOREVER = -1
PENDING_BUFFER_BYTES = 8 * 1024 * 1024
DRAIN_TIMEOUT_S = 10
PING_INTERVAL_S = 20

_log = structlog.get_logger("flopledger.nats.connection")


def compute_reconnect_delay_s(attempt: int) -> float:
    """Exponential backoff with jitter: 50 ms doubling up to 5 s."""
    delay = min(RECONNECT_BACKOFF_MAX_S, RECONNECT_BACKOFF_INITIAL_S * (2 ** min(attempt, 20)))
    return delay * (1 + RECONNECT_JITTER_FRACTION * random.random())


def describe_server(nc: Client) -> str:
    """The URL of the server a client talks to (or would talk to), for error messages."""
    server = nc.connected_url or (nc._current_server.uri if nc._current_server else None)
    if server is None:
        return "<not connected>"
    return f"{server.scheme}://{server.hostname}:{server.port}"


def describe_urls(url: str) -> str:
    """``url`` (comma-separated) without the logins in it: safe for logs and errors."""
    parts = []
    for part in url.split(","):
        scheme, separator, rest = part.strip().rpartition("://")
        parts.append(f"{scheme}{separator}{rest.rpartition('@')[2]}")
    return ",".join(parts)


async def connect_nats(
    url: str,
    *,
    name: str,
    allow_reconnect: bool = True,
    connect_attempts: int = CONNECT_ATTEMPTS_MAX,
) -> Client:
    """Connect to ``url`` (comma-separated for a cluster).

    The first connection is tried ``CONNECT_ATTEMPTS_MAX`` times per server,
    ``CONNECT_RETRY_WAIT_S`` apart, then raises NatsError naming the server; once connected,
    the client reconnects forever with exponential backoff (``compute_reconnect_delay_s``).
    """
    servers = [part.strip() for part in url.split(",") if part.strip()]

    async def on_error(exc: Exception) -> None:
        _log.warning("nats_error", name=name, error=str(exc) or type(exc).__name__)

    async def on_disconnected() -> None:
        _log.warning("nats_disconnected", name=name)

    async def on_reconnected() -> None:
        _log.info("nats_reconnected", name=name, server=describe_server(nc))

    def pick_server(
        pool: list[PoolServer], _info: dict[str, Any]
    ) -> tuple[PoolServer | None, float]:
        chosen = min(pool, key=lambda server: server.reconnects)
        return chosen, compute_reconnect_delay_s(chosen.reconnects)

    nc = Client()
    try:
        await nc.connect(
            servers=servers,
            name=name,
            connect_timeout=CONNECT_TIMEOUT_S,
            allow_reconnect=allow_reconnect,
            max_reconnect_attempts=connect_attempts,
            reconnect_time_wait=CONNECT_RETRY_WAIT_S,  # type: ignore[arg-type]
            reconnect_to_server_handler=pick_server,
            pending_size=PENDING_BUFFER_BYTES,
            drain_timeout=DRAIN_TIMEOUT_S,
            ping_interval=PING_INTERVAL_S,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        raise NatsError(describe_urls(url), "connect", str(exc) or type(exc).__name__) from exc
    # nats-py reads this option on every reconnect: from now on, never give up.
    nc.options["max_reconnect_attempts"] = RECONNECT_ATTEMPTS_FOREVER
    _log.info("nats_connected", name=name, server=describe_server(nc))
    return nc


async def close_nats(nc: Client) -> None:
    """Drain (finish in-flight messages, unsubscribe) then close; never raises on shutdown."""
    if nc.is_closed:
        return
    try:
        await nc.drain()
    except (TimeoutError, nats.errors.Error) as exc:
        _log.warning("nats_drain_failed", server=describe_server(nc), error=str(exc))
        await nc.close()


@asynccontextmanager
async def nats_errors(nc: Client, operation: str) -> AsyncIterator[None]:
    """Translate nats-py errors raised inside the block into NatsError(server, operation)."""
    try:
        yield
    except nats.js.errors.APIError as exc:
        detail = f"{exc.description} (err_code {exc.err_code})"
        raise NatsError(describe_server(nc), operation, detail) from exc
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        raise NatsError(describe_server(nc), operation, str(exc) or type(exc).__name__) from exc
