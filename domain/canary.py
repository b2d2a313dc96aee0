"""Canary seals: an operator's commitment, in the log before a canary job exists, that the job
will be a canary (issue 14, attack 5; Truebit's forced errors, ComputeHorde's synthetic jobs).

An operator picks a fresh salt and the id its planting consumer's ``job.submit`` will get
(job ids derive from the submitting command: ``compute_job_id``), seals
``compute_canary_digest(job id, salt)`` with ``canary.seal``, then plants the job through
ordinary identities (a consumer and a node that commits a known-bad result). Validators see
an ordinary job and a digest that names nothing. After the decision the operator reveals the
salt (``canary.reveal``): the ledger recomputes the digest, checks that the seal was recorded
before the job's first record (so nobody can call a job "a canary" after the fact), and the
pass voters, whose verdicts a fraud proof shows wrong, are slashed.
"""

from __future__ import annotations

import hashlib
import struct
from typing import ClassVar

from domain.errors import InvalidTransition, RejectionCode
from domain.events import FlopAggregate, ns_to_datetime

CANARY_TAG = b"flopledger/canary/v1\x00"


def compute_canary_digest(job_id: str, salt: bytes) -> bytes:
    """SHA-256(CANARY_TAG || u16 len(job id) || job id || salt)."""
    job = job_id.encode()
    return hashlib.sha256(CANARY_TAG + struct.pack(">H", len(job)) + job + salt).digest()


def compute_seal_id(digest: bytes) -> str:
    return f"canary:{digest.hex()}"


class CanarySeal(FlopAggregate):
    """One sealed canary: who sealed it, and the job it was revealed for."""

    STREAM_TYPE: ClassVar[str] = "canary"

    class CanarySealed(FlopAggregate.Created):
        operator: str
        digest: bytes

        def apply(self, seal: CanarySeal) -> None:
            seal.operator, seal.digest, seal.job_id = self.operator, self.digest, ""

    class SealRevealed(FlopAggregate.Event):
        job_id: str
        attempt: int

        def apply(self, seal: CanarySeal) -> None:
            seal.job_id = self.job_id

    operator: str
    digest: bytes
    job_id: str

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def seal(cls, *, operator: str, digest: bytes, now_ns: int) -> CanarySeal:
        return cls._create(
            cls.CanarySealed,
            id=compute_seal_id(digest),
            operator=operator,
            digest=digest,
            timestamp=ns_to_datetime(now_ns),
        )

    def reveal(self, *, job_id: str, attempt: int, now_ns: int) -> None:
        if self.job_id:
            raise InvalidTransition(
                f"this canary was already revealed for {self.job_id}",
                code=RejectionCode.FRAUD_ALREADY_PROVEN,
            )
        self._trigger(self.SealRevealed, now_ns, job_id=job_id, attempt=attempt)
