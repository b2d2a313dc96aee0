"""Connection handling: a clear error naming the server; reconnect after a restart."""

from __future__ import annotations

import asyncio
import socket

import pytest
from nats.aio.client import Client

from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.errors import NatsError
from adapters.nats.server import EmbeddedNatsServer


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_failed_connect_names_the_server() -> None:
    url = f"nats://127.0.0.1:{closed_port()}"
    with pytest.raises(NatsError) as failed:
        await connect_nats(url, name="test", connect_attempts=1)
    assert url in str(failed.value) and "connect failed" in str(failed.value)


async def test_client_reconnects_after_a_restart(nats_server: EmbeddedNatsServer) -> None:
    nc = await connect_nats(nats_server.url, name="test")
    try:
        await asyncio.to_thread(nats_server.restart)
        await asyncio.wait_for(_until_reconnected(nc), 10)
        await nc.publish("flop.test", b"after restart")
        await nc.flush()
    finally:
        await close_nats(nc)


async def _until_reconnected(nc: Client) -> None:
    while nc.stats["reconnects"] < 1 or not nc.is_connected:
        await asyncio.sleep(0.01)
