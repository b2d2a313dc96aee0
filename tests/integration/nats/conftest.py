"""Fixtures for the NATS integration tests: a private nats-server per test, on a free port.

The tests always start their own server (never the shared one on 4222, never
FLOP_NATS_URL): several of them stop, restart or rewind it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.server import EmbeddedNatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_server: EmbeddedNatsServer) -> AsyncIterator[Client]:
    client = await connect_nats(nats_server.url, name="flopledger-test")
    try:
        yield client
    finally:
        await close_nats(client)
