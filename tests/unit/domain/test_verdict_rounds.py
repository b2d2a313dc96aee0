"""Commit-reveal verdict rounds on jobs and attestations, and validator selection.

Given a job with a committed result and assigned validators / when validators commit,
reveal, stay away or are replaced / then the events or the rejection named by the rule.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import msgspec
import pytest

from domain.errors import InvalidTransition, Rejection, Unauthorized
from domain.job import EXPIRED, RESULT_COMMITTED, SUBMITTED, Job, ResultCommitment, WorkloadSpec
from domain.node import ATTESTED, REGISTERED, GpuClaim, Node
from domain.policy import RULES_V1, LedgerPolicy
from domain.selection import select_validators
from domain.verdicts import (
    SALT_BYTES_MAX,
    SALT_BYTES_MIN,
    Verdict,
    attestation_subject,
    compute_verdict_commitment,
    job_subject,
)

NOW = 1_800_000_000_000_000_000
S = 1_000_000_000
POLICY = LedgerPolicy(
    node_stake_min=100,
    result_window_ns=60 * S,
    verdict_commit_window_ns=10 * S,
    verdict_reveal_window_ns=10 * S,
    reassign_attempts_max=2,
)
STAKE_POLICY = LedgerPolicy(
    **{**{f: getattr(POLICY, f) for f in POLICY.__struct_fields__}, "quorum_by_stake": True}
)
# Rules v1 (records written before issue 14): a head count, or drawn stake alone.
COUNT_V1 = msgspec.structs.replace(POLICY, rules_version=RULES_V1)
STAKE_V1 = msgspec.structs.replace(STAKE_POLICY, rules_version=RULES_V1)
RESULT = ResultCommitment(b"c" * 32, b"a" * 32, b"p" * 32)
COMMIT_AT = NOW + 2 * S
REVEAL_AT = NOW + 12 * S + 1  # past the commit window opened at NOW + S


def _node(node_id: str = "node-1") -> Node:
    node = Node.register(
        node_id,
        owner="o",
        region="eu-west",
        gpus=(GpuClaim("H100", 80000),),
        gpu_class="datacenter",
        price=50,
        now_ns=NOW,
    )
    node.bond(signer=node.owner, amount=100, policy=POLICY, now_ns=NOW)
    return node


def _attested(node: Node) -> Node:
    node.challenge_attestation(nonce="n", seed="s", size=8, deadline_ns=NOW + S, now_ns=NOW)
    node.submit_attestation(
        nonce="n", inventory_digest=b"i", commitment=b"c", timings_ns=(), signature=b"", now_ns=NOW
    )
    node.accept_attestation(certificate=b"", policy=POLICY, now_ns=NOW)
    return node


def _job(
    validators: tuple[str, ...] = ("v1", "v2", "v3"),
    weights: tuple[int, ...] = (),
    policy: LedgerPolicy = POLICY,
) -> Job:
    job = Job.submit(
        "job-1",
        consumer="consumer",
        workload=WorkloadSpec("matmul", "cpu", {"n": 8}),
        max_price=100,
        region="eu-west",
        redundancy=len(validators),
        deadline_ns=NOW + 3600 * S,
        # These tests are about the round's steps, some with one validator: the redundancy
        # minimum at submit has its own tests (test_job.py).
        policy=msgspec.structs.replace(policy, redundancy_min=1),
        now_ns=NOW,
    )
    job.claim(_attested(_node()), policy=policy, now_ns=NOW)
    job.commit_result(node_id="node-1", result=RESULT, now_ns=NOW + S)
    job.assign_validators(
        validators=validators,
        weights=weights,
        log_position=9,
        log_hash=b"h" * 32,
        policy=policy,
        now_ns=NOW + S,
    )
    return job


def _salt(validator: str) -> bytes:
    return hashlib.sha256(validator.encode()).digest()


def _hash(job: Job, validator: str, passed: bool, salt: bytes | None = None) -> bytes:
    return compute_verdict_commitment(
        subject=job_subject(job.id),
        result_commitment=RESULT.commitment,
        validator_id=validator,
        passed=passed,
        salt=_salt(validator) if salt is None else salt,
    )


def _commit(job: Job, validator: str, passed: bool, at: int = COMMIT_AT) -> None:
    job.commit_verdict(
        validator_id=validator, verdict_hash=_hash(job, validator, passed), now_ns=at
    )


def _reveal(job: Job, validator: str, passed: bool, at: int = REVEAL_AT) -> None:
    job.reveal_verdict(
        validator_id=validator,
        verdict=Verdict(passed, "", b"sig"),
        salt=_salt(validator),
        now_ns=at,
    )


def _code(excinfo: pytest.ExceptionInfo[Rejection]) -> str:
    return excinfo.value.code


def test_assignment_opens_commit_and_reveal_windows() -> None:
    job = _job()
    assert job.round is not None
    assert job.round.commit_deadline_ns == NOW + S + 10 * S
    assert job.round.reveal_deadline_ns == NOW + S + 20 * S
    assert job.round.weights == (1, 1, 1)


def test_commit_rules_in_order() -> None:
    job = _job()
    with pytest.raises(Unauthorized) as info:
        _commit(job, "stranger", True)
    assert _code(info) == "validator_not_assigned"
    _commit(job, "v1", True)
    with pytest.raises(InvalidTransition) as info:
        _commit(job, "v1", False)
    assert _code(info) == "verdict_already_committed"
    with pytest.raises(Rejection) as info:
        _commit(job, "v2", True, at=NOW + 11 * S + 1)
    assert _code(info) == "commit_window_closed"


def test_no_reveal_before_the_commit_window_closes_unless_all_committed() -> None:
    job = _job()
    _commit(job, "v1", True)
    with pytest.raises(Rejection) as info:
        _reveal(job, "v1", True, at=COMMIT_AT)
    assert _code(info) == "commit_window_open"
    _commit(job, "v2", True)
    _commit(job, "v3", False)
    _reveal(job, "v1", True, at=COMMIT_AT)  # every assigned validator committed: phase over
    assert job.verdicts["v1"].passed


def test_reveal_rules() -> None:
    job = _job()
    _commit(job, "v1", True)
    _commit(job, "v2", True)
    with pytest.raises(Rejection) as info:
        _reveal(job, "v3", True)
    assert _code(info) == "verdict_not_committed"
    with pytest.raises(Rejection) as info:
        _reveal(job, "v1", False)  # the other verdict does not hash to the commit
    assert _code(info) == "reveal_does_not_match_commit"
    with pytest.raises(Rejection) as info:
        job.reveal_verdict(
            validator_id="v1", verdict=Verdict(True, "", b""), salt=b"short", now_ns=REVEAL_AT
        )
    assert _code(info) == "salt_length_invalid"
    with pytest.raises(Rejection) as info:
        _reveal(job, "v1", True, at=NOW + 21 * S + 1)
    assert _code(info) == "reveal_window_closed"
    _reveal(job, "v1", True)
    with pytest.raises(InvalidTransition) as info:
        _reveal(job, "v1", True)
    assert _code(info) == "verdict_already_recorded"


def test_salt_bounds() -> None:
    job = _job(("v1",))
    salt = b"s" * SALT_BYTES_MIN
    job.commit_verdict(
        validator_id="v1", verdict_hash=_hash(job, "v1", True, salt), now_ns=COMMIT_AT
    )
    job.reveal_verdict(
        validator_id="v1", verdict=Verdict(True, "", b""), salt=salt, now_ns=COMMIT_AT
    )
    with pytest.raises(Rejection):
        _job(("v1",)).reveal_verdict(
            validator_id="v1",
            verdict=Verdict(True, "", b""),
            salt=b"s" * (SALT_BYTES_MAX + 1),
            now_ns=COMMIT_AT,
        )


def test_a_commit_binds_its_validator_so_it_cannot_be_copied() -> None:
    job = _job()
    copied = _hash(job, "v1", False)
    job.commit_verdict(validator_id="v1", verdict_hash=copied, now_ns=COMMIT_AT)
    job.commit_verdict(validator_id="v2", verdict_hash=copied, now_ns=COMMIT_AT)
    _commit(job, "v3", True)
    with pytest.raises(Rejection) as info:
        job.reveal_verdict(
            validator_id="v2", verdict=Verdict(False, "", b""), salt=_salt("v1"), now_ns=REVEAL_AT
        )
    assert _code(info) == "reveal_does_not_match_commit"


def test_count_quorum_and_a_tie() -> None:
    job = _job(("v1", "v2", "v3", "v4"))
    half = LedgerPolicy(quorum_numerator=1, quorum_denominator=2)
    for v, passed in (("v1", True), ("v2", True), ("v3", False), ("v4", False)):
        _commit(job, v, passed)
    for v, passed in (("v1", True), ("v2", True), ("v3", False)):
        _reveal(job, v, passed)
    assert job.compute_quorum_outcome(half) is True
    _reveal(job, "v4", False)
    assert job.compute_quorum_outcome(half) is None  # 2 against 2: tied, no outcome
    assert job.compute_quorum_outcome(POLICY) is None  # 2 of 4 is short of 2/3


def test_stake_weighted_quorum() -> None:
    job = _job(weights=(700, 200, 100), policy=STAKE_POLICY)
    for v in ("v1", "v2", "v3"):
        _commit(job, v, v == "v1")
    _reveal(job, "v2", False)
    _reveal(job, "v3", False)
    assert job.compute_quorum_outcome(STAKE_V1) is None  # 300 of 1000 fails
    assert job.compute_quorum_outcome(COUNT_V1) is False  # rules v1 by count: 2 of 3 fail
    assert job.compute_quorum_outcome(POLICY) is None  # rules v2: by stake, 300 of 1000
    _reveal(job, "v1", True)
    assert job.compute_quorum_outcome(STAKE_V1) is True  # 700 >= 2/3 of 1000
    assert job.majority_validators(True) == ("v1",)
    # Rules v2: 700 of 1000 is 2/3 of the drawn stake, but one signer is below the minimum.
    assert job.compute_quorum_outcome(POLICY) is None


def test_a_quorum_needs_two_thirds_of_the_drawn_stake_and_the_signer_minimum() -> None:
    """Rules v2, at each bound and one past it: the stake fraction, then the signer count."""
    job = _job(("v1", "v2", "v3", "v4"), weights=(334, 333, 333, 1))
    for v in ("v1", "v2", "v3", "v4"):
        _commit(job, v, v != "v4")
    _reveal(job, "v1", True)
    _reveal(job, "v4", False)
    assert job.compute_quorum_outcome(POLICY) is None  # 334 of 1001
    _reveal(job, "v2", True)
    assert job.compute_quorum_outcome(POLICY) is None  # 667 of 1001: just short of 2/3
    _reveal(job, "v3", True)
    assert job.compute_quorum_outcome(POLICY) is True  # 1000 of 1001
    three = msgspec.structs.replace(POLICY, quorum_signers_min=3)
    four = msgspec.structs.replace(POLICY, quorum_signers_min=4)
    assert job.compute_quorum_outcome(three) is True  # 3 signers, the minimum
    assert job.compute_quorum_outcome(four) is None  # 3 signers, one short


def test_a_late_verdict_after_finalisation_is_refused() -> None:
    job = _job()
    for v in ("v1", "v2", "v3"):
        _commit(job, v, True)
    _reveal(job, "v1", True)
    _reveal(job, "v2", True)
    assert job.decide_round(certificate=b"qc", policy=POLICY, now_ns=REVEAL_AT)
    with pytest.raises(InvalidTransition) as info:
        _reveal(job, "v3", True)
    assert _code(info) == "job_verified"


def test_absent_validators_are_replaced_and_keep_the_set_order() -> None:
    job = _job()
    _commit(job, "v1", True)
    _commit(job, "v2", True)  # v3 never commits; v2 commits but never reveals
    _reveal(job, "v1", True)
    with pytest.raises(Rejection) as info:
        job.replace_absent_validators(
            replacements=("v9",),
            weights=(5,),
            log_position=20,
            log_hash=b"x",
            policy=POLICY,
            now_ns=REVEAL_AT,
        )
    assert _code(info) == "reveal_window_open"
    after = NOW + 21 * S + 1
    job.replace_absent_validators(
        replacements=("v8", "v9"),
        weights=(5, 2),
        log_position=20,
        log_hash=b"x",
        policy=POLICY,
        now_ns=after,
    )
    assert job.round is not None
    assert job.validators == ("v1", "v8", "v9") and job.round.weights == (1, 5, 2)
    assert set(job.round.commits) == {"v1"} and set(job.verdicts) == {"v1"}
    assert job.round.commit_deadline_ns == after + 10 * S
    with pytest.raises(Unauthorized):
        _commit(job, "v2", True, at=after)  # replaced: no longer assigned
    _commit(job, "v8", True, at=after)
    _commit(job, "v9", False, at=after)
    _reveal(job, "v8", True, at=after)
    assert job.compute_quorum_outcome(POLICY) is True  # 6 of the 8 drawn stake, 2 signers


def test_replacements_are_bounded_then_the_round_is_abandoned() -> None:
    job = _job()
    at = NOW + 21 * S + 1
    for round_index in range(POLICY.validator_replacements_max):
        job.replace_absent_validators(
            replacements=(f"r{round_index}",),
            weights=(1,),
            log_position=1,
            log_hash=b"",
            policy=POLICY,
            now_ns=at,
        )
        at += 21 * S
    with pytest.raises(Rejection) as info:
        job.replace_absent_validators(
            replacements=("late",),
            weights=(1,),
            log_position=1,
            log_hash=b"",
            policy=POLICY,
            now_ns=at,
        )
    assert _code(info) == "validator_replacements_exhausted"
    job.abandon_round(policy=POLICY, now_ns=at)
    assert job.state == SUBMITTED and "node-1" not in job.excluded_nodes
    assert job.round is None


def test_abandoning_needs_a_closed_round_without_quorum() -> None:
    job = _job()
    with pytest.raises(Rejection) as info:
        job.abandon_round(policy=POLICY, now_ns=REVEAL_AT)
    assert _code(info) == "reveal_window_open"
    for v in ("v1", "v2", "v3"):
        _commit(job, v, True)
    _reveal(job, "v1", True)
    _reveal(job, "v2", True)
    with pytest.raises(InvalidTransition) as info:
        job.abandon_round(policy=POLICY, now_ns=NOW + 22 * S)
    assert _code(info) == "quorum_reached"


def test_abandoning_on_the_last_attempt_expires() -> None:
    job = _job()
    last = LedgerPolicy(reassign_attempts_max=1)
    job.abandon_round(policy=last, now_ns=NOW + 22 * S)
    assert job.state == EXPIRED


def test_a_validator_set_change_mid_job_does_not_touch_a_running_round() -> None:
    """Weights are frozen at assignment: a stake change later changes nothing here."""
    job = _job(weights=(300, 300, 400), policy=POLICY)
    snapshot = job.round.weights if job.round else ()
    for v in ("v1", "v2", "v3"):
        _commit(job, v, v != "v3")
    _reveal(job, "v1", True)
    _reveal(job, "v2", True)
    assert snapshot == (300, 300, 400)
    assert job.compute_quorum_outcome(POLICY) is None  # 600 < 2/3 of 1000
    _reveal(job, "v3", False)
    assert job.compute_quorum_outcome(POLICY) is None
    assert job.state == RESULT_COMMITTED


# -- attestations ------------------------------------------------------------------------


def _submitted() -> Node:
    node = _node()
    node.challenge_attestation(nonce="n", seed="s", size=8, deadline_ns=NOW + S, now_ns=NOW)
    node.submit_attestation(
        nonce="n",
        inventory_digest=b"i",
        commitment=b"c" * 32,
        timings_ns=(1,),
        signature=b"",
        now_ns=NOW,
    )
    node.assign_validators(
        validators=("v1", "v2", "v3"),
        weights=(1, 1, 1),
        log_position=3,
        log_hash=b"h",
        policy=POLICY,
        now_ns=NOW,
    )
    return node


def _attest_vote(node: Node, validator: str, passed: bool, at: int) -> None:
    salt = _salt(validator)
    node.commit_verdict(
        nonce="n",
        validator_id=validator,
        verdict_hash=compute_verdict_commitment(
            subject=attestation_subject(node.id, "n"),
            result_commitment=b"c" * 32,
            validator_id=validator,
            passed=passed,
            salt=salt,
        ),
        now_ns=at,
    )


def test_attestation_vote_accepts_and_blocks_a_new_challenge_meanwhile() -> None:
    node = _submitted()
    with pytest.raises(InvalidTransition) as info:
        node.challenge_attestation(
            nonce="m", seed="s", size=8, deadline_ns=NOW + 9 * S, now_ns=NOW + 2 * S
        )
    assert _code(info) == "attestation_vote_open"
    for v in ("v1", "v2", "v3"):
        _attest_vote(node, v, True, NOW)
    for v in ("v1", "v2"):
        node.reveal_verdict(
            nonce="n", validator_id=v, verdict=Verdict(True, "", b""), salt=_salt(v), now_ns=NOW
        )
    assert node.attestation_round is not None
    assert node.attestation_round.compute_outcome(POLICY) is True
    node.accept_attestation(certificate=b"qc", policy=POLICY, now_ns=NOW)
    assert node.state != REGISTERED and node.is_attested and node.attestation_round is None


def test_attestation_vote_rules() -> None:
    node = _submitted()
    with pytest.raises(Rejection) as info:
        node.commit_verdict(nonce="other", validator_id="v1", verdict_hash=b"", now_ns=NOW)
    assert _code(info) == "challenge_nonce_mismatch"
    with pytest.raises(Unauthorized):
        _attest_vote(node, "stranger", True, NOW)
    _attest_vote(node, "v1", True, NOW)
    with pytest.raises(Rejection) as info:
        node.reveal_verdict(
            nonce="n",
            validator_id="v1",
            verdict=Verdict(False, "", b""),
            salt=_salt("v1"),
            now_ns=NOW + 11 * S,
        )
    assert _code(info) == "reveal_does_not_match_commit"
    with pytest.raises(Rejection) as info:
        node.abandon_round(policy=POLICY, now_ns=NOW + 11 * S)
    assert _code(info) == "reveal_window_open"
    node.abandon_round(policy=POLICY, now_ns=NOW + 21 * S)
    assert node.state == REGISTERED and node.attestation_round is None


def test_a_jailed_node_that_never_passed_attestation_unjails_to_registered() -> None:
    node = _submitted()
    node.slash(amount=10, reason="forged", evidence=b"qc", policy=POLICY, now_ns=NOW)
    node.unjail(policy=POLICY, now_ns=NOW + POLICY.jail_period_ns)
    assert node.state == REGISTERED
    node = _attested(_node("n2"))
    node.slash(amount=10, reason="x", evidence=b"qc", policy=POLICY, now_ns=NOW)
    node.unjail(policy=POLICY, now_ns=NOW + POLICY.jail_period_ns)
    assert node.state == ATTESTED  # 90 < the minimum of 100


# -- selection ---------------------------------------------------------------------------


def test_selection_is_deterministic_and_recomputable() -> None:
    stakes = {f"v{i}": 100 * (i + 1) for i in range(10)}
    first = select_validators(job_id="job-1", log_hash=b"h" * 32, stakes=stakes, count=3)
    again = select_validators(
        job_id="job-1", log_hash=b"h" * 32, stakes=dict(reversed(stakes.items())), count=3
    )
    assert first == again and len(set(first)) == 3
    other = [
        select_validators(job_id="job-1", log_hash=bytes([i]) * 32, stakes=stakes, count=3)
        for i in range(8)
    ]
    assert len(set(other)) > 1  # the log hash (unknown at claim time) changes the draw


def test_selection_is_weighted_by_stake_and_skips_zero_stake() -> None:
    stakes = {"big": 9_000, "small": 1_000, "none": 0}
    counts = Counter(
        select_validators(job_id=f"j{i}", log_hash=b"h", stakes=stakes, count=1)[0]
        for i in range(2_000)
    )
    assert "none" not in counts
    assert 0.85 < counts["big"] / 2_000 < 0.95
    assert select_validators(job_id="j", log_hash=b"h", stakes=stakes, count=5) in (
        ("big", "small"),
        ("small", "big"),
    )
