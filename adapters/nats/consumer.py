"""Reading the mirror: verified replay and durable subscribers, yielding Record objects.

For validators, the audit tool and third-party subscribers. Every message is checked as it
is read: its stream sequence is the record's position, its payload hashes to the record's
hash, its ``prev_hash`` is the hash of the message before, and its header hash agrees. The
first message that fails raises ``ChainBroken`` naming the stream sequence.

``replay`` uses an ordered push consumer (the fastest way through a stream with nats-py)
from sequence 1 or from a checkpoint (a ``Head``: position and hash already trusted).
``DurableSubscriber`` is a durable pull consumer with explicit acks for long-running
subscribers: it resumes where its acks stopped, across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Mapping

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from adapters.nats.codec import (
    EVENT_STREAM,
    DecodeError,
    decode_header_hash,
    decode_record_payload,
)
from adapters.nats.connection import nats_errors
from adapters.nats.errors import ChainBroken
from domain.records import GENESIS_HASH, Head, Record, compute_record_hash

REPLAY_IDLE_TIMEOUT_S = 10.0
REPLAY_PENDING_MSGS_MAX = 100_000
REPLAY_BUFFER_MSGS_MAX = 10_000
DURABLE_ACK_WAIT_S = 30.0
DURABLE_MAX_ACK_PENDING = 10_000
FETCH_BATCH_MAX = 1000
FETCH_TIMEOUT_S = 1.0


class ChainVerifier:
    """Checks records one after another from an anchor (genesis or a trusted checkpoint)."""

    def __init__(self, stream: str = EVENT_STREAM, anchor: Head | None = None) -> None:
        self.stream = stream
        self.head = anchor or Head(position=0, hash=GENESIS_HASH)

    def verify_message(
        self, sequence: int, payload: bytes, headers: Mapping[str, str] | None
    ) -> Record:
        """Decode and check the message at ``sequence``; it must follow ``self.head``."""
        if sequence != self.head.position + 1:
            self._broken(sequence, f"expected sequence {self.head.position + 1} next")
        record = verify_self_contained(self.stream, sequence, payload, headers)
        if record.prev_hash != self.head.hash:
            self._broken(sequence, "prev_hash is not the hash of the message before")
        self.head = Head(position=sequence, hash=record.hash)
        return record

    def _broken(self, sequence: int, reason: str) -> None:
        raise ChainBroken(self.stream, sequence, reason)


def verify_self_contained(
    stream: str, sequence: int, payload: bytes, headers: Mapping[str, str] | None
) -> Record:
    """Check what one message proves alone: it is a record at ``sequence`` that hashes right."""
    try:
        record = decode_record_payload(payload)
    except DecodeError as exc:
        raise ChainBroken(stream, sequence, str(exc)) from exc
    if record.position != sequence:
        raise ChainBroken(stream, sequence, f"payload says position {record.position}")
    if compute_record_hash(record.prev_hash, record.body()) != record.hash:
        raise ChainBroken(stream, sequence, "hash does not match the record's content")
    header_hash = decode_header_hash(headers)
    if header_hash is not None and header_hash != record.hash:
        raise ChainBroken(stream, sequence, "header hash differs from the payload's hash")
    return record


async def replay(
    nc: Client,
    *,
    checkpoint: Head | None = None,
    until: int | None = None,
    follow: bool = False,
    stream: str = EVENT_STREAM,
) -> AsyncIterator[Record]:
    """Yield verified records from sequence 1 (or after ``checkpoint``).

    Stops after ``until`` (default: the stream's last sequence when the replay starts),
    or never when ``follow`` is set. Raises ChainBroken at the first bad message.
    """
    js = nc.jetstream()
    verifier = ChainVerifier(stream, checkpoint)
    start = verifier.head.position + 1
    if not follow and until is None:
        async with nats_errors(nc, f"stream info {stream}"):
            until = (await js.stream_info(stream)).state.last_seq
    if until is not None and until < start:
        return
    buffer = _ReplayBuffer()
    async with nats_errors(nc, f"ordered consumer on {stream} from {start}"):
        subscription = await js.subscribe(
            "",
            stream=stream,
            cb=buffer.put,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            config=ConsumerConfig(opt_start_seq=start, filter_subject=None),
            pending_msgs_limit=REPLAY_PENDING_MSGS_MAX,
        )
    try:
        while True:
            msg = buffer.pop()
            if msg is None:
                async with nats_errors(nc, f"replay {stream} at {verifier.head.position + 1}"):
                    await buffer.wait(None if follow else REPLAY_IDLE_TIMEOUT_S)
                continue
            sequence = msg.metadata.sequence.stream
            yield verifier.verify_message(sequence, msg.data, msg.headers)
            if until is not None and sequence >= until:
                return
    finally:
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()


class _ReplayBuffer:
    """Messages handed over by the subscription callback (cheaper than ``next_msg``, which
    starts a task per message); the callback waits when ``REPLAY_BUFFER_MSGS_MAX`` are
    queued, which holds back the ordered consumer's flow control."""

    def __init__(self) -> None:
        self._messages: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()

    async def put(self, msg: Msg) -> None:
        self._messages.append(msg)
        self._arrived.set()
        if len(self._messages) >= REPLAY_BUFFER_MSGS_MAX:
            self._drained.clear()
            await self._drained.wait()

    def pop(self) -> Msg | None:
        if not self._messages:
            return None
        msg = self._messages.popleft()
        if not self._drained.is_set() and len(self._messages) <= REPLAY_BUFFER_MSGS_MAX // 2:
            self._drained.set()
        return msg

    async def wait(self, timeout_s: float | None) -> None:
        """Wait for the next message; asyncio.TimeoutError when none comes in ``timeout_s``."""
        self._arrived.clear()
        self._drained.set()
        if not self._messages:
            await asyncio.wait_for(self._arrived.wait(), timeout_s)


class Delivery:
    """One verified record from a durable subscriber; ack it once it is processed."""

    def __init__(self, record: Record, msg: Msg) -> None:
        self.record = record
        self._msg = msg

    @property
    def sequence(self) -> int:
        return self.record.position

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay_s: float | None = None) -> None:
        """Ask for redelivery (after ``delay_s``), e.g. when processing failed transiently."""
        await self._msg.nak(delay=delay_s)


