"""Group commit for the PostgreSQL event store.

Concurrent ``append`` calls in one process are queued and committed by one task, many
commands per statement (at most ``BATCH_COMMANDS_MAX`` commands and ``BATCH_EVENTS_MAX``
events, gathered for at most ``batch_wait_s``). Each command is decided in Python, in queue
order (``postgres_plan``): a stale expected version fails that command only, and only the
winners are written.

Three ways to write a batch, one outcome:

- *from memory*: when the committer knows the head and every stream of the batch (from its
  own commits), it decides the batch on that knowledge and sends one autocommit statement
  that writes only if the head row still holds exactly the head the batch was decided on
  and none of the batch's command ids is stored (``CommitSql.write_if_head``). The head's
  hash names the whole chain, so a write that happened proves every decision of its batch,
  refusals included, was made on current data. One round trip per batch.
- *read*: otherwise read the head, the stored outcomes and the versions (one statement, one
  snapshot), decide, and write the same conditional way.
- *locked*: when a conditional write did not happen (another process appended, or a
  command id repeats), BEGIN, lock the head row (which serialises every writer process),
  read, decide, write, COMMIT.

One batch is at the server at a time. Sending the next batch, decided on the head the
one in flight will leave, before the first is answered was tried: on a two-core machine
it lowered throughput and raised latency (the second statement waits on the head row).
Tried again once the writer's plans were fixed (2026-12-01): on a second connection the
next batch's statement may reach the head row before the first one's and find the old
head, so its conditional write fails and is redone. Binary COPY of a batch's events
(BEGIN, head and commands, COPY, COMMIT) was measured too: per event no less CPU in
Python or in the backend than the one statement, for four more round trips.

Commands whose statement fails get StoreUnavailable and nothing of their batch is written
(or, if the connection died after the commit, all of it): retrying under the same command
id is safe either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import asyncpg

from adapters.store.chaining import decode_outcome
from adapters.store.postgres_plan import (
    CommitStats,
    Decision,
    Pending,
    Plan,
    decide,
    get_streams,
    get_write_args,
    resolve,
    settle_error,
)
from adapters.store.postgres_sql import CommitSql
from domain.errors import StoreUnavailable
from domain.records import AppendOutcome, Head, StreamAppend

# Bounds of one batch.
BATCH_COMMANDS_MAX = 512
BATCH_EVENTS_MAX = 8192
# How long the committer may wait for more commands before committing a partial batch;
# 0 commits whatever is queued at once (commands queue up while a commit is in flight).
BATCH_WAIT_S_DEFAULT = 0.0
BATCH_WAIT_S_MAX = 0.01
# Streams whose version the committer remembers between batches (least recently used go).
KNOWN_STREAMS_MAX = 100_000
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
_OPERATING_ERRORS = (StoreUnavailable, *DRIVER_ERRORS)


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
        check_batch_wait(batch_wait_s)
        self._connect = connect
        self._channel = channel
        self._batch_wait_s = batch_wait_s
        self._sql = CommitSql(schema)
        self._queue: asyncio.Queue[Pending | None] = asyncio.Queue(QUEUE_COMMANDS_MAX)
        self._conn: asyncpg.Connection | None = None
        self._closing = False
        # What this process knows without asking: the head after its last write and the
        # versions it gave streams. Exact while nobody else appends; a conditional write
        # proves that, and any doubt sends the batch to the locked path.
        self._known_head: Head | None = None
        self._known_versions: OrderedDict[str, int] = OrderedDict()
        self.stats = CommitStats()
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
        await self._drop_connection()

    async def _run(self) -> None:
        carry: list[Pending] = []
        batch: list[Pending] = []
        try:
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
        except BaseException as exc:
            # A bug: fail every caller we hold loudly, then stop the committer.
            for pending in [*carry, *batch]:
                settle_error(pending, exc, None)
            raise

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
        """Commit one batch; return the commands deferred to the next one (repeated ids)."""
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
            conn = await self._writer()
            decided = await self._transact_from_memory(conn, now)
            if decided is None:
                decided = await self._transact_read(conn, now)
            if decided is None:
                decided = await self._transact_locked(conn, now)
        except _OPERATING_ERRORS as exc:
            self._forget()
            await self._drop_connection()
            self._fail(now, exc)
            return later
        except BaseException:
            self._forget()
            raise
        resolve(now, decided)
        return later

    async def _transact_from_memory(
        self, conn: asyncpg.Connection, batch: list[Pending]
    ) -> list[Decision] | None:
        """Decide on what this process knows and write if that is still the truth; else None.

        A plan that writes nothing proves nothing (its refusals may rest on stale versions,
        or hide a stored command repeated), so then None too.
        """
        streams = get_streams(batch)
        if self._known_head is None or not all(s in self._known_versions for s in streams):
            return None
        current = {s: self._known_versions[s] for s in streams}
        plan = decide(batch, self._known_head, current, {})
        if not plan.records:
            return None
        self.stats.from_memory += 1
        args = get_write_args(plan, self._channel)
        if await conn.fetchval(self._sql.write_if_head, *args) != 1:
            self._forget()
            self.stats.redone += 1
            return None
        self._learn(plan)
        return plan.decided

    async def _transact_read(
        self, conn: asyncpg.Connection, batch: list[Pending]
    ) -> list[Decision] | None:
        """Read, decide, write if the head did not move; None: take the lock."""
        self.stats.read += 1
        head, current, stored = await self._read(conn, batch)
        self._learn_head(head)
        plan = decide(batch, head, current, stored)
        if plan.records:
            args = get_write_args(plan, self._channel)
            if await conn.fetchval(self._sql.write_if_head, *args) != 1:
                self._forget()
                return None
        self._learn(plan)
        return plan.decided

    async def _transact_locked(
        self, conn: asyncpg.Connection, batch: list[Pending]
    ) -> list[Decision]:
        """Lock the head row (serialising every writer process), read, decide, write."""
        self.stats.locked += 1
        await conn.execute(self._sql.lock)
        try:
            head, current, stored = await self._read(conn, batch)
            plan = decide(batch, head, current, stored)
            if plan.records:
                args = get_write_args(plan, self._channel)
                await conn.execute(self._sql.write, *args[:16])
                await conn.execute("COMMIT")
            else:
                await conn.execute("ROLLBACK")
        except BaseException:
            if not conn.is_closed():
                conn.terminate()  # the server rolls back; a fresh connection comes next time
            raise
        self._learn_head(head)
        self._learn(plan)
        return plan.decided

    async def _read(
        self, conn: asyncpg.Connection, batch: list[Pending]
    ) -> tuple[Head, dict[str, int], dict[str, AppendOutcome]]:
        streams = get_streams(batch)
        position, head_hash, outcomes, versions = await conn.fetchrow(
            self._sql.read, [p.command_id for p in batch], streams
        )
        stored = {o.command_id: o for o in map(decode_outcome, outcomes)}
        head = Head(position=position, hash=head_hash)
        return head, dict(zip(streams, versions, strict=True)), stored

    def _learn_head(self, head: Head) -> None:
        """A head read from the database: versions known from before it may be stale."""
        if head != self._known_head:
            self._known_versions.clear()
        self._known_head = head

    def _learn(self, plan: Plan) -> None:
        """Remember the head and the versions a plan leaves behind."""
        self._known_head = plan.head
        for stream_id, version in plan.current.items():
            self._known_versions[stream_id] = version
            self._known_versions.move_to_end(stream_id)
        while len(self._known_versions) > KNOWN_STREAMS_MAX:
            self._known_versions.popitem(last=False)

    def _forget(self) -> None:
        self._known_head = None
        self._known_versions.clear()

    async def _writer(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        return self._conn

    async def _drop_connection(self) -> None:
        """Forget the writer connection after an error (a fresh one is opened on demand)."""
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), timeout=1.0)
        except (*DRIVER_ERRORS, asyncio.CancelledError):
            conn.terminate()

    def _fail(self, batch: list[Pending], exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, StoreUnavailable) else f"append failed: {exc}"
        for pending in batch:
            settle_error(pending, StoreUnavailable(message), exc)

    def _fail_queued(self, _task: asyncio.Task[None]) -> None:
        """After the committer stopped, fail whatever is still queued."""
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if pending is not None and not pending.future.done():
                pending.future.set_exception(StoreUnavailable("the event store committer stopped"))


def check_batch_wait(batch_wait_s: float) -> None:
    """ValueError unless 0 <= batch_wait_s <= BATCH_WAIT_S_MAX."""
    if not 0 <= batch_wait_s <= BATCH_WAIT_S_MAX:
        raise ValueError(f"batch_wait_s must be within [0, {BATCH_WAIT_S_MAX}]")
