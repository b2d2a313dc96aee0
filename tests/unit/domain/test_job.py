"""Job state machine and the task grabbing policy, given/when/then."""

from __future__ import annotations

import pytest

from domain.errors import ClaimConflict, InvalidTransition, Rejection, Unauthorized
from domain.job import (
    CLAIMED,
    EXPIRED,
    REFUNDED,
    REJECTED,
    RESULT_COMMITTED,
    SETTLED,
    SUBMITTED,
    VERIFIED,
    Job,
    ResultCommitment,
    Verdict,
    WorkloadSpec,
)
from domain.node import GpuClaim, Node
from domain.policy import RULES_V1, LedgerPolicy
from domain.scheduling import ELSEWHERE, SAME_GROUP, SAME_REGION, compute_region_tier
from domain.settlement import Payout, compute_settlement
from domain.verdicts import compute_verdict_commitment, job_subject

NOW = 1_800_000_000_000_000_000
S = 1_000_000_000
POLICY = LedgerPolicy(
    node_stake_min=100, region_stagger_ns=5 * S, result_window_ns=60 * S, reassign_attempts_max=2
)
RESULT = ResultCommitment(b"c" * 32, b"a" * 32, b"p" * 32)


def _job(region: str = "eu-west", gpu_class_min: str = "consumer", max_price: int = 100) -> Job:
    return Job.submit(
        "job-1",
        consumer="consumer",
        region=region,
        max_price=max_price,
        workload=WorkloadSpec("matmul", gpu_class_min, {"n": 64}),
        redundancy=3,
        deadline_ns=NOW + 3600 * S,
        policy=POLICY,
        now_ns=NOW,
    )


def _node(
    node_id: str = "node-eu",
    region: str = "eu-west",
    *,
    price: int = 50,
    gpu_class: str = "datacenter",
    stake: int = 100,
    attest: bool = True,
) -> Node:
    node = Node.register(
        node_id,
        owner=f"owner-{node_id}",
        region=region,
        gpus=(GpuClaim("H100", 80000),),
        gpu_class=gpu_class,
        price=price,
        now_ns=NOW,
    )
    if stake:
        node.bond(signer=node.owner, amount=stake, policy=POLICY, now_ns=NOW)
    if attest:
        node.challenge_attestation(nonce="n", seed="s", size=8, deadline_ns=NOW + S, now_ns=NOW)
        node.submit_attestation(
            nonce="n",
            inventory_digest=b"",
            commitment=b"c",
            timings_ns=(),
            signature=b"",
            now_ns=NOW,
        )
        node.accept_attestation(certificate=b"", policy=POLICY, now_ns=NOW)
    return node


def _committed(validators: tuple[str, ...] = ("v1", "v2", "v3")) -> Job:
    job = _job()
    job.claim(_node(), policy=POLICY, now_ns=NOW)
    job.commit_result(node_id="node-eu", result=RESULT, now_ns=NOW + S)
    job.assign_validators(
        validators=validators, log_position=7, log_hash=b"h" * 32, policy=POLICY, now_ns=NOW + S
    )
    return job


def _salt(validator: str) -> bytes:
    return validator.encode().ljust(16, b"-")


def _commit(job: Job, validator: str, passed: bool) -> None:
    verdict_hash = compute_verdict_commitment(
        subject=job_subject(job.id),
        result_commitment=RESULT.commitment,
        validator_id=validator,
        passed=passed,
        salt=_salt(validator),
    )
    job.commit_verdict(validator_id=validator, verdict_hash=verdict_hash, now_ns=NOW + 2 * S)


def _reveal(job: Job, validator: str, passed: bool) -> None:
    job.reveal_verdict(
        validator_id=validator,
        verdict=Verdict(passed, "", b"s"),
        salt=_salt(validator),
        now_ns=NOW + 3 * S,
    )


