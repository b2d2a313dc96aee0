"""Attack 7 of issue 14: one piece of equivocation evidence, slashed many times.

A reporter holding one validator's two signatures (pass and fail on one job result) sent the
same evidence again and again with a different ``nonce``: for job subjects the nonce is not
in the signed messages but was in the evidence key, so every report slashed again (five
reports took a stake from 10,000 to 313). The rule: one slash per (validator, subject, round),
the key made only of what the signatures cover.
"""

from __future__ import annotations

import pytest

from domain.errors import Rejection
from domain.job import Job
from domain.ledger import BURN_ACCOUNT, stake_account
from domain.services.queries import get_aggregate
from domain.validators import Validator
from flopledger.network import b64, make_validator_keys
from proofs import bls
from proofs.identity import Identity
from proofs.quorum import verdict_message
from tests.adversarial._harness import get_balance, get_money_total, start_network

NODE, CONSUMER, REPORTER = (Identity.from_seed(bytes([i]) * 32) for i in (71, 72, 73))
VALIDATORS = [make_validator_keys(70 + i) for i in range(3)]
VALIDATOR_STAKE = 10_000
REPORTS = 5


async def test_one_equivocation_is_slashed_once_whatever_the_nonce() -> None:
    net = await start_network()
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, VALIDATOR_STAKE)
        await net.register_validator(keys, stake=VALIDATOR_STAKE)
    await net.deposit(CONSUMER, 5_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, b"\x07" * 32)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.result is not None
    cheat = next(k for k in VALIDATORS if k.identity.id in job.validators)
    signatures = [
        b64(bls.sign(cheat.bls_secret, verdict_message(job_id, job.result.commitment, passed)))
        for passed in (True, False)
    ]

    refusals = []
    for index in range(REPORTS):
        body = {
            "validator_id": cheat.identity.id,
            "subject_kind": "job",
            "subject_id": job_id,
            "nonce": f"attempt-{index}",
            "commitment": b64(job.result.commitment),
            "signature_pass": signatures[0],
            "signature_fail": signatures[1],
        }
        try:
            await net.run(REPORTER, "validator.report_equivocation", body)
        except Rejection as refused:
            refusals.append(refused.code)

    assert refusals == ["evidence_already_used"] * (REPORTS - 1)
    validator = await get_aggregate(net.store, Validator, cheat.identity.id)
    assert validator is not None
    slashed = VALIDATOR_STAKE * net.policy.equivocation_slash_bps // 10_000
    assert validator.stake == VALIDATOR_STAKE - slashed
    assert await get_balance(net, stake_account(cheat.identity.id)) == VALIDATOR_STAKE - slashed
    assert await get_balance(net, BURN_ACCOUNT) == slashed
    assert await get_money_total(net) == 0


async def test_the_same_report_with_no_nonce_is_refused_after_one_with_a_nonce() -> None:
    """The nonce-free form of the evidence is the same evidence: refused once used."""
    net = await start_network()
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, VALIDATOR_STAKE)
        await net.register_validator(keys, stake=VALIDATOR_STAKE)
    await net.deposit(CONSUMER, 5_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, b"\x07" * 32)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.result is not None
    cheat = next(k for k in VALIDATORS if k.identity.id in job.validators)
    signatures = [
        b64(bls.sign(cheat.bls_secret, verdict_message(job_id, job.result.commitment, passed)))
        for passed in (True, False)
    ]
    body = {
        "validator_id": cheat.identity.id,
        "subject_kind": "job",
        "subject_id": job_id,
        "nonce": "chosen-by-the-reporter",
        "commitment": b64(job.result.commitment),
        "signature_pass": signatures[0],
        "signature_fail": signatures[1],
    }
    await net.run(REPORTER, "validator.report_equivocation", body)

    with pytest.raises(Rejection) as info:
        await net.report_equivocation(REPORTER, cheat, job_id, job.result.commitment)

    assert info.value.code == "evidence_already_used"
    assert await get_money_total(net) == 0
