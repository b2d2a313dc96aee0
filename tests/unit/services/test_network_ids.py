"""Issue 16, item 9: every envelope names its network, and a ledger under rules v4 refuses a
command signed for another network (or for none), writing nothing; older rules do not ask."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.policy import RULES_V3, RULES_V4, LedgerPolicy, find_policy_problem
from flopledger.network import GENESIS_NS, LocalNetwork, encode_genesis_body
from proofs.envelope import ForeignNetwork, sign_command
from proofs.identity import Identity

CONSUMER = Identity.from_seed(b"net-consumer".ljust(32, b"\0"))
DEVNET = LedgerPolicy(network_id="devnet-a")


async def _run(net: LocalNetwork, actor: Identity, kind: str, body: dict[str, Any], **sign: Any):  # type: ignore[no-untyped-def]
    envelope = sign_command(
        actor,
        kind,
        body,
        nonce=f"nonce-{kind}-{sign.get('network', 'none')}",
        issued_at_ns=net.now_ns,
        **sign,
    )
    return await net.service.execute(envelope, now_ns=net.now_ns)


async def test_a_command_signed_for_the_network_runs() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=DEVNET)
    deposit = {"account_owner": CONSUMER.id, "amount": 5, "chain_reference": "tx-1"}
    result = await _run(net, net.operator, "account.deposit", deposit, network="devnet-a")
    assert result.first_position > 1


@pytest.mark.parametrize("signed_for", ["devnet-b", ""])
async def test_a_command_signed_for_another_network_or_none_is_refused(signed_for: str) -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=DEVNET)
    head = await net.store.head()
    deposit = {"account_owner": CONSUMER.id, "amount": 5, "chain_reference": "tx-1"}
    with pytest.raises(ForeignNetwork) as refused:
        await _run(net, net.operator, "account.deposit", deposit, network=signed_for)
    assert refused.value.code == "network_mismatch"
    assert "devnet-a" in str(refused.value)
    assert await net.store.head() == head


async def test_rules_before_v4_take_envelopes_without_a_network() -> None:
    old = LedgerPolicy(rules_version=RULES_V3, network_id="devnet-a")
    net = await LocalNetwork.start(MemoryEventStore(), policy=old)
    deposit = {"account_owner": CONSUMER.id, "amount": 5, "chain_reference": "tx-1"}
    assert (await _run(net, net.operator, "account.deposit", deposit)).first_position == 2


async def test_a_genesis_must_be_signed_for_the_network_it_declares() -> None:
    net = LocalNetwork.create(MemoryEventStore(), policy=DEVNET)
    body = encode_genesis_body(net.policy)
    with pytest.raises(ForeignNetwork):
        await _run(net, net.operator, "network.genesis", body, network="devnet-b")
    assert (await net.store.head()).position == 0
    await _run(net, net.operator, "network.genesis", body, network="devnet-a")
    assert (await net.service.get_rules()).current.network_id == "devnet-a"


async def test_a_named_network_keeps_its_id() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=DEVNET)
    renamed = msgspec.structs.replace(DEVNET, network_id="mainnet")
    body = {"policy": encode_genesis_body(renamed)["policy"]}
    with pytest.raises(Rejection) as refused:
        await net.run(net.operator, "network.change_policy", body)
    assert refused.value.code == "network_id_immutable"


async def test_a_network_named_on_moving_to_rules_v4_is_then_enforced() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=LedgerPolicy(rules_version=RULES_V3))
    named = LedgerPolicy(rules_version=RULES_V4, network_id="devnet-a")
    await net.run(
        net.operator, "network.change_policy", {"policy": encode_genesis_body(named)["policy"]}
    )
    deposit = {"account_owner": CONSUMER.id, "amount": 5, "chain_reference": "tx-1"}
    with pytest.raises(ForeignNetwork):
        await _run(net, net.operator, "account.deposit", deposit)
    assert (await net.deposit(CONSUMER, 5)).first_position > 0  # signs for devnet-a


def test_an_envelope_without_a_network_signs_the_payload_it_always_signed() -> None:
    signer = Identity.from_seed(b"signer".ljust(32, b"\0"))
    unnamed = sign_command(
        signer, "account.withdraw", {"amount": 1}, nonce="n-000001", issued_at_ns=GENESIS_NS
    )
    named = sign_command(
        signer,
        "account.withdraw",
        {"amount": 1},
        nonce="n-000001",
        issued_at_ns=GENESIS_NS,
        network="devnet-a",
    )
    assert "network" not in msgspec.json.decode(unnamed.signing_payload())
    assert msgspec.json.decode(named.signing_payload())["network"] == "devnet-a"
    assert b"network" not in msgspec.json.encode(unnamed)
    assert unnamed.signature != named.signature


@pytest.mark.parametrize("network_id", ["Devnet", "-devnet", "devnet-", "dev net", "a" * 65])
def test_a_malformed_network_id_cannot_govern_a_ledger(network_id: str) -> None:
    assert "network_id" in (find_policy_problem(LedgerPolicy(network_id=network_id)) or "")


@pytest.mark.parametrize("network_id", ["", "a", "devnet-3f2a", "main.net", "a" * 64])
def test_a_well_formed_network_id_governs(network_id: str) -> None:
    assert find_policy_problem(LedgerPolicy(network_id=network_id)) is None
