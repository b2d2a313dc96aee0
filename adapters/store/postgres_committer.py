"""Group commit for the PostgreSQL event store.

Concurrent ``append`` calls in one process are queued and committed by one task, many
commands per transaction (at most ``BATCH_COMMANDS_MAX`` commands and ``BATCH_EVENTS_MAX``
events, gathered for at most ``batch_wait_s``). Each transaction first locks the single
head row, which serialises position assignment across every process that writes the same
database; then it reads the head, the stored outcomes of the batch's command ids and the
current version of every stream it touches, decides each command in Python in queue order
(a stale expected version fails that command only), and inserts only the winners with one
statement. Commands whose transaction fails get StoreUnavailable and nothing of the batch
is written; retrying under the same command id is safe either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg

from adapters.store.postgres_schema import (
    COMMANDS_TABLE,
    EVENTS_TABLE,
    HEAD_TABLE,
    quote_ident,
)
from adapters.store.sealing import decode_outcome, encode_outcome, seal_command
from domain.errors import StoreUnavailable, VersionConflict
from domain.records import AppendOutcome, Head, Record, StreamAppend

# Bounds of one group-commit transaction.
BATCH_COMMANDS_MAX = 512
BATCH_EVENTS_MAX = 8192
# How long the committer may wait for more commands before committing a partial batch;
# 0 commits whatever is queued at once (commands queue up while a commit is in flight).
BATCH_WAIT_S_DEFAULT = 0.0
BATCH_WAIT_S_MAX = 0.01
# Commands waiting for the committer before ``append`` itself waits (backpressure).
QUEUE_COMMANDS_MAX = 8192

# What the driver raises when the server or the network fails. asyncpg's InternalClientError
# belongs here: it reports a protocol state broken by a connection the server cut.
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class Pending:
    """One queued command and the future its caller awaits."""

    __slots__ = ("command_id", "event_count", "future", "items", "metadata")

    def __init__(self, items: list[StreamAppend], command_id: str, metadata: bytes) -> None:
        self.items = items
        self.command_id = command_id
        self.metadata = metadata
        self.event_count = sum(len(item.events) for item in items)
        self.future: asyncio.Future[AppendOutcome] = asyncio.get_running_loop().create_future()


class GroupCommitter:
    """Owns the writer connection and the queue of commands waiting to be committed."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        schema: str,
        channel: str,
        *,
        batch_wait_s: float = BATCH_WAIT_S_DEFAULT,
    ) -> None:
        if not 0 <= batch_wait_s <= BATCH_WAIT_S_MAX:
            raise ValueError(f"batch_wait_s must be within [0, {BATCH_WAIT_S_MAX}]")
        self._connect = connect
        self._channel = channel
        self._batch_wait_s = batch_wait_s
        self._queue: asyncio.Queue[Pending | None] = asyncio.Queue(QUEUE_COMMANDS_MAX)
        self._conn: asyncpg.Connection | None = None
        self._closing = False
        s = quote_ident(schema)
        self._sql_lock = f"BEGIN; SELECT 1 FROM {s}.{HEAD_TABLE} WHERE id = 1 FOR UPDATE"
        # A statement of its own after the lock: in READ COMMITTED it then sees every commit
        # that happened before the lock was granted.
        self._sql_read = f"""
SELECT h.position, h.hash,
  ARRAY(SELECT c.outcome FROM {s}.{COMMANDS_TABLE} c WHERE c.command_id = ANY($1::text[])),
  ARRAY(SELECT coalesce((SELECT max(e.version) FROM {s}.{EVENTS_TABLE} e
                         WHERE e.stream_id = u.id), 0)
        FROM unnest($2::text[]) WITH ORDINALITY AS u(id, n) ORDER BY u.n)
FROM {s}.{HEAD_TABLE} h WHERE h.id = 1"""
        self._sql_write = f"""
WITH ev AS (
  INSERT INTO {s}.{EVENTS_TABLE} (position, stream_id, stream_type, version, event_type, data,
                                  command_id, metadata, prev_hash, hash)
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                       $6::bytea[], $7::text[], $8::bytea[], $9::bytea[], $10::bytea[])
), cmd AS (
  INSERT INTO {s}.{COMMANDS_TABLE} (command_id, first_position, outcome)
  SELECT * FROM unnest($11::text[], $12::bigint[], $13::bytea[])
)
UPDATE {s}.{HEAD_TABLE} SET position = $14::bigint, hash = $15::bytea WHERE id = 1
RETURNING pg_notify($16::text, $14::bigint::text)"""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="flop-committer")
        self._task.add_done_callback(self._fail_queued)

    async def submit(self, items: list[StreamAppend], command_id: str, metadata: bytes) -> Pending:
        """Queue one command; the caller awaits ``pending.future``."""
        if self._closing or self._task.done():
            raise StoreUnavailable("the PostgreSQL event store is closed")
        pending = Pending(items, command_id, metadata)
        await self._queue.put(pending)
        return pending

    async def close(self) -> None:
        """Commit what is queued, then stop and close the writer connection."""
        if self._closing:
            return
        self._closing = True
        if not self._task.done():
            await self._queue.put(None)
            with contextlib.suppress(Exception):
                await self._task
        if self._conn is not None:
            await self._drop_connection()

    async def _run(self) -> None:
        carry: list[Pending] = []
        while True:
            if not carry:
                first = await self._queue.get()
                if first is None:
                    return
                carry = [first]
            batch, stop = await self._fill(carry)
            carry = await self._commit(batch)
            if stop and not carry:
                return
            if stop:
                self._queue.put_nowait(None)

    async def _fill(self, batch: list[Pending]) -> tuple[list[Pending], bool]:
        """Add queued commands to ``batch`` within the bounds; True when close was asked."""
        events = sum(p.event_count for p in batch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_wait_s
        yielded = False
        while len(batch) < BATCH_COMMANDS_MAX and events < BATCH_EVENTS_MAX:
            try:
                pending = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                if not yielded:
                    # Let callers that are ready to run enqueue before we commit.
                    yielded = True
                    await asyncio.sleep(0)
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if pending is None:
                return batch, True
            batch.append(pending)
            events += pending.event_count
        return batch, False

    async def _commit(self, batch: list[Pending]) -> list[Pending]:
        """Commit one batch; return the commands deferred to the next (repeated ids)."""
        now: list[Pending] = []
        later: list[Pending] = []
        ids: set[str] = set()
        for pending in batch:
            if pending.future.done():
                continue  # the caller was cancelled before its command was sent
            (later if pending.command_id in ids else now).append(pending)
            ids.add(pending.command_id)
        if not now:
            return later
        try:
            decided = await self._transact(now)
        except DRIVER_ERRORS as exc:
            await self._drop_connection()
            for pending in now:
                _settle_error(pending, StoreUnavailable(f"event store append failed: {exc}"), exc)
            return later
        except BaseException as exc:
            # A bug: fail every caller of the batch loudly, then stop the committer.
            await self._drop_connection()
            for pending in now + later:
                _settle_error(pending, exc, None)
            raise
        for pending, result in zip(now, decided, strict=True):
            if not pending.future.done():
                if isinstance(result, AppendOutcome):
                    pending.future.set_result(result)
                else:
                    pending.future.set_exception(result)
        return later

    async def _transact(self, batch: list[Pending]) -> list[AppendOutcome | VersionConflict]:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        conn = self._conn
        await conn.execute(self._sql_lock)
        streams = sorted({item.stream_id for p in batch for item in p.items})
        position, head_hash, outcomes, versions = await conn.fetchrow(
            self._sql_read, [p.command_id for p in batch], streams
        )
        stored = {o.command_id: o for o in map(decode_outcome, outcomes)}
        current = dict(zip(streams, versions, strict=True))
        head = Head(position=position, hash=head_hash)
        decided: list[AppendOutcome | VersionConflict] = []
        records: list[Record] = []
        new_outcomes: list[AppendOutcome] = []
        for pending in batch:
            if pending.command_id in stored:
                decided.append(stored[pending.command_id])
                continue
            try:
                sealed, outcome = seal_command(
                    pending.items,
                    command_id=pending.command_id,
                    metadata=pending.metadata,
                    head=head,
                    current=current,
                )
            except VersionConflict as conflict:
                decided.append(conflict)
                continue
            records.extend(sealed)
            new_outcomes.append(outcome)
            current.update(outcome.stream_versions)
            head = Head(position=outcome.last_position, hash=outcome.head_hash)
            decided.append(outcome)
        if records:
            await conn.execute(
                self._sql_write, *_write_args(records, new_outcomes, head), self._channel
            )
            await conn.execute("COMMIT")
        else:
            await conn.execute("ROLLBACK")
        return decided

    async def _drop_connection(self) -> None:
        """Forget the writer connection after an error (a fresh one is opened on demand)."""
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), timeout=1.0)
        except (*DRIVER_ERRORS, asyncio.CancelledError):
            conn.terminate()

    def _fail_queued(self, _task: asyncio.Task[None]) -> None:
        """After the committer stopped, fail whatever is still queued."""
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if pending is not None and not pending.future.done():
                pending.future.set_exception(StoreUnavailable("the event store committer stopped"))


def _settle_error(pending: Pending, error: BaseException, cause: BaseException | None) -> None:
    if pending.future.done():
        return
    if cause is not None:
        error.__cause__ = cause
    pending.future.set_exception(error)


def _write_args(
    records: list[Record], outcomes: list[AppendOutcome], head: Head
) -> tuple[object, ...]:
    """The 15 arrays and scalars of the write statement (channel added by the caller)."""
    return (
        [r.position for r in records],
        [r.stream_id for r in records],
        [r.stream_type for r in records],
        [r.version for r in records],
        [r.event_type for r in records],
        [r.data for r in records],
        [r.command_id for r in records],
        [r.metadata for r in records],
        [r.prev_hash for r in records],
        [r.hash for r in records],
        [o.command_id for o in outcomes],
        [o.first_position for o in outcomes],
        [encode_outcome(o) for o in outcomes],
        head.position,
        head.hash,
    )