def _vote_all(job: Job, votes: dict[str, bool], later: dict[str, bool] | None = None) -> None:
    """Every assigned validator commits (closing the commit phase), then ``votes`` reveal;
    ``later`` are committed votes revealed by the test itself."""
    for validator in job.validators:
        _commit(job, validator, {**votes, **(later or {})}.get(validator, True))
    for validator, passed in votes.items():
        _reveal(job, validator, passed)


def test_submission_rules() -> None:
    with pytest.raises(Rejection) as info:
        Job.submit(
            "j",
            consumer="c",
            workload=WorkloadSpec("matmul", "cpu", {}),
            max_price=0,
            region="eu",
            redundancy=3,
            deadline_ns=NOW + 1,
            policy=POLICY,
            now_ns=NOW,
        )
    assert info.value.code == "max_price_must_be_positive"
    with pytest.raises(Rejection) as info:
        Job.submit(
            "j",
            consumer="c",
            workload=WorkloadSpec("matmul", "cpu", {}),
            max_price=1,
            region="eu",
            redundancy=3,
            deadline_ns=NOW,
            policy=POLICY,
            now_ns=NOW,
        )
    assert info.value.code == "deadline_in_past"


def _submit_with(redundancy: int, policy: LedgerPolicy) -> Job:
    return Job.submit(
        "j",
        consumer="c",
        workload=WorkloadSpec("matmul", "cpu", {}),
        max_price=1,
        region="eu",
        redundancy=redundancy,
        deadline_ns=NOW + 1,
        policy=policy,
        now_ns=NOW,
    )


def test_redundancy_at_the_minimum_is_accepted_and_below_it_refused() -> None:
    assert _submit_with(POLICY.redundancy_min, POLICY).redundancy == POLICY.redundancy_min
    with pytest.raises(Rejection) as info:
        _submit_with(POLICY.redundancy_min - 1, POLICY)
    assert info.value.code == "redundancy_below_minimum"
    # Rules v1 had no minimum: a store declaring them keeps accepting what it accepted.
    v1 = LedgerPolicy(rules_version=RULES_V1)
    assert _submit_with(1, v1).redundancy == 1


def test_region_tiers() -> None:
    assert compute_region_tier("eu-west", "eu-west") == SAME_REGION
    assert compute_region_tier("eu-west", "eu-central") == SAME_GROUP
    assert compute_region_tier("eu-west", "us-east") == ELSEWHERE


def test_in_region_node_claims_at_once_others_after_staggers() -> None:
    for region, wait in (("eu-west", 0), ("eu-north", 5), ("us-east", 10)):
        job = _job()
        node = _node(f"n-{region}", region)
        if wait:
            with pytest.raises(Rejection) as info:
                job.claim(node, policy=POLICY, now_ns=NOW + wait * S - 1)
            assert info.value.code == "claim_too_early_for_region"
        job.claim(node, policy=POLICY, now_ns=NOW + wait * S)
        assert (job.state, job.node_id, job.attempt) == (CLAIMED, f"n-{region}", 1)


def test_first_valid_claim_wins() -> None:
    job = _job()
    job.claim(_node("a"), policy=POLICY, now_ns=NOW)
    with pytest.raises(ClaimConflict) as info:
        job.claim(_node("b"), policy=POLICY, now_ns=NOW)
    assert info.value.code == "job_already_claimed"


@pytest.mark.parametrize(
    ("node_kwargs", "job_kwargs", "code"),
    [
        ({"attest": False}, {}, "node_not_active"),
        ({"stake": 0}, {}, "node_not_active"),
        ({"gpu_class": "consumer"}, {"gpu_class_min": "datacenter"}, "gpu_class_too_low"),
        ({"price": 101}, {}, "price_above_maximum"),
    ],
)
def test_eligibility_rules(node_kwargs: dict, job_kwargs: dict, code: str) -> None:
    job = _job(**job_kwargs)
    with pytest.raises(Rejection) as info:
        job.claim(_node(**node_kwargs), policy=POLICY, now_ns=NOW)
    assert info.value.code == code
    assert job.state == SUBMITTED


