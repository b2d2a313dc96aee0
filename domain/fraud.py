"""A job round's decision, kept for its fraud window: who voted pass, who was paid, and the
fraud proof or canary reveal that may later prove the pass votes wrong (issue 14, attack 5).

A ``JobDecision`` is written when a job's verdict round is decided (``domain.services.rounds``
under rules version 2): the result commitment judged, the verdict, the certificate's signers
and the fees they were paid (validators are paid for every decided job, pass or fail), and
every revealed pass vote with its BLS signature. The job aggregate moves on (a rejected job
is reassigned and forgets its round); the decision stays, so a pass vote on a wrong result
remains provable, once, until ``fraud_window_ns`` after the decision.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from domain.errors import InvalidTransition, Rejection, RejectionCode
from domain.events import FlopAggregate, ns_to_datetime
from domain.policy import LedgerPolicy
from domain.settlement import Payout

FRAUD_EVIDENCE_PREFIX = "fraud"


class PassVote(msgspec.Struct, frozen=True):
    """A validator's revealed pass verdict and its BLS signature over it."""

    validator_id: str
    signature: bytes


def compute_decision_id(job_id: str, attempt: int) -> str:
    """``decision:<job id>:<attempt>``: one decision per attempt of a job."""
    return f"decision:{job_id}:{attempt}"


def compute_fraud_evidence_key(job_id: str, commitment: bytes) -> str:
    """``fraud:job:<job id>:<commitment hex>``: one fraud slash per (validator, job, result),
    whether a fraud proof or a canary reveal proved it."""
    return f"{FRAUD_EVIDENCE_PREFIX}:job:{job_id}:{commitment.hex()}"


class JobDecision(FlopAggregate):
    """The decision of one attempt's verdict round, and whether it was proven wrong."""

    STREAM_TYPE: ClassVar[str] = "decision"

    class DecisionRecorded(FlopAggregate.Created):
        job_id: str
        attempt: int
        node_id: str
        consumer: str
        commitment: bytes
        passed: bool
        signers: tuple[str, ...]
        pass_votes: tuple[PassVote, ...]
        fees: tuple[Payout, ...]
        decided_ns: int

        def apply(self, decision: JobDecision) -> None:
            decision.job_id, decision.attempt = self.job_id, self.attempt
            decision.node_id, decision.consumer = self.node_id, self.consumer
            decision.commitment, decision.passed = self.commitment, self.passed
            decision.signers, decision.pass_votes = self.signers, self.pass_votes
            decision.fees, decision.decided_ns = self.fees, self.decided_ns
            decision.proven_by = ""
            decision.canary_revealed = False

    class FraudProven(FlopAggregate.Event):
        """A challenger showed the judged result wrong; ``evidence`` is what the ledger
        checked (``domain.services.fraud_checks``), so anyone can check it again."""

        challenger: str
        evidence: bytes
        canary: bool

        def apply(self, decision: JobDecision) -> None:
            decision.proven_by = self.challenger
            decision.canary_revealed = self.canary

    class CanaryRevealed(FlopAggregate.Event):
        """The operators revealed that this job was a sealed canary that the round failed
        (a caught canary: nobody is slashed for it, the count shows the canaries work)."""

        seal_id: str

        def apply(self, decision: JobDecision) -> None:
            decision.canary_revealed = True

    job_id: str
    attempt: int
    node_id: str
    consumer: str
    commitment: bytes
    passed: bool
    signers: tuple[str, ...]
    pass_votes: tuple[PassVote, ...]
    fees: tuple[Payout, ...]
    decided_ns: int
    proven_by: str
    canary_revealed: bool

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def record(
        cls,
        *,
        job_id: str,
        attempt: int,
        node_id: str,
        consumer: str,
        commitment: bytes,
        passed: bool,
        signers: tuple[str, ...],
        pass_votes: tuple[PassVote, ...],
        fees: tuple[Payout, ...],
        now_ns: int,
    ) -> JobDecision:
        return cls._create(
            cls.DecisionRecorded,
            id=compute_decision_id(job_id, attempt),
            job_id=job_id,
            attempt=attempt,
            node_id=node_id,
            consumer=consumer,
            commitment=commitment,
            passed=passed,
            signers=signers,
            pass_votes=pass_votes,
            fees=fees,
            decided_ns=now_ns,
            timestamp=ns_to_datetime(now_ns),
        )

    @property
    def evidence_key(self) -> str:
        return compute_fraud_evidence_key(self.job_id, self.commitment)

    def require_challengeable(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        """Raise unless a fraud proof may act on this decision now (rules in this order)."""
        if self.proven_by or self.canary_revealed:
            raise InvalidTransition(
                f"the decision on {self.job_id} (attempt {self.attempt}) was already proven "
                "wrong or revealed",
                code=RejectionCode.FRAUD_ALREADY_PROVEN,
            )
        if now_ns > self.decided_ns + policy.fraud_window_ns:
            raise Rejection(
                f"the fraud window closed at {self.decided_ns + policy.fraud_window_ns}",
                code=RejectionCode.FRAUD_WINDOW_CLOSED,
            )
        if not self.pass_votes:
            raise Rejection(
                "nobody voted pass on this result: there is no wrong verdict to prove",
                code=RejectionCode.NO_PASS_VOTES,
            )

    def prove_fraud(self, *, challenger: str, evidence: bytes, canary: bool, now_ns: int) -> None:
        """Record the checked fraud proof (the caller has verified ``evidence``)."""
        self._trigger(
            self.FraudProven, now_ns, challenger=challenger, evidence=evidence, canary=canary
        )

    def reveal_caught_canary(self, *, seal_id: str, now_ns: int) -> None:
        if self.proven_by or self.canary_revealed:
            raise InvalidTransition(
                f"the decision on {self.job_id} was already proven wrong or revealed",
                code=RejectionCode.FRAUD_ALREADY_PROVEN,
            )
        self._trigger(self.CanaryRevealed, now_ns, seal_id=seal_id)

    def view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "passed": self.passed,
            "signers": list(self.signers),
            "pass_voters": [v.validator_id for v in self.pass_votes],
            "decided_ns": self.decided_ns,
            "proven_by": self.proven_by or None,
            "canary_revealed": self.canary_revealed,
            "version": self.version,
        }
