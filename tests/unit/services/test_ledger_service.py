"""The services end to end on the memory store: signed commands in, events and money out."""

from __future__ import annotations

import asyncio

import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import ClaimConflict, InsufficientFunds, Rejection, Unauthorized
from domain.job import REFUNDED, SETTLED, SUBMITTED, Job
from domain.ledger import BURN_ACCOUNT, TREASURY_ACCOUNT, stake_account, user_account
from domain.node import JAILED, Node
from domain.policy import LedgerPolicy
from domain.records import verify_chain
from domain.services.queries import get_aggregate, get_balances
from flopledger.network import LocalNetwork, b64, make_validator_keys
from proofs import bls
from proofs.envelope import BadSignature, ExpiredEnvelope, sign_command
from proofs.identity import Identity
from proofs.quorum import verdict_message
from tests.chain_tx import fresh_chain_reference

EU, US, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (2, 3, 4))
VALIDATORS = [make_validator_keys(i) for i in range(3)]
POLICY = LedgerPolicy(
    node_stake_min=1_000,
    validator_stake_min=500,
    result_window_ns=60 * 10**9,
    reassign_attempts_max=2,
    withdrawal_min=1,  # small sums: the minimum has its own tests (test_gateway_rules.py)
)


async def _network() -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=POLICY)
    for node, region in ((EU, "eu-west"), (US, "us-east")):
        await net.deposit(node, 10_000)
        await net.register_active_node(node, region=region, price=400, stake=5_000)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 5_000)
    return net


async def _balance(net: LocalNetwork, account_id: str) -> int:
    accounts = await get_balances(net.store)
    return accounts[account_id].balance if account_id in accounts else 0


async def _job(net: LocalNetwork, job_id: str) -> Job:
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    return job


async def _claimed_and_committed(net: LocalNetwork) -> str:
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(EU, "job.claim", {"job_id": job_id, "node_id": EU.id})
    await net.commit_result(EU, job_id, b"\x07" * 32)
    return job_id


def _keys_of(job: Job) -> list:
    return [k for k in VALIDATORS if k.identity.id in job.validators]


async def test_happy_path_settles_and_conserves_money() -> None:
    net = await _network()
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    assert (await get_balances(net.store))[user_account(CONSUMER.id)].available == 4_000
    with pytest.raises(Rejection) as info:
        await net.run(US, "job.claim", {"job_id": job_id, "node_id": US.id})
    assert info.value.code == "claim_too_early_for_region"
    await net.run(EU, "job.claim", {"job_id": job_id, "node_id": EU.id})
    await net.commit_result(EU, job_id, b"\x07" * 32)
    job = await _job(net, job_id)
    assert len(job.validators) == 3
    await net.vote_round(job_id, [(keys, True) for keys in _keys_of(job)])
    job = await _job(net, job_id)
    assert job.state == SETTLED
    assert await _balance(net, user_account(CONSUMER.id)) == 5_000 - 400
    # each node paid the log fee for its bond (rules v4, issue 16 item 8)
    fee = POLICY.log_fee
    assert await _balance(net, user_account(EU.id)) == 5_000 + 400 - 20 - 8 - fee
    assert await _balance(net, TREASURY_ACCOUNT) == 8 + 2 * fee
    accounts = await get_balances(net.store)
    assert sum(a.balance for a in accounts.values()) == 0
    verify_chain(await net.store.read_all(1, 10_000))


async def test_rejected_result_slashes_jails_and_reassigns() -> None:
    net = await _network()
    job_id = await _claimed_and_committed(net)
    votes = [(keys, False) for keys in _keys_of(await _job(net, job_id))]
    job_validators = [keys.identity.id for keys, _ in votes]
    await net.vote_round(job_id, votes, reason="rows do not match")
    job = await _job(net, job_id)
    node = await get_aggregate(net.store, Node, EU.id)
    assert node is not None
    assert (job.state, job.attempt, node.state, node.stake) == (SUBMITTED, 1, JAILED, 4_500)
    assert await _balance(net, stake_account(EU.id)) == 4_500
    # Issue 14, attack 5: the two signers of the failing certificate are paid their fee
    # (5% of the price 400, 10 each) out of the consumer's half of the slash.
    assert await _balance(net, user_account(CONSUMER.id)) == 5_000 + 250 - 20
    # (vote_round reveals in order: the first two reveals reach the quorum of 2 of 3.)
    paid = [await _balance(net, user_account(v)) for v in job_validators]
    assert paid == [10, 10, 0]
    assert await _balance(net, BURN_ACCOUNT) == 250
    with pytest.raises(Rejection) as info:
        await net.run(EU, "job.claim", {"job_id": job_id, "node_id": EU.id})
    assert info.value.code == "node_jailed"


