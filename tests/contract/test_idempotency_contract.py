"""The IdempotencyKeys contract against the memory table and the PostgreSQL one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from adapters.store.idempotency import (
    MemoryIdempotencyKeys,
    PostgresIdempotencyKeys,
    open_idempotency_keys,
)
from adapters.store.memory import MemoryEventStore
from adapters.store.postgres import PostgresEventStore
from adapters.store.postgres_schema import migrate
from domain.ports import IDEMPOTENCY_KEY_TTL_S, IdempotencyKeys
from tests.contract.idempotency_contract import IdempotencyKeysContract, OpenKeys, body


class TestMemoryIdempotencyKeys(IdempotencyKeysContract):
    """One process's table (SQLite and memory stores, unit tests)."""

    @pytest.fixture
    def open_keys(self) -> OpenKeys:
        tables: dict[float, MemoryIdempotencyKeys] = {}

        async def open_same(ttl_s: float = IDEMPOTENCY_KEY_TTL_S) -> IdempotencyKeys:
            return tables.setdefault(ttl_s, MemoryIdempotencyKeys(ttl_s=ttl_s))

        return open_same

    async def test_the_table_forgets_the_least_recently_used_past_its_capacity(self) -> None:
        keys = MemoryIdempotencyKeys(capacity=2)
        assert await keys.claim("a", body(1))
        assert await keys.claim("b", body(2))
        assert await keys.claim("a", body(1))  # a is now the most recent
        assert await keys.claim("c", body(3))  # b goes
        assert await keys.claim("b", body(4))  # b was forgotten; a goes now
        assert not await keys.claim("c", body(9))
        assert await keys.claim("a", body(9))


class TestPostgresIdempotencyKeys(IdempotencyKeysContract):
    """The table API replicas share: a fresh, migrated schema per test."""

    @pytest.fixture
    async def open_keys(self, pg_session_url: str) -> AsyncIterator[OpenKeys]:
        schema = f"idem_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(pg_session_url)
        try:
            await migrate(conn, schema)
        finally:
            await conn.close()
        pools: list[asyncpg.Pool] = []

        async def open_schema(ttl_s: float = IDEMPOTENCY_KEY_TTL_S) -> IdempotencyKeys:
            pool = await asyncpg.create_pool(pg_session_url, min_size=1, max_size=4)
            pools.append(pool)
            return PostgresIdempotencyKeys(pool, schema, ttl_s=ttl_s)

        yield open_schema
        for pool in pools:
            await pool.close()
        conn = await asyncpg.connect(pg_session_url)
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()


async def test_a_postgresql_store_shares_its_table_and_others_keep_one_per_process(
    pg_session_url: str,
) -> None:
    schema = f"idem_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_session_url)
    try:
        await migrate(conn, schema)
    finally:
        await conn.close()
    stores = [await PostgresEventStore.connect(pg_session_url, schema=schema) for _ in range(2)]
    try:
        first, second = (open_idempotency_keys(store) for store in stores)
        assert await first.claim("k", body(1))
        assert not await second.claim("k", body(2))
    finally:
        for store in stores:
            await store.close()
    assert isinstance(open_idempotency_keys(MemoryEventStore()), MemoryIdempotencyKeys)