class DurableSubscriber:
    """A durable pull consumer with explicit acks; each delivery is verified against the chain.

    A redelivered message is checked on its own; the first message after a start (or after
    a jump) is linked to the stream's message before it.
    """

    def __init__(self, nc: Client, js: JetStreamContext, name: str, stream: str) -> None:
        self._nc = nc
        self._js = js
        self.name = name
        self.stream = stream
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._head: Head | None = None

    @classmethod
    async def open(
        cls,
        nc: Client,
        name: str,
        *,
        from_position: int = 1,
        stream: str = EVENT_STREAM,
        ack_wait_s: float = DURABLE_ACK_WAIT_S,
        max_ack_pending: int = DURABLE_MAX_ACK_PENDING,
    ) -> DurableSubscriber:
        """Bind to durable consumer ``name``, creating it at ``from_position`` if new."""
        js = nc.jetstream()
        subscriber = cls(nc, js, name, stream)
        config = ConsumerConfig(
            durable_name=name,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            max_ack_pending=max_ack_pending,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(from_position, 1),
        )
        async with nats_errors(nc, f"durable consumer {name} on {stream}"):
            subscriber._subscription = await js.pull_subscribe(
                "", durable=name, stream=stream, config=config
            )
        return subscriber

    async def fetch(
        self, batch: int = FETCH_BATCH_MAX, timeout_s: float = FETCH_TIMEOUT_S
    ) -> list[Delivery]:
        """Up to ``batch`` verified deliveries; an empty list when nothing came in time."""
        assert self._subscription is not None, "open() first"
        async with nats_errors(self._nc, f"fetch from durable consumer {self.name}"):
            try:
                messages = await self._subscription.fetch(min(batch, FETCH_BATCH_MAX), timeout_s)
            except nats.errors.TimeoutError:
                return []
        deliveries = []
        for msg in messages:
            record = await self._verify(msg)
            deliveries.append(Delivery(record, msg))
        return deliveries

    async def deliveries(self, stop: asyncio.Event | None = None) -> AsyncIterator[Delivery]:
        """Verified deliveries forever (until ``stop`` is set), fetching in batches."""
        while stop is None or not stop.is_set():
            for delivery in await self.fetch():
                yield delivery

    async def close(self) -> None:
        """Stop fetching; the durable consumer and its ack floor stay on the server."""
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _verify(self, msg: Msg) -> Record:
        sequence = msg.metadata.sequence.stream
        if self._head is not None and sequence <= self._head.position:
            return verify_self_contained(self.stream, sequence, msg.data, msg.headers)
        if self._head is None or sequence != self._head.position + 1:
            self._head = await self._anchor_before(sequence)
        verifier = ChainVerifier(self.stream, self._head)
        record = verifier.verify_message(sequence, msg.data, msg.headers)
        self._head = verifier.head
        return record

    async def _anchor_before(self, sequence: int) -> Head:
        """The verified head at ``sequence - 1``, read from the stream (genesis before 1)."""
        if sequence == 1:
            return Head(position=0, hash=GENESIS_HASH)
        async with nats_errors(self._nc, f"get message {self.stream}#{sequence - 1}"):
            before = await self._js.get_msg(self.stream, sequence - 1)
        record = verify_self_contained(
            self.stream, sequence - 1, before.data or b"", before.headers
        )
        return Head(position=record.position, hash=record.hash)
