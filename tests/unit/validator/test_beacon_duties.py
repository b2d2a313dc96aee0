"""The validator's beacon duties (``validator.state``): contribute to an open epoch whose
snapshot names it, once; close an epoch past its deadline; nothing for an outsider."""

from __future__ import annotations

from adapters.store.memory import MemoryEventStore
from domain.policy import SECOND_NS, LedgerPolicy
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from validator.state import CLOSE, CONTRIBUTE, LedgerView

NODE, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (131, 132))
VALIDATORS = [make_validator_keys(130 + i) for i in range(3)]
OUTSIDER = make_validator_keys(139)
SLACK_NS = SECOND_NS // 2


async def _view_with_open_epoch() -> tuple[LocalNetwork, LedgerView]:
    net = LocalNetwork.create(MemoryEventStore(), policy=LedgerPolicy(validator_stake_min=500))
    await net.deposit(NODE, 100_000)
    await net.register_active_node(NODE, region="eu-west", price=10, stake=50_000)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 10_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=100)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, b"\x07" * 32, beacon=False)
    await net.contribute_beacon(VALIDATORS[0])
    view = LedgerView()
    for record in await net.store.read_all(1, 10_000):
        view.apply(record)
    return net, view


async def test_a_snapshot_validator_contributes_once_and_an_outsider_never() -> None:
    net, view = await _view_with_open_epoch()
    pending = view.compute_beacon_duties(VALIDATORS[1].identity.id, net.now_ns, SLACK_NS)
    assert [d.action for d in pending] == [CONTRIBUTE]
    assert view.compute_beacon_duties(VALIDATORS[0].identity.id, net.now_ns, SLACK_NS) == []
    assert view.compute_beacon_duties(OUTSIDER.identity.id, net.now_ns, SLACK_NS) == []


async def test_past_the_deadline_every_validator_closes_the_epoch() -> None:
    _net, view = await _view_with_open_epoch()
    assert view.beacon is not None and view.beacon.open_epoch is not None
    late_ns = view.beacon.open_epoch.deadline_ns + SLACK_NS + 1
    for keys in (VALIDATORS[0], OUTSIDER):
        duties = view.compute_beacon_duties(keys.identity.id, late_ns, SLACK_NS)
        assert [d.action for d in duties] == [CLOSE]
