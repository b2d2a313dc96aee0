"""Group commit for the PostgreSQL event store.

Concurrent ``append`` calls in one process are queued and committed by one task, many
commands per transaction (at most ``BATCH_COMMANDS_MAX`` commands and ``BATCH_EVENTS_MAX``
events, gathered for at most ``batch_wait_s``). Each command is decided in Python, in
queue order, against the head and the stream versions: a stale expected version fails that
command only, and only the winners are written, with one statement.

Two paths, one outcome. The *optimistic* path decides on what the committer already knows
(the head after its own last commit, the versions it gave streams; else one unlocked read)
and writes with one autocommit statement that updates the head row only if it is still at
the position the batch was decided on and none of the batch's command ids is stored yet;
the events and commands are inserted only if that update happened. Any append by anyone
moves the head, so a successful write proves the decisions were made on current data. If
the write did not happen (another process appended, or a command id repeats), the batch
takes the *locked* path: BEGIN, lock the single head row (which serialises position
assignment across every process writing the database), read, decide, write, COMMIT.
Commands whose statement fails get StoreUnavailable and nothing of the batch is written;
retrying under the same command id is safe either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import asyncpg

from adapters.store.postgres_sql import CommitSql
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


Decision = AppendOutcome | VersionConflict


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
        check_batch_wait(batch_wait_s)
        self._connect = connect
        self._channel = channel
        self._batch_wait_s = batch_wait_s
        self._queue: asyncio.Queue[Pending | None] = asyncio.Queue(QUEUE_COMMANDS_MAX)
        self._conn: asyncpg.Connection | None = None
        self._closing = False
        self._sql = CommitSql(schema)
        # What this process knows without asking: the head after its last commit and the
        # versions it gave streams since. Exact while nobody else appends; a conditional write
        # (``write_if_head``) proves that, and any doubt sends the batch down the locked path.
        self._known_head: Head | None = None
        self._known_versions: OrderedDict[str, int] = OrderedDict()
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
        except StoreUnavailable as exc:
            await self._drop_connection()
            for pending in now:
                _settle_error(pending, StoreUnavailable(str(exc)), exc)
            return later
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

    async def _transact(self, batch: list[Pending]) -> list[Decision]:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        try:
            decided = await self._transact_optimistic(self._conn, batch)
            if decided is None:
                decided = await self._transact_locked(self._conn, batch)
        except BaseException:
            self._forget()
            raise
        return decided

    async def _transact_optimistic(
        self, conn: asyncpg.Connection, batch: list[Pending]
    ) -> list[Decision] | None:
        """One autocommit round trip when the known head still holds; None: take the lock."""
        streams = _streams_of(batch)
        plan: Plan | None = None
        if self._known_head is not None and all(s in self._known_versions for s in streams):
            current = {s: self._known_versions[s] for s in streams}
            plan = _decide(batch, self._known_head, current, {})
            if any(isinstance(d, VersionConflict) for d in plan.decided):
                # A refusal must be certain, and a refused command may be a stored one
                # repeated: decide again on what the database says.
                plan = None
        if plan is None:
            head, current, stored = await self._read(conn, batch, streams)
            self._learn_head(head)
            plan = _decide(batch, head, current, stored)
        if plan.records:
            written = await conn.fetchval(
                self._sql.write_if_head,
                *_write_args(plan),
                self._channel,
                plan.records[0].position - 1,
            )
            if written != 1:
                self._forget()
                return None
        self._learn(plan)
        return plan.decided

    async def _transact_locked(
        self, conn: asyncpg.Connection, batch: list[Pending]
    ) -> list[Decision]:
        """Lock the head row (serialising every writer process), read, decide, write."""
        streams = _streams_of(batch)
        await conn.execute(self._sql.lock)
        try:
            head, current, stored = await self._read(conn, batch, streams)
            plan = _decide(batch, head, current, stored)
            if plan.records:
                await conn.execute(self._sql.write, *_write_args(plan), self._channel)
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
        self, conn: asyncpg.Connection, batch: list[Pending], streams: list[str]
    ) -> tuple[Head, dict[str, int], dict[str, AppendOutcome]]:
        position, head_hash, outcomes, versions = await conn.fetchrow(
            self._sql.read, [p.command_id for p in batch], streams
        )
        stored = {o.command_id: o for o in map(decode_outcome, outcomes)}
        return (
            Head(position=position, hash=head_hash),
            dict(zip(streams, versions, strict=True)),
            stored,
        )

    def _learn_head(self, head: Head) -> None:
        """A head read from the database: versions known from before it may be stale."""
        if head != self._known_head:
            self._known_versions.clear()
        self._known_head = head

    def _learn(self, plan: Plan) -> None:
        """After a commit (or a certain refusal): remember the head and the versions seen."""
        self._known_head = plan.head
        for stream_id, version in plan.current.items():
            self._known_versions[stream_id] = version
            self._known_versions.move_to_end(stream_id)
        while len(self._known_versions) > KNOWN_STREAMS_MAX:
            self._known_versions.popitem(last=False)

    def _forget(self) -> None:
        self._known_head = None
        self._known_versions.clear()

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


def check_batch_wait(batch_wait_s: float) -> None:
    """ValueError unless 0 <= batch_wait_s <= BATCH_WAIT_S_MAX."""
    if not 0 <= batch_wait_s <= BATCH_WAIT_S_MAX:
        raise ValueError(f"batch_wait_s must be within [0, {BATCH_WAIT_S_MAX}]")


class Plan:
    """The decisions for one batch against one head and the stream versions."""

    __slots__ = ("current", "decided", "head", "outcomes", "records")

    def __init__(self, head: Head, current: dict[str, int]) -> None:
        self.head = head
        self.current = current
        self.decided: list[Decision] = []
        self.records: list[Record] = []
        self.outcomes: list[AppendOutcome] = []


def _streams_of(batch: list[Pending]) -> list[str]:
    return sorted({item.stream_id for p in batch for item in p.items})


def _decide(
    batch: list[Pending],
    head: Head,
    current: dict[str, int],
    stored: dict[str, AppendOutcome],
) -> Plan:
    """Each command in queue order: its stored outcome, its records, or its VersionConflict."""
    plan = Plan(head, dict(current))
    for pending in batch:
        if pending.command_id in stored:
            plan.decided.append(stored[pending.command_id])
            continue
        try:
            sealed, outcome = seal_command(
                pending.items,
                command_id=pending.command_id,
                metadata=pending.metadata,
                head=plan.head,
                current=plan.current,
            )
        except VersionConflict as conflict:
            plan.decided.append(conflict)
            continue
        plan.records.extend(sealed)
        plan.outcomes.append(outcome)
        plan.current.update(outcome.stream_versions)
        plan.head = Head(position=outcome.last_position, hash=outcome.head_hash)
        plan.decided.append(outcome)
    return plan


def _write_args(plan: Plan) -> tuple[object, ...]:
    """Parameters $1..$15 of the write statements (the caller adds the channel and head)."""
    records, outcomes = plan.records, plan.outcomes
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
        plan.head.position,
        plan.head.hash,
    )
