"""Hardware attestation under rules v3 through the command bus: registration by device
model, challenges sized by the protocol and judged by drawn validators, expiry, failures
that deactivate and then slash, re-challenges, inventory updates, UUID groups, the
operator's bootstrap decision; and the whole history audits."""

from __future__ import annotations

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.attestation import TIER_CC, TIER_OPERATOR, TIER_TIMED
from domain.errors import Rejection
from domain.ledger import BURN_ACCOUNT
from domain.node import ACTIVE, JAILED, REGISTERED, Node
from domain.policy import BPS, RULES_V2, SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate, get_balances
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys
from proofs.identity import Identity
from tests.forgery import replay

NODE, TWIN, CONSUMER, STRANGER = (Identity.from_seed(bytes([i]) * 32) for i in (151, 152, 153, 154))
VALIDATORS = [make_validator_keys(150 + i) for i in range(3)]
POLICY = LedgerPolicy(
    validator_stake_min=500,
    verdict_commit_window_ns=10 * SECOND_NS,
    verdict_reveal_window_ns=10 * SECOND_NS,
    attestation_ttl_ns=600 * SECOND_NS,
    rechallenge_interval_min_ns=100 * SECOND_NS,
)
H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81_559, "uuid": "GPU-aaaa"}
STAKE = 5_000


async def _network(policy: LedgerPolicy = POLICY, *, validators: bool = True) -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=policy)
    if validators:
        for keys in VALIDATORS:
            await net.deposit(keys.identity, 2_000)
            await net.register_validator(keys, stake=1_000)
    for who in (NODE, TWIN, CONSUMER):
        await net.deposit(who, 20_000)
    return net


async def _register(net: LocalNetwork, node: Identity, gpus: list[dict[str, object]]) -> None:
    body = {"region": "eu-west", "gpus": gpus, "gpu_class": "datacenter", "price": 100}
    await net.run(node, "node.register", body)
    await net.run(node, "stake.bond", {"target": node.id, "amount": STAKE})


async def _node(net: LocalNetwork, node: Identity = NODE) -> Node:
    found = await get_aggregate(net.store, Node, node.id)
    assert found is not None
    return found


async def _attested(net: LocalNetwork, node: Identity = NODE, reason: str = "") -> Node:
    """Register with one H100, challenge, and have every drawn validator pass it."""
    await _register(net, node, [H100])
    await net.run(node, "node.attestation.challenge", {"node_id": node.id})
    await _vote(net, node, True, reason)
    return await _node(net, node)


async def _vote(net: LocalNetwork, node: Identity, passed: bool, reason: str = "") -> None:
    await net.run_beacon()
    drawn = (await _node(net, node)).validators
    votes: list[tuple[ValidatorKeys, bool]] = [
        (k, passed) for k in VALIDATORS if k.identity.id in drawn
    ]
    await net.vote_attestation(node.id, votes, reason)


async def _claim(net: LocalNetwork, node: Identity = NODE) -> str:
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id})
    return job_id


async def _refused(net: LocalNetwork, actor: Identity, kind: str, body: dict[str, object]) -> str:
    with pytest.raises(Rejection) as info:
        await net.run(actor, kind, body)
    return str(info.value.code)


