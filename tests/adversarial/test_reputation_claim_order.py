"""Issue 15: reputation orders claims. A node that misses result windows and is seen down by
its probers claims later than a reliable node of the same region: the reliable node may
claim a new job the moment it is offered, the flaky one is refused
(``claim_too_early_for_region``) until its offset within the tier has passed, so the job goes
to the reliable node. The tier order never changes (a node of another region group still
waits its two staggers), and the audit recomputes the order from the log."""

from __future__ import annotations

import pytest

from domain.errors import Rejection
from domain.job import CLAIMED, Job
from domain.node import Node
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from tests.adversarial._harness import get_money_total, start_network
from tests.forgery import replay
from tests.liveness_helpers import register_prober, run_epoch

RELIABLE, FLAKY, FAR, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (161, 162, 163, 164))
VALIDATORS = [make_validator_keys(160 + i) for i in range(3)]
KEYS = {k.identity.id: k for k in VALIDATORS}
REGION = "eu-west"
MAX_PRICE = 1_000
RESULT = b"\x05" * 32


async def _network() -> LocalNetwork:
    net = await start_network()
    for keys in VALIDATORS:
        await register_prober(net, keys, stake=2_000, region=REGION)
    for node, region in ((RELIABLE, REGION), (FLAKY, REGION), (FAR, "us-east")):
        await net.deposit(node, 10_000)
        await net.register_active_node(node, region=region, price=400, stake=5_000)
    await net.deposit(CONSUMER, 100_000)
    return net


async def _reputation(net: LocalNetwork, node_id: str) -> int:
    node = await get_aggregate(net.store, Node, node_id)
    assert node is not None
    return node.reputation_bps(net.now_ns, net.policy)


async def _make_flaky(net: LocalNetwork) -> None:
    """The reliable node delivers twice; the flaky one claims twice and vanishes, and its
    probers see it down while the reliable node is up."""
    for _ in range(2):
        job = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
        await net.run(RELIABLE, "job.claim", {"job_id": job, "node_id": RELIABLE.id})
        await net.commit_result(RELIABLE, job, RESULT)
        await net.vote_round(job, [(keys, True) for keys in VALIDATORS])
    for _ in range(2):
        job = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
        net.advance(net.policy.region_stagger_ns / 1e9)  # whatever its reputation by now
        await net.run(FLAKY, "job.claim", {"job_id": job, "node_id": FLAKY.id})
        net.advance(net.policy.result_window_ns / 1e9 + 1)
        await net.run(CONSUMER, "job.expire", {"job_id": job})
    seen = {v: {RELIABLE.id: (True, 1_000), FLAKY.id: (False, 0)} for v in KEYS}
    await run_epoch(net, KEYS, seen)


async def test_a_node_whose_reputation_fell_claims_later_than_a_reliable_one() -> None:
    net = await _network()
    await _make_flaky(net)
    assert await _reputation(net, FLAKY.id) < await _reputation(net, RELIABLE.id)

    job_id = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    with pytest.raises(Rejection) as info:
        await net.run(FLAKY, "job.claim", {"job_id": job_id, "node_id": FLAKY.id})
    assert info.value.code == "claim_too_early_for_region"
    await net.run(RELIABLE, "job.claim", {"job_id": job_id, "node_id": RELIABLE.id})

    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and (job.state, job.node_id) == (CLAIMED, RELIABLE.id)
    assert await get_money_total(net) == 0
    replay(await net.store.read_all(1, 10_000))  # the audit recomputes the order


async def test_the_flaky_node_still_claims_within_its_tier_before_any_other_tier() -> None:
    net = await _network()
    await _make_flaky(net)
    job_id = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    net.advance(net.policy.region_stagger_ns / 1e9 - 0.001)  # just short of the next tier
    with pytest.raises(Rejection) as info:
        await net.run(FAR, "job.claim", {"job_id": job_id, "node_id": FAR.id})
    assert info.value.code == "claim_too_early_for_region"
    await net.run(FLAKY, "job.claim", {"job_id": job_id, "node_id": FLAKY.id})
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.node_id == FLAKY.id
    replay(await net.store.read_all(1, 10_000))
