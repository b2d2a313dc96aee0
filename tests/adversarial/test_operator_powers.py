"""Issue 16, item 5 (rules v4): operator powers, minimal and visible.

Played by operators with valid keys: the log key tries to credit a deposit and the deposit
authority to seal a tree head (each refused: the genesis names one key for each power); an
operator decides a node's attestation while the drawn validators' round is open (refused,
the validators decide); an operator override without a reason (refused); one with a reason
is recorded and the audit lists it in its summary.
"""

from __future__ import annotations

import base64

import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.policy import RULES_V3, SECOND_NS, LedgerPolicy, find_policy_problem
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from tests.forgery import replay

LOG_KEY = Identity.from_seed(b"powers-log-key".ljust(32, b"\0"))
MINT = Identity.from_seed(b"powers-deposit-authority".ljust(32, b"\0"))
USER = Identity.from_seed(b"powers-user".ljust(32, b"\0"))
NODE = Identity.from_seed(b"powers-node".ljust(32, b"\0"))
VALIDATORS = [make_validator_keys(190 + i) for i in range(3)]
SPLIT = LedgerPolicy(operators=(LOG_KEY.id, MINT.id), log_key=LOG_KEY.id, deposit_authority=MINT.id)
H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81_559, "uuid": "GPU-powers"}
SEAL = {
    "size": 1,
    "root": base64.b64encode(bytes(32)).decode(),
    "tree_timestamp_ns": 1,
    "signature": base64.b64encode(bytes(64)).decode(),
}


async def _split_network(policy: LedgerPolicy = SPLIT) -> LocalNetwork:
    return await LocalNetwork.start(MemoryEventStore(), policy=policy, operator=LOG_KEY)


async def _code(net: LocalNetwork, actor: Identity, kind: str, body: dict[str, object]) -> str:
    head = await net.store.head()
    with pytest.raises(Rejection) as refused:
        await net.run(actor, kind, body)
    assert await net.store.head() == head  # nothing written
    return str(refused.value.code)


async def test_the_log_key_cannot_credit_a_deposit() -> None:
    net = await _split_network()
    body = {"account_owner": USER.id, "amount": 5, "chain_reference": "tx-1"}
    assert await _code(net, LOG_KEY, "account.deposit", body) == "deposit_authority_only"
    assert (await net.deposit(USER, 5, by=MINT)).first_position > 1


async def test_the_deposit_authority_cannot_seal_a_tree_head() -> None:
    net = await _split_network()
    assert await _code(net, MINT, "log.seal", SEAL) == "log_key_only"


async def test_older_rules_let_any_operator_deposit() -> None:
    net = await _split_network(LedgerPolicy(**{**_fields(SPLIT), "rules_version": RULES_V3}))
    assert (await net.deposit(USER, 5, by=LOG_KEY)).first_position > 1


def test_one_key_cannot_hold_both_powers() -> None:
    both = LedgerPolicy(log_key=LOG_KEY.id, deposit_authority=LOG_KEY.id)
    assert "deposit_authority" in (find_policy_problem(both) or "")


async def test_an_operator_cannot_decide_while_the_validators_round_is_open() -> None:
    net = await LocalNetwork.start(
        MemoryEventStore(), policy=LedgerPolicy(beacon_window_ns=SECOND_NS)
    )
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(NODE, 20_000)
    body = {"region": "eu-west", "gpus": [H100], "gpu_class": "datacenter", "price": 100}
    await net.run(NODE, "node.register", body)
    await net.run(NODE, "stake.bond", {"target": NODE.id, "amount": 5_000})
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    await net.run_beacon()
    decide = {"node_id": NODE.id, "accepted": True, "reason": "the operator likes it"}
    code = await _code(net, net.operator, "node.attestation.decide", decide)
    assert code == "attestation_decided_by_validators"


async def test_an_override_names_its_reason_and_the_audit_lists_it() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=LedgerPolicy())
    await net.deposit(NODE, 20_000)
    body = {"region": "eu-west", "gpus": [H100], "gpu_class": "datacenter", "price": 100}
    await net.run(NODE, "node.register", body)
    await net.run(NODE, "stake.bond", {"target": NODE.id, "amount": 5_000})
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    await net.run_beacon()
    decide: dict[str, object] = {"node_id": NODE.id, "accepted": True}
    assert await _code(net, net.operator, "node.attestation.decide", decide) == (
        "override_reason_required"
    )
    reason = "bootstrap: the network has no validators yet"
    decided = await net.run(net.operator, "node.attestation.decide", {**decide, "reason": reason})
    replayer = replay(await net.store.read_all(1, 10_000))
    [override] = replayer.overrides
    assert (override.position, override.kind, override.actor, override.reason) == (
        decided.first_position,
        "node.attestation.decide",
        net.operator.id,
        reason,
    )


def _fields(policy: LedgerPolicy) -> dict[str, object]:
    return {name: getattr(policy, name) for name in policy.__struct_fields__}
