"""The network's rules live in the log: the genesis comes first, once, signed by an operator it
names; rule changes are signed by an operator in force and govern only from their position."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.network import NETWORK_STREAM_ID, compute_network_rules
from domain.policy import LedgerPolicy
from domain.services.ledger_service import LedgerService
from domain.services.network_rules import RulesCache
from flopledger.network import LocalNetwork, encode_genesis_body
from proofs.envelope import sign_command
from proofs.identity import Identity
from tests.chain_tx import fresh_chain_reference

OPERATOR = Identity.from_seed(b"operator".ljust(32, b"\0"))
SECOND = Identity.from_seed(b"second-operator".ljust(32, b"\0"))
STRANGER = Identity.from_seed(b"stranger".ljust(32, b"\0"))
CONSUMER = Identity.from_seed(b"consumer".ljust(32, b"\0"))
POLICY = LedgerPolicy(node_stake_min=2_000)


def _parameters(policy: LedgerPolicy) -> dict[str, Any]:
    return encode_genesis_body(policy)["policy"]  # type: ignore[no-any-return]


async def _execute(
    service: LedgerService, actor: Identity, kind: str, body: dict[str, Any], nonce: str
) -> int:
    now_ns = 1_800_000_000 * 10**9
    envelope = sign_command(actor, kind, body, nonce=nonce, issued_at_ns=now_ns)
    return (await service.execute(envelope, now_ns=now_ns)).first_position


async def test_a_new_store_refuses_every_command_before_its_genesis() -> None:
    service = LedgerService(MemoryEventStore())
    deposit = {
        "account_owner": CONSUMER.id,
        "amount": 5,
        "chain_reference": fresh_chain_reference(),
    }
    with pytest.raises(Rejection) as refused:
        await _execute(service, OPERATOR, "account.deposit", deposit, "n1")
    assert refused.value.code == "genesis_missing"
    assert (await service.store.head()).position == 0


async def test_the_genesis_is_position_1_and_holds_operators_and_policy() -> None:
    net = LocalNetwork.create(MemoryEventStore(), policy=POLICY)
    await net.deposit(CONSUMER, 5)
    first = (await net.store.read_all(1, 1))[0]
    assert (first.stream_id, first.event_type, first.version) == (
        NETWORK_STREAM_ID,
        "GenesisDeclared",
        1,
    )
    rules = await net.service.get_rules()
    assert rules.genesis_position == 1
    assert rules.current.operators == (OPERATOR.id,)
    assert rules.current.node_stake_min == 2_000


async def test_a_second_genesis_is_refused() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=POLICY)
    body = encode_genesis_body(net.policy, prior_records=(await net.store.head()).position)
    with pytest.raises(Rejection) as refused:
        await _execute(net.service, OPERATOR, "network.genesis", body, "genesis-again")
    assert refused.value.code == "genesis_already_recorded"


async def test_the_genesis_is_signed_by_one_of_its_operators() -> None:
    service = LedgerService(MemoryEventStore())
    body = encode_genesis_body(LedgerPolicy(operators=(OPERATOR.id,)))
    with pytest.raises(Rejection) as refused:
        await _execute(service, STRANGER, "network.genesis", body, "g")
    assert refused.value.code == "genesis_signer_not_operator"


async def test_the_genesis_must_be_the_next_record() -> None:
    service = LedgerService(MemoryEventStore())
    body = encode_genesis_body(LedgerPolicy(operators=(OPERATOR.id,)), prior_records=3)
    with pytest.raises(Rejection) as refused:
        await _execute(service, OPERATOR, "network.genesis", body, "g")
    assert refused.value.code == "genesis_not_next"


async def test_a_genesis_policy_names_no_operators_of_its_own() -> None:
    service = LedgerService(MemoryEventStore())
    body = encode_genesis_body(LedgerPolicy(operators=(OPERATOR.id,)))
    body["policy"]["operators"] = [STRANGER.id]
    with pytest.raises(Rejection) as refused:
        await _execute(service, OPERATOR, "network.genesis", body, "g")
    assert refused.value.code == "policy_invalid"


async def test_a_non_operator_cannot_change_the_policy_or_the_operators() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=POLICY)
    changes = [
        ("network.change_policy", {"policy": _parameters(LedgerPolicy())}),
        ("network.change_operators", {"operators": [STRANGER.id]}),
    ]
    for kind, body in changes:
        with pytest.raises(Rejection) as refused:
            await net.run(STRANGER, kind, body)
        assert refused.value.code == "operator_only"
    assert (await net.service.get_rules()).version == 1


async def test_a_policy_change_applies_from_its_position_on() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=POLICY)
    await net.deposit(CONSUMER, 5)
    changed = await net.run(
        OPERATOR,
        "network.change_policy",
        {"policy": _parameters(LedgerPolicy(node_stake_min=3_000))},
    )
    rules = await net.service.get_rules()
    assert rules.at(changed.first_position - 1).node_stake_min == 2_000
    assert rules.at(changed.first_position).node_stake_min == 2_000  # its own record: old rules
    assert rules.at(changed.first_position + 1).node_stake_min == 3_000
    assert (await net.service.get_policy()).node_stake_min == 3_000
    assert rules.at(1).operators == rules.current.operators == (OPERATOR.id,)


async def test_an_operator_change_applies_only_to_later_commands() -> None:
    net = await LocalNetwork.start(
        MemoryEventStore(), policy=LedgerPolicy(operators=(OPERATOR.id, SECOND.id))
    )
    before = await net.deposit(CONSUMER, 5, by=SECOND)
    change = await net.run(SECOND, "network.change_operators", {"operators": [OPERATOR.id]})
    with pytest.raises(Rejection) as refused:
        await net.deposit(CONSUMER, 5, by=SECOND)
    assert refused.value.code == "operator_only"
    rules = compute_network_rules(await net.store.read_stream(NETWORK_STREAM_ID))
    assert SECOND.id in rules.at(before.first_position).operators
    assert SECOND.id in rules.at(change.first_position).operators
    assert rules.at(change.first_position + 1).operators == (OPERATOR.id,)


async def test_an_unchanged_or_empty_operator_set_is_refused() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=POLICY)
    for operators, code in (([OPERATOR.id], "operators_unchanged"), ([], "command_body_invalid")):
        with pytest.raises(Rejection) as refused:
            await net.run(OPERATOR, "network.change_operators", {"operators": operators})
        assert refused.value.code == code


async def test_a_policy_out_of_range_is_refused() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=POLICY)
    bad = msgspec.structs.replace(POLICY, quorum_denominator=0)
    with pytest.raises(Rejection) as refused:
        await net.run(OPERATOR, "network.change_policy", {"policy": _parameters(bad)})
    assert refused.value.code == "policy_invalid"


def test_rules_before_any_genesis_are_none() -> None:
    rules = compute_network_rules([])
    assert not rules.has_genesis
    with pytest.raises(Rejection) as refused:
        rules.at(1)
    assert refused.value.code == "genesis_missing"


class _YieldingStore(MemoryEventStore):
    """A store whose reads let other coroutines run before they answer (as a database's do)."""

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[Any]:
        records = await super().read_stream(stream_id, from_version)
        await asyncio.sleep(0)
        return records


async def test_concurrent_first_reads_of_a_fresh_cache_agree_on_the_rules() -> None:
    store = _YieldingStore()
    net = LocalNetwork.create(store, policy=POLICY)
    await net.deposit(CONSUMER, 5)
    cache = RulesCache(store)  # an API process that starts under load
    rules = await asyncio.gather(*(cache.get() for _ in range(16)))
    assert {r.version for r in rules} == {1}
    assert rules[0].current.node_stake_min == POLICY.node_stake_min
