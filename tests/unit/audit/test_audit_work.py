"""``validator.audit_work.check_work``: each collected decision ends under one status, or the
first verdict its evidence does not support is named by position. The verifiers are stand-ins
that answer from the bytes they are given (the real ones run in
``tests/integration/audit/test_verify_work.py``); the object store is a dict."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from adapters.nats.errors import ArtifactNotFound
from domain.job import ResultCommitment
from domain.policy import ARTIFACT_RETENTION_NS, SECOND_NS
from validator.audit_work import (
    FRAUD_PROVEN,
    OPERATOR_DECIDED,
    PAST_RETENTION,
    PRIVATE_NO_KEY,
    REVERIFIED,
    TIMED_PROBE,
    UNAVAILABLE_REJECTED,
    AttestationWork,
    JobWork,
    Verifiers,
    WorkCheck,
    WorkLedger,
    check_work,
)

GOOD, BAD = b"a good result", b"a wrong result"
DECIDED_NS = 1_000 * SECOND_NS


class Objects:
    def __init__(self, *blobs: bytes) -> None:
        self.blobs = {hashlib.sha256(blob).hexdigest(): blob for blob in blobs}

    async def get(self, digest: str) -> bytes:
        if digest not in self.blobs:
            raise ArtifactNotFound(f"no artifact {digest}")
        return self.blobs[digest]


def _verify_result(**kwargs: Any) -> str:
    return "ok" if kwargs["artifact"] == GOOD else "proof_invalid"


def _verify_attestation(report: bytes, **kwargs: Any) -> str:
    return "ok" if report == GOOD else "proof_invalid"


VERIFIERS = Verifiers(verify_result=_verify_result, verify_attestation=_verify_attestation)


def _job(position: int, artifact: bytes, *, passed: bool, **changes: Any) -> JobWork:
    digest = hashlib.sha256(artifact).digest()
    fields: dict[str, Any] = {
        "position": position,
        "job_id": f"job-{position}",
        "attempt": 0,
        "node_id": "node",
        "kind": "matmul",
        "params": {"n": 128},
        "result": ResultCommitment(commitment=digest, artifact_digest=digest, proof_digest=digest),
        "openings_seed": b"",
        "insecure_setups_allowed": False,
        "passed": passed,
        "decided_ns": DECIDED_NS,
        "retention_ns": ARTIFACT_RETENTION_NS,
    }
    return JobWork(**{**fields, **changes})


def _attestation(position: int, report: bytes | None, *, passed: bool, status: str | None = None):
    digest = hashlib.sha256(report).digest() if report is not None else None
    return AttestationWork(
        position=position,
        node_id="node",
        nonce="n1",
        seed="00",
        size=1024,
        report=None if digest is None else (digest, b"c" * 32, (1_000,)),
        passed=passed,
        decided_ns=DECIDED_NS,
        retention_ns=ARTIFACT_RETENTION_NS,
        status=status,
    )


async def _check(ledger: WorkLedger, objects: Objects, now_ns: int = DECIDED_NS + SECOND_NS):
    return await check_work(ledger, WorkCheck(objects, now_ns=now_ns, verifiers=VERIFIERS))


def _counts(ledger: WorkLedger) -> dict[str, int]:
    return {name: n for name, n in ledger.statuses.items() if n}


async def test_verdicts_the_evidence_supports_are_reverified() -> None:
    ledger = WorkLedger(
        jobs=[_job(5, GOOD, passed=True), _job(9, BAD, passed=False)],
        attestations=[_attestation(7, GOOD, passed=True)],
    )
    assert await _check(ledger, Objects(GOOD, BAD)) is None
    assert _counts(ledger) == {REVERIFIED: 3}


async def test_a_pass_the_artifacts_fail_fails_at_its_position() -> None:
    ledger = WorkLedger(jobs=[_job(5, GOOD, passed=True), _job(9, BAD, passed=True)])
    failure = await _check(ledger, Objects(GOOD, BAD))
    assert failure is not None and failure.position == 9
    assert "proof_invalid" in failure.message


async def test_a_pass_proven_wrong_on_the_log_is_counted_as_fraud_proven() -> None:
    ledger = WorkLedger(jobs=[_job(9, BAD, passed=True)], proven={("job-9", 0)})
    assert await _check(ledger, Objects(BAD)) is None
    assert _counts(ledger) == {FRAUD_PROVEN: 1}


async def test_a_fraud_proof_of_another_attempt_does_not_excuse_a_pass() -> None:
    ledger = WorkLedger(jobs=[_job(9, BAD, passed=True)], proven={("job-9", 1)})
    failure = await _check(ledger, Objects(BAD))
    assert failure is not None and failure.position == 9


async def test_a_rejection_the_artifacts_pass_fails() -> None:
    ledger = WorkLedger(jobs=[_job(4, GOOD, passed=False)])
    failure = await _check(ledger, Objects(GOOD))
    assert failure is not None and failure.position == 4
    assert "rejected" in failure.message


@pytest.mark.parametrize(
    ("elapsed_ns", "outcome"),
    [(ARTIFACT_RETENTION_NS, "failure"), (ARTIFACT_RETENTION_NS + 1, PAST_RETENTION)],
)
async def test_missing_objects_of_a_pass_at_and_past_retention(
    elapsed_ns: int, outcome: str
) -> None:
    ledger = WorkLedger(jobs=[_job(3, GOOD, passed=True)])
    failure = await _check(ledger, Objects(), now_ns=DECIDED_NS + elapsed_ns)
    if outcome == "failure":
        assert failure is not None and failure.position == 3
        assert "missing" in failure.message
    else:
        assert failure is None
        assert _counts(ledger) == {PAST_RETENTION: 1}


async def test_missing_objects_of_a_rejection_are_counted_unavailable() -> None:
    ledger = WorkLedger(jobs=[_job(3, GOOD, passed=False)])
    assert await _check(ledger, Objects()) is None
    assert _counts(ledger) == {UNAVAILABLE_REJECTED: 1}


async def test_a_private_job_is_counted_never_verified() -> None:
    ledger = WorkLedger(jobs=[_job(3, BAD, passed=True, params={"n": 128, "encrypted": True})])
    assert await _check(ledger, Objects(BAD)) is None
    assert _counts(ledger) == {PRIVATE_NO_KEY: 1}


A_NPY, B_NPY = b"the consumer's a.npy", b"the consumer's b.npy"


def _data_params() -> dict[str, Any]:
    digests = {
        name: hashlib.sha256(data).hexdigest() for name, data in (("a", A_NPY), ("b", B_NPY))
    }
    return {**digests, "dtype": "float32", "m": 4, "k": 4, "n": 4}


def _verify_on_inputs(**kwargs: Any) -> str:
    """A data job's verifier: it runs on the consumer's inputs, or fails without them."""
    if kwargs.get("inputs") != {"a": A_NPY, "b": B_NPY}:
        return "inputs_missing"
    return _verify_result(**kwargs)


async def test_a_public_data_jobs_verifier_reruns_on_its_stored_inputs() -> None:
    ledger = WorkLedger(jobs=[_job(3, GOOD, passed=True, params=_data_params())])
    verifiers = Verifiers(verify_result=_verify_on_inputs, verify_attestation=_verify_attestation)
    check = WorkCheck(artifacts=Objects(GOOD, A_NPY, B_NPY), now_ns=DECIDED_NS, verifiers=verifiers)
    assert await check_work(ledger, check) is None
    assert _counts(ledger) == {REVERIFIED: 1}


async def test_a_missing_input_of_a_passed_data_job_fails_within_retention() -> None:
    ledger = WorkLedger(jobs=[_job(3, GOOD, passed=True, params=_data_params())])
    verifiers = Verifiers(verify_result=_verify_on_inputs, verify_attestation=_verify_attestation)
    check = WorkCheck(artifacts=Objects(GOOD, A_NPY), now_ns=DECIDED_NS, verifiers=verifiers)
    failure = await check_work(ledger, check)
    assert failure is not None and failure.position == 3
    assert f"input object {hashlib.sha256(B_NPY).hexdigest()}" in failure.message


async def test_attestations_without_stored_evidence_keep_their_own_status() -> None:
    ledger = WorkLedger(
        attestations=[
            _attestation(3, None, passed=True, status=TIMED_PROBE),
            _attestation(4, BAD, passed=True, status=OPERATOR_DECIDED),
        ]
    )
    assert await _check(ledger, Objects(BAD)) is None
    assert _counts(ledger) == {TIMED_PROBE: 1, OPERATOR_DECIDED: 1}


async def test_a_report_attestation_passed_on_a_failing_report_fails() -> None:
    ledger = WorkLedger(attestations=[_attestation(6, BAD, passed=True)])
    failure = await _check(ledger, Objects(BAD))
    assert failure is not None and failure.position == 6


async def test_the_first_failure_by_position_is_named() -> None:
    ledger = WorkLedger(
        jobs=[_job(9, BAD, passed=True)], attestations=[_attestation(6, BAD, passed=True)]
    )
    failure = await _check(ledger, Objects(BAD))
    assert failure is not None and failure.position == 6