async def test_a_challenge_is_sized_for_the_model_and_a_quorum_pass_expires_after_the_ttl() -> None:
    net = await _network()
    await _register(net, NODE, [H100])
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id, "size": 4096})
    challenged = await _node(net)
    assert challenged.challenge is not None
    (probe,) = challenged.challenge.probes
    assert (probe.model, probe.n, challenged.challenge.size) == ("h100-sxm", POLICY.probe_side, 0)
    await _vote(net, NODE, True)
    node = await _node(net)
    assert (node.state, node.attestation_tier) == (ACTIVE, TIER_TIMED)
    assert node.attestation_expires_ns == node.attested_at_ns + POLICY.attestation_ttl_ns
    await _claim(net)
    net.now_ns = node.attestation_expires_ns
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    code = await _refused(net, NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    assert code == "attestation_expired"
    replay(await net.store.read_all(1, 100_000))


async def test_a_quorum_of_cc_verdicts_passes_at_the_cc_tier() -> None:
    net = await _network()
    node = await _attested(net, reason="cc")
    assert node.attestation_tier == TIER_CC
    replay(await net.store.read_all(1, 100_000))


async def test_a_node_report_is_refused_under_rules_v3() -> None:
    net = await _network()
    await _register(net, NODE, [H100])
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    nonce = (await _node(net)).challenge.nonce  # type: ignore[union-attr]
    body = {
        "node_id": NODE.id,
        "nonce": nonce,
        "inventory_digest": "A" * 43 + "=",
        "commitment": "A" * 43 + "=",
        "timings_ns": [1],
    }
    code = await _refused(net, NODE, "node.attestation.submit", body)
    assert code == "attestation_by_report_retired"


async def test_registration_refuses_unknown_gpus_and_a_class_above_the_models() -> None:
    net = await _network(validators=False)
    unknown = {"name": "Voodoo 2", "memory_mib": 12}
    body = {"region": "eu-west", "gpus": [unknown], "gpu_class": "cpu", "price": 1}
    assert await _refused(net, NODE, "node.register", body) == "gpu_model_unknown"
    cpu_as_datacenter = {"region": "eu-west", "gpus": [], "gpu_class": "datacenter", "price": 1}
    assert await _refused(net, NODE, "node.register", cpu_as_datacenter) == (
        "gpu_class_above_models"
    )
    assert await get_aggregate(net.store, Node, NODE.id) is None


async def test_failed_challenges_deactivate_then_slash_with_the_failed_rounds_as_evidence() -> None:
    net = await _network()
    await _attested(net)
    for miss in range(POLICY.probe_misses_slash):
        net.advance(POLICY.rechallenge_interval_min_ns / SECOND_NS)
        await net.run(NODE, "node.attestation.rechallenge", {"node_id": NODE.id})
        await _vote(net, NODE, False, "probe_unanswered")
        node = await _node(net)
        if miss < POLICY.probe_misses_slash - 1:
            assert (node.state, node.failed_challenges, node.stake) == (REGISTERED, miss + 1, STAKE)
            job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
            body = {"job_id": job_id, "node_id": NODE.id}
            assert await _refused(net, NODE, "job.claim", body) == "node_not_active"
    slashed = await _node(net)
    taken = STAKE * POLICY.slash_bps // BPS
    assert (slashed.state, slashed.failed_challenges, slashed.stake) == (JAILED, 0, STAKE - taken)
    assert (await get_balances(net.store))[BURN_ACCOUNT].balance == taken
    assert slashed.reputation.totals.get("attest_failed") == POLICY.probe_misses_slash
    replay(await net.store.read_all(1, 100_000))


async def test_an_abandoned_round_blames_nobody() -> None:
    net = await _network()
    await _attested(net)
    net.advance(POLICY.rechallenge_interval_min_ns / SECOND_NS)
    await net.run(NODE, "node.attestation.rechallenge", {"node_id": NODE.id})
    await net.run_beacon()
    net.advance(30)  # nobody votes; with nobody left to draw the crank gives the round up
    for _ in range(POLICY.validator_replacements_max + 1):
        if (await _node(net)).attestation_round is None:
            break
        await net.run(STRANGER, "node.attestation.expire", {"node_id": NODE.id})
        await net.run_beacon()
        net.advance(30)
    node = await _node(net)
    assert (node.state, node.failed_challenges, node.is_attested) == (ACTIVE, 0, True)


async def test_rechallenges_are_by_validators_or_the_owner_and_at_most_once_per_interval() -> None:
    net = await _network()
    await _attested(net)
    body = {"node_id": NODE.id}
    assert await _refused(net, STRANGER, "node.attestation.rechallenge", body) == (
        "rechallenger_not_allowed"
    )
    assert await _refused(net, VALIDATORS[0].identity, "node.attestation.rechallenge", body) == (
        "rechallenge_too_soon"
    )
    net.advance(POLICY.rechallenge_interval_min_ns / SECOND_NS)
    await net.run(VALIDATORS[0].identity, "node.attestation.rechallenge", body)
    await net.run_beacon()
    net.advance(POLICY.rechallenge_interval_min_ns / SECOND_NS)
    assert await _refused(net, NODE, "node.attestation.rechallenge", body) == (
        "attestation_vote_open"
    )


async def test_a_new_inventory_claims_again_only_once_attested() -> None:
    net = await _network()
    await _attested(net)
    gpus = [H100, {**H100, "uuid": "GPU-bbbb"}]
    await net.run(NODE, "node.inventory.update", {"node_id": NODE.id, "gpus": gpus})
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    body = {"job_id": job_id, "node_id": NODE.id}
    assert await _refused(net, NODE, "job.claim", body) == "inventory_not_attested"
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    assert len((await _node(net)).challenge.probes) == 2  # type: ignore[union-attr]
    await _vote(net, NODE, True)
    await net.run(NODE, "job.claim", body)
    replay(await net.store.read_all(1, 100_000))


async def test_nodes_reporting_one_uuid_are_challenged_together_in_the_same_slots() -> None:
    net = await _network()
    await _attested(net)
    await _register(net, TWIN, [H100])  # the same UUID
    await net.run(TWIN, "node.attestation.challenge", {"node_id": TWIN.id})
    node, twin = await _node(net), await _node(net, TWIN)
    assert node.challenge is not None and twin.challenge is not None
    assert node.challenge.group == twin.challenge.group != ""
    assert node.challenge.seed != twin.challenge.seed
    await net.run_beacon()
    node, twin = await _node(net), await _node(net, TWIN)
    assert node.round_assigned_ns == twin.round_assigned_ns != 0
    replay(await net.store.read_all(1, 100_000))


async def test_the_operator_decides_only_while_no_validator_is_assigned() -> None:
    net = await _network(validators=False)
    await _register(net, NODE, [H100])
    await net.attest_by_operator(NODE)
    node = await _node(net)
    assert (node.state, node.attestation_tier) == (ACTIVE, TIER_OPERATOR)
    net = await _network()
    await _register(net, NODE, [H100])
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    await net.run_beacon()
    body = {"node_id": NODE.id, "accepted": True, "reason": "override"}
    assert await _refused(net, net.operator, "node.attestation.decide", body) == (
        "attestation_decided_by_validators"
    )


async def test_rules_v3_commands_are_refused_under_rules_v2() -> None:
    net = await _network(msgspec.structs.replace(POLICY, rules_version=RULES_V2))
    await net.register_active_node(NODE, region="eu-west", price=100, stake=STAKE)
    body = {"node_id": NODE.id}
    assert await _refused(net, NODE, "node.attestation.rechallenge", body) == "rules_v3_required"
    update = {"node_id": NODE.id, "gpus": [H100]}
    assert await _refused(net, NODE, "node.inventory.update", update) == "rules_v3_required"
    assert (await _node(net)).attestation_tier == ""
