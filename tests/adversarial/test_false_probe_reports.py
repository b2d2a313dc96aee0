"""Issue 15: a validator who reports false probe failures against an honest node is
outvoted. Liveness needs a majority of the node's assigned probers (and at least two): the
liar's "down" is one vote against two "up", so the node's epoch is recorded up, its uptime
and reputation do not suffer, and nothing is slashed. The liar cannot pile on either: it may
report only the nodes it is assigned, once per epoch, and the audit recomputes every close."""

from __future__ import annotations

import pytest

from domain.errors import Rejection
from domain.node import ACTIVE, Node
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from tests.adversarial._harness import get_money_total, start_network
from tests.forgery import replay
from tests.liveness_helpers import (
    assigned_probers,
    close_epoch,
    current_epoch,
    register_prober,
    report,
)

HONEST_NODE = Identity.from_seed(bytes([171]) * 32)
VALIDATORS = [make_validator_keys(170 + i) for i in range(5)]
KEYS = {k.identity.id: k for k in VALIDATORS}
REGION = "eu-west"


async def _network() -> LocalNetwork:
    net = await start_network()
    for keys in VALIDATORS:
        await register_prober(net, keys, stake=2_000, region=REGION)
    await net.deposit(HONEST_NODE, 10_000)
    await net.register_active_node(HONEST_NODE, region=REGION, price=400, stake=5_000)
    return net


async def _node(net: LocalNetwork) -> Node:
    node = await get_aggregate(net.store, Node, HONEST_NODE.id)
    assert node is not None
    return node


async def test_a_false_down_report_is_outvoted_and_slashes_nothing() -> None:
    net = await _network()
    before = await _node(net)
    epoch = current_epoch(net)
    liar, *honest = await assigned_probers(net, epoch, HONEST_NODE.id, list(KEYS))
    await report(net, KEYS[liar], epoch, {HONEST_NODE.id: (False, 0)})
    for validator_id in honest:
        await report(net, KEYS[validator_id], epoch, {HONEST_NODE.id: (True, 1_200)})
    await close_epoch(net, epoch)

    node = await _node(net)
    assert (node.uptime.epochs_up, node.uptime.epochs_down) == (1, 0)
    assert node.reputation_bps(net.now_ns, net.policy) >= before.reputation_bps(
        net.now_ns, net.policy
    )
    assert (node.state, node.slashed_total, node.stake) == (ACTIVE, 0, before.stake)
    assert await get_money_total(net) == 0
    replay(await net.store.read_all(1, 10_000))


async def test_the_liar_cannot_report_a_node_it_is_not_assigned_nor_report_twice() -> None:
    net = await _network()
    epoch = current_epoch(net)
    assigned = await assigned_probers(net, epoch, HONEST_NODE.id, list(KEYS))
    outsider = next(v for v in KEYS if v not in assigned)
    with pytest.raises(Rejection) as info:
        await report(net, KEYS[outsider], epoch, {HONEST_NODE.id: (False, 0)})
    assert info.value.code == "liveness_not_assigned"
    await report(net, KEYS[assigned[0]], epoch, {HONEST_NODE.id: (False, 0)})
    with pytest.raises(Rejection) as info:
        await report(net, KEYS[assigned[0]], epoch, {HONEST_NODE.id: (False, 0)})
    assert info.value.code == "liveness_already_reported"
    # alone, its word decides nothing: the epoch records no uptime either way
    await close_epoch(net, epoch)
    assert (await _node(net)).uptime.last_epoch == -1
