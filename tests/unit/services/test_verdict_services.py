"""Verdict rounds through the command bus: commit-reveal, replacements of absent validators,
attestations decided by a validator quorum, and equivocation reports."""

from __future__ import annotations

import base64
import hashlib

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.beacon import BEACON_STREAM_ID
from domain.errors import Rejection
from domain.job import SETTLED, SUBMITTED, Job
from domain.ledger import BURN_ACCOUNT, stake_account
from domain.node import ACTIVE, JAILED, REGISTERED, Node
from domain.policy import RULES_V2, SECOND_NS, LedgerPolicy
from domain.selection import select_from_seed
from domain.services.queries import get_aggregate, get_balances
from domain.validators import Validator
from domain.verdicts import attestation_subject, compute_verdict_commitment
from flopledger.network import LocalNetwork, ValidatorKeys, b64, make_validator_keys
from proofs import bls
from proofs.identity import Identity
from proofs.quorum import attestation_verdict_message, decode_qc, verify_qc

EU, NEWCOMER, CONSUMER, REPORTER = (Identity.from_seed(bytes([i]) * 32) for i in (12, 13, 14, 15))
VALIDATORS = [make_validator_keys(20 + i) for i in range(4)]
POLICY = LedgerPolicy(
    node_stake_min=1_000,
    validator_stake_min=500,
    verdict_commit_window_ns=10 * SECOND_NS,
    verdict_reveal_window_ns=10 * SECOND_NS,
    attestation_validators=3,
)


POLICY_V2 = msgspec.structs.replace(POLICY, rules_version=RULES_V2)
"""The attestation tests here judge a node's own report: rules v2 (rules v3 times the node,
tests/unit/services/test_attestation_v3.py)."""


async def _network(validators: int = 3, *, policy: LedgerPolicy = POLICY) -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=policy)
    await net.deposit(EU, 10_000)
    await net.register_active_node(EU, region="eu-west", price=400, stake=5_000)
    for keys in VALIDATORS[:validators]:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 5_000)
    return net


async def _job(net: LocalNetwork, job_id: str) -> Job:
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    return job


def _keys(ids: tuple[str, ...]) -> list[ValidatorKeys]:
    return [k for vid in ids for k in VALIDATORS if k.identity.id == vid]


async def _committed_job(net: LocalNetwork) -> str:
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(EU, "job.claim", {"job_id": job_id, "node_id": EU.id})
    await net.commit_result(EU, job_id, b"\x07" * 32)
    return job_id


async def test_assignment_is_recomputable_from_the_recorded_beacon_epoch() -> None:
    """The draw waits for the beacon epoch after the commit; its event names the epoch, and
    the epoch's recorded value and snapshot give the same validators (in the same order)."""
    net = await _network(validators=4)
    job_id = await _committed_job(net)
    records = await net.store.read_stream(job_id)
    committed = next(r for r in records if r.event_type == "ResultCommitted")
    assigned = next(r for r in records if r.event_type == "ValidatorsAssigned")
    data = msgspec.json.decode(assigned.data)
    beacon = [msgspec.json.decode(r.data) for r in await net.store.read_stream(BEACON_STREAM_ID)]
    opened = next(
        e for e in beacon if e.get("epoch") == data["beacon_epoch"] and "participants" in e
    )
    closed = next(e for e in beacon if e.get("epoch") == data["beacon_epoch"] and "value" in e)
    stakes = {p["validator_id"]: p["stake"] for p in opened["participants"]}
    randomness = hashlib.sha256(
        b"flopledger/beacon-draw/v1" + base64.b64decode(closed["value"]) + job_id.encode()
    ).digest()
    assert assigned.position > committed.position
    assert base64.b64decode(data["randomness"]) == randomness
    expected = select_from_seed(seed=randomness, stakes=stakes, count=3)
    assert tuple(data["validators"]) == expected


async def test_commit_then_reveal_settles_with_a_verifying_certificate() -> None:
    net = await _network()
    job_id = await _committed_job(net)
    job = await _job(net, job_id)
    await net.vote_round(job_id, [(k, True) for k in _keys(job.validators)])
    job = await _job(net, job_id)
    assert job.state == SETTLED
    keys = [k.bls_public for k in _keys(job.validators)]
    assert verify_qc(keys, decode_qc(job.certificate), 2)


