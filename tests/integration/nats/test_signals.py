"""Live signals on core NATS: offers per region and signed heartbeats."""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.client import Client

from adapters.nats.signals import (
    JobOffer,
    NodeHeartbeat,
    compute_heartbeat_subject,
    compute_offer_subject,
    publish_heartbeat,
    publish_offer,
    sign_heartbeat,
    subscribe_heartbeats,
    subscribe_offers,
)
from proofs.identity import Identity


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


async def test_signed_heartbeats_arrive_and_malformed_unsigned_or_forged_are_skipped(
    nc: Client,
) -> None:
    node, other = Identity.from_seed(bytes([191]) * 32), Identity.from_seed(bytes([192]) * 32)
    beats = subscribe_heartbeats(nc)
    first = asyncio.ensure_future(anext(beats))
    await asyncio.sleep(0.1)
    await nc.publish("flop.hb.bogus", b"not json")
    unsigned = NodeHeartbeat(node_id=node.id, region="eu", sent_at_ns=5, gpus_total=8, gpus_busy=3)
    await publish_heartbeat(nc, unsigned)
    redated = msgspec.structs.replace(sign_heartbeat(node, unsigned), sent_at_ns=6)
    await publish_heartbeat(nc, redated)
    # a beat signed by another node, published on this node's subject
    foreign = sign_heartbeat(other, msgspec.structs.replace(unsigned, node_id=other.id))
    await nc.publish(compute_heartbeat_subject(node.id), msgspec.json.encode(foreign))
    beat = sign_heartbeat(node, unsigned)
    await publish_heartbeat(nc, beat)
    assert await asyncio.wait_for(first, 5) == beat
    await beats.aclose()  # type: ignore[attr-defined]
