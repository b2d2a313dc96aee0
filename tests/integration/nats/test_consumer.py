"""Consumers of the mirror: verified replay and durable subscribers against a real server."""

from __future__ import annotations

import asyncio

import msgspec
import nats.js.api
import pytest
from nats.aio.client import Client

from adapters.nats.codec import (
    compute_event_subject,
    encode_record_headers,
    encode_record_payload,
)
from adapters.nats.consumer import DurableSubscriber, replay
from adapters.nats.errors import ChainBroken
from adapters.nats.relay import Relay, RelayConfig
from adapters.nats.stream import build_event_stream_config
from domain.records import GENESIS_HASH, Head, Record, RecordBody, make_record
from tests.integration.nats.helpers import build_store, fill_store, read_everything

SCRATCH_STREAM = "SCRATCH_EVENTS"
SCRATCH_SUBJECTS = ("scratch.>",)
BAD_SEQUENCE = 7

FETCH_ROUNDS_MAX = 50


async def mirror(nc: Client, count: int) -> list[Record]:
    store = await build_store(count)
    await Relay(store, nc, RelayConfig()).sync_once()
    return await read_everything(store)


def chain(count: int, *, tamper_at: int | None = None, fork_at: int | None = None) -> list[Record]:
    """``count`` chained records; ``tamper_at`` changes data after sealing (hash mismatch),
    ``fork_at`` seals one record on a wrong prev_hash (self-consistent but not chained)."""
    records: list[Record] = []
    prev = GENESIS_HASH
    for position in range(1, count + 1):
        body = RecordBody(position, f"s{position}", "job", 1, "JobSubmitted", b"x", "c", b"")
        record = make_record(b"\x01" * 32 if position == fork_at else prev, body)
        if position == tamper_at:
            record = msgspec.structs.replace(record, data=b"tampered")
        records.append(record)
        prev = record.hash
    return records


async def publish_scratch(nc: Client, records: list[Record]) -> None:
    """A test publisher on a scratch stream, bypassing the relay."""
    js = nc.jetstream()
    await js.add_stream(build_event_stream_config(name=SCRATCH_STREAM, subjects=SCRATCH_SUBJECTS))
    for record in records:
        subject = compute_event_subject(record).replace("flop.ev", "scratch", 1)
        await js.publish(
            subject, encode_record_payload(record), headers=encode_record_headers(record)
        )


async def test_replay_from_1_yields_the_stores_records(nc: Client) -> None:
    records = await mirror(nc, 3000)
    replayed = [record async for record in replay(nc)]
    assert replayed == records


async def test_replay_from_a_checkpoint(nc: Client) -> None:
    records = await mirror(nc, 3000)
    checkpoint = Head(position=2000, hash=records[1999].hash)
    replayed = [record async for record in replay(nc, checkpoint=checkpoint)]
    assert replayed == records[2000:]


async def test_replay_follows_new_records(nc: Client) -> None:
    store = await build_store(100)
    relay = Relay(store, nc, RelayConfig())
    await relay.sync_once()
    received: list[Record] = []

    async def follow() -> None:
        async for record in replay(nc, follow=True):
            received.append(record)
            if record.position == 150:
                return

    follower = asyncio.create_task(follow())
    await fill_store(store, 150)
    await relay.sync_once()
    await asyncio.wait_for(follower, 10)
    assert received == await read_everything(store)


async def test_replay_with_a_wrong_checkpoint_hash_names_the_next_sequence(nc: Client) -> None:
    await mirror(nc, 100)
    with pytest.raises(ChainBroken) as broken:
        async for _ in replay(nc, checkpoint=Head(position=50, hash=b"\x02" * 32)):
            pass
    assert broken.value.sequence == 51


@pytest.mark.parametrize("fault", ["tamper_at", "fork_at"])
async def test_replay_names_the_sequence_where_the_chain_breaks(nc: Client, fault: str) -> None:
    await publish_scratch(nc, chain(12, **{fault: BAD_SEQUENCE}))
    seen: list[int] = []
    with pytest.raises(ChainBroken) as broken:
        async for record in replay(nc, stream=SCRATCH_STREAM):
            seen.append(record.position)
    assert broken.value.sequence == BAD_SEQUENCE
    assert f"sequence {BAD_SEQUENCE}" in str(broken.value)
    assert seen == list(range(1, BAD_SEQUENCE))


async def fetch_exactly(subscriber: DurableSubscriber, count: int) -> list:
    """``fetch`` returns up to a batch (fewer under load): gather exactly ``count``."""
    gathered: list = []
    for _ in range(FETCH_ROUNDS_MAX):
        if len(gathered) >= count:
            break
        gathered += await subscriber.fetch(count - len(gathered))
    return gathered


async def test_durable_subscriber_resumes_after_its_acks(nc: Client) -> None:
    records = await mirror(nc, 500)
    first = await DurableSubscriber.open(nc, "auditor")
    deliveries = await fetch_exactly(first, 200)
    assert [d.record for d in deliveries] == records[:200]
    for delivery in deliveries:
        await delivery.ack()
    await first.close()
    await nc.flush()
    second = await DurableSubscriber.open(nc, "auditor")
    again = await fetch_exactly(second, 100)
    assert [d.sequence for d in again] == list(range(201, 301))
    await again[0].nak()
    await nc.flush()
    redelivered = await second.fetch(50)
    assert 201 in [d.sequence for d in redelivered]
    assert redelivered[-1].record == records[redelivered[-1].sequence - 1]
    await second.close()
    info = await nc.jetstream().consumer_info("FLOP_EVENTS", "auditor")
    assert info.config.ack_policy == nats.js.api.AckPolicy.EXPLICIT


async def test_durable_subscriber_iterates_deliveries(nc: Client) -> None:
    records = await mirror(nc, 50)
    subscriber = await DurableSubscriber.open(nc, "validator-1", from_position=11)
    seen: list[Record] = []
    async for delivery in subscriber.deliveries():
        seen.append(delivery.record)
        await delivery.ack()
        if delivery.sequence == 50:
            break
    await subscriber.close()
    assert seen == records[10:]


async def test_durable_subscriber_detects_a_broken_chain(nc: Client) -> None:
    await publish_scratch(nc, chain(12, fork_at=BAD_SEQUENCE))
    subscriber = await DurableSubscriber.open(nc, "checker", stream=SCRATCH_STREAM)
    with pytest.raises(ChainBroken) as broken:
        await subscriber.fetch(20)
    assert broken.value.sequence == BAD_SEQUENCE
    await subscriber.close()
