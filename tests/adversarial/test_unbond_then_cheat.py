"""Attack 4 of issue 14: unbond, then cheat.

Slashes took only bonded stake, never stake that was unbonding, and ``job.commit_result``
checked neither the node's state nor its stake: the attacker claimed a job, unbonded
everything, committed garbage, and the rejection slashed nothing (``slashed_total`` 0).
The rules: stake stays slashable until it is withdrawn (a slash takes from the unbonding
stake too); an unbond may not take bonded stake below what the node's open claims reserve;
a jailed or inactive node cannot commit.
"""

from __future__ import annotations

import pytest

from domain.errors import Rejection
from domain.ledger import stake_account, unbonding_account, user_account
from domain.node import JAILED, Node
from domain.policy import BPS
from domain.services.queries import get_aggregate
from domain.validators import Validator
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from tests.adversarial._harness import LOG_FEE, get_balance, get_money_total, start_network

ATTACKER, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (91, 92))
VALIDATORS = [make_validator_keys(90 + i) for i in range(3)]
ATTACKER_FUNDS = 10_000
CONSUMER_FUNDS = 5_000
GARBAGE = b"\x66" * 32


async def _network(*, stake: int) -> LocalNetwork:
    net = await start_network()
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 2_000 + LOG_FEE)  # the fee of a later unbond
        await net.register_validator(keys, stake=2_000)
    await net.deposit(ATTACKER, ATTACKER_FUNDS + 2 * LOG_FEE)  # its bond's and its unbond's
    await net.register_active_node(ATTACKER, region="eu-west", price=400, stake=stake)
    await net.deposit(CONSUMER, CONSUMER_FUNDS)
    return net


async def _reject_garbage(net: LocalNetwork, job_id: str) -> None:
    """The validators check the garbage and fail it (the honest verdict)."""
    await net.vote_round(job_id, [(keys, False) for keys in VALIDATORS], reason="garbage")


async def _node(net: LocalNetwork) -> Node:
    node = await get_aggregate(net.store, Node, ATTACKER.id)
    assert node is not None
    return node


async def test_claim_then_unbond_everything_is_refused_and_the_cheat_is_slashed() -> None:
    net = await _network(stake=5_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(ATTACKER, "job.claim", {"job_id": job_id, "node_id": ATTACKER.id})

    with pytest.raises(Rejection) as info:
        await net.run(ATTACKER, "stake.unbond", {"target": ATTACKER.id, "amount": 5_000})
    assert info.value.code == "unbond_below_claim_reserve"

    await net.commit_result(ATTACKER, job_id, GARBAGE)
    await _reject_garbage(net, job_id)

    node = await _node(net)
    slash = 5_000 * net.policy.slash_bps // BPS
    assert node.state == JAILED
    assert node.slashed_total == slash
    assert await get_balance(net, stake_account(ATTACKER.id)) == 5_000 - slash
    to_consumer = slash * net.policy.slash_to_consumer_bps // BPS
    # Attack 5: the failing certificate's signers are paid their fee (5% of the price 400)
    # out of the consumer's share of the slash.
    fee = 400 * net.policy.validator_fee_bps // BPS
    assert await get_balance(net, user_account(CONSUMER.id)) == CONSUMER_FUNDS + to_consumer - fee
    assert await get_money_total(net) == 0


async def test_stake_unbonding_before_the_claim_is_still_slashed_and_never_withdrawn() -> None:
    """Unbond most of the stake first (no claim open, so it is allowed), then claim and cheat:
    the slash counts and takes the unbonding stake, and the withdrawal pays only the rest."""
    net = await _network(stake=10_000)
    await net.run(ATTACKER, "stake.unbond", {"target": ATTACKER.id, "amount": 8_000})
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(ATTACKER, "job.claim", {"job_id": job_id, "node_id": ATTACKER.id})
    await net.commit_result(ATTACKER, job_id, GARBAGE)
    await _reject_garbage(net, job_id)

    slash = 10_000 * net.policy.slash_bps // BPS
    node = await _node(net)
    assert node.slashed_total == slash
    assert node.stake + node.unbonding == 10_000 - slash
    assert await get_balance(net, stake_account(ATTACKER.id)) == node.stake
    assert await get_balance(net, unbonding_account(ATTACKER.id)) == node.unbonding
    left_unbonding = node.unbonding
    assert left_unbonding < 8_000

    net.advance(net.policy.unbonding_period_ns / 1e9 + 1)
    await net.run(ATTACKER, "stake.withdraw", {"target": ATTACKER.id})
    assert await get_balance(net, user_account(ATTACKER.id)) == left_unbonding
    assert await get_balance(net, unbonding_account(ATTACKER.id)) == 0
    assert await get_money_total(net) == 0


async def test_a_jailed_node_cannot_commit_its_other_claim() -> None:
    """Two GPUs, two claims: garbage on the first jails the node, and the second claim can no
    longer be committed (it will forfeit its claim bond when its window lapses)."""
    net = await start_network()
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=2_000)
    await net.deposit(ATTACKER, ATTACKER_FUNDS)
    await net.register_active_node(ATTACKER, gpus=2, stake=5_000, price=400, region="eu-west")
    await net.deposit(CONSUMER, CONSUMER_FUNDS)
    first = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    second = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(ATTACKER, "job.claim", {"job_id": first, "node_id": ATTACKER.id})
    await net.run(ATTACKER, "job.claim", {"job_id": second, "node_id": ATTACKER.id})
    await net.commit_result(ATTACKER, first, GARBAGE)
    await _reject_garbage(net, first)
    assert (await _node(net)).state == JAILED

    with pytest.raises(Rejection) as info:
        await net.commit_result(ATTACKER, second, GARBAGE)
    assert info.value.code == "node_jailed"
    assert await get_money_total(net) == 0


async def test_a_validator_that_unbonds_everything_is_still_slashed_for_equivocating() -> None:
    """The validator side of the same flaw: unbond all stake, then sign both verdicts; the
    equivocation slash takes the unbonding stake, and the withdrawal pays only the rest."""
    net = await _network(stake=5_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(ATTACKER, "job.claim", {"job_id": job_id, "node_id": ATTACKER.id})
    await net.commit_result(ATTACKER, job_id, GARBAGE)
    cheat = VALIDATORS[0]
    await net.run(cheat.identity, "stake.unbond", {"target": cheat.identity.id, "amount": 2_000})

    await net.report_equivocation(CONSUMER, cheat, job_id, GARBAGE)

    slash = 2_000 * net.policy.equivocation_slash_bps // BPS
    validator = await get_aggregate(net.store, Validator, cheat.identity.id)
    assert validator is not None
    assert validator.slashed_total == slash
    assert (validator.stake, validator.unbonding) == (0, 2_000 - slash)
    assert await get_balance(net, unbonding_account(cheat.identity.id)) == 2_000 - slash
    net.advance(net.policy.unbonding_period_ns / 1e9 + 1)
    await net.run(cheat.identity, "stake.withdraw", {"target": cheat.identity.id})
    assert await get_balance(net, user_account(cheat.identity.id)) == 2_000 - slash
    assert await get_money_total(net) == 0
