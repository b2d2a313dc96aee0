"""PostgreSQL event store on asyncpg: the production adapter.

Appends go through the group committer (``postgres_committer``); reads use a connection
pool; every ``subscribe`` waits on one shared connection LISTENing on a channel that every
commit NOTIFYs (``postgres_listen``). The schema must have
been created by ``flopledger db migrate``: connecting to an unmigrated database raises
``SchemaNotMigrated`` saying so. Driver and network errors leave as StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg

from adapters.store.chaining import decode_outcome
from adapters.store.postgres_committer import (
    BATCH_WAIT_S_DEFAULT,
    DRIVER_ERRORS,
    GroupCommitter,
    check_batch_wait,
)
from adapters.store.postgres_listen import SharedListener
from adapters.store.postgres_plan import CommitStats
from adapters.store.postgres_schema import (
    COMMANDS_TABLE,
    EVENTS_TABLE,
    HEAD_TABLE,
    SNAPSHOTS_TABLE,
    check_schema,
    quote_ident,
)
from domain.errors import StoreUnavailable
from domain.ports import READ_ALL_LIMIT_MAX
from domain.records import AppendOutcome, Head, Record, Snapshot, StreamAppend, validate_appends

POOL_SIZE_MAX = 8
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
# A subscriber re-reads at least this often even without a notification (e.g. one that was
# lost while its listening connection was being replaced).
SUBSCRIBE_RECHECK_S = 1.0
# Every store of one schema notifies one channel; the position committed is the payload.
CHANNEL_PREFIX = "flopledger_events:"
# The writer's statements are planned on every execution. Left to itself, PostgreSQL switches a
# prepared statement to a generic plan after five runs and keeps it for the connection's life
# (until an analyze): planned while the tables are young, it scanned ``flop_commands`` whole
# for the batch's command ids, so that a commit cost grew with history (9 ms for 64 events at
# 13,000 commands, against 0.6 ms planned each time; planning a batch costs about 0.1 ms).
WRITER_SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}

_T = TypeVar("_T")
_COLUMNS = (
    "position, stream_id, stream_type, version, event_type, data, command_id, metadata, "
    "prev_hash, hash"
)


class PostgresEventStore:
    """The EventStore port on PostgreSQL (DESIGN.md, "Event store")."""

    def __init__(
        self,
        url: str,
        schema: str,
        pool: asyncpg.Pool,
        *,
        batch_wait_s: float,
    ) -> None:
        self._url = url
        self._schema = schema
        self._pool = pool
        self._channel = CHANNEL_PREFIX + schema
        self._closed = False
        self._committer = GroupCommitter(
            self._connect_writer, schema, self._channel, batch_wait_s=batch_wait_s
        )
        self._listener = SharedListener(
            self._connect_one, self._channel, (StoreUnavailable, *DRIVER_ERRORS)
        )
        s = quote_ident(schema)
        self._sql_all = (
            f"SELECT {_COLUMNS} FROM {s}.{EVENTS_TABLE} WHERE position >= $1 "
            "ORDER BY position LIMIT $2"
        )
        self._sql_stream = (
            f"SELECT {_COLUMNS} FROM {s}.{EVENTS_TABLE} WHERE stream_id = $1 AND version >= $2 "
            "ORDER BY version"
        )
        self._sql_stream_version = (
            f"SELECT coalesce(max(version), 0) FROM {s}.{EVENTS_TABLE} WHERE stream_id = $1"
        )
        self._sql_command = f"SELECT outcome FROM {s}.{COMMANDS_TABLE} WHERE command_id = $1"
        self._sql_head = f"SELECT position, hash FROM {s}.{HEAD_TABLE} WHERE id = 1"
        self._sql_save_snapshot = (
            f"INSERT INTO {s}.{SNAPSHOTS_TABLE} AS t (stream_id, version, state) "
            "VALUES ($1, $2, $3) ON CONFLICT (stream_id) DO UPDATE "
            "SET version = excluded.version, state = excluded.state "
            "WHERE excluded.version > t.version"
        )
        self._sql_get_snapshot = (
            f"SELECT stream_id, version, state FROM {s}.{SNAPSHOTS_TABLE} WHERE stream_id = $1"
        )

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        schema: str = "public",
        pool_size_max: int = POOL_SIZE_MAX,
        batch_wait_s: float = BATCH_WAIT_S_DEFAULT,
    ) -> PostgresEventStore:
        """Connect to a migrated database; SchemaNotMigrated if ``flopledger db migrate`` is due."""
        check_batch_wait(batch_wait_s)
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size_max,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                reset=_keep_session,
            )
        except DRIVER_ERRORS as exc:
            raise StoreUnavailable(f"cannot connect to the PostgreSQL event store: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await check_schema(conn, schema)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, DRIVER_ERRORS):
                raise StoreUnavailable(f"cannot check the event store schema: {exc}") from exc
            raise
        return cls(url, schema, pool, batch_wait_s=batch_wait_s)

    @property
    def pool(self) -> asyncpg.Pool:
        """The read pool (the Idempotency-Key table of ``adapters.store.idempotency`` shares it)."""
        return self._pool

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def commit_stats(self) -> CommitStats:
        """How the group committer has written batches so far."""
        return self._committer.stats

    @property
    def listener(self) -> SharedListener:
        """The one LISTEN connection every subscriber shares."""
        return self._listener

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        command_id: str,
        metadata: bytes = b"",
    ) -> AppendOutcome:
        items = validate_appends(appends)
        pending = await self._committer.submit(items, command_id, metadata)
        return await pending.future

    async def find_command(self, command_id: str) -> AppendOutcome | None:
        raw = await self._pooled(lambda c: c.fetchval(self._sql_command, command_id))
        return None if raw is None else decode_outcome(raw)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[Record]:
        rows = await self._pooled(lambda c: c.fetch(self._sql_stream, stream_id, from_version))
        return [Record(*row) for row in rows]

    async def get_stream_version(self, stream_id: str) -> int:
        version = await self._pooled(lambda c: c.fetchval(self._sql_stream_version, stream_id))
        return int(version)

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[Record]:
        limit = max(1, min(limit, READ_ALL_LIMIT_MAX))
        rows = await self._pooled(lambda c: c.fetch(self._sql_all, max(from_position, 1), limit))
        return [Record(*row) for row in rows]

    async def subscribe(self, from_position: int = 1) -> AsyncIterator[Record]:
        next_position = max(from_position, 1)
        woken = self._listener.add()  # one LISTEN connection per store, shared
        try:
            while True:
                woken.clear()
                batch = await self.read_all(next_position, READ_ALL_LIMIT_MAX)
                for record in batch:
                    yield record
                if batch:
                    next_position = batch[-1].position + 1
                    continue
                await self._listener.ensure()
                # A timeout only means "look again": the notification is a hint, the log is
                # the truth.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), SUBSCRIBE_RECHECK_S)
        finally:
            await self._listener.remove(woken)

    async def head(self) -> Head:
        row = await self._pooled(lambda c: c.fetchrow(self._sql_head))
        return Head(position=row[0], hash=row[1])

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._pooled(
            lambda c: c.execute(
                self._sql_save_snapshot, snapshot.stream_id, snapshot.version, snapshot.state
            )
        )

    async def get_snapshot(self, stream_id: str) -> Snapshot | None:
        row = await self._pooled(lambda c: c.fetchrow(self._sql_get_snapshot, stream_id))
        return None if row is None else Snapshot(stream_id=row[0], version=row[1], state=row[2])

    async def close(self) -> None:
        """Commit what is queued, then close every connection."""
        if self._closed:
            return
        self._closed = True
        await self._listener.close()
        await self._committer.close()
        await self._pool.close()

    async def _connect_writer(self) -> asyncpg.Connection:
        """The group committer's connection."""
        return await self._connect_one(WRITER_SERVER_SETTINGS)

    async def _connect_one(
        self, server_settings: dict[str, str] | None = None
    ) -> asyncpg.Connection:
        """A connection outside the pool (the committer's writer, the shared listener)."""
        try:
            return await asyncpg.connect(
                self._url,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                server_settings=server_settings,
            )
        except DRIVER_ERRORS as exc:
            raise StoreUnavailable(f"cannot connect to the PostgreSQL event store: {exc}") from exc

    async def _pooled(self, work: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
        """Run ``work`` on a pooled connection, translating driver errors."""
        if self._closed:
            raise StoreUnavailable("the PostgreSQL event store is closed")
        try:
            async with self._pool.acquire() as conn:
                return await work(conn)
        except DRIVER_ERRORS as exc:
            raise StoreUnavailable(f"event store read failed: {exc}") from exc


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The pool's reset: nothing. Its connections only read and insert, never changing session
    state (no LISTEN, no advisory lock, no SET: those use connections of their own), and
    asyncpg's default reset costs a round trip on every release (an open transaction is still
    rolled back by asyncpg before this runs)."""
