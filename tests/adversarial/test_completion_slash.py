"""A node that skips the work of a completion loses more than it gained (issue 18). Played with
valid keys through the command bus: completions are paid at their commit; a sampled one whose
drawn validators reject it slashes the node the charges it was paid in the challenge window
before it times ``completion_slash_multiple`` (capped by its stake), its consumer gets the
charge back and the signers their fees out of the slash, the rest is burned; a passed one
moves nothing but the signers' fees from the checks pool; a completion outside the window is
not counted; an unsampled one clears; a round nobody decides clears without blame. Money is
conserved throughout and the audit (re-execution included) accepts every history."""

from __future__ import annotations

from typing import Any

import pytest

from domain.completions import COMPLETION_CHECKS_ACCOUNT, is_sampled
from domain.errors import Rejection
from domain.ledger import BURN_ACCOUNT, user_account
from domain.node import JAILED
from domain.policy import BPS, PPM, SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate
from domain.validators import Validator
from flopledger.network import ValidatorKeys, b64
from proofs import bls
from proofs.identity import Identity
from proofs.quorum import completion_verdict_message
from tests.completion_network import (
    CONSUMER,
    CONSUMER_FUNDS,
    NODE,
    NODE_STAKE,
    POLICY,
    CompletionNet,
    start_completion_network,
)
from validator.audit import AuditOptions
from validator.audit_run import StoreSource, run_audit

ALWAYS = LedgerPolicy(
    **{
        **{name: getattr(POLICY, name) for name in POLICY.__struct_fields__},
        "completion_sample_rate_ppm": PPM,
    }
)
STRANGER = Identity.from_seed(bytes([231]) * 32)
HOUR_S = POLICY.completion_challenge_window_ns // SECOND_NS


def _charge(prompt_tokens: int, completion_tokens: int) -> int:
    return prompt_tokens * 1 + completion_tokens * 2  # the test model's prices


def _pool_share(charge: int) -> int:
    return charge * POLICY.validator_fee_bps // BPS


async def _serve(cnet: CompletionNet, prompt_tokens: int, completion_tokens: int) -> str:
    completion_id = await cnet.open(prompt_tokens_max=200, max_tokens=100)
    await cnet.commit(
        completion_id, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )
    return completion_id


async def _balances(cnet: CompletionNet, validators: list[ValidatorKeys]) -> dict[str, int]:
    accounts = [
        user_account(CONSUMER.id),
        user_account(NODE.id),
        COMPLETION_CHECKS_ACCOUNT,
        BURN_ACCOUNT,
        *(user_account(v.identity.id) for v in validators),
    ]
    return {account: await cnet.balance(account) for account in accounts}


async def _audit_ok(cnet: CompletionNet) -> None:
    report = await run_audit(StoreSource(cnet.net.store, "memory:"), AuditOptions())
    assert report.ok, report.failure


def _votes(validators: list[ValidatorKeys], drawn: list[str], passed: bool) -> list[Any]:
    by_id = {v.identity.id: v for v in validators}
    return [(by_id[v], passed) for v in drawn]


