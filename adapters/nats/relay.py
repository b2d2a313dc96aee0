"""The relay: mirrors the store's global log onto JetStream so that sequence N is position N.

Every record is published with ``Nats-Msg-Id`` = position and ``Nats-Expected-Last-Sequence``
= position - 1, up to ``window`` publishes in flight. The server stores a message only when
the stream ends exactly one before it, so a refused or lost publish can never leave a gap
or a duplicate: everything after it is refused too. After any error (and at start) the
relay re-syncs: it reads the stream's last sequence, checks that message's hash against
the store (a mismatch, or a stream longer than the store, is an alarm: ``MirrorDiverged``)
and publishes again from the next position. A stream found behind the store (a server that
lost acknowledged writes) is thereby healed from the store. While idle the relay checks
the tail every ``IDLE_CHECK_INTERVAL_S`` so that a server restarted on older data is
healed without waiting for new commits. Only the holder of the leader lock publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from adapters.nats.codec import (
    EVENT_STREAM,
    compute_event_subject,
    encode_record_header_block,
    encode_record_payload,
)
from adapters.nats.connection import describe_server
from adapters.nats.errors import LeadershipLost, MirrorDiverged, NatsError
from adapters.nats.leader import LOCK_TTL_S, LeaderLock
from adapters.nats.publisher import PipelinedPublisher, PublishAck
from adapters.nats.stream import (
    DEFAULT_REPLICAS,
    build_event_stream_config,
    ensure_event_stream,
    get_stream_tail,
)
from domain.ports import EventStore
from domain.records import Record

RELAY_WINDOW_MAX = 1024
STORE_BATCH_EVENTS_MAX = 2000
ACK_TIMEOUT_S = 5.0
IDLE_CHECK_INTERVAL_S = 1.0
RESYNC_BACKOFF_INITIAL_S = 0.05
RESYNC_BACKOFF_MAX_S = 5.0
STOP_FLUSH_TIMEOUT_S = 5.0
ERR_WRONG_LAST_SEQUENCE = 10071
SYNC_ONCE_ATTEMPTS_MAX = 5
RELAY_PROGRESS_LOG_EVENTS = 100_000

_log = structlog.get_logger("flopledger.nats.relay")

T = TypeVar("T")


class RelayConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How the relay publishes; every bound has a named default."""

    stream: str = EVENT_STREAM
    replicas: int = DEFAULT_REPLICAS
    window: int = RELAY_WINDOW_MAX
    ack_timeout_s: float = ACK_TIMEOUT_S
    lock_ttl_s: float = LOCK_TTL_S
    holder: str = ""


class RelayStats(msgspec.Struct, kw_only=True):
    """Counters for logs, tests and the benchmark."""

    published: int = 0
    resyncs: int = 0
    wrong_last_sequence: int = 0
    healed: int = 0


_InFlight = deque[tuple[int, "asyncio.Future[PublishAck]"]]


class _Resync(Exception):
    """Internal: stop the current pass and re-sync from the stream's tail."""


