"""A split round must not be a free retry (issue 14, finding of the economics simulation).

A round decides a side only with 2/3 of the drawn stake, so a side holding more than 1/3
of a draw's stake blocks any decision. Before this rule the crank then abandoned the round
(nobody absent, nothing to replace) and the job went back to the market, blaming nobody: a
colluder with 40% of the drawn stake passing its node's garbage turned a certain rejection
into a free retry, and an always-fail validator with 40% blocked an honest result (the node
worked for nothing).

The rule: when every drawn validator revealed and there is no quorum, the crank asks the
beacon for an *escalation*: as many fresh validators as are sitting, drawn from the next
epoch without the round's validators and the provider's own, join the round with their
drawn stake; the earlier votes stay. Escalations count against
``validator_replacements_max``; only then is the round abandoned.

The draw is made deterministic by the order of registration: the three validators that
exist at the commit are all drawn (redundancy 3), and three honest validators that register
afterwards are the only ones an escalation can draw.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from domain.job import SETTLED, SUBMITTED, Job
from domain.ledger import user_account
from domain.node import Node
from domain.records import Record
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys
from proofs.identity import Identity
from tests.adversarial._harness import get_balance, get_money_total, start_network
from tests.forgery import forge, replay
from validator.audit import BEACON, AuditFailed

NODE, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (121, 122))
BLOCKER = make_validator_keys(120)
"""The side with 40% of the first draw's stake (a colluder, or an always-fail validator)."""
SITTING = [make_validator_keys(121 + i) for i in range(2)]
LATECOMERS = [make_validator_keys(123 + i) for i in range(3)]
BLOCKER_STAKE, HONEST_STAKE = 4_000, 3_000
GARBAGE, HONEST_RESULT = b"\x66" * 32, b"\x42" * 32
MAX_PRICE = 1_000


async def _split_round(commitment: bytes, *, blocker_passes: bool) -> tuple[LocalNetwork, str]:
    """A job whose three drawn validators all revealed, the blocker (40% of the drawn stake)
    against the other two (60%, short of 2/3), the reveal window over."""
    net = await start_network()
    await net.deposit(NODE, 20_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=10_000)
    for keys, stake in [(BLOCKER, BLOCKER_STAKE)] + [(k, HONEST_STAKE) for k in SITTING]:
        await net.deposit(keys.identity, stake)
        await net.register_validator(keys, stake=stake)
    await net.deposit(CONSUMER, 5_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=MAX_PRICE)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, commitment)
    for keys in LATECOMERS:
        await net.deposit(keys.identity, HONEST_STAKE)
        await net.register_validator(keys, stake=HONEST_STAKE)
    await net.vote_round(
        job_id,
        [(BLOCKER, blocker_passes)] + [(k, not blocker_passes) for k in SITTING],
    )
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.round is not None
    assert set(job.validators) == {k.identity.id for k in [BLOCKER, *SITTING]}
    assert len(job.verdicts) == 3 and job.compute_quorum_outcome(net.policy) is None
    net.now_ns = job.round.reveal_deadline_ns + 1
    return net, job_id


async def _crank_and_escalate(net: LocalNetwork, job_id: str, votes: bool) -> None:
    """Anyone cranks the split round; the escalation's validators are drawn when the beacon
    closes, and vote as they checked."""
    await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    await net.run_beacon()
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    added = [k for k in LATECOMERS if k.identity.id in job.validators]
    assert added == LATECOMERS, f"the round was not escalated: job is {job.state}"
    await net.vote_round(job_id, [(k, votes) for k in added])


async def _worth(net: LocalNetwork, who: Identity) -> int:
    node = await get_aggregate(net.store, Node, who.id)
    stake = node.stake if node is not None else 0
    return await get_balance(net, user_account(who.id)) + stake


async def test_a_colluding_blocker_cannot_turn_a_rejection_into_a_retry() -> None:
    """A colluder with 40% of the drawn stake passes its node's garbage; the escalation's
    honest validators fail it: the node is rejected and slashed, not handed a free retry."""
    net, job_id = await _split_round(GARBAGE, blocker_passes=True)
    before = await _worth(net, NODE)

    await _crank_and_escalate(net, job_id, votes=False)

    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None and node.slashed_total > 0
    assert await _worth(net, NODE) < before
    records = await net.store.read_all(1, 100_000)
    assert [r.event_type for r in records].count("JobRejected") == 1
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == SUBMITTED and NODE.id in job.excluded_nodes
    assert await get_money_total(net) == 0
    replay(records)


async def test_an_always_fail_blocker_cannot_void_an_honest_result() -> None:
    """An always-fail validator with 40% of the drawn stake fails an honest result; the
    escalation's validators pass it: the job is verified and its node paid."""
    net, job_id = await _split_round(HONEST_RESULT, blocker_passes=False)
    before = await get_balance(net, user_account(NODE.id))

    await _crank_and_escalate(net, job_id, votes=True)

    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == SETTLED
    assert await get_balance(net, user_account(NODE.id)) > before
    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None and node.slashed_total == 0
    assert await get_money_total(net) == 0
    replay(await net.store.read_all(1, 100_000))


async def _exhaust(net: LocalNetwork, job_id: str, keys: list[ValidatorKeys]) -> None:
    """Crank, and have the escalation's validators split again (half each way)."""
    await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    await net.run_beacon()
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.round is not None
    added = [
        k for k in keys if k.identity.id in job.validators and k.identity.id not in job.verdicts
    ]
    await net.vote_round(job_id, [(k, i % 2 == 0) for i, k in enumerate(added)])
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.round is not None
    net.now_ns = job.round.reveal_deadline_ns + 1


async def test_a_round_split_after_every_escalation_is_abandoned() -> None:
    """Escalations are bounded: a round still split when nobody is left to draw goes back
    to the market, as before, with nobody paid and the money where it was."""
    net, job_id = await _split_round(GARBAGE, blocker_passes=True)
    await _exhaust(net, job_id, LATECOMERS)

    await net.run(CONSUMER, "job.expire", {"job_id": job_id})

    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == SUBMITTED and job.round is None
    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None and node.slashed_total == 0
    assert await get_money_total(net) == 0
    replay(await net.store.read_all(1, 100_000))


async def _escalated_history() -> tuple[list[Record], int]:
    """A history with one escalation (a split round joined by the latecomers), and the
    index of its ``ValidatorsReplaced`` among those records."""
    net, job_id = await _split_round(GARBAGE, blocker_passes=True)
    await _crank_and_escalate(net, job_id, votes=False)
    records = await net.store.read_all(1, 100_000)
    replaced = [r for r in records if r.event_type == "ValidatorsReplaced"]
    assert len(replaced) == 1 and json.loads(replaced[0].data)["absent"] == []
    return records, 0


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda data: {"replacements": data["replacements"][:2]}, id="one-dropped"),
        pytest.param(
            lambda _data: {"absent": [BLOCKER.identity.id]},
            id="a-voter-replaced",
        ),
    ],
)
async def test_a_forged_escalation_fails_the_audit(
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """A log operator rewriting the escalation (hashes re-chained): an escalation that
    drew fewer validators than the epoch gives, or the same draw recorded as replacing a
    validator that had voted (its place and weight taken by the first newcomer, so an
    unwelcome vote drops out of the round)."""
    records, index = await _escalated_history()
    replayed = [r for r in records if r.event_type == "ValidatorsReplaced"][index]
    forged = forge(records, "ValidatorsReplaced", **change(json.loads(replayed.data)))

    with pytest.raises(AuditFailed) as info:
        replay(forged)

    assert info.value.check == BEACON
