"""The audit's stake rules (``validator.audit_stake``) on a replayed history: a clean one
passes; a careful forger who edits a bond's funder or strips it, or reuses a slash's evidence
key, and re-chains the hashes, fails at that record with the check that names the rule."""

from __future__ import annotations

import json

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.job import Job
from domain.ledger import user_account
from domain.policy import LedgerPolicy
from domain.records import Record
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from tests.forgery import edit_data, rechain, replay
from validator.audit import AUTHORIZATION, LEDGER_INVARIANTS, AuditFailed

NODE, CONSUMER, REPORTER = (Identity.from_seed(bytes([i]) * 32) for i in (81, 82, 83))
VALIDATORS = [make_validator_keys(80 + i) for i in range(3)]
RESULT = b"\x07" * 32
OTHER_RESULT = b"\x08" * 32


async def _history() -> list[Record]:
    """Validators and a node bond, a job is committed, one validator equivocates on two
    results (two slashes, two evidence keys)."""
    net = LocalNetwork.create(MemoryEventStore(), policy=LedgerPolicy(validator_stake_min=500))
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    await net.deposit(CONSUMER, 5_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, RESULT)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    cheat = next(k for k in VALIDATORS if k.identity.id in job.validators)
    await net.report_equivocation(REPORTER, cheat, job_id, RESULT)
    await net.report_equivocation(REPORTER, cheat, job_id, OTHER_RESULT)
    return await net.store.read_all(1, 10_000)


def _indexes(records: list[Record], event_type: str) -> list[int]:
    return [i for i, r in enumerate(records) if r.event_type == event_type]


async def test_the_clean_history_passes_and_every_bond_names_its_funder() -> None:
    records = await _history()
    replay(records)
    bonds = [json.loads(records[i].data) for i in _indexes(records, "StakeBonded")]
    assert len(bonds) == 4
    assert all(b["funded_by"].startswith("user:") for b in bonds)


async def test_a_bond_funded_by_another_account_fails_authorization() -> None:
    records = await _history()
    index = _indexes(records, "StakeBonded")[-1]
    records[index] = edit_data(records[index], funded_by=user_account(CONSUMER.id))
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (records[index].position, AUTHORIZATION)
    assert "not by its signer's account" in info.value.message


async def test_a_bond_stripped_of_its_funder_after_the_rule_took_force_fails() -> None:
    records = await _history()
    index = _indexes(records, "StakeBonded")[-1]
    data = json.loads(records[index].data)
    del data["funded_by"]
    records[index] = msgspec.structs.replace(
        records[index], data=json.dumps(data, sort_keys=True).encode()
    )
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (records[index].position, AUTHORIZATION)
    assert "names no funder" in info.value.message


async def test_a_second_slash_for_the_same_evidence_fails_the_ledger_invariants() -> None:
    records = await _history()
    first, second = _indexes(records, "ValidatorSlashed")
    key = json.loads(records[first].data)["evidence_key"]
    records[second] = edit_data(records[second], evidence_key=key)
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (records[second].position, LEDGER_INVARIANTS)
    assert "slashed twice" in info.value.message