def test_price_equal_to_maximum_and_class_equal_to_requirement_are_eligible() -> None:
    job = _job(gpu_class_min="datacenter", max_price=50)
    job.claim(_node(price=50), policy=POLICY, now_ns=NOW)
    assert job.state == CLAIMED


def test_jailed_node_and_past_deadline_are_refused() -> None:
    node = _node()
    node.slash(amount=1, reason="x", evidence=b"e", policy=POLICY, now_ns=NOW)
    with pytest.raises(Rejection) as info:
        _job().claim(node, policy=POLICY, now_ns=NOW)
    assert info.value.code == "node_jailed"
    with pytest.raises(Rejection) as info:
        _job().claim(_node(), policy=POLICY, now_ns=NOW + 3600 * S + 1)
    assert info.value.code == "job_deadline_passed"


def test_only_the_claiming_node_commits_and_only_in_time() -> None:
    job = _job()
    job.claim(_node(), policy=POLICY, now_ns=NOW)
    with pytest.raises(Unauthorized) as info:
        job.commit_result(node_id="other", result=RESULT, now_ns=NOW)
    assert info.value.code == "not_the_claiming_node"
    with pytest.raises(Rejection) as info:
        job.commit_result(node_id="node-eu", result=RESULT, now_ns=NOW + 60 * S + 1)
    assert info.value.code == "result_too_late"
    job.commit_result(node_id="node-eu", result=RESULT, now_ns=NOW + 60 * S)
    assert job.state == RESULT_COMMITTED


def test_verdict_rules_and_quorum_verifies() -> None:
    job = _committed()
    with pytest.raises(Unauthorized) as info:
        _commit(job, "stranger", True)
    assert info.value.code == "validator_not_assigned"
    _vote_all(job, {"v1": True}, later={"v2": False, "v3": True})
    with pytest.raises(InvalidTransition) as info:
        _reveal(job, "v1", True)
    assert info.value.code == "verdict_already_recorded"
    assert job.compute_quorum_outcome(POLICY) is None
    with pytest.raises(InvalidTransition) as info:
        job.decide_round(certificate=b"qc", policy=POLICY, now_ns=NOW)
    assert info.value.code == "quorum_not_reached"
    _reveal(job, "v2", False)
    _reveal(job, "v3", True)
    assert job.decide_round(certificate=b"qc", policy=POLICY, now_ns=NOW) is True
    assert job.state == VERIFIED and job.majority_validators(True) == ("v1", "v3")
    payouts = (Payout("user:p", 100, "provider"),)
    job.settle(payouts=payouts, now_ns=NOW)
    assert (job.state, job.payouts) == (SETTLED, payouts)
    with pytest.raises(InvalidTransition) as info:
        job.settle(payouts=payouts, now_ns=NOW)
    assert info.value.code == "job_settled"


def test_rejection_reassigns_then_expires_after_the_attempt_limit() -> None:
    job = _committed()
    _vote_all(job, {"v1": False, "v2": False})
    assert job.decide_round(certificate=b"qc", policy=POLICY, now_ns=NOW) is False
    assert job.state == REJECTED and "node-eu" in job.excluded_nodes
    assert job.reassign_or_expire(reason="rejected", policy=POLICY, now_ns=NOW + 3 * S)
    assert job.state == SUBMITTED and job.offered_at_ns == NOW + 3 * S
    with pytest.raises(Rejection) as info:
        job.claim(_node(), policy=POLICY, now_ns=NOW + 3 * S)
    assert info.value.code == "node_excluded_from_job"
    job.claim(_node("node-2"), policy=POLICY, now_ns=NOW + 3 * S)
    assert job.attempt == 2
    with pytest.raises(Rejection) as info:
        job.reassign_or_expire(reason="late", policy=POLICY, now_ns=NOW + 3 * S)
    assert info.value.code == "result_window_open"
    assert not job.reassign_or_expire(reason="late", policy=POLICY, now_ns=NOW + 64 * S)
    assert job.state == EXPIRED
    job.refund(amount=100, now_ns=NOW + 64 * S)
    assert job.state == REFUNDED


