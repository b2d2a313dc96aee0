"""Attack 6 of issue 14: claiming and never delivering is free.

A missed result window only reassigned the job, and nothing capped concurrent claims: three
Sybil nodes claimed a job in turn and vanished, so it expired after about 30 minutes with
zero slashes, and one node could hold every open job of the market at once. The rules: a
claim reserves a claim bond (and the slash it risks) of bonded stake, and a missed window
forfeits the bond to the consumer; a release inside the window costs the share of the bond
for the time held; a node's open claims are bounded by its stake and by its devices.
"""

from __future__ import annotations

import pytest

from domain.errors import Rejection
from domain.job import EXPIRED, REFUNDED, SUBMITTED, Job
from domain.ledger import stake_account, user_account
from domain.node import Node
from domain.policy import BPS, LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork
from proofs.identity import Identity
from tests.adversarial._harness import LOG_FEE, get_balance, get_money_total, start_network

CONSUMER = Identity.from_seed(bytes([101]) * 32)
SYBILS = [Identity.from_seed(bytes([102 + i]) * 32) for i in range(3)]
HOARDER = Identity.from_seed(bytes([110]) * 32)
CONSUMER_FUNDS = 50_000
MAX_PRICE = 1_000
SYBIL_STAKE = 2_000
REGION = "eu-west"


def _claim_bond(policy: LedgerPolicy, max_price: int) -> int:
    return max(policy.claim_bond_min, max_price * policy.claim_bond_bps // BPS)


async def _job(net: LocalNetwork, job_id: str) -> Job:
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    return job


async def _stake(net: LocalNetwork, node_id: str) -> int:
    node = await get_aggregate(net.store, Node, node_id)
    assert node is not None
    return node.stake


async def _sybil_network() -> LocalNetwork:
    net = await start_network()
    for sybil in SYBILS:
        await net.deposit(sybil, SYBIL_STAKE + LOG_FEE)
        await net.register_active_node(sybil, region=REGION, price=400, stake=SYBIL_STAKE)
    await net.deposit(CONSUMER, CONSUMER_FUNDS)
    return net


async def test_three_sybils_that_claim_and_vanish_each_pay_their_bond_to_the_consumer() -> None:
    net = await _sybil_network()
    job_id = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)

    for sybil in SYBILS:
        await net.run(sybil, "job.claim", {"job_id": job_id, "node_id": sybil.id})
        net.advance(net.policy.result_window_ns / 1e9 + 1)
        await net.run(CONSUMER, "job.expire", {"job_id": job_id})

    job = await _job(net, job_id)
    assert job.state in (EXPIRED, REFUNDED)
    assert await get_balance(net, user_account(CONSUMER.id)) > CONSUMER_FUNDS
    bond = _claim_bond(net.policy, MAX_PRICE)
    assert bond > 0
    for sybil in SYBILS:
        assert await _stake(net, sybil.id) == SYBIL_STAKE - bond
        assert await get_balance(net, stake_account(sybil.id)) == SYBIL_STAKE - bond
    # The escrow came back whole, and every missed window paid its bond on top.
    assert await get_balance(net, user_account(CONSUMER.id)) == CONSUMER_FUNDS + 3 * bond
    assert await get_money_total(net) == 0


async def test_one_gpu_holds_one_claim_at_a_time() -> None:
    net = await _sybil_network()
    first = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    second = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    sybil = SYBILS[0]
    await net.run(sybil, "job.claim", {"job_id": first, "node_id": sybil.id})

    with pytest.raises(Rejection) as info:
        await net.run(sybil, "job.claim", {"job_id": second, "node_id": sybil.id})

    assert info.value.code == "claim_capacity_reached"
    assert (await _job(net, second)).state == SUBMITTED
    # Handing the first job back frees the device for the second.
    await net.run(sybil, "job.release", {"job_id": first})
    await net.run(sybil, "job.claim", {"job_id": second, "node_id": sybil.id})
    assert (await _job(net, second)).node_id == sybil.id
    assert await get_money_total(net) == 0


async def test_many_gpus_on_little_stake_hold_only_what_the_stake_covers() -> None:
    """A node registering 16 GPUs on the minimum stake cannot claim 16 jobs: each open claim
    reserves its possible slash and its claim bond of the bonded stake."""
    net = await start_network()
    stake = net.policy.node_stake_min
    await net.deposit(HOARDER, stake + LOG_FEE)
    await net.register_active_node(HOARDER, gpus=16, stake=stake, price=400, region=REGION)
    await net.deposit(CONSUMER, CONSUMER_FUNDS)
    jobs = [await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE) for _ in range(16)]

    claimed, refusals = 0, []
    for job_id in jobs:
        try:
            await net.run(HOARDER, "job.claim", {"job_id": job_id, "node_id": HOARDER.id})
            claimed += 1
        except Rejection as refused:
            refusals.append(refused.code)

    assert claimed < 16
    reserve = stake * net.policy.slash_bps // BPS + _claim_bond(net.policy, MAX_PRICE)
    assert claimed == stake // reserve
    assert set(refusals) == {"stake_below_claim_reserve"}
    assert await get_money_total(net) == 0


async def test_a_release_late_in_the_window_costs_the_bond_for_the_time_held() -> None:
    """Releasing is no free way to hold a job: late in the window it costs about what
    vanishing costs; at once, nothing."""
    net = await _sybil_network()
    job_id = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    window_s = net.policy.result_window_ns // 1_000_000_000

    early, late = SYBILS[0], SYBILS[1]
    await net.run(early, "job.claim", {"job_id": job_id, "node_id": early.id})
    await net.run(early, "job.release", {"job_id": job_id})
    assert await _stake(net, early.id) == SYBIL_STAKE
    assert await get_balance(net, user_account(CONSUMER.id)) == CONSUMER_FUNDS

    await net.run(late, "job.claim", {"job_id": job_id, "node_id": late.id})
    net.advance(window_s * 9 // 10)
    await net.run(late, "job.release", {"job_id": job_id})

    assert await _stake(net, late.id) < SYBIL_STAKE
    fee = _claim_bond(net.policy, MAX_PRICE) * 9 // 10
    assert await _stake(net, late.id) == SYBIL_STAKE - fee
    assert await get_balance(net, user_account(CONSUMER.id)) == CONSUMER_FUNDS + fee
    assert await get_money_total(net) == 0