async def test_missed_result_window_reassigns_then_expires_and_refunds() -> None:
    """Each missed window also pays the node's claim bond to the consumer (issue 14)."""
    net = await _network()
    job_id = await _claimed_and_committed(net)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(EU, "job.claim", {"job_id": job_id, "node_id": EU.id})
    with pytest.raises(Rejection) as info:
        await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    assert info.value.code == "result_window_open"
    net.advance(61)
    await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    assert (await _job(net, job_id)).state == SUBMITTED
    net.advance(10)
    await net.run(US, "job.claim", {"job_id": job_id, "node_id": US.id})
    net.advance(61)
    await net.run(US, "job.expire", {"job_id": job_id})
    job = await _job(net, job_id)
    assert job.state == REFUNDED
    bond = max(POLICY.claim_bond_min, 1_000 * POLICY.claim_bond_bps // 10_000)
    consumer = (await get_balances(net.store))[user_account(CONSUMER.id)]
    assert consumer.available == 4_000 + 2 * bond
    assert await _balance(net, stake_account(EU.id)) == 5_000 - bond
    assert await _balance(net, stake_account(US.id)) == 5_000 - bond


async def test_unclaimed_job_expires_and_is_refunded() -> None:
    net = await _network()
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000, deadline_s=30)
    net.advance(31)
    await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    assert (await _job(net, job_id)).state == REFUNDED
    with pytest.raises(Rejection) as info:
        await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    assert info.value.code == "job_refunded"
    assert (await get_balances(net.store))[user_account(CONSUMER.id)].available == 5_000


async def test_escrow_needs_funds() -> None:
    net = await _network()
    with pytest.raises(InsufficientFunds):
        await net.submit_job(CONSUMER, region="eu-west", max_price=5_001)
    with pytest.raises(InsufficientFunds):
        await net.run(CONSUMER, "account.withdraw", {"amount": 5_001})


async def test_repeated_envelope_is_idempotent_and_a_reused_nonce_is_refused() -> None:
    net = await _network()
    envelope = sign_command(
        CONSUMER, "account.withdraw", {"amount": 100}, nonce="nonce-same", issued_at_ns=net.now_ns
    )
    head = (await net.store.head()).position
    first = await net.service.execute(envelope, now_ns=net.now_ns)
    again = await net.service.execute(envelope, now_ns=net.now_ns)
    assert again.replayed and (again.first_position, again.subject) == (
        first.first_position,
        first.subject,
    )
    assert (await net.store.head()).position == first.last_position > head
    other = sign_command(
        CONSUMER, "account.withdraw", {"amount": 1}, nonce="nonce-same", issued_at_ns=net.now_ns
    )
    with pytest.raises(Rejection) as info:
        await net.service.execute(other, now_ns=net.now_ns)
    assert info.value.code == "nonce_already_used"
    assert await _balance(net, user_account(CONSUMER.id)) == 4_900


async def test_envelope_and_authorization_rejections_write_nothing() -> None:
    net = await _network()
    head = await net.store.head()
    stale = sign_command(
        CONSUMER,
        "account.withdraw",
        {"amount": 1},
        nonce="nonce-old1",
        issued_at_ns=net.now_ns - 301 * 10**9,
    )
    with pytest.raises(ExpiredEnvelope):
        await net.service.execute(stale, now_ns=net.now_ns)
    forged = sign_command(
        CONSUMER, "account.withdraw", {"amount": 1}, nonce="nonce-frg1", issued_at_ns=net.now_ns
    )
    forged = type(forged)(
        **{**{f: getattr(forged, f) for f in forged.__struct_fields__}, "body": {"amount": 2}}
    )
    with pytest.raises(BadSignature):
        await net.service.execute(forged, now_ns=net.now_ns)
    with pytest.raises(Unauthorized) as info:
        await net.run(
            CONSUMER,
            "account.deposit",
            {"account_owner": CONSUMER.id, "amount": 1, "chain_reference": fresh_chain_reference()},
        )
    assert info.value.code == "operator_only"
    with pytest.raises(Unauthorized):
        await net.run(CONSUMER, "stake.bond", {"target": EU.id, "amount": 1})
    with pytest.raises(Unauthorized) as info:
        await net.run(CONSUMER, "job.claim", {"job_id": "job-x", "node_id": EU.id})
    assert info.value.code == "not_the_node"
    with pytest.raises(Rejection) as info:
        await net.run(CONSUMER, "job.submit", {"max_price": "lots"})
    assert info.value.code == "command_body_invalid"
    with pytest.raises(Rejection) as info:
        await net.run(CONSUMER, "job.teleport", {})
    assert info.value.code == "unknown_command_kind"
    assert await net.store.head() == head