async def test_absent_validators_are_replaced_by_a_crank_then_the_job_settles() -> None:
    net = await _network(validators=4)
    job_id = await _committed_job(net)
    job = await _job(net, job_id)
    first = job.validators
    present = _keys(job.validators)[:1]
    salt = await net.commit_vote(present[0], job_id, True)
    with pytest.raises(Rejection) as info:
        await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    assert info.value.code == "reveal_window_open"
    net.advance(11)
    await net.reveal_vote(present[0], job_id, True, salt)
    net.advance(10)
    await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    await net.run_beacon()  # the re-draw waits for the next beacon epoch
    job = await _job(net, job_id)
    assert job.round is not None and job.round.replacements == 1
    # Two were absent but one validator was left outside the first draw: it takes the first
    # absent place; the other absent validator keeps its place and may vote in the new round.
    assert len(set(job.validators) - set(first)) == 1
    pending = [k for k in _keys(job.validators) if k.identity.id not in job.verdicts]
    await net.vote_round(job_id, [(k, True) for k in pending])
    assert (await _job(net, job_id)).state == SETTLED


async def test_a_round_nobody_answers_goes_back_to_the_market_without_blame() -> None:
    net = await _network()
    job_id = await _committed_job(net)
    net.advance(21)
    await net.run(CONSUMER, "job.expire", {"job_id": job_id})  # nobody else to draw
    job = await _job(net, job_id)
    assert job.state == SUBMITTED and EU.id not in job.excluded_nodes
    node = await get_aggregate(net.store, Node, EU.id)
    assert node is not None and node.state == ACTIVE


async def _attestation_round(net: LocalNetwork) -> tuple[Node, str]:
    await net.deposit(NEWCOMER, 5_000)
    await net.run(
        NEWCOMER,
        "node.register",
        {
            "region": "eu-west",
            "gpus": [{"name": "H100", "memory_mib": 80_000}],
            "gpu_class": "datacenter",
            "price": 100,
        },
    )
    await net.run(NEWCOMER, "stake.bond", {"target": NEWCOMER.id, "amount": 2_000})
    await net.run(NEWCOMER, "node.attestation.challenge", {"node_id": NEWCOMER.id})
    node = await get_aggregate(net.store, Node, NEWCOMER.id)
    assert node is not None and node.challenge is not None
    nonce = node.challenge.nonce
    await net.run(
        NEWCOMER,
        "node.attestation.submit",
        {
            "node_id": NEWCOMER.id,
            "nonce": nonce,
            "inventory_digest": b64(bytes(32)),
            "commitment": b64(b"\x05" * 32),
            "timings_ns": [1_000],
        },
    )
    await net.run_beacon()  # the attestation's validators are drawn by the next epoch
    node = await get_aggregate(net.store, Node, NEWCOMER.id)
    assert node is not None and node.attestation_round is not None
    return node, nonce


async def _attestation_votes(
    net: LocalNetwork, nonce: str, votes: list[tuple[ValidatorKeys, bool]]
) -> None:
    await _attestation_reveals(net, nonce, votes, await _attestation_commits(net, nonce, votes))


async def _attestation_commits(
    net: LocalNetwork, nonce: str, votes: list[tuple[ValidatorKeys, bool]]
) -> list[bytes]:
    """Commit every vote's salted hash; returns the salts to reveal with."""
    salts = []
    for keys, passed in votes:
        salt = hashlib.sha256(keys.identity.id.encode() + nonce.encode()).digest()
        salts.append(salt)
        verdict_hash = compute_verdict_commitment(
            subject=attestation_subject(NEWCOMER.id, nonce),
            result_commitment=b"\x05" * 32,
            validator_id=keys.identity.id,
            passed=passed,
            salt=salt,
        )
        await net.run(
            keys.identity,
            "node.attestation.commit_verdict",
            {"node_id": NEWCOMER.id, "nonce": nonce, "verdict_hash": b64(verdict_hash)},
        )
    return salts


async def _attestation_reveals(
    net: LocalNetwork, nonce: str, votes: list[tuple[ValidatorKeys, bool]], salts: list[bytes]
) -> None:
    """Reveal the committed votes in order until the round is decided."""
    for (keys, passed), salt in zip(votes, salts, strict=True):
        message = attestation_verdict_message(NEWCOMER.id, nonce, b"\x05" * 32, passed)
        await net.run(
            keys.identity,
            "node.attestation.record_verdict",
            {
                "node_id": NEWCOMER.id,
                "nonce": nonce,
                "passed": passed,
                "reason": "" if passed else "openings do not verify",
                "signature": b64(bls.sign(keys.bls_secret, message)),
                "salt": b64(salt),
            },
        )
        node = await get_aggregate(net.store, Node, NEWCOMER.id)
        assert node is not None
        if node.attestation_round is None:
            return


