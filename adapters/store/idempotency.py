"""Idempotency-Key bindings (the ``IdempotencyKeys`` port): in memory, and in PostgreSQL.

``open_idempotency_keys(store)`` picks the one that fits the store: a PostgreSQL store shares
its table (``flop_idempotency_keys``, migration 2) with every API replica on the database, so
a key reused with another body is refused whichever replica each request reaches. Other
stores (SQLite, memory) get a per-process table, bounded by ``IDEMPOTENCY_KEYS_MAX``: one
process is their deployment. Both keep a binding for ``ttl_s`` (``IDEMPOTENCY_KEY_TTL_S``);
an expired key may be bound afresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import asyncpg

from adapters.store.postgres import PostgresEventStore
from adapters.store.postgres_committer import DRIVER_ERRORS
from adapters.store.postgres_schema import IDEMPOTENCY_TABLE, quote_ident
from domain.errors import StoreUnavailable
from domain.ports import IDEMPOTENCY_KEY_TTL_S, EventStore, IdempotencyKeys

IDEMPOTENCY_KEYS_MAX = 10_000
"""Keys one process remembers (the memory table); past it the least recently used go."""
PRUNE_EVERY_S = 60.0
"""How often (at most) a PostgreSQL table drops its expired keys, on a claim."""
PRUNE_ROWS_MAX = 10_000
"""Expired rows one prune deletes, so that a prune never holds a claim up for long."""
CLAIM_ATTEMPTS_MAX = 2


def open_idempotency_keys(store: EventStore) -> IdempotencyKeys:
    """The bindings table shared by every process of ``store`` where it can be."""
    if isinstance(store, PostgresEventStore):
        return PostgresIdempotencyKeys(store.pool, store.schema)
    return MemoryIdempotencyKeys()


class MemoryIdempotencyKeys:
    """One process's bindings: an LRU of ``capacity`` keys, each kept ``ttl_s``."""

    def __init__(
        self,
        capacity: int = IDEMPOTENCY_KEYS_MAX,
        *,
        ttl_s: float = IDEMPOTENCY_KEY_TTL_S,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity, self.ttl_s, self._clock_s = capacity, ttl_s, clock_s
        self._bound: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    async def claim(self, key: str, digest: bytes) -> bool:
        now = self._clock_s()
        known = self._bound.get(key)
        if known is not None and now - known[1] < self.ttl_s:
            self._bound.move_to_end(key)
            return known[0] == digest
        self._bound[key] = (digest, now)
        self._bound.move_to_end(key)
        while len(self._bound) > self.capacity:
            self._bound.popitem(last=False)
        return True


class PostgresIdempotencyKeys:
    """The bindings in the store's database, on the store's connection pool.

    A claim is one INSERT of a new key (the common case: one round trip); ``ON CONFLICT``
    rebinds only an expired key, so of two replicas claiming one key at once the database's
    unique key admits exactly one digest."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str = "public",
        *,
        ttl_s: float = IDEMPOTENCY_KEY_TTL_S,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool, self.ttl_s, self._clock_s = pool, ttl_s, clock_s
        table = f"{quote_ident(schema)}.{IDEMPOTENCY_TABLE}"
        self._sql_claim = (
            f"INSERT INTO {table} AS t (key, digest) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
            "SET digest = excluded.digest, created_at = now() "
            "WHERE t.created_at < now() - make_interval(secs => $3) RETURNING digest"
        )
        self._sql_get = f"SELECT digest FROM {table} WHERE key = $1"
        self._sql_prune = (
            f"DELETE FROM {table} WHERE key IN (SELECT key FROM {table} "
            "WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)"
        )
        self._pruned_at = clock_s()

    async def claim(self, key: str, digest: bytes) -> bool:
        # A second attempt only when the row expired and was pruned between the INSERT and
        # the SELECT: the key is free again, so the INSERT then takes it.
        for _ in range(CLAIM_ATTEMPTS_MAX):
            try:
                async with self._pool.acquire() as conn:
                    await self._prune_if_due(conn)
                    if await conn.fetchval(self._sql_claim, key, digest, self.ttl_s) is not None:
                        return True
                    bound = await conn.fetchval(self._sql_get, key)
            except DRIVER_ERRORS as exc:
                raise StoreUnavailable(f"Idempotency-Key claim failed: {exc}") from exc
            if bound is not None:
                return bool(bound == digest)
        raise StoreUnavailable(f"Idempotency-Key {key!r} kept expiring while it was claimed")

    async def _prune_if_due(self, conn: asyncpg.Connection) -> None:
        if self._clock_s() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = self._clock_s()
        await conn.execute(self._sql_prune, self.ttl_s, PRUNE_ROWS_MAX)
