"""The Job aggregate: a consumer's workload from submission to settlement or refund.

submitted -> claimed -> result_committed -> verified | rejected -> settled | refunded.
A claim that misses its result window is reassigned (up to a limit) or the job expires; an
expired job is refunded. A rejected job is reassigned to another node or refunded. Under
rules v5 its consumer may cancel a job nobody holds (submitted -> cancelled, escrow voided).

A committed result is judged by a commit-reveal verdict round (``domain.verdicts``): assigned
validators commit salted verdict hashes, then reveal. Validators absent when the reveal window
closes are replaced by a deterministic re-draw (up to ``validator_replacements_max`` times);
a round that still has no quorum sends the job back to the market without blaming the node.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.events import FlopAggregate, ns_to_datetime
from domain.invariants import present
from domain.job_states import (
    CANCELLED,
    CLAIMED,
    EXPIRED,
    FINISHED_STATES,
    REFUNDED,
    REJECTED,
    RESULT_COMMITTED,
    SETTLED,
    STATE_CODES,
    SUBMITTED,
    VERIFIED,
)
from domain.key_releases import (
    CLAIM_LAPSED_REASON,
    KeyRelease,
    add_key_release,
    check_key_release,
    compute_release_views,
)
from domain.node import Node
from domain.policy import RULES_V2, LedgerPolicy
from domain.scheduling import check_claim, compute_result_due_ns
from domain.settlement import Payout
from domain.verdict_subject import RoundEvents, VotedAggregate
from domain.verdicts import SUBJECT_JOB, Verdict, VerdictRound

__all__ = [
    "CANCELLED",
    "CLAIMED",
    "EXPIRED",
    "FINISHED_STATES",
    "REFUNDED",
    "REJECTED",
    "RESULT_COMMITTED",
    "SETTLED",
    "SUBMITTED",
    "VERIFIED",
    "Job",
    "ResultCommitment",
    "WorkloadSpec",
]


ZK_PROVE_KIND = "zk-prove"


class WorkloadSpec(msgspec.Struct, frozen=True):
    """What to run: a workload kind, the minimum GPU class, and kind-specific parameters."""

    kind: str
    gpu_class_min: str
    params: dict[str, str | int | bool]


def is_insecure_setup(workload: WorkloadSpec) -> bool:
    """Whether a zk-prove workload names ``setup_seed`` keys (derived from a public seed,
    so anyone knows their trapdoor) instead of a ceremony's zkey."""
    return workload.kind == ZK_PROVE_KIND and "setup_seed" in workload.params


class ResultCommitment(msgspec.Struct, frozen=True):
    commitment: bytes
    artifact_digest: bytes
    proof_digest: bytes


