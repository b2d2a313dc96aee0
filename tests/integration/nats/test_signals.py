"""Live signals on core NATS: offers per region and heartbeats."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from adapters.nats.signals import (
    JobOffer,
    NodeHeartbeat,
    compute_offer_subject,
    publish_heartbeat,
    publish_offer,
    subscribe_heartbeats,
    subscribe_offers,
)


def offer(job_id: str, region: str) -> JobOffer:
    return JobOffer(
        job_id=job_id,
        region=region,
        workload_kind="matmul",
        max_price_base_units=1000,
        redundancy=2,
        deadline_ns=2,
        offered_at_ns=1,
    )


async def test_offers_reach_subscribers_of_their_region_only(nc: Client) -> None:
    europe = subscribe_offers(nc, "eu-west")
    first = asyncio.ensure_future(anext(europe))
    await asyncio.sleep(0.1)
    await publish_offer(nc, offer("job-us", "us.east"))
    await publish_offer(nc, offer("job-eu", "eu-west"))
    received = await asyncio.wait_for(first, 5)
    assert received.job_id == "job-eu"
    await europe.aclose()  # type: ignore[attr-defined]
    assert compute_offer_subject("us.east") == "flop.offer.us_east"


async def test_heartbeats_and_malformed_messages_are_skipped(nc: Client) -> None:
    beats = subscribe_heartbeats(nc)
    first = asyncio.ensure_future(anext(beats))
    await asyncio.sleep(0.1)
    await nc.publish("flop.hb.bogus", b"not json")
    beat = NodeHeartbeat(node_id="node1", region="eu", sent_at_ns=5, gpus_total=8, gpus_busy=3)
    await publish_heartbeat(nc, beat)
    assert await asyncio.wait_for(first, 5) == beat
    await beats.aclose()  # type: ignore[attr-defined]
