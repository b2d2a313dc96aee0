"""The audit's beacon checks (``validator.audit_beacon``) on a replayed history: a clean one
passes; a forger who substitutes a job's drawn validators or its draw randomness (the spot
checks' openings seed), a contribution's signature, an epoch's value or its snapshot, or who
presents a draw as not seeded by the epoch, and re-chains the hashes, fails at that record
with ``beacon``. A history written under rules v1 keeps its rules: its draws are not checked."""

from __future__ import annotations

import json

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.job import Job
from domain.policy import RULES_V1, LedgerPolicy
from domain.records import Record
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, make_validator_keys
from proofs import bls
from proofs.identity import Identity
from tests.forgery import b64, forge, replay
from validator.audit import BEACON, AuditFailed

NODE, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (111, 112))
VALIDATORS = [make_validator_keys(110 + i) for i in range(4)]
RESULT = b"\x07" * 32


async def _history(policy: LedgerPolicy) -> tuple[list[Record], Job]:
    """Four validators, one job drawn three of them through the beacon and passed."""
    net = LocalNetwork.create(MemoryEventStore(), policy=policy)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    await net.deposit(CONSUMER, 5_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, RESULT)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and len(job.validators) == 3
    drawn = [k for k in VALIDATORS if k.identity.id in job.validators]
    await net.vote_round(job_id, [(keys, True) for keys in drawn])
    return await net.store.read_all(1, 100_000), job


def _policy(**changes: object) -> LedgerPolicy:
    return msgspec.structs.replace(LedgerPolicy(validator_stake_min=500), **changes)


async def test_the_clean_history_passes_and_checks_the_beacon() -> None:
    records, job = await _history(_policy())
    assert job.openings_seed
    assert replay(records).counts[BEACON] >= 7  # opening, 4 contributions, closing, draw


async def test_a_substituted_draw_fails() -> None:
    records, job = await _history(_policy())
    outsider = next(k.identity.id for k in VALIDATORS if k.identity.id not in job.validators)
    forged = forge(records, "ValidatorsAssigned", validators=[outsider, *job.validators[1:]])

    failure = _failure(forged)

    assert "validators drawn" in failure.message
    assert forged[failure.position - 1].event_type == "ValidatorsAssigned"


async def test_a_substituted_randomness_fails() -> None:
    """The openings seed a node would like (say one that opens none of its cheats)."""
    records, _job = await _history(_policy())
    forged = forge(records, "ValidatorsAssigned", randomness=b64(b"\x01" * 32))

    assert "randomness" in _failure(forged).message


async def test_a_draw_not_seeded_by_an_epoch_fails() -> None:
    records, _job = await _history(_policy())
    forged = forge(records, "ValidatorsAssigned", beacon_epoch=0)

    assert "not seeded by an epoch" in _failure(forged).message


async def test_a_contribution_that_does_not_verify_fails() -> None:
    """A real signature of the same validator, over another message: not its unique one."""
    records, _job = await _history(_policy())
    first = next(r for r in records if r.event_type == "Contributed")
    keys = next(k for k in VALIDATORS if k.identity.id == json.loads(first.data)["validator_id"])
    other = b64(bls.sign(keys.bls_secret, b"a value the contributor would prefer"))
    forged = forge(records, "Contributed", index=0, signature=other)

    failure = _failure(forged)

    assert "does not verify" in failure.message
    assert failure.position == first.position


async def test_a_changed_epoch_value_fails() -> None:
    records, _job = await _history(_policy())
    forged = forge(records, "EpochClosed", index=0, value=b64(b"\x02" * 32))

    assert "value" in _failure(forged).message


async def test_a_snapshot_without_an_active_validator_fails() -> None:
    records, _job = await _history(_policy())
    opened = json.loads(next(r for r in records if r.event_type == "EpochOpened").data)
    forged = forge(records, "EpochOpened", index=0, participants=opened["participants"][1:])

    assert "snapshot" in _failure(forged).message


async def test_a_rules_v1_history_keeps_its_rules_its_draws_are_not_checked() -> None:
    records, _job = await _history(_policy(rules_version=RULES_V1))
    replay(forge(records, "ValidatorsAssigned", randomness=b64(b"\x01" * 32)))


def _failure(records: list[Record]) -> AuditFailed:
    with pytest.raises(AuditFailed) as info:
        replay(records)
    assert info.value.check == BEACON
    return info.value