def test_unclaimed_job_expires_only_after_its_deadline() -> None:
    job = _job()
    with pytest.raises(Rejection) as info:
        job.expire(now_ns=NOW + 3600 * S)
    assert info.value.code == "deadline_not_reached"
    with pytest.raises(InvalidTransition) as info:
        job.refund(amount=1, now_ns=NOW)
    assert info.value.code == "job_submitted"
    job.expire(now_ns=NOW + 3600 * S + 1)
    assert job.state == EXPIRED


def test_assignment_rules() -> None:
    job = _job()
    with pytest.raises(InvalidTransition):
        job.assign_validators(
            validators=("v",), log_position=1, log_hash=b"", policy=POLICY, now_ns=NOW
        )
    job.claim(_node(), policy=POLICY, now_ns=NOW)
    job.commit_result(node_id="node-eu", result=RESULT, now_ns=NOW)
    with pytest.raises(Rejection) as info:
        job.assign_validators(
            validators=(), log_position=1, log_hash=b"", policy=POLICY, now_ns=NOW
        )
    assert info.value.code == "no_validators_available"
    job.assign_validators(
        validators=("v",), log_position=1, log_hash=b"", policy=POLICY, now_ns=NOW
    )
    with pytest.raises(InvalidTransition) as info:
        job.assign_validators(
            validators=("v",), log_position=1, log_hash=b"", policy=POLICY, now_ns=NOW
        )
    assert info.value.code == "validators_already_assigned"


def test_settlement_split_conserves_the_escrow() -> None:
    payouts = compute_settlement(
        price=1000,
        max_price=1500,
        provider_account="p",
        validator_accounts=("v1", "v2", "v3"),
        consumer_account="c",
        treasury_account="t",
        policy=POLICY,
    )
    amounts = {p.account: p.amount for p in payouts}
    assert amounts == {"p": 930, "v1": 16, "v2": 16, "v3": 16, "t": 22, "c": 500}
    assert sum(amounts.values()) == 1500


def test_stake_below_a_raised_minimum_blocks_claims() -> None:
    node = _node(stake=100)
    stricter = LedgerPolicy(node_stake_min=101, region_stagger_ns=POLICY.region_stagger_ns)
    with pytest.raises(Rejection) as info:
        _job().claim(node, policy=stricter, now_ns=NOW)
    assert info.value.code == "stake_below_minimum"


def test_release_returns_the_job_to_the_market_and_excludes_the_node() -> None:
    job = _job()
    with pytest.raises(InvalidTransition) as info:
        job.release(node_id="node-eu", reason="bye", now_ns=NOW)
    assert info.value.code == "job_submitted"
    job.claim(_node(), policy=POLICY, now_ns=NOW)
    with pytest.raises(Unauthorized) as info:
        job.release(node_id="someone-else", reason="bye", now_ns=NOW)
    assert info.value.code == "not_the_claiming_node"
    with pytest.raises(Rejection) as info:
        job.release(node_id="node-eu", reason="bye", now_ns=NOW + 60 * S + 1)
    assert info.value.code == "result_window_closed"
    job.release(node_id="node-eu", reason="shutting down", now_ns=NOW + 60 * S)
    assert (job.state, job.node_id, job.offered_at_ns) == (SUBMITTED, "", NOW + 60 * S)
    with pytest.raises(Rejection) as info:
        job.claim(_node(), policy=POLICY, now_ns=NOW + 60 * S)
    assert info.value.code == "node_excluded_from_job"
    job.claim(_node("node-2"), policy=POLICY, now_ns=NOW + 60 * S)
    assert job.state == CLAIMED