async def test_a_rejected_check_slashes_the_windows_charges_times_the_multiple() -> None:
    cnet = await start_completion_network(ALWAYS)
    validators = await cnet.add_validators(3)
    # Outside the window: served two windows before the rejected one (and checked, passing).
    old = await _serve(cnet, 100, 50)
    await cnet.vote(old, _votes(validators, await _drawn(cnet, old), True))
    cnet.net.advance(2 * HOUR_S)
    inside = await _serve(cnet, 40, 20)
    await cnet.vote(inside, _votes(validators, await _drawn(cnet, inside), True))
    cnet.net.advance(600)
    cheated = await _serve(cnet, 60, 30)
    await cnet.net.run_beacon()
    drawn = await _drawn(cnet, cheated)
    before = await _balances(cnet, validators)
    node = await cnet.get_node()
    stake_before = node.stake + node.unbonding

    await cnet.vote(cheated, _votes(validators, drawn, False), reason="toploc_mismatch")

    record = (await cnet.get(cheated)).view()
    assert record["state"] == "rejected" and record["outcome"] == "toploc_mismatch"
    window_charges = _charge(40, 20) + _charge(60, 30)  # not the one two windows back
    slash = window_charges * POLICY.completion_slash_multiple
    assert slash < stake_before  # not capped here
    node = await cnet.get_node()
    assert node.stake + node.unbonding == stake_before - slash
    assert node.state == JAILED
    after = await _balances(cnet, validators)
    refund = _charge(60, 30)
    assert after[user_account(CONSUMER.id)] - before[user_account(CONSUMER.id)] == refund
    # the certificate's signers: the drawn validators whose reveals made the quorum
    signers = [user_account(v) for v in (await cnet.get(cheated)).verdicts]
    assert 2 <= len(signers) <= len(drawn)
    fee = _pool_share(refund) * PPM // ALWAYS.completion_sample_rate_ppm // len(signers)
    for account in signers:
        assert after[account] - before[account] == fee
    burned = after[BURN_ACCOUNT] - before[BURN_ACCOUNT]
    assert burned == slash - refund - fee * len(signers)
    assert after[COMPLETION_CHECKS_ACCOUNT] == before[COMPLETION_CHECKS_ACCOUNT]
    assert await cnet.money_total() == 0
    assert await cnet.balance(user_account(CONSUMER.id)) == CONSUMER_FUNDS - _charge(
        100, 50
    ) - _charge(40, 20)
    await _audit_ok(cnet)


async def test_the_slash_is_capped_by_the_nodes_stake() -> None:
    cnet = await start_completion_network(ALWAYS)
    validators = await cnet.add_validators(3)
    served = [await _serve(cnet, 200, 100) for _ in range(12)]  # 400 each, 4,800 in all
    await cnet.net.run_beacon()
    for completion_id in served[:-1]:
        await cnet.vote(completion_id, _votes(validators, await _drawn(cnet, completion_id), True))
    consumer_before = await cnet.balance(user_account(CONSUMER.id))
    await cnet.vote(served[-1], _votes(validators, await _drawn(cnet, served[-1]), False))
    node = await cnet.get_node()
    assert node.stake + node.unbonding == 0  # 48,000 asked, its 5,000 taken
    assert node.slashed_total == NODE_STAKE
    assert await cnet.balance(user_account(CONSUMER.id)) == consumer_before + _charge(200, 100)
    assert await cnet.money_total() == 0
    await _audit_ok(cnet)


async def test_a_passed_check_moves_nothing_but_the_signers_fees_from_the_pool() -> None:
    cnet = await start_completion_network(ALWAYS)
    validators = await cnet.add_validators(3)
    completion_id = await _serve(cnet, 40, 20)
    await cnet.net.run_beacon()
    drawn = await _drawn(cnet, completion_id)
    before = await _balances(cnet, validators)
    stake_before = (await cnet.get_node()).stake
    await cnet.vote(completion_id, _votes(validators, drawn, True))
    after = await _balances(cnet, validators)
    record = (await cnet.get(completion_id)).view()
    assert record["state"] == "verified"
    for account in (user_account(CONSUMER.id), user_account(NODE.id), BURN_ACCOUNT):
        assert after[account] == before[account]
    assert (await cnet.get_node()).stake == stake_before
    paid = sum(after[a] - before[a] for a in before if a.startswith("user:") and a in after)
    assert paid == before[COMPLETION_CHECKS_ACCOUNT] - after[COMPLETION_CHECKS_ACCOUNT]
    assert 0 < paid <= _pool_share(_charge(40, 20))
    assert await cnet.money_total() == 0
    await _audit_ok(cnet)


