"""Who may read a job's objects (``domain.object_access``) and how long they are kept
(``domain.object_retention``), given a job in each state."""

from __future__ import annotations

from domain.job import Job, ResultCommitment, WorkloadSpec
from domain.object_access import (
    ObjectAccess,
    compute_job_object_digests,
    compute_job_readers,
    decide_object_access,
)
from domain.object_retention import (
    UNREFERENCED_OBJECT_GRACE_NS,
    compute_job_objects_retained_until_ns,
    is_object_deletable,
)
from domain.policy import ARTIFACT_RETENTION_NS, LedgerPolicy, compute_fraud_exposure_ns
from tests.unit.domain.test_job import NOW, POLICY, S, _node

A, B, OTHER = "a" * 64, "b" * 64, "c" * 64
RESULT = ResultCommitment(b"\1" * 32, b"\2" * 32, b"\3" * 32)


def _data_job() -> Job:
    params: dict[str, str | int | bool] = {"a": A, "b": B, "dtype": "float32"}
    params |= {"m": 4, "k": 4, "n": 4}
    return Job.submit(
        "job-1",
        consumer="consumer",
        region="eu-west",
        max_price=100,
        workload=WorkloadSpec("matmul", "consumer", params),
        redundancy=3,
        deadline_ns=NOW + 3600 * S,
        policy=POLICY,
        now_ns=NOW,
    )


def test_a_job_names_its_inputs_then_its_results() -> None:
    job = _data_job()
    assert compute_job_object_digests(job) == {A, B}
    assert compute_job_readers(job) == {"consumer"}
    node = _node()
    job.claim(node, policy=POLICY, now_ns=NOW + 10 * S)
    job.commit_result(node_id=node.id, result=RESULT, now_ns=NOW + 20 * S)
    assert compute_job_object_digests(job) == {A, B, (b"\2" * 32).hex(), (b"\3" * 32).hex()}
    assert compute_job_readers(job) == {"consumer", node.id}


def test_params_that_do_not_parse_name_no_input() -> None:
    job = _data_job()
    job.workload.params["dtype"] = "float64"  # not a supported dtype: no data form
    assert compute_job_object_digests(job) == frozenset()


def test_the_access_rules_in_their_order() -> None:
    job = _data_job()

    def decide(**changes: object) -> ObjectAccess:
        fields: dict[str, object] = {
            "digest": A,
            "encrypted": False,
            "reader": "stranger",
            "is_uploader": False,
            "job": job,
        }
        return decide_object_access(**(fields | changes))  # type: ignore[arg-type]

    assert decide(encrypted=True, reader=None) == ObjectAccess.CIPHERTEXT
    assert decide(reader=None, is_uploader=True) == ObjectAccess.REFUSED
    assert decide(is_uploader=True, job=None) == ObjectAccess.UPLOADER
    assert decide(reader="consumer") == ObjectAccess.JOB_PARTY
    assert decide(reader="consumer", digest=OTHER) == ObjectAccess.REFUSED
    assert decide(reader="consumer", job=None) == ObjectAccess.REFUSED
    assert decide() == ObjectAccess.REFUSED


def test_objects_are_kept_while_the_job_runs_and_for_the_retention_after() -> None:
    job = _data_job()
    assert compute_job_objects_retained_until_ns(job, finished_at_ns=NOW, policy=POLICY) is None
    job.expire(now_ns=NOW + 4000 * S)
    job.refund(amount=100, now_ns=NOW + 4001 * S)
    finished = NOW + 4001 * S
    until = compute_job_objects_retained_until_ns(job, finished_at_ns=finished, policy=POLICY)
    assert until == finished + ARTIFACT_RETENTION_NS
    long_fraud = LedgerPolicy(fraud_window_ns=ARTIFACT_RETENTION_NS + S)
    longer = compute_job_objects_retained_until_ns(job, finished_at_ns=finished, policy=long_fraud)
    assert longer == finished + compute_fraud_exposure_ns(long_fraud)
    assert longer > until


def test_an_object_is_deletable_once_every_job_naming_it_let_it_go() -> None:
    recorded = NOW
    assert not is_object_deletable(now_ns=NOW + S, recorded_at_ns=recorded, retained_until_ns=())
    past_grace = recorded + UNREFERENCED_OBJECT_GRACE_NS + 1
    assert is_object_deletable(now_ns=past_grace, recorded_at_ns=recorded, retained_until_ns=())
    later = NOW + 100 * S
    assert not is_object_deletable(
        now_ns=later, recorded_at_ns=recorded, retained_until_ns=(later - 1, None)
    )
    assert not is_object_deletable(
        now_ns=later, recorded_at_ns=recorded, retained_until_ns=(later,)
    )
    assert is_object_deletable(
        now_ns=later + 1, recorded_at_ns=recorded, retained_until_ns=(later, later - 5)
    )
