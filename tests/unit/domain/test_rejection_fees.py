"""How a rejection's fees split the rejected node's slash share (``compute_rejection_fees``):
each signer the share a pass would pay, capped by what the slash holds, the rest to the
consumer, every unit accounted for; and how long stake must stay slashable for a fraud
proof to reach it (issue 14, attack 5)."""

from __future__ import annotations

import msgspec
import pytest

from domain.policy import (
    RULES_V1,
    SECOND_NS,
    LedgerPolicy,
    compute_fraud_exposure_ns,
    find_policy_problem,
)
from domain.settlement import Payout, compute_rejection_fees, compute_validator_fee_share

POLICY = LedgerPolicy()  # validator_fee_bps 500: 5% of the price
SIGNERS = ("user:v1", "user:v2")


def _fees(available: int, price: int = 400) -> tuple[Payout, ...]:
    return compute_rejection_fees(
        price=price,
        available=available,
        validator_accounts=SIGNERS,
        consumer_account="user:c",
        policy=POLICY,
    )


def test_each_signer_gets_the_share_of_a_pass_and_the_consumer_the_rest() -> None:
    assert compute_validator_fee_share(400, 2, POLICY) == 10
    assert _fees(250) == (
        Payout("user:v1", 10, "validator"),
        Payout("user:v2", 10, "validator"),
        Payout("user:c", 230, "compensation"),
    )


def test_at_the_bound_the_slash_pays_the_fees_exactly_and_below_it_is_split() -> None:
    assert [p.amount for p in _fees(20)] == [10, 10]
    assert [(p.account, p.amount) for p in _fees(19)] == [
        ("user:v1", 9),
        ("user:v2", 9),
        ("user:c", 1),
    ]


def test_an_empty_slash_pays_nobody() -> None:
    assert _fees(0) == ()
    assert [p.amount for p in _fees(1)] == [1]  # too little for two signers: the consumer


def test_a_negative_share_is_a_bug() -> None:
    with pytest.raises(ValueError):
        _fees(-1)


def test_unbonding_must_outlast_a_validators_last_provable_vote() -> None:
    """At the bound the policy is valid; one nanosecond shorter, a validator could withdraw
    before a fraud proof of its last vote (rules v2 only: v1 stores keep their policy)."""
    exposure = compute_fraud_exposure_ns(POLICY)
    assert exposure == POLICY.fraud_window_ns + 3 * (60 + 60) * SECOND_NS
    at_bound = msgspec.structs.replace(POLICY, unbonding_period_ns=exposure)
    assert find_policy_problem(at_bound) is None
    past = msgspec.structs.replace(POLICY, unbonding_period_ns=exposure - 1)
    problem = find_policy_problem(past)
    assert problem is not None and "fraud window" in problem
    old_rules = msgspec.structs.replace(past, rules_version=RULES_V1)
    assert find_policy_problem(old_rules) is None
