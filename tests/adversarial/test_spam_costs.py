"""Issue 16, item 8: spam that costs nothing.

The attacks: a key appends 1-unit bonds and unbonds as fast as the ledger takes them (the
draw-grinding attack of issue 14 used such appends; each also grows the log every auditor
replays), and anyone registers validators by the thousand with fresh keys and no stake (each
a record and a member of the validator directory every draw reads).

The rules (rules v4): a command that only moves its signer's own stake pays the log fee to
the treasury, so N appends cost N fees and stop when the money does; a validator registers
with at least the minimum stake, bonded from its own key's account. Under rules v3 neither
applies: records written before stay valid.
"""

from __future__ import annotations

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import InsufficientFunds, Rejection
from domain.ledger import TREASURY_ACCOUNT, stake_account, user_account
from domain.policy import RULES_V3
from domain.services.queries import get_aggregate
from domain.validators import Validator
from flopledger.network import LocalNetwork, b64, make_validator_keys
from proofs import bls
from proofs.identity import Identity
from tests.adversarial._harness import POLICY, get_balance, get_money_total, start_network
from validator.audit import AuditOptions
from validator.audit_run import StoreSource, run_audit

SPAMMER, VICTIM = (Identity.from_seed(bytes([i]) * 32) for i in (120, 121))
GPUS = [{"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}]
NODE_BODY = {"region": "eu-west", "gpus": GPUS, "gpu_class": "datacenter", "price": 100}
BONDS = 25
FUNDS = 150
"""Enough for a few 1-unit bonds with their fees, not for BONDS of them."""


async def assert_audit_clean(net: LocalNetwork) -> None:
    options = AuditOptions(trusted_operators=frozenset(net.policy.operators))
    report = await run_audit(StoreSource(net.store, "memory:"), options)
    assert report.ok, report.failure


def registration(seed: int, **extra: object) -> tuple[Identity, dict[str, object]]:
    keys = make_validator_keys(seed)
    body = {
        "bls_public_key": b64(keys.bls_public),
        "proof_of_possession": b64(bls.pop_prove(keys.bls_secret)),
        **extra,
    }
    return keys.identity, body


async def test_cheap_bonds_pay_the_log_fee_and_stop_when_the_money_does() -> None:
    net = await start_network()
    fee = POLICY.log_fee
    assert fee > 0
    await net.deposit(SPAMMER, FUNDS)
    await net.run(SPAMMER, "node.register", NODE_BODY)
    accepted = 0
    for _ in range(BONDS):
        head = await net.store.head()
        try:
            await net.run(SPAMMER, "stake.bond", {"target": SPAMMER.id, "amount": 1})
        except InsufficientFunds:
            assert (await net.store.head()).position == head.position  # nothing was written
            break
        accepted += 1
    assert 0 < accepted < BONDS
    assert accepted == FUNDS // (1 + fee)
    assert await get_balance(net, TREASURY_ACCOUNT) == accepted * fee
    assert await get_balance(net, stake_account(SPAMMER.id)) == accepted
    assert await get_balance(net, user_account(SPAMMER.id)) == FUNDS - accepted * (1 + fee)
    # unbonding is the same kind of append: it pays too, and stops when the money does
    with pytest.raises(InsufficientFunds):
        for _ in range(accepted):
            await net.run(SPAMMER, "stake.unbond", {"target": SPAMMER.id, "amount": 1})
    assert await get_money_total(net) == 0
    await assert_audit_clean(net)


async def test_a_validator_without_the_minimum_stake_is_not_registered() -> None:
    net = await start_network()
    minimum = POLICY.validator_stake_min
    await net.deposit(SPAMMER, 10 * minimum)
    for seed, extra in ((130, {}), (131, {"stake": minimum - 1})):
        identity, body = registration(seed, **extra)
        await net.deposit(identity, minimum - 1)
        with pytest.raises(Rejection) as info:
            await net.run(identity, "validator.register", body)
        assert info.value.code == "registration_stake_below_minimum"
        assert await get_aggregate(net.store, Validator, identity.id) is None
    identity, body = registration(132, stake=minimum)
    with pytest.raises(InsufficientFunds):  # the stake comes from the key's own account
        await net.run(identity, "validator.register", body)
    assert await get_aggregate(net.store, Validator, identity.id) is None
    await net.deposit(identity, minimum)
    await net.run(identity, "validator.register", body)
    validator = await get_aggregate(net.store, Validator, identity.id)
    assert validator is not None and validator.stake == minimum
    assert validator.is_active(POLICY)
    assert await get_balance(net, stake_account(identity.id)) == minimum
    assert await get_money_total(net) == 0
    await assert_audit_clean(net)


async def test_a_foreign_owner_pays_nothing_for_a_validator_registered_in_its_name() -> None:
    """Issue 14, attack 1 again: the registration's stake is the registering key's money,
    never the owner's it names."""
    net = await start_network()
    await net.deposit(VICTIM, 100_000)
    identity, body = registration(133, owner=VICTIM.id, stake=POLICY.validator_stake_min)
    with pytest.raises(InsufficientFunds):
        await net.run(identity, "validator.register", body)
    assert await get_balance(net, user_account(VICTIM.id)) == 100_000
    assert await get_aggregate(net.store, Validator, identity.id) is None
    await net.deposit(identity, POLICY.validator_stake_min)  # with its own money it may
    await net.run(identity, "validator.register", body)
    assert await get_balance(net, user_account(VICTIM.id)) == 100_000
    validator = await get_aggregate(net.store, Validator, identity.id)
    assert validator is not None and validator.owner == VICTIM.id
    await assert_audit_clean(net)


async def test_under_rules_v3_bonds_are_free_and_validators_register_bare() -> None:
    """The rules are version gated: a store written under rules v3 keeps its meaning."""
    policy = msgspec.structs.replace(POLICY, rules_version=RULES_V3)
    net = await LocalNetwork.start(MemoryEventStore(), policy=policy)
    await net.deposit(SPAMMER, 10)
    await net.run(SPAMMER, "node.register", NODE_BODY)
    for _ in range(10):
        await net.run(SPAMMER, "stake.bond", {"target": SPAMMER.id, "amount": 1})
    assert await get_balance(net, TREASURY_ACCOUNT) == 0
    identity, body = registration(134)
    await net.run(identity, "validator.register", body)
    validator = await get_aggregate(net.store, Validator, identity.id)
    assert validator is not None and validator.stake == 0
    await assert_audit_clean(net)
