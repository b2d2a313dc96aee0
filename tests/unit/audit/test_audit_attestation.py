"""The audit's hardware attestation rules (``validator.audit_attestation``, rules v3) on a
replayed history: a clean one passes; a careful forger who edits an expiry, a tier, the
probes, a failure or a misses slash and re-chains the hashes fails at that record; a
ledger that skipped the expiry rule or a UUID peer is caught at the claim or at the end of
the challenge's command."""

from __future__ import annotations

import json

import pytest

from adapters.store.memory import MemoryEventStore
from domain.node import Node
from domain.policy import SECOND_NS, LedgerPolicy
from domain.records import Record
from domain.services import attestation
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys
from proofs.identity import Identity
from tests.forgery import forge_at, replay
from validator.audit import LEDGER_INVARIANTS, AuditFailed

NODE, TWIN, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (161, 162, 163))
VALIDATORS = [make_validator_keys(160 + i) for i in range(3)]
POLICY = LedgerPolicy(
    validator_stake_min=500,
    verdict_commit_window_ns=10 * SECOND_NS,
    verdict_reveal_window_ns=10 * SECOND_NS,
    attestation_ttl_ns=300 * SECOND_NS,
    rechallenge_interval_min_ns=100 * SECOND_NS,
)
H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81_559, "uuid": "GPU-cccc"}


async def _vote(net: LocalNetwork, node: Identity, passed: bool) -> None:
    await net.run_beacon()
    current = await _get(net, node)
    votes: list[tuple[ValidatorKeys, bool]] = [
        (k, passed) for k in VALIDATORS if k.identity.id in current.validators
    ]
    await net.vote_attestation(node.id, votes, "" if passed else "probe_unanswered")


async def _get(net: LocalNetwork, node: Identity) -> Node:
    found = await get_aggregate(net.store, Node, node.id)
    assert found is not None
    return found


async def _history(*, claim_late: bool = False) -> list[Record]:
    """NODE passes a timed challenge and claims a job; TWIN reports its UUID and is
    challenged with it (both pass: the simulated probes are votes here); then NODE fails
    ``probe_misses_slash`` re-challenges and is slashed."""
    net = LocalNetwork.create(MemoryEventStore(), policy=POLICY)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=1_000)
    for who in (NODE, TWIN, CONSUMER):
        await net.deposit(who, 20_000)
    for who in (NODE, TWIN):
        body = {"region": "eu-west", "gpus": [H100], "gpu_class": "datacenter", "price": 100}
        await net.run(who, "node.register", body)
        await net.run(who, "stake.bond", {"target": who.id, "amount": 5_000})
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    for who in (NODE, TWIN):
        await _vote(net, who, True)
    if claim_late:
        net.advance(POLICY.attestation_ttl_ns / SECOND_NS)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    for _ in range(POLICY.probe_misses_slash):
        net.advance(POLICY.rechallenge_interval_min_ns / SECOND_NS)
        await net.run(NODE, "node.attestation.rechallenge", {"node_id": NODE.id})
        await _vote(net, NODE, False)
    return await net.store.read_all(1, 100_000)


def _index(records: list[Record], event_type: str, nth: int = 0, stream: str = "") -> int:
    return [
        i
        for i, r in enumerate(records)
        if r.event_type == event_type and (not stream or r.stream_id == stream)
    ][nth]


def _fails(records: list[Record], position: int, words: str) -> None:
    with pytest.raises(AuditFailed) as info:
        replay(records)
    assert (info.value.position, info.value.check) == (position, LEDGER_INVARIANTS)
    assert words in info.value.message


async def test_the_clean_history_passes_with_a_group_a_claim_and_a_misses_slash() -> None:
    records = await _history()
    replay(records)
    slash = json.loads(records[_index(records, "NodeSlashed", stream=NODE.id)].data)
    assert slash["misses"] == POLICY.probe_misses_slash
    groups = {
        json.loads(records[_index(records, "AttestationChallenged", 0, who.id)].data)["group"]
        for who in (NODE, TWIN)
    }
    assert len(groups) == 1 and "" not in groups


async def test_an_expiry_later_than_decision_plus_ttl_fails() -> None:
    records = await _history()
    index = _index(records, "AttestationVerified", stream=NODE.id)
    expires = json.loads(records[index].data)["expires_at_ns"]
    edited = forge_at(records, index, expires_at_ns=expires + POLICY.attestation_ttl_ns)
    _fails(edited, records[index].position, "not decision + ttl")


async def test_a_tier_the_verdicts_do_not_give_fails() -> None:
    records = await _history()
    index = _index(records, "AttestationVerified", stream=NODE.id)
    _fails(forge_at(records, index, tier="cc"), records[index].position, "tier 'cc'")


async def test_probes_the_protocol_does_not_size_fail() -> None:
    """A challenge made easy: the inner size of the compute probe cut to the floor."""
    records = await _history()
    index = _index(records, "AttestationChallenged", stream=NODE.id)
    probes = json.loads(records[index].data)["probes"]
    easy = [{**probe, "k": 64} for probe in probes]
    _fails(forge_at(records, index, probes=easy), records[index].position, "does not size")


async def test_a_failure_recorded_as_no_failure_fails() -> None:
    records = await _history()
    index = _index(records, "AttestationRejected", stream=NODE.id)
    _fails(forge_at(records, index, is_failure=False), records[index].position, "is_failure")


async def test_a_misses_slash_that_does_not_cite_the_failed_rounds_fails() -> None:
    records = await _history()
    index = _index(records, "NodeSlashed", stream=NODE.id)
    forged = forge_at(records, index, evidence="AAAA")
    _fails(forged, records[index].position, "does not cite its failed rounds")


async def test_a_registered_model_its_name_does_not_identify_fails() -> None:
    records = await _history()
    index = _index(records, "Registered", stream=NODE.id)
    gpus = json.loads(records[index].data)["gpus"]
    forged = forge_at(records, index, gpus=[{**gpus[0], "model": "h200"}])
    _fails(forged, records[index].position, "recorded GPUs")


async def test_a_claim_by_a_node_whose_attestation_expired_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ledger that skipped the expiry rule wrote the claim: the audit catches it."""
    monkeypatch.setattr(Node, "check_attestation_current", lambda self, *, now_ns: None)
    records = await _history(claim_late=True)
    index = _index(records, "ClaimReserved", stream=NODE.id)
    _fails(records, records[index].position, "its attestation expired")


async def test_a_challenge_without_its_uuid_peer_fails_at_the_end_of_its_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ledger that challenged NODE alone though TWIN reports its UUID."""

    async def no_peers(uow: object, node: object, *, now_ns: int) -> list[Node]:
        return []

    monkeypatch.setattr(attestation, "find_uuid_peers", no_peers)
    net = LocalNetwork.create(MemoryEventStore(), policy=POLICY)
    for who in (NODE, TWIN):
        body = {"region": "eu-west", "gpus": [H100], "gpu_class": "datacenter", "price": 100}
        await net.run(who, "node.register", body)
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    records = await net.store.read_all(1, 100_000)
    challenged = records[_index(records, "AttestationChallenged", stream=NODE.id)]
    command = next(r for r in records if r.command_id == challenged.command_id)
    _fails(records, command.position, "not challenged with it")
