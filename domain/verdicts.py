"""Verdict rounds: commit-reveal voting by an assigned validator set, for jobs and attestations.

A round starts when validators are drawn (``domain.selection``) for a subject: a committed
job result, or a submitted hardware attestation. Each assigned validator first *commits*
``compute_verdict_commitment(...)``, a salted hash of its verdict; the commit phase closes at
its deadline, or as soon as every assigned validator has committed. Only then may verdicts be
*revealed* (verdict, salt and the BLS signature), each matching its commit, until the reveal
deadline. No validator can therefore copy another's verdict: none is visible while commits
are still accepted, and a commit binds the committer's own id.

Quorum (``LedgerPolicy``, ``has_quorum``): under rules v2, at least numerator/denominator
(2/3) of the stake the assigned validators had when they were drawn (weights are frozen then,
so a later bond, unbond or slash cannot change a running round), and at least
``quorum_signers_min`` signers. Records of rules v1 were decided by count (at least that
fraction of the assigned validators) or, with ``quorum_by_stake``, by drawn stake alone.
When both sides reach the bar (possible only when the fraction is at most 1/2) the round is
tied and has no outcome. After the reveal deadline a
validator that did not reveal (whether it committed or not) is *absent*.

The round's commands, written once for both subject kinds, are ``domain.verdict_subject``'s
(``VotedAggregate``, the base of Job and Node); its service is ``domain.services.rounds``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

import msgspec

from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.policy import RULES_V2, LedgerPolicy

VERDICT_COMMIT_TAG = b"flopledger/verdict-commit/v1\x00"
SALT_BYTES_MIN = 16
SALT_BYTES_MAX = 64
SUBJECT_JOB = "job"
SUBJECT_ATTESTATION = "attestation"
SUBJECT_COMPLETION = "completion"
"""A sampled LLM completion's committed activations (issue 18; ``domain.completions``)."""
QUORUM_RULES_VERSION = RULES_V2
"""From this ``LedgerPolicy.rules_version`` on, a quorum is ``has_quorum``'s (issue 14,
attack 9); records of earlier versions were decided by head count or ``quorum_by_stake``."""
ESCALATION_RULES_VERSION = RULES_V2
"""From this version on, a split round (everybody revealed, no quorum) is escalated."""


class Verdict(msgspec.Struct, frozen=True):
    """A revealed verdict: pass/fail, a short reason, and the BLS signature over it."""

    passed: bool
    reason: str
    signature: bytes