class Job(VotedAggregate):
    """A unit of paid work. Its id is derived from the submitting command."""

    STREAM_TYPE: ClassVar[str] = "job"
    SUBJECT_KIND: ClassVar[str] = SUBJECT_JOB

    class JobSubmitted(FlopAggregate.Created):
        consumer: str
        workload: WorkloadSpec
        max_price: int
        region: str
        redundancy: int
        deadline_ns: int
        escrow_hold_id: str

        def apply(self, job: Job) -> None:
            job.consumer, job.workload, job.max_price = self.consumer, self.workload, self.max_price
            job.region, job.redundancy, job.deadline_ns = (
                self.region,
                self.redundancy,
                self.deadline_ns,
            )
            job.escrow_hold_id = self.escrow_hold_id
            job.state, job.attempt = SUBMITTED, 0
            job.offered_at_ns = _ns(self)
            job.node_id = job.provider = ""
            job.price = job.result_due_ns = 0
            job.result = None
            job.round = None
            job.certificate, job.payouts = b"", ()
            job.excluded_nodes = set()

    class JobClaimed(FlopAggregate.Event):
        node_id: str
        provider: str
        price: int
        attempt: int
        result_due_ns: int

        def apply(self, job: Job) -> None:
            job.state, job.node_id, job.provider = CLAIMED, self.node_id, self.provider
            job.price, job.attempt, job.result_due_ns = self.price, self.attempt, self.result_due_ns

    class ResultCommitted(FlopAggregate.Event):
        node_id: str
        result: ResultCommitment

        def apply(self, job: Job) -> None:
            job.state, job.result = RESULT_COMMITTED, self.result

    class ValidatorsAssigned(FlopAggregate.Event):
        validators: tuple[str, ...]
        log_position: int
        log_hash: bytes
        weights: tuple[int, ...] = ()
        commit_deadline_ns: int = 0
        reveal_deadline_ns: int = 0
        randomness: bytes = b""
        """What seeded the draw (``domain.beacon.compute_draw_randomness``); empty in records
        drawn from the log head (rules version 1)."""
        beacon_epoch: int = 0
        """The beacon epoch whose value seeded the draw (0: none, rules version 1)."""

        def apply(self, job: Job) -> None:
            _set_round_randomness(job, self.randomness)
            job.round = VerdictRound(
                validators=self.validators,
                weights=self.weights or (1,) * len(self.validators),
                commit_deadline_ns=self.commit_deadline_ns,
                reveal_deadline_ns=self.reveal_deadline_ns,
            )

    class VerdictCommitted(FlopAggregate.Event):
        validator_id: str
        verdict_hash: bytes

        def apply(self, job: Job) -> None:
            present(job.round, "a commit needs a round").commits[self.validator_id] = (
                self.verdict_hash
            )

    class VerdictRecorded(FlopAggregate.Event):
        validator_id: str
        verdict: Verdict
        salt: bytes = b""

        def apply(self, job: Job) -> None:
            present(job.round, "a verdict needs a round").verdicts[self.validator_id] = self.verdict

    class ValidatorsReplaced(FlopAggregate.Event):
        absent: tuple[str, ...]
        replacements: tuple[str, ...]
        weights: tuple[int, ...]
        log_position: int
        log_hash: bytes
        commit_deadline_ns: int
        reveal_deadline_ns: int
        randomness: bytes = b""
        """What seeded the draw (``domain.beacon.compute_draw_randomness``); empty in records
        drawn from the log head (rules version 1)."""
        beacon_epoch: int = 0
        """The beacon epoch whose value seeded the draw (0: none, rules version 1)."""

        def apply(self, job: Job) -> None:
            job.round = present(job.round, "a replacement needs a round").replaced(
                absent=self.absent,
                replacements=self.replacements,
                weights=self.weights,
                commit_deadline_ns=self.commit_deadline_ns,
                reveal_deadline_ns=self.reveal_deadline_ns,
            )

    class JobVerified(FlopAggregate.Event):
        certificate: bytes

        def apply(self, job: Job) -> None:
            job.state, job.certificate = VERIFIED, self.certificate

    class JobRejected(FlopAggregate.Event):
        certificate: bytes
        reason: str

        def apply(self, job: Job) -> None:
            job.state, job.certificate = REJECTED, self.certificate
            job.excluded_nodes.add(job.node_id)

    class JobSettled(FlopAggregate.Event):
        payouts: tuple[Payout, ...]

        def apply(self, job: Job) -> None:
            job.state, job.payouts = SETTLED, self.payouts

    class JobReassigned(FlopAggregate.Event):
        reason: str

        def apply(self, job: Job) -> None:
            if job.state == CLAIMED:
                job.excluded_nodes.add(job.node_id)
            job.state, job.offered_at_ns = SUBMITTED, _ns(self)
            job.node_id = job.provider = ""
            job.price = job.result_due_ns = 0
            job.result, job.round, job.certificate = None, None, b""
            _set_round_randomness(job, b"")

    class JobReleased(FlopAggregate.Event):
        """The claiming node handed the job back before its result was due."""

        node_id: str
        reason: str

        def apply(self, job: Job) -> None:
            job.excluded_nodes.add(job.node_id)
            job.state, job.offered_at_ns = SUBMITTED, _ns(self)
            job.node_id = job.provider = ""
            job.price = job.result_due_ns = 0

    class KeyReleased(FlopAggregate.Event):
        """A data key of the job wrapped to a recipient (issue 17; ``domain.key_releases``)."""

        sender: str
        recipient: str
        purpose: str
        attempt: int
        recipient_key: bytes
        wrapped: bytes

        def apply(self, job: Job) -> None:
            add_key_release(
                job,
                KeyRelease(
                    sender=self.sender,
                    recipient=self.recipient,
                    purpose=self.purpose,
                    attempt=self.attempt,
                    recipient_key=self.recipient_key,
                    wrapped=self.wrapped,
                    at_ns=_ns(self),
                ),
            )

    class ClaimLapsed(FlopAggregate.Event):
        """A private job's inputs key never reached its node (issue 17): back to the market
        with the attempt given back and the node not excluded, for it was never able to work."""

        node_id: str
        reason: str

        def apply(self, job: Job) -> None:
            job.state, job.offered_at_ns = SUBMITTED, _ns(self)
            job.node_id = job.provider = ""
            job.price = job.result_due_ns = 0
            job.attempt -= 1

    class JobExpired(FlopAggregate.Event):
        reason: str

        def apply(self, job: Job) -> None:
            job.state = EXPIRED

    class JobRefunded(FlopAggregate.Event):
        amount: int

        def apply(self, job: Job) -> None:
            job.state = REFUNDED

    class JobCancelled(FlopAggregate.Event):
        """The consumer withdrew the job before any node claimed it (rules v5); ``amount``
        is the escrow voided back to it."""

        amount: int

        def apply(self, job: Job) -> None:
            job.state = CANCELLED

    ROUND_EVENTS: ClassVar[RoundEvents] = RoundEvents(
        assigned=ValidatorsAssigned,
        committed=VerdictCommitted,
        recorded=VerdictRecorded,
        replaced=ValidatorsReplaced,
    )

    consumer: str
    workload: WorkloadSpec
    max_price: int
    region: str
    redundancy: int
    deadline_ns: int
    escrow_hold_id: str
    state: str
    attempt: int
    offered_at_ns: int
    node_id: str
    provider: str
    price: int
    result_due_ns: int
    result: ResultCommitment | None
    round: VerdictRound | None
    certificate: bytes
    payouts: tuple[Payout, ...]
    excluded_nodes: set[str]

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def submit(
        cls,
        job_id: str,
        *,
        consumer: str,
        workload: WorkloadSpec,
        max_price: int,
        region: str,
        redundancy: int,
        deadline_ns: int,
        policy: LedgerPolicy,
        now_ns: int,
    ) -> Job:
        if max_price <= 0:
            raise Rejection(
                "max_price must be positive", code=RejectionCode.MAX_PRICE_MUST_BE_POSITIVE
            )
        if deadline_ns <= now_ns:
            raise Rejection(
                "the deadline must be in the future", code=RejectionCode.DEADLINE_IN_PAST
            )
        if policy.rules_version >= RULES_V2:
            _check_issue14_submission(workload, redundancy, policy)
        return cls._create(
            cls.JobSubmitted,
            id=job_id,
            consumer=consumer,
            workload=workload,
            max_price=max_price,
            region=region,
            redundancy=redundancy,
            deadline_ns=deadline_ns,
            escrow_hold_id=f"escrow:{job_id}",
            timestamp=ns_to_datetime(now_ns),
        )

    def claim(self, node: Node, *, policy: LedgerPolicy, now_ns: int) -> None:
        """Claim for ``node``; the handler reserves the claim on the node in the same command
        (``Node.reserve_claim``), which the checks here have found room for."""
        check_claim(self, node, now_ns=now_ns, policy=policy)
        self._trigger(
            self.JobClaimed,
            now_ns,
            node_id=node.id,
            provider=node.owner,
            price=node.price,
            attempt=self.attempt + 1,
            result_due_ns=compute_result_due_ns(self, now_ns=now_ns, policy=policy),
        )

    def commit_result(self, *, node_id: str, result: ResultCommitment, now_ns: int) -> None:
        self._require_state({CLAIMED}, "commit_result")
        if node_id != self.node_id:
            raise Unauthorized(
                f"job {self.id} is claimed by {self.node_id}, not {node_id}",
                code=RejectionCode.NOT_THE_CLAIMING_NODE,
            )
        if now_ns > self.result_due_ns:
            raise Rejection(
                f"the result was due at {self.result_due_ns}", code=RejectionCode.RESULT_TOO_LATE
            )
        self._trigger(self.ResultCommitted, now_ns, node_id=node_id, result=result)

    def settle(self, *, payouts: tuple[Payout, ...], now_ns: int) -> None:
        self._require_state({VERIFIED}, "settle")
        self._trigger(self.JobSettled, now_ns, payouts=payouts)

    def reassign_or_expire(self, *, reason: str, policy: LedgerPolicy, now_ns: int) -> bool:
        """After a rejection or a missed result window: back to the market, or expire.

        Returns True when reassigned."""
        if self.state == CLAIMED and now_ns <= self.result_due_ns:
            raise Rejection(
                f"the claim runs until {self.result_due_ns}", code=RejectionCode.RESULT_WINDOW_OPEN
            )
        self._require_state({CLAIMED, REJECTED}, "reassign")
        return self._reassign_or_expire(reason, policy, now_ns)

    def _reassign_or_expire(self, reason: str, policy: LedgerPolicy, now_ns: int) -> bool:
        if self.attempt < policy.reassign_attempts_max and now_ns < self.deadline_ns:
            self._trigger(self.JobReassigned, now_ns, reason=reason)
            return True
        self._trigger(self.JobExpired, now_ns, reason=reason)
        return False

    def give_up_unjudged(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        """The beacon epoch that was to seed the result's round had no eligible validator:
        back to the market (or expire) without blaming the node."""
        self._require_state({RESULT_COMMITTED}, "give_up_unjudged")
        self._reassign_or_expire("no eligible validator", policy, now_ns)

    def release(self, *, node_id: str, reason: str, now_ns: int) -> None:
        """The claiming node gives the job back (say, shutting down) while its window is open.

        The job returns to the market at once instead of waiting for the window to lapse; the
        node may not claim it again, so releasing cannot be used to hold a job indefinitely.
        """
        self._require_state({CLAIMED}, "release")
        if node_id != self.node_id:
            raise Unauthorized(
                f"job {self.id} is claimed by {self.node_id}, not {node_id}",
                code=RejectionCode.NOT_THE_CLAIMING_NODE,
            )
        if now_ns > self.result_due_ns:
            raise Rejection(
                f"the result was due at {self.result_due_ns}; the job is reassigned by job.expire",
                code=RejectionCode.RESULT_WINDOW_CLOSED,
            )
        self._trigger(self.JobReleased, now_ns, node_id=node_id, reason=reason)

    def release_key(
        self,
        release: KeyRelease,
        *,
        registered_key: bytes | None,
        claimed_at_ns: int,
        policy: LedgerPolicy,
    ) -> None:
        """Record a data key wrapped to a recipient, under the rules of ``domain.key_releases``."""
        check_key_release(
            self, release, registered_key=registered_key, claimed_at_ns=claimed_at_ns, policy=policy
        )
        self._trigger(
            self.KeyReleased,
            release.at_ns,
            sender=release.sender,
            recipient=release.recipient,
            purpose=release.purpose,
            attempt=release.attempt,
            recipient_key=release.recipient_key,
            wrapped=release.wrapped,
        )

    def lapse_claim(self, *, now_ns: int) -> None:
        """The claim lapses: its inputs key was not released in time (the caller checked
        ``domain.key_releases.is_claim_lapsed``)."""
        self._require_state({CLAIMED}, "lapse_claim")
        self._trigger(self.ClaimLapsed, now_ns, node_id=self.node_id, reason=CLAIM_LAPSED_REASON)

    def expire(self, *, now_ns: int) -> None:
        """An unclaimed job whose deadline passed."""
        self._require_state({SUBMITTED}, "expire")
        if now_ns <= self.deadline_ns:
            raise Rejection(
                f"the job runs until {self.deadline_ns}", code=RejectionCode.DEADLINE_NOT_REACHED
            )
        self._trigger(self.JobExpired, now_ns, reason="deadline passed unclaimed")

    def check_cancellable(self, *, consumer: str) -> None:
        """Raise unless ``consumer`` may cancel the job now: its consumer (checked first),
        and no node holds it (submitted)."""
        if consumer != self.consumer:
            raise Unauthorized(
                f"job {self.id} is {self.consumer}'s; {consumer} cannot cancel it",
                code=RejectionCode.NOT_THE_CONSUMER,
            )
        self._require_state({SUBMITTED}, "cancel")

    def cancel(self, *, consumer: str, amount: int, now_ns: int) -> None:
        """The consumer's cancellation of a job no node holds; the handler voids the escrow
        hold (``amount``) in the same command."""
        self.check_cancellable(consumer=consumer)
        self._trigger(self.JobCancelled, now_ns, amount=amount)

    def refund(self, *, amount: int, now_ns: int) -> None:
        self._require_state({EXPIRED}, "refund")
        self._trigger(self.JobRefunded, now_ns, amount=amount)

    def view(self) -> dict[str, object]:
        view = self._base_view()
        releases = compute_release_views(self)
        if releases:  # issue 17: only private jobs have any; other views stay as they were
            view["key_releases"] = releases
        if self.result is not None:  # issue 17: what the consumer's download is checked against
            view["result"] = {
                "commitment": self.result.commitment.hex(),
                "artifact_digest": self.result.artifact_digest.hex(),
                "proof_digest": self.result.proof_digest.hex(),
            }
        return view

    def _base_view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "consumer": self.consumer,
            "state": self.state,
            "workload": msgspec.structs.asdict(self.workload),
            "max_price": self.max_price,
            "region": self.region,
            "redundancy": self.redundancy,
            "deadline_ns": self.deadline_ns,
            "attempt": self.attempt,
            "node_id": self.node_id or None,
            "price": self.price,
            "result_due_ns": self.result_due_ns,
            "validators": list(self.validators),
            "verdicts": {k: v.passed for k, v in self.verdicts.items()},
            "verdict_commits": sorted(self.round.commits) if self.round else [],
            "commit_deadline_ns": self.round.commit_deadline_ns if self.round else 0,
            "reveal_deadline_ns": self.round.reveal_deadline_ns if self.round else 0,
            "payouts": [msgspec.structs.asdict(p) for p in self.payouts],
            "version": self.version,
        }

    @property
    def current_round(self) -> VerdictRound | None:
        return self.round

    @property
    def openings_seed(self) -> bytes:
        """The randomness of the draw of the round that first judged the current result
        (kept across replacements; empty before that draw, and for rounds drawn under rules
        version 1): the spot checks' openings derive from it, so they are fixed only after
        the result was committed, by the beacon (``domain.beacon``), not by the node."""
        seed: bytes = self.__dict__.get(_ROUND_RANDOMNESS, b"")
        return seed

    def round_commitment(self) -> bytes:
        return present(self.result, "a job under a vote has a committed result").commitment

    def round_seed(self) -> str:
        return self.id

    def require_revealable(self, nonce: str | None) -> None:
        if self.result is None:
            raise Rejection(
                f"job {self.id} has no committed result", code=RejectionCode.NO_RESULT_COMMITTED
            )

    def _require_round_state(self, action: str, nonce: str | None) -> None:
        self._require_state({RESULT_COMMITTED}, action)

    def _require_round_can_open(self) -> None:
        self._require_state({RESULT_COMMITTED}, "assign_validators")

    def _on_round_decided(
        self, *, passed: bool, certificate: bytes, reason: str, policy: LedgerPolicy, now_ns: int
    ) -> None:
        if passed:
            self._trigger(self.JobVerified, now_ns, certificate=certificate)
        else:
            self._trigger(self.JobRejected, now_ns, certificate=certificate, reason=reason)

    def _on_round_abandoned(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        self._reassign_or_expire("no verdict quorum", policy, now_ns)

    def _require_state(self, allowed: set[str], action: str) -> None:
        if self.state not in allowed:
            raise InvalidTransition(
                f"job {self.id} is {self.state}; {action} needs one of {sorted(allowed)}",
                code=STATE_CODES[self.state],
            )


_ROUND_RANDOMNESS = "round_randomness"


def _set_round_randomness(job: Job, randomness: bytes) -> None:
    """Keep a beacon draw's randomness; none is kept as no attribute at all, so that a
    history drawn before the beacon replays to exactly the state it recorded."""
    if randomness:
        job.__dict__[_ROUND_RANDOMNESS] = randomness
    else:
        job.__dict__.pop(_ROUND_RANDOMNESS, None)


def _check_issue14_submission(
    workload: WorkloadSpec, redundancy: int, policy: LedgerPolicy
) -> None:
    """The submission rules of rules v2, in this order: the redundancy minimum (attack 9),
    then no zk-prove job on keys with a public trapdoor unless the policy allows them
    (attack 8)."""
    if redundancy < policy.redundancy_min:
        # A quorum of fewer validators is one a colluding consumer and node can pick.
        raise Rejection(
            f"redundancy must be at least {policy.redundancy_min}, not {redundancy}",
            code=RejectionCode.REDUNDANCY_BELOW_MINIMUM,
        )
    if is_insecure_setup(workload) and not policy.insecure_setups_allowed:
        raise Rejection(
            "zk-prove setup_seed keys have a public trapdoor and this ledger's policy does "
            "not allow them: name a ceremony's zkey",
            code=RejectionCode.INSECURE_SETUP_NOT_ALLOWED,
        )


def _ns(event: FlopAggregate.Event) -> int:
    from domain.events import datetime_to_ns

    return datetime_to_ns(event.timestamp)
