"""Attack 1 of issue 14: stealing through a foreign owner.

The attacker registers a node (or a validator) naming the victim as its owner, without the
victim's consent, then signs ``stake.bond`` with the node's own key: the bond debited the
owner's account, so the victim's money became the attacker's stake, and garbage results on
the attacker's own jobs slashed it, half to the attacker as "harmed consumer".
The rule: a bond is signed by the owner of what it stakes, and debits the signer's account.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from adapters.ledger_api.client import ApiProblem
from api.app import create_app
from domain import commands as c
from domain.errors import Unauthorized
from domain.ledger import stake_account, user_account
from domain.node import Node
from domain.services.queries import get_aggregate
from domain.validators import Validator
from flopledger.network import b64, make_validator_keys
from proofs import bls
from proofs.identity import Identity
from tests.adversarial._harness import POLICY, get_balance, get_money_total, start_network
from tests.chain_tx import fresh_chain_reference
from tests.unit.api.conftest import ApiEnv, Clock, make_deps, seeded

VICTIM, ATTACKER_NODE, HONEST_NODE = (Identity.from_seed(bytes([i]) * 32) for i in (61, 62, 63))
ATTACKER_VALIDATOR = make_validator_keys(60)
VICTIM_FUNDS = 100_000
GPUS = [{"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}]
NODE_BODY = {"region": "eu-west", "gpus": GPUS, "gpu_class": "datacenter", "price": 100}


async def test_a_node_key_cannot_bond_its_foreign_owners_money() -> None:
    net = await start_network()
    await net.deposit(VICTIM, VICTIM_FUNDS)
    await net.run(ATTACKER_NODE, "node.register", {**NODE_BODY, "owner": VICTIM.id})

    with pytest.raises(Unauthorized) as info:
        await net.run(
            ATTACKER_NODE, "stake.bond", {"target": ATTACKER_NODE.id, "amount": VICTIM_FUNDS}
        )

    assert info.value.code == "bond_must_be_signed_by_owner"
    assert await get_balance(net, user_account(VICTIM.id)) == VICTIM_FUNDS
    assert await get_balance(net, stake_account(ATTACKER_NODE.id)) == 0
    node = await get_aggregate(net.store, Node, ATTACKER_NODE.id)
    assert node is not None and node.stake == 0
    assert await get_money_total(net) == 0


async def test_a_validator_key_cannot_bond_its_foreign_owners_money() -> None:
    net = await start_network()
    await net.deposit(VICTIM, VICTIM_FUNDS)
    keys = ATTACKER_VALIDATOR
    stake = POLICY.validator_stake_min  # rules v4: it registers with its own stake
    await net.deposit(keys.identity, stake)
    await net.run(
        keys.identity,
        "validator.register",
        {
            "owner": VICTIM.id,
            "bls_public_key": b64(keys.bls_public),
            "proof_of_possession": b64(bls.pop_prove(keys.bls_secret)),
            "stake": stake,
        },
    )

    with pytest.raises(Unauthorized) as info:
        await net.run(
            keys.identity, "stake.bond", {"target": keys.identity.id, "amount": VICTIM_FUNDS}
        )

    assert info.value.code == "bond_must_be_signed_by_owner"
    assert await get_balance(net, user_account(VICTIM.id)) == VICTIM_FUNDS
    validator = await get_aggregate(net.store, Validator, keys.identity.id)
    assert validator is not None and validator.stake == stake
    assert await get_money_total(net) == 0


async def test_an_owner_still_bonds_its_own_money_to_its_node() -> None:
    """The honest flow the rule keeps: the owner signs the bond of the node it owns."""
    net = await start_network()
    await net.deposit(VICTIM, VICTIM_FUNDS)
    await net.run(HONEST_NODE, "node.register", {**NODE_BODY, "owner": VICTIM.id})

    await net.run(VICTIM, "stake.bond", {"target": HONEST_NODE.id, "amount": 2_000})

    # the bond and, under rules v4, the log fee (issue 16, item 8)
    assert await get_balance(net, user_account(VICTIM.id)) == VICTIM_FUNDS - 2_000 - POLICY.log_fee
    assert await get_balance(net, stake_account(HONEST_NODE.id)) == 2_000
    assert await get_money_total(net) == 0


def test_the_attack_over_the_http_api_is_refused_with_its_problem_code(tmp_path: Path) -> None:
    """The same attack as a client of the public API would play it."""
    operator, clock = seeded("operator"), Clock()
    deps = make_deps(tmp_path, operator, clock)
    with TestClient(create_app(deps)) as http:
        env = ApiEnv(deps=deps, http=http, clock=clock, operator=operator)
        env.client(operator).send(
            c.Deposit(
                account_owner=VICTIM.id,
                amount=VICTIM_FUNDS,
                chain_reference=fresh_chain_reference(),
            )
        )
        attacker = env.client(ATTACKER_NODE)
        gpus = [c.GpuSpec(name="NVIDIA H100 80GB HBM3", memory_mib=81559)]
        attacker.send(
            c.RegisterNode(
                owner=VICTIM.id, region="eu-west", gpus=gpus, gpu_class="datacenter", price=100
            )
        )

        with pytest.raises(ApiProblem) as info:
            attacker.send(c.BondStake(target=ATTACKER_NODE.id, amount=VICTIM_FUNDS))

        assert (info.value.status, info.value.code) == (403, "bond_must_be_signed_by_owner")
        assert attacker.get_balance(user_account(VICTIM.id)).balance == VICTIM_FUNDS
