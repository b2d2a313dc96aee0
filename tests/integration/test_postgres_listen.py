"""Every subscriber of a PostgreSQL store waits on one shared LISTEN connection (issue 16,
item 8): many open streams cost the server one connection, a commit wakes them all, and the
connection closes with the last subscriber."""

from __future__ import annotations

import asyncio

import asyncpg

from adapters.store.postgres import PostgresEventStore
from domain.records import Record
from flopledger.cli import main
from tests.conftest_pg import pg_server_url, pg_url
from tests.contract.event_store_contract import stream

__all__ = ["pg_server_url", "pg_url"]

SUBSCRIBERS = 60
WAIT_S = 10


async def _backends(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return count - 1  # this one


async def _first_record(store: PostgresEventStore, started: asyncio.Event) -> Record:
    subscription = store.subscribe(1)
    try:
        next_record = asyncio.ensure_future(anext(subscription))
        await asyncio.sleep(0)
        started.set()
        return await next_record
    finally:
        await subscription.aclose()


async def test_many_subscribers_share_one_listening_connection(pg_url: str) -> None:
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    store = await PostgresEventStore.connect(pg_url)
    try:
        before = await _backends(pg_url)
        starts = [asyncio.Event() for _ in range(SUBSCRIBERS)]
        readers = [asyncio.create_task(_first_record(store, s)) for s in starts]
        await asyncio.wait_for(asyncio.gather(*(s.wait() for s in starts)), WAIT_S)
        for _ in range(100):  # until every subscriber has read the empty log and waits
            if store.listener.connections_opened == 1 and store.listener.subscribers == SUBSCRIBERS:
                break
            await asyncio.sleep(0.05)
        assert store.listener.subscribers == SUBSCRIBERS
        assert store.listener.connections_opened == 1
        during = await _backends(pg_url)
        assert during - before <= 1 + 8  # the listener, and at most the pool's own growth
        await store.append([stream("s", 0, b"one")], command_id="c1")
        records = await asyncio.wait_for(asyncio.gather(*readers), WAIT_S)
        assert {r.position for r in records} == {1}
        assert store.listener.subscribers == 0
        assert store.listener.connections_opened == 1
    finally:
        await store.close()