async def test_unsampled_and_unjudged_completions_clear_without_blame() -> None:
    cnet = await start_completion_network(_with(rate=0))
    await cnet.add_validators(3)
    completion_id = await _serve(cnet, 40, 20)
    record = (await cnet.get(completion_id)).view()
    assert (record["state"], record["outcome"]) == ("cleared", "not sampled")

    cnet = await start_completion_network()  # no validator at all: nobody to check it
    completion_id = await _serve(cnet, 40, 20)
    assert (await cnet.get(completion_id)).outcome == "no eligible validator"

    cnet = await start_completion_network(ALWAYS)  # drawn, and nobody votes
    await cnet.add_validators(3)
    completion_id = await _serve(cnet, 40, 20)
    await cnet.net.run_beacon()
    completion = await cnet.get(completion_id)
    assert completion.round is not None
    stake_before = (await cnet.get_node()).stake
    cnet.net.now_ns = completion.round.reveal_deadline_ns + 1
    await cnet.net.run(CONSUMER, "completion.expire", {"completion_id": completion_id})
    await cnet.net.run_beacon()
    completion = await cnet.get(completion_id)
    if completion.state == "committed":  # replacements were drawn: they do not vote either
        assert completion.round is not None
        cnet.net.now_ns = completion.round.reveal_deadline_ns + 1
        await cnet.net.run(CONSUMER, "completion.expire", {"completion_id": completion_id})
    completion = await cnet.get(completion_id)
    assert (completion.state, completion.outcome) == ("cleared", "no verdict quorum")
    assert (await cnet.get_node()).stake == stake_before
    assert await cnet.money_total() == 0
    await _audit_ok(cnet)


async def test_the_beacon_after_the_commit_decides_the_sampling() -> None:
    cnet = await start_completion_network(_with(rate=POLICY.completion_sample_rate_ppm))
    await cnet.add_validators(3)
    served = [await _serve(cnet, 10, 5) for _ in range(8)]
    for completion_id in served:
        assert (await cnet.get(completion_id)).state == "committed"  # nothing known yet
    await cnet.net.run_beacon()
    for completion_id in served:
        completion = await cnet.get(completion_id)
        assert completion.state in ("committed", "cleared")
        assert (completion.round is not None) == (completion.state == "committed")


async def test_a_validator_signing_both_verdicts_on_a_completion_is_slashed_once() -> None:
    cnet = await start_completion_network(ALWAYS)
    validators = await cnet.add_validators(3)
    completion_id = await _serve(cnet, 40, 20)
    await cnet.net.run_beacon()
    completion = await cnet.get(completion_id)
    keys = validators[0]
    signatures = [
        b64(
            bls.sign(
                keys.bls_secret,
                completion_verdict_message(completion_id, completion.round_commitment(), v),
            )
        )
        for v in (True, False)
    ]
    report = {
        "validator_id": keys.identity.id,
        "subject_kind": "completion",
        "subject_id": completion.id,
        "commitment": b64(completion.round_commitment()),
        "signature_pass": signatures[0],
        "signature_fail": signatures[1],
    }
    stake_before = (await _validator(cnet, keys)).stake
    await cnet.net.run(STRANGER, "validator.report_equivocation", report)
    assert (await _validator(cnet, keys)).stake < stake_before
    again = cnet.net.run(STRANGER, "validator.report_equivocation", report)
    with pytest.raises(Rejection) as refused:
        await again
    assert refused.value.code == "evidence_already_used"
    bare = cnet.net.run(
        STRANGER, "validator.report_equivocation", {**report, "subject_id": completion_id}
    )
    with pytest.raises(Rejection) as refused:
        await bare
    assert refused.value.code == "equivocation_signature_invalid"
    assert await cnet.money_total() == 0
    await _audit_ok(cnet)


async def _validator(cnet: CompletionNet, keys: ValidatorKeys) -> Validator:
    found = await get_aggregate(cnet.net.store, Validator, keys.identity.id)
    assert found is not None
    return found


def test_the_sample_rate_holds_over_many_draws() -> None:
    rate = POLICY.completion_sample_rate_ppm
    draws = 4_000
    sampled = sum(is_sampled(i.to_bytes(32, "big"), f"cmpl-{i:024x}", rate) for i in range(draws))
    expected = draws * rate // PPM
    assert abs(sampled - expected) < 4 * (expected**0.5)
    assert not any(is_sampled(bytes([i]) * 32, "cmpl-x", 0) for i in range(64))
    assert all(is_sampled(bytes([i]) * 32, "cmpl-x", PPM) for i in range(64))


async def _drawn(cnet: CompletionNet, completion_id: str) -> list[str]:
    await cnet.net.run_beacon()
    completion = await cnet.get(completion_id)
    assert completion.round is not None, "not sampled"
    return list(completion.round.validators)


def _with(*, rate: int) -> LedgerPolicy:
    fields = {name: getattr(POLICY, name) for name in POLICY.__struct_fields__}
    return LedgerPolicy(**{**fields, "completion_sample_rate_ppm": rate})
