"""The audit's claim rules (``validator.audit_claims``) on a replayed history: a clean one
passes; a careful forger who edits a claim, a forfeited bond, an unbond or a slash and
re-chains the hashes fails at that record (or at the end of its command) with the rule named;
records written under the first rules are not held to them."""

from __future__ import annotations

import json

import pytest

from adapters.store.memory import MemoryEventStore
from domain.policy import RULES_V1, RULES_V2, LedgerPolicy
from domain.records import Record
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from tests.forgery import forge_at, replay
from validator.audit import LEDGER_INVARIANTS, AuditFailed

NODE, CONSUMER, THIEF = (Identity.from_seed(bytes([i]) * 32) for i in (121, 122, 123))
VALIDATORS = [make_validator_keys(120 + i) for i in range(3)]
GARBAGE = b"\x09" * 32


async def _history(policy: LedgerPolicy | None = None) -> list[Record]:
    """A node with two GPUs claims two jobs, unbonds what its claims leave free, misses both
    windows (its bonds go to the consumer), claims a third job and is slashed for garbage."""
    policy = policy or LedgerPolicy(validator_stake_min=500)
    net = LocalNetwork.create(MemoryEventStore(), policy=policy)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=2_000)
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, gpus=2, stake=5_000, price=400, region="eu-west")
    await net.deposit(CONSUMER, 10_000)
    jobs = [await net.submit_job(CONSUMER, region="eu-west", max_price=1_000) for _ in range(3)]
    for job_id in jobs[:2]:
        await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.run(NODE, "stake.unbond", {"target": NODE.id, "amount": 1_000})
    net.advance(policy.result_window_ns / 1e9 + 1)
    for job_id in jobs[:2]:
        await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    await net.run(NODE, "job.claim", {"job_id": jobs[2], "node_id": NODE.id})
    await net.commit_result(NODE, jobs[2], GARBAGE)
    await net.vote_round(jobs[2], [(keys, False) for keys in VALIDATORS], reason="garbage")
    return await net.store.read_all(1, 10_000)


def _index(records: list[Record], event_type: str, nth: int = 0) -> int:
    return [i for i, r in enumerate(records) if r.event_type == event_type][nth]


def _node_index(records: list[Record], event_type: str) -> int:
    return next(
        i for i, r in enumerate(records) if r.event_type == event_type and r.stream_id == NODE.id
    )


def _fails(records: list[Record], position: int, words: str) -> None:
    with pytest.raises(AuditFailed) as info:
        replay(records)
    assert (info.value.position, info.value.check) == (position, LEDGER_INVARIANTS)
    assert words in info.value.message


async def test_the_clean_history_passes_with_every_claim_event() -> None:
    records = await _history()
    replay(records)
    types = {r.event_type for r in records}
    expected = {"ClaimReserved", "ClaimCommitted", "ClaimReleased", "ClaimBondForfeited"}
    assert expected | {"NodeSlashed"} <= types


async def test_a_claim_beyond_the_nodes_devices_fails() -> None:
    """One of the two GPUs struck from the registration: the second open claim is too many.
    (Rules v2: under rules v3 the registration itself no longer matches its signed command,
    validator.audit_attestation.)"""
    records = await _history(LedgerPolicy(validator_stake_min=500, rules_version=RULES_V2))
    index = _node_index(records, "Registered")
    gpus = json.loads(records[index].data)["gpus"]
    edited = forge_at(records, index, gpus=gpus[:1])
    _fails(edited, records[_index(records, "ClaimReserved", 1)].position, "its capacity")


async def test_a_claim_its_stake_does_not_cover_fails() -> None:
    records = await _history()
    edited = forge_at(records, _index(records, "ClaimReserved"), slash_at_risk=10_000)
    _fails(edited, records[_index(records, "ClaimReserved")].position, "short of")


async def test_a_claim_bond_below_the_policy_fails() -> None:
    records = await _history()
    edited = forge_at(records, _index(records, "ClaimReserved"), claim_bond=1)
    _fails(edited, records[_index(records, "ClaimReserved")].position, "the policy says")


async def test_a_claim_without_its_reservation_fails_at_the_end_of_its_command() -> None:
    """The reservation moved to a job claimed later (same price): the claimed job has none."""
    records = await _history()
    index = _index(records, "ClaimReserved")
    third = json.loads(records[_index(records, "ClaimReserved", 2)].data)["job_id"]
    edited = forge_at(records, index, job_id=third)
    command = next(r for r in records if r.command_id == records[index].command_id)
    _fails(edited, command.position, "without a claim reservation")


async def test_an_unbond_below_the_open_reserves_fails() -> None:
    records = await _history()
    index = _node_index(records, "UnbondRequested")
    _fails(forge_at(records, index, amount=4_900), records[index].position, "below its claims")


async def test_a_forfeited_bond_paid_to_someone_else_fails() -> None:
    records = await _history()
    index = _index(records, "ClaimBondForfeited")
    edited = forge_at(records, index, to_account=f"user:{THIEF.id}")
    _fails(edited, records[index].position, "not user:")


async def test_a_forfeit_above_the_claim_bond_fails() -> None:
    records = await _history()
    index = _index(records, "ClaimBondForfeited")
    _fails(
        forge_at(records, index, amount=3_000), records[index].position, "exceeds the claim bond"
    )


async def test_a_slash_beyond_stake_and_unbonding_fails() -> None:
    records = await _history()
    index = _index(records, "NodeSlashed")
    _fails(forge_at(records, index, amount=50_000), records[index].position, "exceeds stake")


async def test_a_slash_taken_from_the_wrong_stake_fails_the_stake_accounts() -> None:
    """Booked on the node as bonded stake while the ledger took it from the unbonding
    account: the node's stake accounts no longer hold what it counts."""
    records = await _history()
    index = _index(records, "NodeSlashed")
    assert json.loads(records[index].data)["from_unbonding"] > 0
    with pytest.raises(AuditFailed) as info:
        replay(forge_at(records, index, from_unbonding=0))
    assert info.value.check == LEDGER_INVARIANTS
    assert "but" in info.value.message and "counts" in info.value.message


async def test_records_written_under_the_first_rules_are_not_held_to_the_claim_rules() -> None:
    records = await _history(LedgerPolicy(validator_stake_min=500, rules_version=RULES_V1))
    replay(forge_at(records, _index(records, "ClaimReserved"), claim_bond=1))


async def test_a_commit_on_no_running_claim_fails() -> None:
    records = await _history()
    index = _index(records, "ClaimCommitted")
    _fails(forge_at(records, index, job_id="job-none"), records[index].position, "no running claim")
