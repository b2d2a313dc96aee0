"""The audit's rules of issue 14, attack 5 (``validator.audit_fraud``) on a replayed history:
validators paid for every decided job, fraud slashes backed by a proof that still holds.
A clean history passes; a forger who edits a record and re-chains the hashes fails at that
record with the check that names the rule; a rules-version-1 history is not held to them."""

from __future__ import annotations

import base64
import json

import pytest

from domain.policy import RULES_V1
from domain.records import Record
from flopledger.network import LocalNetwork
from tests.adversarial import test_always_pass_validators as market
from tests.forgery import edit_data, rechain, replay
from validator.audit import FRAUD_PROOF, LEDGER_INVARIANTS, AuditFailed

H, L1, L2 = market.HONEST, market.LAZY_1, market.LAZY_2


async def _history() -> tuple[LocalNetwork, list[Record], dict[str, object]]:
    """An honest job passed, a garbage one failed (its signers paid from the slash), a
    garbage one passed and proven wrong (both pass voters slashed). Returns the honest row
    evidence too: what a forger would swap in."""
    net = await market.build_market()
    await market.run_job(net, market.NODE, market.CONSUMER, [(H, True), (L1, True)])
    await market.run_job(
        net, market.CHEATER, market.CONSUMER, [(H, False), (L1, False)], wrong_row=3
    )
    job_id, garbage = await market.run_job(
        net, market.CANARY_NODE, market.CONSUMER, [(L1, True), (L2, True)], wrong_row=3
    )
    await market.prove_fraud(net, market.CHALLENGER, job_id, garbage.evidence(3))
    right_row = market.compute_result(job_id).evidence(3)
    return net, await net.store.read_all(1, 10_000), right_row


def _index(records: list[Record], event_type: str, nth: int = 0) -> int:
    return [i for i, r in enumerate(records) if r.event_type == event_type][nth]


async def test_the_clean_history_passes_and_rechecks_the_fraud_proof() -> None:
    _, records, _ = await _history()
    replayer = replay(records)
    assert replayer.counts[FRAUD_PROOF] == 1
    assert sum(r.event_type == "DecisionRecorded" for r in records) == 3


async def test_a_decision_that_pays_a_signer_nothing_fails() -> None:
    _, records, _ = await _history()
    i = _index(records, "DecisionRecorded", 1)  # the failed garbage: paid from the slash
    fees = json.loads(records[i].data)["fees"]
    assert len(fees) == 2
    records[i] = edit_data(records[i], fees=fees[:1])
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (i + 1, LEDGER_INVARIANTS)
    assert "does not pay each signer once" in info.value.message


async def test_a_decision_naming_other_signers_fails() -> None:
    _, records, _ = await _history()
    i = _index(records, "DecisionRecorded", 0)
    records[i] = edit_data(records[i], signers=[H.identity.id, market.LAZY_2.identity.id])
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (i + 1, LEDGER_INVARIANTS)


async def test_a_fraud_proof_swapped_for_a_right_row_fails() -> None:
    _, records, right_row = await _history()
    i = _index(records, "FraudProven")
    encoded = base64.b64encode(json.dumps(right_row).encode()).decode()
    records[i] = edit_data(records[i], evidence=encoded)
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (i + 1, FRAUD_PROOF)


async def test_a_decision_listing_a_pass_vote_nobody_revealed_fails() -> None:
    """A forger adds the honest validator to a decision's pass voters (so that a fraud proof
    would slash it): the round's revealed verdicts say otherwise."""
    _, records, _ = await _history()
    i = _index(records, "DecisionRecorded", 2)
    votes = json.loads(records[i].data)["pass_votes"]
    forged = {**votes[0], "validator_id": H.identity.id}
    records[i] = edit_data(records[i], pass_votes=[*votes, forged])
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (i + 1, LEDGER_INVARIANTS)
    assert "pass votes" in info.value.message


async def test_a_fraud_slash_under_a_key_no_proof_proved_fails() -> None:
    _, records, _ = await _history()
    i = _index(records, "ValidatorSlashed", 1)
    key = json.loads(records[i].data)["evidence_key"]
    records[i] = edit_data(records[i], evidence_key=key[:-4] + "0000")
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (i + 1, LEDGER_INVARIANTS)
    assert "no fraud proof" in info.value.message


async def test_a_rules_version_1_history_is_not_held_to_the_rules() -> None:
    """Under rules version 1 a fail pays nobody and records no decision: the audit passes."""
    net = await market.build_market(rules_version=RULES_V1)
    await market.run_job(
        net, market.CHEATER, market.CONSUMER, [(H, False), (L1, False)], wrong_row=3
    )
    records = await net.store.read_all(1, 10_000)
    assert not any(r.event_type == "DecisionRecorded" for r in records)
    replay(records)


async def test_a_fraud_proof_naming_another_challenger_fails() -> None:
    """The reward follows the proof's signer: a record naming someone else is forged."""
    _, records, _ = await _history()
    i = _index(records, "FraudProven")
    records[i] = edit_data(records[i], challenger=market.CONSUMER.id)
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (i + 1, FRAUD_PROOF)


async def test_a_canary_reveal_replays_and_cannot_pass_as_a_plain_fraud_proof() -> None:
    net = await market.build_market()
    job_id, salt = await market.plant_canary(net)
    _, known_bad = await market.run_job(
        net,
        market.CANARY_NODE,
        market.PLANTER,
        [(L2, True), (H, False), (L1, False)],
        wrong_row=3,
        job_id=job_id,
    )
    await market.reveal_canary(net, job_id, salt, known_bad.evidence(3))
    records = await net.store.read_all(1, 10_000)
    assert replay(records).counts[FRAUD_PROOF] == 1

    i = _index(records, "FraudProven")
    records[i] = edit_data(records[i], canary=False)
    with pytest.raises(AuditFailed) as info:
        replay(rechain(records))
    assert (info.value.position, info.value.check) == (i + 1, FRAUD_PROOF)