async def test_a_reveal_signed_on_an_earlier_result_is_told_it_has_nothing_to_reveal() -> None:
    """A validator whose view lags (the round it committed in was decided without it and the
    job has a new result) reveals a verdict signed on the earlier result: the ledger says it
    has no commit to reveal in this round, not that its signature is bad."""
    net = await _network()
    job_id = await _claimed_and_committed(net)
    keys = _keys_of(await _job(net, job_id))
    stale = bls.sign(keys[0].bls_secret, verdict_message(job_id, b"\x09" * 32, True))
    with pytest.raises(Rejection) as info:
        await net.run(
            keys[0].identity,
            "job.record_verdict",
            {"job_id": job_id, "passed": True, "signature": b64(stale), "salt": b64(b"s" * 16)},
        )
    assert info.value.code == "verdict_not_committed"


async def test_bad_verdict_signature_and_duplicate_registration_are_refused() -> None:
    net = await _network()
    job_id = await _claimed_and_committed(net)
    keys = _keys_of(await _job(net, job_id))
    # A reveal is first checked for a commit to reveal, then for its signature.
    await net.commit_vote(keys[0], job_id, True)
    with pytest.raises(Rejection) as info:
        await net.run(
            keys[0].identity,
            "job.record_verdict",
            {"job_id": job_id, "passed": True, "signature": "A" * 128},
        )
    assert info.value.code == "verdict_signature_invalid"
    with pytest.raises(Rejection) as info:
        await net.register_validator(keys[0], stake=1)
    assert info.value.code == "validator_already_registered"
    with pytest.raises(Rejection) as info:
        await net.register_active_node(EU, region="eu-west", price=1, stake=1)
    assert info.value.code == "node_already_registered"


async def test_concurrent_claims_first_wins_and_the_loser_gets_a_conflict() -> None:
    net = await _network()
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    net.advance(11)
    results = await asyncio.gather(
        net.run(EU, "job.claim", {"job_id": job_id, "node_id": EU.id}),
        net.run(US, "job.claim", {"job_id": job_id, "node_id": US.id}),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ClaimConflict) for r in results) == 1
    assert sum(not isinstance(r, BaseException) for r in results) == 1


async def test_registration_and_staking_rejections() -> None:
    net = await _network()
    newcomer = make_validator_keys(99)
    other = make_validator_keys(98)
    from flopledger.network import b64
    from proofs import bls

    with pytest.raises(Rejection) as info:
        await net.run(
            newcomer.identity,
            "validator.register",
            {
                "bls_public_key": b64(newcomer.bls_public),
                "proof_of_possession": b64(bls.pop_prove(other.bls_secret)),
            },
        )
    assert info.value.code == "proof_of_possession_invalid"
    with pytest.raises(Rejection) as info:
        await net.run(CONSUMER, "stake.bond", {"target": CONSUMER.id, "amount": 1})
    assert info.value.code == "stake_target_not_found"
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    with pytest.raises(Rejection) as info:
        await net.run(
            VALIDATORS[0].identity,
            "job.record_verdict",
            {"job_id": job_id, "passed": True, "signature": "A" * 128},
        )
    assert info.value.code == "no_result_committed"


class _AlwaysStale(MemoryEventStore):
    async def append(self, appends, *, command_id, metadata=b""):  # type: ignore[no-untyped-def]
        from domain.errors import VersionConflict

        raise VersionConflict(appends[0].stream_id, appends[0].expected_version, 99)


async def test_endless_conflicts_end_in_a_typed_rejection() -> None:
    net = LocalNetwork.create(_AlwaysStale(), policy=POLICY)
    with pytest.raises(Rejection) as info:
        await net.deposit(CONSUMER, 1)
    assert info.value.code == "too_much_contention"


async def test_claiming_node_releases_a_job_and_another_node_takes_it() -> None:
    net = await _network()
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(EU, "job.claim", {"job_id": job_id, "node_id": EU.id})
    with pytest.raises(Unauthorized):
        await net.run(US, "job.release", {"job_id": job_id})
    await net.run(EU, "job.release", {"job_id": job_id, "reason": "shutting down"})
    assert (await _job(net, job_id)).state == SUBMITTED
    net.advance(11)
    await net.run(US, "job.claim", {"job_id": job_id, "node_id": US.id})
    assert (await get_balances(net.store))[user_account(CONSUMER.id)].available == 4_000
