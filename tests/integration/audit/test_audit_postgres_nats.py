"""``flopledger audit`` on PostgreSQL and on the NATS mirror: a history written through the
services passes (exit 0); a record edited in the database, or a mirror carrying an edited
record, fails at that position (exit 1) with the hash-chain check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.relay import Relay, RelayConfig
from adapters.nats.server import EmbeddedNatsServer
from adapters.store.factory import migrate_event_store, open_event_store
from adapters.store.memory import MemoryEventStore
from adapters.store.postgres_schema import EVENTS_TABLE
from domain.ports import EventStore
from domain.records import Head, Record
from flopledger.cli import main
from tests.conftest_pg import pg_server_url, pg_url  # noqa: F401  (fixtures)
from tests.unit.audit.scenario import History, build_history

TAMPER_POSITION = 17
EXIT_OK, EXIT_FAILED = 0, 1


def audit_cli(
    source: str, history: History, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    operator = ["--operator", history.net.operator.id]
    status = main(["audit", "--source", source, "--json", *operator])
    # the report is the last line (server logs from the test's own process come before it)
    return status, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


@pytest.fixture
def pg_history(pg_url: str) -> Iterator[tuple[str, History]]:  # noqa: F811
    async def build() -> History:
        await migrate_event_store(pg_url)
        store = await open_event_store(pg_url)
        try:
            return await build_history(store)
        finally:
            await store.close()

    yield pg_url, asyncio.run(build())


def test_postgres_clean_history_passes_and_an_edit_fails(
    pg_history: tuple[str, History], capsys: pytest.CaptureFixture[str]
) -> None:
    url, history = pg_history
    status, report = audit_cli(url, history, capsys)
    assert status == EXIT_OK, report["failure"]
    assert report["ok"] and report["state"]["total_balance"] == 0
    assert report["state"]["tree_heads"] == 2 and report["state"]["cosignatures"] > 0

    async def tamper() -> None:
        conn = await asyncpg.connect(url)
        try:
            data = await conn.fetchval(
                f"SELECT data FROM {EVENTS_TABLE} WHERE position = $1", TAMPER_POSITION
            )
            await conn.execute(
                f"UPDATE {EVENTS_TABLE} SET data = $1 WHERE position = $2",
                flip_first_byte(data),
                TAMPER_POSITION,
            )
        finally:
            await conn.close()

    asyncio.run(tamper())
    status, report = audit_cli(url, history, capsys)
    assert status == EXIT_FAILED
    assert report["failure"]["position"] == TAMPER_POSITION
    assert report["failure"]["check"] == "hash_chain"


class TamperingStore:
    """Reads like ``inner`` except that one record's data is changed (its hash kept): what
    a relay fed by a compromised store, or a rogue mirror, would publish."""

    def __init__(self, inner: EventStore, position: int) -> None:
        self.inner, self.position = inner, position

    async def head(self) -> Head:
        return await self.inner.head()

    async def read_all(self, from_position: int, limit: int) -> list[Record]:
        return [self._edit(r) for r in await self.inner.read_all(from_position, limit)]

    async def subscribe(self, from_position: int) -> AsyncIterator[Record]:
        async for record in self.inner.subscribe(from_position):
            yield self._edit(record)

    def _edit(self, record: Record) -> Record:
        if record.position != self.position:
            return record
        return msgspec.structs.replace(record, data=flip_first_byte(record.data))


def mirror(store: Any, data_dir: Path) -> EmbeddedNatsServer:
    """A private nats-server holding ``store``'s log, mirrored by the relay."""
    server = EmbeddedNatsServer(data_dir)
    server.start()

    async def sync() -> int:
        nc = await connect_nats(server.url, name="flopledger-test-relay")
        try:
            return await Relay(store, nc, RelayConfig(holder="audit-test")).sync_once()
        finally:
            await close_nats(nc)

    try:
        asyncio.run(sync())
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def memory_history() -> tuple[MemoryEventStore, History]:
    store = MemoryEventStore()
    return store, asyncio.run(build_history(store))


def test_nats_mirror_clean_history_passes(
    memory_history: tuple[MemoryEventStore, History],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, history = memory_history
    server = mirror(store, tmp_path / "nats")
    try:
        status, report = audit_cli(server.url, history, capsys)
    finally:
        server.stop()
    assert status == EXIT_OK, report["failure"]
    assert report["ok"] and report["state"]["total_balance"] == 0


def test_nats_mirror_with_an_edited_record_fails(
    memory_history: tuple[MemoryEventStore, History],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, history = memory_history
    server = mirror(TamperingStore(store, TAMPER_POSITION), tmp_path / "nats")
    try:
        status, report = audit_cli(server.url, history, capsys)
    finally:
        server.stop()
    assert status == EXIT_FAILED
    assert report["failure"]["position"] == TAMPER_POSITION
    assert report["failure"]["check"] == "hash_chain"