def default_holder() -> str:
    """A leader-lock holder id for this process: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Relay:
    """Follows ``store`` and publishes every record to the stream; see the module docstring."""

    def __init__(self, store: EventStore, nc: Client, config: RelayConfig | None = None) -> None:
        self._store = store
        self._nc = nc
        self._config = config or RelayConfig()
        if self._config.window < 1:
            raise ValueError("window must be >= 1")
        self._js: JetStreamContext = nc.jetstream()
        self._publisher = PipelinedPublisher(nc)
        self._acked = 0
        self.stats = RelayStats()

    @property
    def acked_position(self) -> int:
        """The last position JetStream acknowledged in this process (0 before the first)."""
        return self._acked

    async def run(self, stop: asyncio.Event) -> None:
        """Take the leader lock, mirror until ``stop`` is set; raise MirrorDiverged on alarm."""
        lock = LeaderLock(
            self._nc,
            self._js,
            holder=self._config.holder or default_holder(),
            ttl_s=self._config.lock_ttl_s,
            replicas=self._config.replicas,
        )
        await self._with_retries(stop, self._ensure_stream)
        while not stop.is_set():
            if not await self._with_retries(stop, lambda: lock.acquire(stop)):
                return
            try:
                await self._lead(lock, stop)
            except LeadershipLost as exc:
                _log.warning("relay_leadership_lost", reason=str(exc))
                continue
            finally:
                if stop.is_set():
                    await lock.release()

    async def sync_once(self) -> int:
        """Re-sync and publish everything the store holds now; return the last acked position.

        For tools, tests and the benchmark: no leader lock; returns when the stream has caught
        up; a refused publish or a lost ack re-syncs, up to ``SYNC_ONCE_ATTEMPTS_MAX`` times.
        """
        await self._ensure_stream()
        never = asyncio.Event()
        for attempt in range(1, SYNC_ONCE_ATTEMPTS_MAX + 1):
            try:
                await self._mirror(await self._resync(), never, stop_when_idle=True)
                return self._acked
            except _Resync as exc:
                self.stats.resyncs += 1
                if attempt == SYNC_ONCE_ATTEMPTS_MAX:
                    raise NatsError(describe_server(self._nc), "sync the mirror", str(exc)) from exc
        raise AssertionError("unreachable")

    async def _ensure_stream(self) -> None:
        config = build_event_stream_config(self._config.replicas, name=self._config.stream)
        await ensure_event_stream(self._nc, self._js, config)

    async def _lead(self, lock: LeaderLock, stop: asyncio.Event) -> None:
        holding = asyncio.create_task(lock.hold())
        mirroring = asyncio.create_task(self._mirror_until_stopped(stop))
        try:
            done, _ = await asyncio.wait({holding, mirroring}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (holding, mirroring):
                task.cancel()
            await asyncio.gather(holding, mirroring, return_exceptions=True)

    async def _mirror_until_stopped(self, stop: asyncio.Event) -> None:
        backoff_s = RESYNC_BACKOFF_INITIAL_S
        while not stop.is_set():
            before = self._acked
            try:
                await self._mirror(await self._resync(), stop)
            except (TimeoutError, _Resync, NatsError, nats.errors.Error, OSError) as exc:
                self.stats.resyncs += 1
                _log.warning(
                    "relay_resync",
                    server=describe_server(self._nc),
                    acked=self._acked,
                    reason=str(exc) or type(exc).__name__,
                )
                backoff_s = RESYNC_BACKOFF_INITIAL_S if self._acked > before else backoff_s
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff_s)
                backoff_s = min(RESYNC_BACKOFF_MAX_S, backoff_s * 2)

    async def _resync(self) -> int:
        """Check the stream's tail against the store; return the next position to publish."""
        tail = await get_stream_tail(self._nc, self._js, self._config.stream)
        head = await self._store.head()
        last = tail.last_sequence
        if last > head.position:
            raise MirrorDiverged(last, f"the stream ends at {last}, the store at {head.position}")
        if last > 0:
            records = await self._store.read_all(last, 1)
            if tail.last_hash != records[0].hash:
                carried = tail.last_hash.hex() if tail.last_hash else "none"
                raise MirrorDiverged(
                    last, f"message hash {carried} != store hash {records[0].hash.hex()}"
                )
        if last < self._acked:
            self.stats.healed += self._acked - last
            _log.error(
                "relay_stream_behind_healing",
                stream_last=last,
                acked=self._acked,
                lost=self._acked - last,
            )
        self._acked = last
        _log.info("relay_resumed", stream_last=last, store_head=head.position)
        return last + 1

    async def _mirror(
        self, start: int, stop: asyncio.Event, *, stop_when_idle: bool = False
    ) -> None:
        """Publish from ``start`` with at most ``window`` in flight until ``stop``.

        One task: acks are settled in order, opportunistically after each publish and fully
        before waiting for new commits, so publishes leave in bursts (one socket write for
        many messages). Raises _Resync or MirrorDiverged on the first bad ack.
        """
        inflight: _InFlight = deque()
        position = start
        await self._publisher.start()
        try:
            while not stop.is_set():
                batch = await self._store.read_all(position, STORE_BATCH_EVENTS_MAX)
                if not batch:
                    await self._settle_all(inflight)
                    if stop_when_idle:
                        return
                    if not await self._wait_for_commit(position, stop):
                        await self._check_tail_while_idle()
                    continue
                logged = self._acked // RELAY_PROGRESS_LOG_EVENTS
                await self._publish_batch(batch, inflight)
                position = batch[-1].position + 1
                if self._acked // RELAY_PROGRESS_LOG_EVENTS > logged:
                    _log.info("relay_progress", acked=self._acked, published=position - 1)
            await asyncio.wait_for(self._settle_all(inflight), STOP_FLUSH_TIMEOUT_S)
        finally:
            inflight.clear()
            self._publisher.cancel_all()

    async def _publish_batch(self, batch: list[Record], inflight: _InFlight) -> None:
        window = self._config.window
        publish = self._publisher.publish
        for record in batch:
            while len(inflight) >= window:
                await self._settle_oldest(inflight)
            future = await publish(
                compute_event_subject(record),
                encode_record_payload(record),
                encode_record_header_block(record),
            )
            inflight.append((record.position, future))
            while inflight and inflight[0][1].done():
                await self._settle_oldest(inflight)

    async def _settle_all(self, inflight: _InFlight) -> None:
        while inflight:
            await self._settle_oldest(inflight)

    async def _settle_oldest(self, inflight: _InFlight) -> None:
        """Wait for the oldest ack; it must name exactly the position's sequence."""
        position, future = inflight[0]
        if not future.done():
            timeout_s = self._config.ack_timeout_s
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout_s)
            except TimeoutError as exc:
                raise _Resync(f"no ack for position {position} in {timeout_s} s") from exc
            except nats.js.errors.APIError:
                pass
        try:
            ack = future.result()
        except nats.js.errors.APIError as exc:
            if exc.err_code == ERR_WRONG_LAST_SEQUENCE:
                self.stats.wrong_last_sequence += 1
            raise _Resync(f"publish of position {position} refused: {exc.description}") from exc
        if ack.seq != position:
            raise MirrorDiverged(
                ack.seq, f"position {position} acked at {ack.seq} (dup={ack.duplicate})"
            )
        inflight.popleft()
        self._acked = position
        self.stats.published += 1

    async def _wait_for_commit(self, position: int, stop: asyncio.Event) -> bool:
        """Wait for the store to reach ``position``: True on a commit, False on the idle tick."""
        records = self._store.subscribe(position)
        committed = asyncio.ensure_future(anext(records))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {committed, stopped},
                timeout=IDLE_CHECK_INTERVAL_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
            return bool(done)
        finally:
            for task in (committed, stopped):
                task.cancel()
            await asyncio.gather(committed, stopped, return_exceptions=True)
            aclose = getattr(records, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _check_tail_while_idle(self) -> None:
        tail = await get_stream_tail(self._nc, self._js, self._config.stream)
        if tail.last_sequence != self._acked:
            raise _Resync(f"stream ends at {tail.last_sequence}, relay acked {self._acked}")

    async def _with_retries(self, stop: asyncio.Event, action: Callable[[], Awaitable[T]]) -> T:
        backoff_s = RESYNC_BACKOFF_INITIAL_S
        while True:
            try:
                return await action()
            except NatsError as exc:
                _log.warning("relay_retry", error=str(exc))
                if stop.is_set():
                    raise
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff_s)
                backoff_s = min(RESYNC_BACKOFF_MAX_S, backoff_s * 2)