async def test_a_validator_quorum_accepts_an_attestation() -> None:
    net = await _network(policy=POLICY_V2)
    node, nonce = await _attestation_round(net)
    assert node.attestation_round is not None
    votes = [(k, True) for k in _keys(node.attestation_round.validators)]
    await _attestation_votes(net, nonce, votes)
    node_after = await get_aggregate(net.store, Node, NEWCOMER.id)
    assert node_after is not None and node_after.state == ACTIVE and node_after.is_attested


async def test_a_forged_attestation_is_rejected_and_the_node_slashed() -> None:
    net = await _network(policy=POLICY_V2)
    node, nonce = await _attestation_round(net)
    assert node.attestation_round is not None
    keys = _keys(node.attestation_round.validators)
    votes = [(k, False) for k in keys]
    salts = await _attestation_commits(net, nonce, votes)
    # a job verdict signature is not an attestation verdict (domain separation); checked
    # once the validator has a commit to reveal
    with pytest.raises(Rejection) as info:
        await net.run(
            keys[0].identity,
            "node.attestation.record_verdict",
            {
                "node_id": NEWCOMER.id,
                "nonce": nonce,
                "passed": False,
                "signature": b64(bls.sign(keys[0].bls_secret, b"\x00" * 32)),
                "salt": b64(b"s" * 16),
            },
        )
    assert info.value.code == "verdict_signature_invalid"
    await _attestation_reveals(net, nonce, votes, salts)
    after = await get_aggregate(net.store, Node, NEWCOMER.id)
    assert after is not None and after.state == JAILED and after.stake == 1_800
    assert (await get_balances(net.store))[BURN_ACCOUNT].balance == 200
    assert not after.is_attested
    net.advance(POLICY.jail_period_ns / SECOND_NS)
    await net.run(NEWCOMER, "node.unjail", {"node_id": NEWCOMER.id})
    unjailed = await get_aggregate(net.store, Node, NEWCOMER.id)
    assert unjailed is not None and unjailed.state == REGISTERED


async def test_a_reveal_after_the_attestation_vote_is_told_the_vote_is_over() -> None:
    net = await _network(policy=POLICY_V2)
    node, nonce = await _attestation_round(net)
    assert node.attestation_round is not None
    keys = _keys(node.attestation_round.validators)
    await _attestation_votes(net, nonce, [(k, False) for k in keys])  # two reveals decide
    late = keys[2]
    message = attestation_verdict_message(NEWCOMER.id, nonce, b"\x05" * 32, False)
    with pytest.raises(Rejection) as info:
        await net.run(
            late.identity,
            "node.attestation.record_verdict",
            {
                "node_id": NEWCOMER.id,
                "nonce": nonce,
                "passed": False,
                "signature": b64(bls.sign(late.bls_secret, message)),
                "salt": b64(hashlib.sha256(late.identity.id.encode() + nonce.encode()).digest()),
            },
        )
    assert info.value.code == "no_open_challenge"


async def test_equivocation_is_verified_and_slashed_once() -> None:
    net = await _network()
    job_id = await _committed_job(net)
    job = await _job(net, job_id)
    assert job.result is not None
    cheat = _keys(job.validators)[0]
    await net.report_equivocation(REPORTER, cheat, job_id, job.result.commitment)
    validator = await get_aggregate(net.store, Validator, cheat.identity.id)
    assert validator is not None and validator.stake == 500
    balances = await get_balances(net.store)
    assert balances[stake_account(cheat.identity.id)].balance == 500
    assert balances[BURN_ACCOUNT].balance == 500
    with pytest.raises(Rejection) as info:
        await net.report_equivocation(REPORTER, cheat, job_id, job.result.commitment)
    assert info.value.code == "evidence_already_used"
    honest = _keys(job.validators)[1]
    same = b64(bls.sign(honest.bls_secret, b"\x01" * 32))
    with pytest.raises(Rejection) as info:
        await net.run(
            REPORTER,
            "validator.report_equivocation",
            {
                "validator_id": honest.identity.id,
                "subject_kind": "job",
                "subject_id": job_id,
                "commitment": b64(job.result.commitment),
                "signature_pass": same,
                "signature_fail": same,
            },
        )
    assert info.value.code == "equivocation_signature_invalid"
