"""Attack 9 of issue 14: weak quorums.

A consumer colluding with its node set ``redundancy=1`` (a quorum of one validator); two cheap
colluding validators outvoted a validator holding almost all the drawn stake (the quorum
counted heads); and the audit accepted a certificate with one valid signer. The rules: a job
asks for at least ``redundancy_min`` validators (``redundancy_below_minimum`` at submit); a
round decides only with 2/3 of the drawn stake and at least ``quorum_signers_min`` signers;
the audit checks both on every certificate written under rules v2.
"""

from __future__ import annotations

import pytest

from domain.errors import Rejection
from domain.job import RESULT_COMMITTED, SETTLED, SUBMITTED, Job
from domain.ledger import escrow_account, user_account
from domain.services.queries import get_aggregate, get_balances
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys
from proofs import bls
from proofs.identity import Identity
from proofs.quorum import encode_qc, make_qc, verdict_message
from tests.adversarial._harness import get_balance, get_money_total, start_network
from tests.forgery import b64, edit_data, rechain, replay
from validator.audit import QUORUM_CERTIFICATE, AuditFailed

NODE, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (91, 92))
CHEAP = [make_validator_keys(90 + i) for i in range(2)]
WHALE = make_validator_keys(95)
HONEST = [make_validator_keys(96 + i) for i in range(3)]
GARBAGE = b"\x66" * 32
MAX_PRICE = 1_000


async def _network_with(validators: list[tuple[ValidatorKeys, int]]) -> LocalNetwork:
    net = await start_network()
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    for keys, stake in validators:
        await net.deposit(keys.identity, stake)
        await net.register_validator(keys, stake=stake)
    await net.deposit(CONSUMER, 5_000)
    return net


async def test_a_quorum_of_one_is_refused_at_submit() -> None:
    net = await _network_with([(keys, 1_000) for keys in HONEST])

    with pytest.raises(Rejection) as info:
        await net.submit_job(CONSUMER, region="eu-west", max_price=MAX_PRICE, redundancy=1)

    assert info.value.code == "redundancy_below_minimum"
    assert await get_balance(net, user_account(CONSUMER.id)) == 5_000
    assert await get_money_total(net) == 0


async def test_a_minority_stake_pass_cannot_decide() -> None:
    """Two colluders of 600 each pass garbage; the validator with 20,000 of the 21,200 drawn
    stake fails it. Counting heads, two of three passed and the node was paid; by stake the
    pass is a minority and the lone whale is below the signer minimum: no decision, the job
    goes back to the market after the round, nobody is paid for garbage."""
    net = await _network_with([(CHEAP[0], 600), (CHEAP[1], 600), (WHALE, 20_000)])
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=MAX_PRICE)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, GARBAGE)
    node_before = await get_balance(net, user_account(NODE.id))

    await net.vote_round(job_id, [(CHEAP[0], True), (CHEAP[1], True), (WHALE, False)])

    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == RESULT_COMMITTED
    assert job.state != SETTLED
    net.now_ns = job.round.reveal_deadline_ns + 1 if job.round else net.now_ns
    await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    # Nobody is absent, so the round is given up: the job is back on the market.
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == SUBMITTED
    assert await get_balance(net, user_account(NODE.id)) == node_before
    # The consumer's escrow is still held for the next claim, not paid out.
    escrow = (await get_balances(net.store))[escrow_account(job_id)]
    assert (escrow.balance, escrow.credits_pending) == (0, MAX_PRICE)
    assert await get_money_total(net) == 0


async def test_a_certificate_with_one_signer_of_three_fails_the_audit() -> None:
    """A log operator forging a history: a job's certificate replaced by one made of a single
    validator's (real) signature, the hashes re-chained."""
    net = await _network_with([(keys, 1_000) for keys in HONEST])
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=MAX_PRICE)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, GARBAGE)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.result is not None
    drawn = [next(k for k in HONEST if k.identity.id == v) for v in job.validators]
    await net.vote_round(job_id, [(keys, True) for keys in drawn])
    records = await net.store.read_all(1, 100_000)
    replay(records)

    message = verdict_message(job_id, job.result.commitment, True)
    lone = make_qc(
        [k.bls_public for k in drawn], {0: bls.sign(drawn[0].bls_secret, message)}, message
    )
    forged = [
        edit_data(r, certificate=b64(encode_qc(lone))) if r.event_type == "JobVerified" else r
        for r in records
    ]

    with pytest.raises(AuditFailed) as info:
        replay(rechain(forged))

    assert info.value.check == QUORUM_CERTIFICATE
