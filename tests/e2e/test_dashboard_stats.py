"""``/v1/stats`` (what the dashboard shows) against a ledger whose history is known: two nodes
in two regions, three validators, a consumer whose job settles by a BLS quorum, tree heads
sealed and anchored on a LiteSVM chain. The page and its static files are served at ``/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from adapters.solana.litesvm import LiteSvmGateway
from adapters.store.memory import MemoryEventStore
from api.app import create_app
from api.bootstrap import build_deps
from domain.job import Job
from domain.policy import LedgerPolicy
from domain.services.bridge_service import BridgeService
from domain.services.queries import get_aggregate, get_balances
from flopledger.network import LocalNetwork, make_validator_keys
from flopledger.settings import Settings
from operations.sealer import AnchorReceipt, Sealer
from proofs.identity import Identity

EU = Identity.from_seed(b"stats-node-eu".ljust(32, b"\0"))
US = Identity.from_seed(b"stats-node-us".ljust(32, b"\0"))
CONSUMER = Identity.from_seed(b"stats-consumer".ljust(32, b"\0"))
DEPOSITS = {EU: 10_000, US: 10_000, CONSUMER: 5_000}
VALIDATOR_DEPOSIT = 2_000
MAX_PRICE = 1_000


async def build_history(tmp_path: Path) -> tuple[LocalNetwork, str]:
    net = LocalNetwork.create(MemoryEventStore(), policy=LedgerPolicy())
    for identity, amount in DEPOSITS.items():
        await net.deposit(identity, amount)
    await net.register_active_node(EU, region="eu-west", price=400, stake=5_000)
    await net.register_active_node(US, region="us-east", price=400, stake=5_000)
    validators = [make_validator_keys(i) for i in range(3)]
    for keys in validators:
        await net.deposit(keys.identity, VALIDATOR_DEPOSIT)
        await net.register_validator(keys, stake=1_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=MAX_PRICE)
    await net.run(EU, "job.claim", {"job_id": job_id, "node_id": EU.id})
    await net.commit_result(EU, job_id, b"\x2a" * 32)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    await net.vote_round(job_id, [(k, True) for k in validators if k.identity.id in job.validators])
    chain = LiteSvmGateway.create()
    gateway = BridgeService(net.store, chain, net.operator, net.service, lambda: net.now_ns)

    async def anchor(size: int, root: bytes) -> AnchorReceipt:
        signature, slot = await gateway.anchor(size, root)
        return AnchorReceipt(signature, slot)

    sealer = Sealer(net.store, net.operator, clock_ns=lambda: net.now_ns, anchor=anchor)
    assert await sealer.seal_once(force=True) is not None
    return net, job_id


@pytest.fixture
async def served(tmp_path: Path) -> Any:
    net, job_id = await build_history(tmp_path)
    deps = build_deps(net.store, Settings(data_dir=tmp_path, operator_ids=(net.operator.id,)))
    deps.clock_ns = lambda: net.now_ns
    return net, job_id, deps


@pytest.fixture
def client(served: Any) -> Iterator[TestClient]:  # type: ignore[type-arg,unused-ignore]
    _net, _job_id, deps = served
    with TestClient(create_app(deps)) as http:
        yield http


async def test_stats_match_the_history(served: Any, client: TestClient) -> None:  # type: ignore[type-arg,unused-ignore]
    net, job_id, _deps = served
    stats = client.get("/v1/stats").json()
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == "settled"
    assert {n["region"] for n in stats["nodes"]} == {"eu-west", "us-east"}
    eu = next(n for n in stats["nodes"] if n["id"] == EU.id)
    assert (eu["stake"], eu["state"], eu["trust"], eu["jobs_verified"]) == (5_000, "active", 1.0, 1)
    us = next(n for n in stats["nodes"] if n["id"] == US.id)
    assert us["trust"] is None
    assert len(stats["validators"]) == 3
    assert stats["jobs_by_state"] == {"settled": 1} and stats["jobs_total"] == 1
    assert stats["jobs_by_kind"] == {"matmul": 1}
    verification = stats["verification"]
    assert verification["jobs_verified"] == 1 and verification["jobs_rejected"] == 0
    assert verification["verdicts_passed"] >= 2 and verification["verdicts_failed"] == 0
    ledger = stats["ledger"]
    assert ledger["deposited"] == sum(DEPOSITS.values()) + 3 * VALIDATOR_DEPOSIT
    assert ledger["escrow_held"] == 0
    paid = {p.role: 0 for p in job.payouts}
    for payout in job.payouts:
        paid[payout.role] += payout.amount
    assert ledger["paid_to_providers"] == paid["provider"]
    assert ledger["paid_to_validators"] == paid.get("validator", 0)
    assert ledger["paid_to_treasury"] == paid.get("treasury", 0)
    balances = await get_balances(net.store)
    assert sum(a.balance for a in balances.values()) == 0
    head = await net.store.head()
    assert stats["log"]["position"] == head.position
    assert stats["log"]["tree_heads"] == 1 and stats["log"]["sealed_size"] > 0
    (anchor,) = stats["log"]["anchors"]
    assert anchor["size"] == stats["log"]["sealed_size"] and anchor["chain_signature"]
    assert sum(b["settled"] for b in stats["throughput"]) == 1
    assert stats["recent_events"][0]["position"] == head.position


async def test_stats_follow_new_records(served: Any, client: TestClient) -> None:  # type: ignore[type-arg,unused-ignore]
    net, _job_id, _deps = served
    before = client.get("/v1/stats").json()
    await net.submit_job(CONSUMER, region="us-east", max_price=MAX_PRICE)
    after = client.get("/v1/stats").json()
    assert after["jobs_total"] == before["jobs_total"] + 1
    assert after["jobs_by_state"].get("submitted") == 1
    assert after["ledger"]["escrow_held"] == MAX_PRICE
    assert after["log"]["position"] > before["log"]["position"]


def test_the_page_and_its_files_are_served(client: TestClient) -> None:  # type: ignore[type-arg,unused-ignore]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/dashboard.js" in page.text and 'id="count-jobs"' in page.text
    for name in ("dashboard.js", "dashboard.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "/" not in client.get("/schema/openapi.json").json()["paths"]
