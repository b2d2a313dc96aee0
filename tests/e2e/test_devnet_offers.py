"""The devnet's offer publisher (``operations.offers``) on a real nats-server: a job
submitted after it started is announced on ``flop.offer.<region>``; jobs from before the
start are not replayed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.server import EmbeddedNatsServer
from adapters.nats.signals import JobOffer, subscribe_offers
from adapters.store.memory import MemoryEventStore
from domain.policy import LedgerPolicy
from flopledger.network import LocalNetwork
from operations.offers import OfferPublisher
from proofs.identity import Identity

CONSUMER = Identity.from_seed(b"offers-consumer".ljust(32, b"\0"))
NODE = Identity.from_seed(b"offers-node".ljust(32, b"\0"))
OFFER_TIMEOUT_S = 10.0
QUIET_S = 0.5


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    server = EmbeddedNatsServer(tmp_path / "nats")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await connect_nats(nats_url, name="offers-test")
    try:
        yield client
    finally:
        await close_nats(client)


async def test_jobs_opened_after_the_start_are_offered_in_their_region(nc: Client) -> None:
    net = LocalNetwork.create(MemoryEventStore(), policy=LedgerPolicy())
    await net.deposit(CONSUMER, 10_000)
    old_job = await net.submit_job(CONSUMER, region="eu-west", max_price=500)
    received: list[JobOffer] = []

    async def collect() -> None:
        async for offer in subscribe_offers(nc, None):
            received.append(offer)

    collector = asyncio.create_task(collect())
    stop = asyncio.Event()
    publisher = OfferPublisher(net.store, nc, clock_ns=lambda: net.now_ns)
    running = asyncio.create_task(publisher.run(stop))
    try:
        await asyncio.sleep(QUIET_S)  # the publisher has read the head
        job_id = await net.submit_job(CONSUMER, region="us-east", max_price=700)
        async with asyncio.timeout(OFFER_TIMEOUT_S):
            while not received:
                await asyncio.sleep(0.05)
        await asyncio.sleep(QUIET_S)
    finally:
        stop.set()
        await running
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    (offer,) = received
    assert (offer.job_id, offer.region, offer.workload_kind) == (job_id, "us-east", "matmul")
    assert offer.max_price_base_units == 700 and offer.job_id != old_job
    assert publisher.published == 1
