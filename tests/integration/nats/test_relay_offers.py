"""``flopledger relay --offers``: jobs opened in the store are announced on flop.offer.<region>."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import msgspec
from nats.aio.client import Client

from adapters.nats.server import EmbeddedNatsServer
from adapters.nats.signals import JobOffer, compute_offer_subject
from adapters.store.sqlite import SqliteEventStore
from flopledger.network import LocalNetwork
from proofs.identity import Identity
from tests.integration.nats.test_relay_process import relay_env, spawn_relay

OFFER_WAIT_S = 2.0
SUBMISSIONS_MAX = 15
CONSUMER = Identity.from_seed(b"offer-consumer".ljust(32, b"\0"))


async def test_relay_with_offers_announces_jobs_in_their_region(
    tmp_path: Path, nats_server: EmbeddedNatsServer, nc: Client
) -> None:
    path = tmp_path / "store.sqlite3"
    store = await SqliteEventStore.open(path)
    net = LocalNetwork.create(store)
    await net.deposit(CONSUMER, 100_000)
    eu_offers: asyncio.Queue[JobOffer] = asyncio.Queue()

    async def on_offer(msg) -> None:  # type: ignore[no-untyped-def]
        await eu_offers.put(msgspec.json.decode(msg.data, type=JobOffer))

    await nc.subscribe(compute_offer_subject("eu-west"), cb=on_offer)
    relay = spawn_relay(
        relay_env(tmp_path),
        tmp_path / "relay.log",
        "--offers",
        "--store-url",
        f"sqlite:///{path}",
        "--nats-url",
        nats_server.url,
    )
    try:
        submitted: list[str] = []
        offer = None
        # The publisher starts at the log head when it starts: submit until one is announced.
        for _ in range(SUBMISSIONS_MAX):
            await net.submit_job(CONSUMER, region="us-east", max_price=10)
            submitted.append(await net.submit_job(CONSUMER, region="eu-west", max_price=10))
            try:
                offer = await asyncio.wait_for(eu_offers.get(), OFFER_WAIT_S)
                break
            except TimeoutError:
                continue
        assert offer is not None, (tmp_path / "relay.log").read_text()[-2000:]
        assert offer.job_id in submitted
        assert (offer.region, offer.workload_kind, offer.max_price_base_units) == (
            "eu-west",
            "matmul",
            10,
        )
    finally:
        relay.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(relay.wait, 30) == 0
        await store.close()
