"""A three-node JetStream cluster on loopback (real nats-server processes, routes, R3 streams).

The relay keeps stream sequence = log position while records keep coming and a follower is
SIGKILLed and started again, then while the stream's leader is SIGKILLed; durable consumers
and checkpointed replays resume where they stopped with a node dead; the object store
(FLOP_OBJECTS, 3 replicas) keeps serving and taking objects with a node dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from nats.aio.client import Client

from adapters.nats.codec import EVENT_STREAM
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.consumer import DurableSubscriber, replay
from adapters.nats.errors import NatsError
from adapters.nats.objects import OBJECT_STREAM, ArtifactStore
from adapters.nats.relay import Relay, RelayConfig
from adapters.nats.stream import CLUSTER_REPLICAS
from adapters.store.memory import MemoryEventStore
from domain.records import Head, Record
from tests.integration.nats.cluster import NatsCluster
from tests.integration.nats.helpers import (
    assert_mirror_exact,
    build_store,
    fill_store,
    read_everything,
)

pytestmark = pytest.mark.slow

WAIT_TIMEOUT_S = 40.0
TEST_LOCK_TTL_S = 2.0
FIRST_EVENTS = 300
EVENTS_PER_TICK = 20
TICK_S = 0.02
PROGRESS_EVENTS = 200
CONSUMED_FIRST = 150
OBJECT_BYTES = 300_000
ELECTION_RETRY_S = 0.2
T = TypeVar("T")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "cluster") as running:
        yield running


@contextlib.asynccontextmanager
async def connected(cluster: NatsCluster, name: str) -> AsyncIterator[Client]:
    nc = await connect_nats(cluster.url, name=name)
    try:
        yield nc
    finally:
        await close_nats(nc)


async def test_relay_keeps_sequence_equal_position_through_dead_nodes(
    cluster: NatsCluster,
) -> None:
    store = await build_store(FIRST_EVENTS)
    async with connected(cluster, "relay") as nc:
        js = nc.jetstream()
        config = RelayConfig(replicas=CLUSTER_REPLICAS, lock_ttl_s=TEST_LOCK_TTL_S)
        relay = Relay(store, nc, config)
        stop, writing = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        writer = asyncio.create_task(_keep_writing(store, writing))
        try:
            await _wait_for(relay, task, FIRST_EVENTS)
            writing.set()
            leader = await cluster.get_stream_leader(js, EVENT_STREAM)
            follower = next(i for i in range(len(cluster.nodes)) if i != leader)
            cluster.kill(follower)
            await _wait_for(relay, task, relay.acked_position + PROGRESS_EVENTS)
            cluster.restart(follower)
            await _wait_for(relay, task, relay.acked_position + PROGRESS_EVENTS)

            cluster.kill(leader)
            await _wait_for(relay, task, relay.acked_position + PROGRESS_EVENTS)
            assert await cluster.get_stream_leader(js, EVENT_STREAM) != leader
            cluster.restart(leader)
            writing.clear()
            await writer
            await _wait_for(relay, task, (await store.head()).position)
        finally:
            stop.set()
            writing.clear()
            await asyncio.wait_for(asyncio.gather(task, writer, return_exceptions=True), 30)
        task.result()
        await assert_mirror_exact(js, await read_everything(store))


async def test_consumers_resume_from_their_checkpoints_with_a_node_dead(
    cluster: NatsCluster,
) -> None:
    store = await build_store(FIRST_EVENTS)
    records = await read_everything(store)
    async with connected(cluster, "relay") as nc:
        relay = Relay(store, nc, RelayConfig(replicas=CLUSTER_REPLICAS))
        assert await relay.sync_once() == FIRST_EVENTS
        js = nc.jetstream()
        subscriber = await DurableSubscriber.open(nc, "auditor")
        consumed = await _consume(subscriber, CONSUMED_FIRST)
        assert [d.position for d in consumed] == list(range(1, CONSUMED_FIRST + 1))
        await subscriber.close()
        # The node leading the consumer's replicas holds its ack floor: the others have it too.
        info = await js.consumer_info(EVENT_STREAM, "auditor")
        assert info.cluster is not None and info.cluster.leader
        cluster.kill(cluster.index_of(info.cluster.leader))

        resumed = await _through_election(lambda: DurableSubscriber.open(nc, "auditor"))
        rest = await _consume(resumed, FIRST_EVENTS - CONSUMED_FIRST)
        await resumed.close()
        assert [d.position for d in rest] == list(range(CONSUMED_FIRST + 1, FIRST_EVENTS + 1))
        checkpoint = Head(position=CONSUMED_FIRST, hash=records[CONSUMED_FIRST - 1].hash)
        replayed = await _through_election(
            lambda: _collect(replay(nc, checkpoint=checkpoint, until=FIRST_EVENTS))
        )
        assert replayed == records[CONSUMED_FIRST:]


async def test_the_object_store_survives_a_dead_node(cluster: NatsCluster) -> None:
    blobs = [hashlib.sha256(bytes([i])).digest() * (OBJECT_BYTES // 32) for i in range(3)]
    async with connected(cluster, "objects") as nc:
        objects = await ArtifactStore.open(nc, replicas=CLUSTER_REPLICAS)
        digests = [await objects.put(blob) for blob in blobs[:2]]
        leader = await cluster.get_stream_leader(nc.jetstream(), OBJECT_STREAM)
        cluster.kill(leader)
        assert [await _through_election(lambda d=d: objects.get(d)) for d in digests] == blobs[:2]
        # Two nodes of three still make a quorum: the store takes new objects.
        digests.append(await _through_election(lambda: objects.put(blobs[2])))
        cluster.restart(leader)
        cluster.kill((leader + 1) % len(cluster.nodes))
        assert [await _through_election(lambda d=d: objects.get(d)) for d in digests] == blobs


async def _through_election(operation: Callable[[], Awaitable[T]]) -> T:
    """``operation`` until it succeeds: while the dead node's streams elect a new leader
    (seconds), requests time out with NatsError, and a client retries them (bounded)."""
    deadline = asyncio.get_running_loop().time() + WAIT_TIMEOUT_S
    while True:
        try:
            return await operation()
        except NatsError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(ELECTION_RETRY_S)


async def _collect(records: AsyncIterator[Record]) -> list[Record]:
    return [record async for record in records]


async def _keep_writing(store: MemoryEventStore, writing: asyncio.Event) -> None:
    """Append ``EVENTS_PER_TICK`` events every ``TICK_S`` while ``writing`` is set."""
    await writing.wait()
    while writing.is_set():
        await fill_store(store, (await store.head()).position + EVENTS_PER_TICK, seed="live")
        await asyncio.sleep(TICK_S)


async def _wait_for(relay: Relay, task: asyncio.Task[None], position: int) -> None:
    async def poll() -> None:
        while relay.acked_position < position:
            if task.done():
                task.result()
                raise AssertionError("the relay stopped")
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT_TIMEOUT_S)


async def _consume(subscriber: DurableSubscriber, count: int) -> list[Head]:
    """Fetch and ack ``count`` deliveries (waiting out an election); their positions."""
    seen: list[Head] = []

    async def fetch_all() -> None:
        while len(seen) < count:
            batch = count - len(seen)
            for delivery in await _through_election(
                lambda batch=batch: subscriber.fetch(batch=batch)
            ):
                await delivery.ack()
                seen.append(Head(position=delivery.sequence, hash=delivery.record.hash))

    await asyncio.wait_for(fetch_all(), WAIT_TIMEOUT_S)
    return seen
