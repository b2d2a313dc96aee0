"""Group commit for the PostgreSQL event store.

Concurrent ``append`` calls in one process are queued and committed by one task, many
commands per statement (at most ``BATCH_COMMANDS_MAX`` commands and ``BATCH_EVENTS_MAX``
events, gathered for at most ``batch_wait_s``). Each command is decided in Python, in queue
order (``postgres_plan``): a stale expected version fails that command only, and only the
winners are written.

Three ways to write a batch, one outcome:

- *pipelined*: when the committer knows the head and every stream of the batch (from its
  own commits) and nothing conflicts, it decides the batch on that knowledge and sends one
  autocommit statement that writes only if the head row still holds exactly the head the
  batch was decided on (``CommitSql.write_if_head``). The next batch may be decided on the
  head this one will leave and sent on a second connection before this one is answered
  (``FLIGHTS_MAX``): the server holds it on the head row until the first commits. The
  head's hash names the whole chain, so a write that happened proves every decision of its
  batch was made on current data.
- *optimistic*: otherwise read the head, the stored outcomes and the versions (one
  statement, one snapshot), decide, and write the same conditional way.
- *locked*: when a conditional write did not happen (another process appended, or a
  command id repeats), BEGIN, lock the head row (which serialises every writer process),
  read, decide, write, COMMIT.

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

from adapters.store.postgres_plan import (
    CommitStats,
    Decision,
    Flight,
    Pending,
    Plan,
    decide,
    get_streams,
    get_write_args,
    resolve,
    settle_error,
)
from adapters.store.postgres_sql import CommitSql
from adapters.store.sealing import decode_outcome
from domain.errors import StoreUnavailable
from domain.records import AppendOutcome, Head, StreamAppend

# Bounds of one batch.
BATCH_COMMANDS_MAX = 512
BATCH_EVENTS_MAX = 8192
# How long the committer may wait for more commands before committing a partial batch;
# 0 commits whatever is queued at once (commands queue up while a commit is in flight).
BATCH_WAIT_S_DEFAULT = 0.0
BATCH_WAIT_S_MAX = 0.01
# Batches at the server at once: the one being committed and the one decided on its result.
FLIGHTS_MAX = 2
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
    """Owns the writer connections and the queue of commands waiting to be committed."""

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
        self._conns: list[asyncpg.Connection | None] = [None] * FLIGHTS_MAX
        self._closing = False
        self._flight: Flight | None = None  # the batch sent last
        self._landing: Flight | None = None  # the batch being settled
        # What this process knows without asking: the head after its last write (or the
        # one in flight) and the versions it gave streams. Exact while nobody else appends;
        # a conditional write proves that, and any doubt sends the batch to the locked path.
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
        """Commit what is queued, then stop and close the writer connections."""
        if self._closing:
            return
        self._closing = True
        if not self._task.done():
            await self._queue.put(None)
            with contextlib.suppress(Exception):
                await self._task
        for slot in range(FLIGHTS_MAX):
            await self._drop_connection(slot)

    async def _run(self) -> None:
        carry: list[Pending] = []
        batch: list[Pending] = []
        try:
            while True:
                if not carry:
                    first = await self._next_command()
                    if first is None:
                        break
                    carry = [first]
                batch, stop = await self._fill(carry)
                carry = await self._commit(batch)
                if stop and not carry:
                    break
                if stop:
                    self._queue.put_nowait(None)
            await self._land()
        except BaseException as exc:
            # A bug: fail every caller we hold loudly, then stop the committer.
            flights = [f.batch for f in (self._flight, self._landing) if f is not None]
            for pending in [*carry, *batch, *(p for b in flights for p in b)]:
                settle_error(pending, exc, None)
            raise

    async def _next_command(self) -> Pending | None:
        """The next queued command; lands the batch in flight if it is answered first."""
        while self._flight is not None and self._queue.empty():
            getter = asyncio.ensure_future(self._queue.get())
            done, _ = await asyncio.wait(
                {getter, self._flight.task}, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done:
                return getter.result()
            getter.cancel()  # the queue keeps any item the cancelled getter did not take
            await self._land()
        return await self._queue.get()

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
        """Send or commit one batch; return the commands deferred to the next one."""
        if self._flight is not None:
            # The write's check for stored ids cannot see a write not committed yet: a
            # command id that is in flight waits for it to land.
            in_flight = {p.command_id for p in self._flight.batch}
            if any(p.command_id in in_flight for p in batch):
                await self._land()
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
        plan = self._plan_from_memory(now)
        if plan is not None:
            await self._launch(now, plan)
        else:
            await self._land()
            await self._commit_now(now)
        return later

    def _plan_from_memory(self, batch: list[Pending]) -> Plan | None:
        """A plan on what this process knows, or None if it knows too little to be sure.

        Refusals in it are certain once its write happened (the write proves the knowledge
        was current); a plan that writes nothing proves nothing, so then None.
        """
        streams = get_streams(batch)
        if self._known_head is None or not all(s in self._known_versions for s in streams):
            return None
        plan = decide(batch, self._known_head, {s: self._known_versions[s] for s in streams}, {})
        return plan if plan.records else None

    async def _launch(self, batch: list[Pending], plan: Plan) -> None:
        """Send the batch's conditional write, then land the batch sent before it."""
        previous = self._flight
        slot = 0 if previous is None else (previous.slot + 1) % FLIGHTS_MAX
        try:
            conn = await self._writer(slot)
        except StoreUnavailable as exc:
            await self._land()
            self._fail(batch, exc)
            return
        task = asyncio.get_running_loop().create_task(
            conn.fetchval(self._sql.write_if_head, *get_write_args(plan, self._channel))
        )
        self._flight = Flight(batch, plan, slot, task)
        self.stats.pipelined += 1
        self.stats.overlapped += previous is not None
        self._learn(plan)
        if previous is not None:
            await self._land_before(previous)

    async def _land(self) -> None:
        """Wait for the batch in flight, if any, and settle it (redoing it if not written)."""
        flight, self._flight = self._flight, None
        if flight is None:
            return
        self._landing = flight
        if not await self._settle_flight(flight):
            await self._commit_now(flight.batch)
        self._landing = None

    async def _land_before(self, previous: Flight) -> None:
        """Settle ``previous``; if it was not written, the flight after it is void too."""
        self._landing = previous
        if not await self._settle_flight(previous):
            successor = self._flight
            if successor is not None:
                self.stats.voided += 1
                # Its connection must be idle before the redo may use connections again.
                await asyncio.wait([successor.task])
            await self._commit_now(previous.batch)
            if successor is not None:
                self._flight, self._landing = None, successor
                if not await self._settle_flight(successor):
                    await self._commit_now(successor.batch)
        self._landing = None

    async def _settle_flight(self, flight: Flight) -> bool:
        """Resolve the flight's callers if its write happened (or failed); False: redo it."""
        try:
            written = await flight.task
        except _OPERATING_ERRORS as exc:
            self._forget()
            await self._drop_connection(flight.slot)
            self._fail(flight.batch, exc)
            return True
        if written != 1:
            self._forget()
            self.stats.redone += 1
            return False
        resolve(flight.batch, flight.plan.decided)
        return True

    async def _commit_now(self, batch: list[Pending]) -> None:
        """Read, decide and write one batch with nothing in flight; settle its callers."""
        try:
            conn = await self._writer(0)
            decided = await self._transact_optimistic(conn, batch)
            if decided is None:
                decided = await self._transact_locked(conn, batch)
        except _OPERATING_ERRORS as exc:
            self._forget()
            await self._drop_connection(0)
            self._fail(batch, exc)
            return
        except BaseException:
            self._forget()
            raise
        resolve(batch, decided)

    async def _transact_optimistic(
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

    async def _writer(self, slot: int) -> asyncpg.Connection:
        conn = self._conns[slot]
        if conn is None or conn.is_closed():
            conn = self._conns[slot] = await self._connect()
        return conn

    async def _drop_connection(self, slot: int) -> None:
        """Forget a writer connection after an error (a fresh one is opened on demand)."""
        conn, self._conns[slot] = self._conns[slot], None
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
