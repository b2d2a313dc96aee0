"""The audit's quorum thresholds (``validator.audit_quorum``) on a replayed history: a clean
one passes; a forger who swaps a job's certificate for one of real signatures that are no
quorum (a stake minority, a lone whale), lowers the redundancy a job was submitted with, or
makes a signer the provider's own, and re-chains the hashes, fails at that record with
``quorum_certificate``. A history written under rules v1 keeps its rules: one signer passes."""

from __future__ import annotations

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.job import Job
from domain.policy import RULES_V1, LedgerPolicy
from domain.records import Record
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys
from proofs import bls
from proofs.identity import Identity
from proofs.quorum import encode_qc, make_qc, verdict_message
from tests.forgery import b64, forge, replay
from validator.audit import BEACON, QUORUM_CERTIFICATE, AuditFailed

NODE, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (101, 102))
CHEAP = [make_validator_keys(100 + i) for i in range(2)]
WHALE = make_validator_keys(105)
STAKES = {CHEAP[0].identity.id: 600, CHEAP[1].identity.id: 600, WHALE.identity.id: 20_000}
RESULT = b"\x07" * 32


async def _history(policy: LedgerPolicy) -> tuple[list[Record], str, list[ValidatorKeys]]:
    """Three validators (600, 600, 20,000) all pass a job: the records, the job id and the
    drawn validators in round order."""
    net = LocalNetwork.create(MemoryEventStore(), policy=policy)
    for keys in (*CHEAP, WHALE):
        await net.deposit(keys.identity, STAKES[keys.identity.id])
        await net.register_validator(keys, stake=STAKES[keys.identity.id])
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    await net.deposit(CONSUMER, 5_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, RESULT)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    drawn = [next(k for k in (*CHEAP, WHALE) if k.identity.id == v) for v in job.validators]
    await net.vote_round(job_id, [(keys, True) for keys in drawn])
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.certificate
    return await net.store.read_all(1, 100_000), job_id, drawn


def _forge_certificate(
    records: list[Record], job_id: str, drawn: list[ValidatorKeys], signers: list[ValidatorKeys]
) -> list[Record]:
    """The history with the job's certificate made of ``signers``' real signatures."""
    message = verdict_message(job_id, RESULT, True)
    signatures = {drawn.index(k): bls.sign(k.bls_secret, message) for k in signers}
    qc = make_qc([k.bls_public for k in drawn], signatures, message)
    return forge(records, "JobVerified", certificate=b64(encode_qc(qc)))


def _policy(**changes: object) -> LedgerPolicy:
    return msgspec.structs.replace(LedgerPolicy(validator_stake_min=500), **changes)


async def test_the_clean_history_passes() -> None:
    records, _job_id, drawn = await _history(_policy())
    replay(records)
    assert len(drawn) == 3


async def test_signers_holding_a_stake_minority_fail() -> None:
    records, job_id, drawn = await _history(_policy())
    forged = _forge_certificate(records, job_id, drawn, CHEAP)

    with pytest.raises(AuditFailed) as info:
        replay(forged)

    assert info.value.check == QUORUM_CERTIFICATE
    assert "2 signers with 1200 of 21200 drawn stake are no quorum" in info.value.message


async def test_a_lone_whale_below_the_signer_minimum_fails() -> None:
    records, job_id, drawn = await _history(_policy())
    forged = _forge_certificate(records, job_id, drawn, [WHALE])

    with pytest.raises(AuditFailed) as info:
        replay(forged)

    assert info.value.check == QUORUM_CERTIFICATE
    assert "1 signers with 20000 of 21200 drawn stake are no quorum" in info.value.message


async def test_a_job_submitted_below_the_redundancy_minimum_fails() -> None:
    records, _job_id, _drawn = await _history(_policy())
    forged = forge(records, "JobSubmitted", redundancy=1)

    with pytest.raises(AuditFailed) as info:
        replay(forged)

    assert info.value.check == QUORUM_CERTIFICATE
    assert forged[info.value.position - 1].event_type == "JobSubmitted"


async def test_a_signer_owned_by_the_jobs_provider_fails() -> None:
    records, _job_id, _drawn = await _history(_policy())
    # The whale registered without an owner: it owns itself. Make it the node's owner.
    forged = forge(records, "JobClaimed", provider=WHALE.identity.id)

    with pytest.raises(AuditFailed) as info:
        replay(forged)

    # The beacon's draw excludes the provider's own validators (attack 2's audit checks the
    # draw), so the forgery is caught at the draw, before the certificate.
    assert info.value.check == BEACON
    assert "validators drawn" in info.value.message


async def test_a_rules_v1_history_keeps_its_rules_one_signer_passes() -> None:
    records, job_id, drawn = await _history(_policy(rules_version=RULES_V1))
    replay(_forge_certificate(records, job_id, drawn, [WHALE]))
