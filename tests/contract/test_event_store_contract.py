"""The EventStore contract run against every adapter: memory, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from adapters.store.memory import MemoryEventStore
from adapters.store.postgres import PostgresEventStore
from adapters.store.postgres_schema import migrate
from adapters.store.sqlite import SqliteEventStore
from domain.ports import EventStore
from tests.contract.event_store_contract import EventStoreContract, OpenStore
from tests.contract.event_store_interleavings import InterleavingContract


class TestMemoryEventStore(EventStoreContract, InterleavingContract):
    """The reference behaviour."""

    @pytest.fixture
    async def open_store(self) -> AsyncIterator[OpenStore]:
        store = MemoryEventStore()

        async def open_same() -> EventStore:
            return store

        yield open_same
        await store.close()


class TestSqliteEventStore(EventStoreContract, InterleavingContract):
    """The embedded default: one file per test."""

    @pytest.fixture
    async def open_store(self, tmp_path: Path) -> AsyncIterator[OpenStore]:
        opened: list[SqliteEventStore] = []

        async def open_file() -> EventStore:
            store = await SqliteEventStore.open(tmp_path / "nested" / "events.sqlite3")
            opened.append(store)
            return store

        yield open_file
        for store in opened:
            await store.close()


class TestPostgresEventStore(EventStoreContract, InterleavingContract):
    """Production: a fresh, migrated schema per test in the session's database."""

    @pytest.fixture
    async def open_store(self, pg_session_url: str) -> AsyncIterator[OpenStore]:
        schema = f"contract_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(pg_session_url)
        try:
            await migrate(conn, schema)
        finally:
            await conn.close()
        opened: list[PostgresEventStore] = []

        async def open_schema() -> EventStore:
            store = await PostgresEventStore.connect(pg_session_url, schema=schema)
            opened.append(store)
            return store

        yield open_schema
        for store in opened:
            await store.close()
        conn = await asyncpg.connect(pg_session_url)
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()