@dataclass
class VerdictRound:
    """The state of one subject's vote (mutated only by its aggregate's event ``apply``)."""

    validators: tuple[str, ...]
    weights: tuple[int, ...]
    commit_deadline_ns: int
    reveal_deadline_ns: int
    replacements: int = 0
    commits: dict[str, bytes] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    def is_commit_phase_over(self, now_ns: int) -> bool:
        return now_ns > self.commit_deadline_ns or all(v in self.commits for v in self.validators)

    def is_over(self, now_ns: int) -> bool:
        return now_ns > self.reveal_deadline_ns

    def check_commit(self, validator_id: str, now_ns: int) -> None:
        """Raise unless ``validator_id`` may commit now (rules in this order)."""
        self._require_assigned(validator_id)
        if validator_id in self.commits:
            raise InvalidTransition(
                "this validator already committed its verdict",
                code=RejectionCode.VERDICT_ALREADY_COMMITTED,
            )
        if self.is_commit_phase_over(now_ns):
            raise Rejection(
                f"the commit window closed at {self.commit_deadline_ns}",
                code=RejectionCode.COMMIT_WINDOW_CLOSED,
            )

    def check_reveal(self, validator_id: str, expected_commit: bytes, now_ns: int) -> None:
        """Raise unless the reveal whose commitment is ``expected_commit`` is acceptable now."""
        self.check_reveal_expected(validator_id)
        if not self.is_commit_phase_over(now_ns):
            raise Rejection(
                f"verdicts are revealed after the commit window ({self.commit_deadline_ns})",
                code=RejectionCode.COMMIT_WINDOW_OPEN,
            )
        if self.is_over(now_ns):
            raise Rejection(
                f"the reveal window closed at {self.reveal_deadline_ns}",
                code=RejectionCode.REVEAL_WINDOW_CLOSED,
            )
        if self.commits[validator_id] != expected_commit:
            raise Rejection(
                "the revealed verdict and salt do not hash to the commit",
                code=RejectionCode.REVEAL_DOES_NOT_MATCH_COMMIT,
            )

    def compute_outcome(self, policy: LedgerPolicy) -> bool | None:
        """True (pass) or False (fail) once a quorum agrees; None until then or on a tie."""
        if policy.rules_version >= QUORUM_RULES_VERSION:
            pass_ok, fail_ok = (
                has_quorum(
                    signed_weight=self.compute_weight(outcome),
                    drawn_weight=sum(self.weights),
                    signers=len(self.majority(outcome)),
                    policy=policy,
                )
                for outcome in (True, False)
            )
        elif policy.quorum_by_stake:
            total = sum(self.weights)
            pass_ok = self.compute_weight(True) * policy.quorum_denominator >= (
                total * policy.quorum_numerator
            )
            fail_ok = self.compute_weight(False) * policy.quorum_denominator >= (
                total * policy.quorum_numerator
            )
        else:
            needed = policy.quorum_size(len(self.validators))
            passes = sum(1 for v in self.verdicts.values() if v.passed)
            pass_ok, fail_ok = passes >= needed, len(self.verdicts) - passes >= needed
        if pass_ok and fail_ok:
            return None
        if pass_ok:
            return True
        if fail_ok:
            return False
        return None

    def compute_weight(self, outcome: bool) -> int:
        """The drawn stake of the validators that voted ``outcome``."""
        return sum(
            w
            for v, w in zip(self.validators, self.weights, strict=True)
            if v in self.verdicts and self.verdicts[v].passed == outcome
        )

    def majority(self, outcome: bool) -> tuple[str, ...]:
        """The validators that voted ``outcome``, in set order."""
        return tuple(
            v for v in self.validators if v in self.verdicts and self.verdicts[v].passed == outcome
        )

    def absent(self) -> tuple[str, ...]:
        """Assigned validators without a revealed verdict."""
        return tuple(v for v in self.validators if v not in self.verdicts)

    def replaced(
        self,
        *,
        absent: tuple[str, ...],
        replacements: tuple[str, ...],
        weights: tuple[int, ...],
        commit_deadline_ns: int,
        reveal_deadline_ns: int,
    ) -> VerdictRound:
        """The next round: each absent validator's place taken by its replacement (in order;
        absent validators beyond the replacements keep their place), replacements beyond the
        absent appended (an escalation of a split round: ``absent`` empty), verdicts kept,
        the commits of the absent dropped, fresh deadlines."""
        drawn = list(zip(replacements, weights, strict=True))
        swap = dict(zip(absent, drawn, strict=False))
        pairs = [swap.get(v, (v, w)) for v, w in zip(self.validators, self.weights, strict=True)]
        pairs += drawn[len(absent) :]
        return VerdictRound(
            validators=tuple(v for v, _ in pairs),
            weights=tuple(w for _, w in pairs),
            commit_deadline_ns=commit_deadline_ns,
            reveal_deadline_ns=reveal_deadline_ns,
            replacements=self.replacements + 1,
            commits={v: h for v, h in self.commits.items() if v in self.verdicts},
            verdicts=dict(self.verdicts),
        )

    def check_reveal_expected(self, validator_id: str) -> None:
        """Raise unless ``validator_id`` has a commit of this round still to reveal: checked
        before a reveal's signature, so a reveal meant for an earlier round of the subject
        (a validator whose view lags the ledger: the round was decided without it and the
        subject moved on) is told so, not that its signature is bad."""
        self._require_assigned(validator_id)
        if validator_id in self.verdicts:
            raise InvalidTransition(
                "this validator's verdict is already recorded",
                code=RejectionCode.VERDICT_ALREADY_RECORDED,
            )
        if validator_id not in self.commits:
            raise Rejection(
                "commit a hash of the verdict before revealing it",
                code=RejectionCode.VERDICT_NOT_COMMITTED,
            )

    def _require_assigned(self, validator_id: str) -> None:
        if validator_id not in self.validators:
            raise Unauthorized(
                f"validator {validator_id} is not assigned to this vote",
                code=RejectionCode.VALIDATOR_NOT_ASSIGNED,
            )


