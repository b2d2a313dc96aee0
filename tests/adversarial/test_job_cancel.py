"""``job.cancel`` (issue 17, rules v5) moves money: a consumer gets its escrow back from a job
no node holds. Played with valid keys: the escrow comes back exactly once, to the consumer
alone; nobody else cancels, nothing is cancelled once claimed (the node's work would go
unpaid), a cancelled job cannot be claimed, and the audit (re-execution included) accepts
the history."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection, RejectionCode, Unauthorized
from domain.job import CANCELLED, Job
from domain.ledger import escrow_account, user_account
from domain.policy import RULES_V4, LedgerPolicy
from domain.services.queries import get_aggregate, get_balances
from flopledger.network import LocalNetwork
from proofs.identity import Identity
from tests.adversarial._harness import LOG_FEE, POLICY, get_money_total
from validator.audit import AuditOptions
from validator.audit_run import StoreSource, run_audit

CONSUMER, THIEF, NODE = (Identity.from_seed(bytes([i]) * 32) for i in (171, 172, 173))
REGION = "eu-west"
FUNDS = 50_000
MAX_PRICE = 2_000


async def funded(policy: LedgerPolicy = POLICY) -> LocalNetwork:
    net = await LocalNetwork.start(MemoryEventStore(), policy=policy)
    await net.deposit(CONSUMER, FUNDS)
    await net.deposit(THIEF, FUNDS)
    return net


async def consumer_account(net: LocalNetwork) -> tuple[int, int]:
    account = (await get_balances(net.store))[user_account(CONSUMER.id)]
    return account.balance, account.debits_pending


async def cancel(net: LocalNetwork, actor: Identity, job_id: str) -> None:
    await net.run(actor, "job.cancel", {"job_id": job_id})


async def assert_audit_clean(net: LocalNetwork) -> None:
    options = AuditOptions(trusted_operators=frozenset(net.policy.operators))
    report = await run_audit(StoreSource(net.store, "memory:"), options)
    assert report.ok, report.failure


async def test_the_escrow_comes_back_exactly_and_only_once() -> None:
    net = await funded()
    before = await consumer_account(net)
    job_id = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    assert await consumer_account(net) == (FUNDS, MAX_PRICE)
    await cancel(net, CONSUMER, job_id)
    assert await consumer_account(net) == before == (FUNDS, 0)
    escrow = (await get_balances(net.store))[escrow_account(job_id)]
    assert (escrow.balance, escrow.credits_pending) == (0, 0)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == CANCELLED
    head = await net.store.head()
    with pytest.raises(Rejection) as again:
        await cancel(net, CONSUMER, job_id)
    assert again.value.code == RejectionCode.JOB_CANCELLED
    assert await net.store.head() == head
    assert await consumer_account(net) == (FUNDS, 0)
    assert await get_money_total(net) == 0
    await assert_audit_clean(net)


async def test_someone_else_cannot_cancel_the_consumers_job() -> None:
    net = await funded()
    job_id = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    with pytest.raises(Unauthorized) as refused:
        await cancel(net, THIEF, job_id)
    assert refused.value.code == RejectionCode.NOT_THE_CONSUMER
    assert await consumer_account(net) == (FUNDS, MAX_PRICE)
    thief = (await get_balances(net.store))[user_account(THIEF.id)]
    assert thief.balance == FUNDS


async def test_a_claimed_job_cannot_be_cancelled_and_a_cancelled_one_cannot_be_claimed() -> None:
    net = await funded()
    await net.deposit(NODE, 5_000 + LOG_FEE)
    await net.register_active_node(NODE, region=REGION, price=400, stake=5_000)
    claimed = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    await net.run(NODE, "job.claim", {"job_id": claimed, "node_id": NODE.id})
    with pytest.raises(Rejection) as refused:
        await cancel(net, CONSUMER, claimed)
    assert refused.value.code == RejectionCode.JOB_CLAIMED
    cancelled = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    await cancel(net, CONSUMER, cancelled)
    with pytest.raises(Rejection) as late_claim:
        await net.run(NODE, "job.claim", {"job_id": cancelled, "node_id": NODE.id})
    assert late_claim.value.code == RejectionCode.JOB_CANCELLED
    assert await consumer_account(net) == (FUNDS, MAX_PRICE)  # the claimed job's escrow
    assert await get_money_total(net) == 0
    await assert_audit_clean(net)


async def test_a_job_released_back_to_the_market_can_be_cancelled() -> None:
    net = await funded()
    await net.deposit(NODE, 5_000 + LOG_FEE)
    await net.register_active_node(NODE, region=REGION, price=400, stake=5_000)
    job_id = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.run(NODE, "job.release", {"job_id": job_id, "reason": "shutting down"})
    await cancel(net, CONSUMER, job_id)
    assert await consumer_account(net) == (FUNDS, 0)  # handed back at once: no release fee
    assert await get_money_total(net) == 0
    await assert_audit_clean(net)


async def test_an_expired_job_is_refunded_not_cancelled() -> None:
    net = await funded()
    job_id = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE, deadline_s=10)
    net.advance(11)
    await net.run(THIEF, "job.expire", {"job_id": job_id})
    with pytest.raises(Rejection) as refused:
        await cancel(net, CONSUMER, job_id)
    assert refused.value.code == RejectionCode.JOB_REFUNDED
    assert await consumer_account(net) == (FUNDS, 0)


async def test_rules_v4_have_no_cancel() -> None:
    net = await funded(LedgerPolicy(rules_version=RULES_V4))
    job_id = await net.submit_job(CONSUMER, region=REGION, max_price=MAX_PRICE)
    with pytest.raises(Rejection) as refused:
        await cancel(net, CONSUMER, job_id)
    assert refused.value.code == RejectionCode.RULES_V5_REQUIRED
    assert await consumer_account(net) == (FUNDS, MAX_PRICE)  # held until the deadline


@settings(max_examples=20, deadline=None)
@given(
    prices=st.lists(st.integers(1, FUNDS // 4), min_size=1, max_size=4),
    cancelled=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_cancelling_any_of_several_jobs_returns_exactly_their_escrow(
    prices: list[int], cancelled: list[bool]
) -> None:
    """Money conserved: after cancelling some of its jobs the consumer holds exactly the
    escrow of the others, whatever the prices and the order."""

    async def play() -> None:
        net = await funded()
        jobs = []
        for price in prices:
            net.advance(1)
            jobs.append(await net.submit_job(CONSUMER, region=REGION, max_price=price))
        for job_id, cancel_it in zip(reversed(jobs), cancelled, strict=False):
            if cancel_it:
                await cancel(net, CONSUMER, job_id)
        kept = sum(p for p, c in zip(reversed(prices), cancelled, strict=False) if not c)
        assert await consumer_account(net) == (FUNDS, kept)
        assert await get_money_total(net) == 0

    asyncio.run(play())
