"""Liveness commands through the ledger service (``domain.services.handlers_liveness``):
given validators probing from regions and an active node, when probers report and anyone
closes the epoch, then the node's uptime, RTT by region and reputation follow the majority."""

from __future__ import annotations

import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.liveness import LivenessEpoch
from domain.node import Node
from domain.policy import RULES_V2, LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, b64, make_validator_keys
from proofs import bls
from proofs.identity import Identity
from tests.liveness_helpers import (
    assigned_probers,
    close_epoch,
    current_epoch,
    register_prober,
    report,
    run_epoch,
)

NODE = Identity.from_seed(bytes([141]) * 32)
REGIONS = ("eu-west", "eu-west", "us-east", "us-east", "ap-south")
VALIDATORS = [make_validator_keys(140 + i) for i in range(len(REGIONS))]
KEYS = {k.identity.id: k for k in VALIDATORS}


async def _network(policy: LedgerPolicy | None = None) -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=policy or LedgerPolicy())
    for keys, region in zip(VALIDATORS, REGIONS, strict=True):
        await register_prober(net, keys, stake=2_000, region=region)
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    return net


async def _node(net: LocalNetwork) -> Node:
    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None
    return node


async def _probers(net: LocalNetwork, epoch: int) -> list[ValidatorKeys]:
    ids = await assigned_probers(net, epoch, NODE.id, list(KEYS))
    return [KEYS[v] for v in ids]


async def test_an_epoch_its_probers_see_up_records_the_node_up_with_its_rtts() -> None:
    net = await _network()
    before = (await _node(net)).reputation_bps(net.now_ns, net.policy)
    seen = {v: {NODE.id: (True, 2_000 + i)} for i, v in enumerate(KEYS)}
    epoch = await run_epoch(net, KEYS, seen)

    node = await _node(net)
    assert (node.uptime.epochs_up, node.uptime.epochs_down, node.uptime.last_epoch) == (
        1,
        0,
        epoch,
    )
    regions = {KEYS[v].identity.id: r for v, r in zip(KEYS, REGIONS, strict=True)}
    probers = await assigned_probers(net, epoch, NODE.id, list(KEYS))
    assert set(node.uptime.rtt_by_region) == {regions[v] for v in probers}
    assert node.reputation_bps(net.now_ns, net.policy) > before
    closed = await get_aggregate(net.store, LivenessEpoch, LivenessEpoch.stream_id(epoch))
    assert closed is not None and closed.closed


async def test_probers_seeing_the_node_down_record_it_down_and_lower_its_reputation() -> None:
    net = await _network()
    before = (await _node(net)).reputation_bps(net.now_ns, net.policy)
    await run_epoch(net, KEYS, {v: {NODE.id: (False, 0)} for v in KEYS})
    node = await _node(net)
    assert (node.uptime.epochs_up, node.uptime.epochs_down) == (0, 1)
    assert node.reputation_bps(net.now_ns, net.policy) < before


async def test_a_validator_not_assigned_to_the_node_is_refused() -> None:
    net = await _network()
    epoch = current_epoch(net)
    assigned = await assigned_probers(net, epoch, NODE.id, list(KEYS))
    outsider = next(k for v, k in KEYS.items() if v not in assigned)
    with pytest.raises(Rejection) as info:
        await report(net, outsider, epoch, {NODE.id: (False, 0)})
    assert info.value.code == "liveness_not_assigned"


async def test_a_prober_reports_an_epoch_once() -> None:
    net = await _network()
    epoch = current_epoch(net)
    prober = (await _probers(net, epoch))[0]
    await report(net, prober, epoch, {NODE.id: (True, 1_000)})
    with pytest.raises(Rejection) as info:
        await report(net, prober, epoch, {NODE.id: (False, 0)})
    assert info.value.code == "liveness_already_reported"


async def test_reports_two_epochs_late_and_closings_before_the_next_epoch_ends_are_refused() -> (
    None
):
    net = await _network()
    epoch = current_epoch(net)
    first, second = (await _probers(net, epoch))[:2]
    await report(net, first, epoch, {NODE.id: (True, 1_000)})
    with pytest.raises(Rejection) as info:
        await net.run(net.operator, "liveness.close", {"epoch": epoch})
    assert info.value.code == "liveness_epoch_not_over"
    net.now_ns = (epoch + 2) * net.policy.liveness_epoch_ns
    with pytest.raises(Rejection) as info:
        await report(net, second, epoch, {NODE.id: (True, 1_000)})
    assert info.value.code == "liveness_report_out_of_epoch"
    await close_epoch(net, epoch)
    with pytest.raises(Rejection) as info:
        await net.run(net.operator, "liveness.close", {"epoch": epoch})
    assert info.value.code == "liveness_epoch_closed"
    # one report alone decided nothing
    assert (await _node(net)).uptime.last_epoch == -1


async def test_a_validator_owned_by_the_nodes_owner_never_probes_it() -> None:
    net = await _network()
    own = make_validator_keys(149)
    await net.deposit(own.identity, 2_000)  # rules v4: it registers with its stake
    await net.run(
        own.identity,
        "validator.register",
        {
            "owner": NODE.id,
            "bls_public_key": b64(own.bls_public),
            "proof_of_possession": b64(bls.pop_prove(own.bls_secret)),
            "stake": 2_000,
        },
    )
    epoch = current_epoch(net)
    everyone = [*KEYS, own.identity.id]
    for later in range(8):
        assigned = await assigned_probers(net, epoch + later, NODE.id, everyone)
        assert len(assigned) == net.policy.liveness_probers
        assert own.identity.id not in assigned


async def test_liveness_epochs_need_rules_v3() -> None:
    net = await _network(LedgerPolicy(rules_version=RULES_V2))
    with pytest.raises(Rejection) as info:
        await report(net, VALIDATORS[0], current_epoch(net), {NODE.id: (True, 1)})
    assert info.value.code == "liveness_needs_rules_v3"