def has_quorum(
    *, signed_weight: int, drawn_weight: int, signers: int, policy: LedgerPolicy
) -> bool:
    """Whether ``signers`` validators holding ``signed_weight`` of the round's
    ``drawn_weight`` (stakes frozen at the draw) decide, under rules v2: at least
    quorum_numerator/quorum_denominator of the drawn stake and at least
    ``quorum_signers_min`` signers (and never none)."""
    return (
        signers >= max(1, policy.quorum_signers_min)
        and signed_weight * policy.quorum_denominator >= drawn_weight * policy.quorum_numerator
    )


def is_escalation_allowed(verdict_round: VerdictRound, policy: LedgerPolicy) -> bool:
    """Whether a round in which every validator revealed, with no side holding a quorum, is
    escalated (more validators drawn to join it) rather than abandoned: under rules v2, a
    side with more than 1/3 of the drawn stake must not block a decision for free (issue
    14, split rounds). Escalations share ``validator_replacements_max`` with replacements,
    so a round's length stays bounded as ``compute_fraud_exposure_ns`` assumes."""
    return (
        policy.rules_version >= ESCALATION_RULES_VERSION
        and not verdict_round.absent()
        and verdict_round.compute_outcome(policy) is None
    )


def start_round(
    *, validators: tuple[str, ...], weights: tuple[int, ...], now_ns: int, policy: LedgerPolicy
) -> VerdictRound:
    commit_deadline = now_ns + policy.verdict_commit_window_ns
    return VerdictRound(
        validators=validators,
        weights=weights,
        commit_deadline_ns=commit_deadline,
        reveal_deadline_ns=commit_deadline + policy.verdict_reveal_window_ns,
    )


def compute_verdict_commitment(
    *,
    subject: str,
    result_commitment: bytes,
    validator_id: str,
    passed: bool,
    salt: bytes,
) -> bytes:
    """SHA-256 over a tagged, length-prefixed (subject, result commitment, validator, verdict,
    salt). ``subject`` is ``job:<job id>`` or ``attestation:<node id>:<challenge nonce>``."""
    parts = [subject.encode(), result_commitment, validator_id.encode(), salt]
    body = b"".join(struct.pack(">H", len(p)) + p for p in parts)
    return hashlib.sha256(VERDICT_COMMIT_TAG + body + (b"\x01" if passed else b"\x00")).digest()


def compute_subject(kind: str, subject_id: str, nonce: str = "") -> str:
    """The subject a verdict commitment binds: ``<kind>:<id>``, then ``:<nonce>`` if any."""
    return f"{kind}:{subject_id}:{nonce}" if nonce else f"{kind}:{subject_id}"


def job_subject(job_id: str) -> str:
    return compute_subject(SUBJECT_JOB, job_id)


def completion_subject(completion_id: str) -> str:
    """What a verdict on a sampled completion binds: ``completion:<completion id>``."""
    return compute_subject(SUBJECT_COMPLETION, completion_id)


def attestation_subject(node_id: str, nonce: str) -> str:
    return compute_subject(SUBJECT_ATTESTATION, node_id, nonce)


def check_salt(salt: bytes) -> None:
    if not SALT_BYTES_MIN <= len(salt) <= SALT_BYTES_MAX:
        raise Rejection(
            f"a verdict salt is {SALT_BYTES_MIN}..{SALT_BYTES_MAX} bytes",
            code=RejectionCode.SALT_LENGTH_INVALID,
        )
