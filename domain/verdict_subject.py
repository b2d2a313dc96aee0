"""The aggregate side of a verdict round, written once for every subject kind.

A ``VotedAggregate`` is an aggregate whose subject a verdict round (``domain.verdicts``)
judges: a Job (its committed result) or a Node (its submitted attestation). The round's
commands (assign, commit, reveal, replace the absent, abandon, decide) and their rules live
here; each aggregate names its own events (stored history keeps their names) and says what
opens a round, which subject and commitment the votes bind, and what a decision or an
abandoned round does to it.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from domain.errors import InvalidTransition, Rejection, RejectionCode
from domain.events import FlopAggregate
from domain.policy import REASON_CHARS_MAX, LedgerPolicy
from domain.verdicts import (
    Verdict,
    VerdictRound,
    check_salt,
    compute_subject,
    compute_verdict_commitment,
    is_escalation_allowed,
    start_round,
)


class RoundEvents(NamedTuple):
    """An aggregate's own event classes for the steps of its verdict round."""

    assigned: type[Any]
    committed: type[Any]
    recorded: type[Any]
    replaced: type[Any]


class VotedAggregate(FlopAggregate):
    """Base of aggregates judged by a verdict round (see the module docstring)."""

    SUBJECT_KIND: ClassVar[str] = ""
    ROUND_EVENTS: ClassVar[RoundEvents]

    # -- what each aggregate says -------------------------------------------------------

    @property
    def current_round(self) -> VerdictRound | None:
        """The round on the current subject, if validators were assigned."""
        raise NotImplementedError

    def round_nonce(self) -> str:
        """What tells this subject's rounds apart beyond the aggregate id ("" for a job)."""
        return ""

    def round_commitment(self) -> bytes:
        """The commitment the validators judge (result or attestation commitment)."""
        raise NotImplementedError

    def round_seed(self) -> str:
        """The seed id validators are drawn with (kept as the first release recorded it)."""
        raise NotImplementedError

    def require_revealable(self, nonce: str | None) -> None:
        """Raise the rule a reveal breaks before its signature is checked."""
        raise NotImplementedError

    def _require_round_state(self, action: str, nonce: str | None) -> None:
        """Raise unless the aggregate is in a state with a vote on (``nonce`` None: the
        current subject)."""
        raise NotImplementedError

    def _require_round_can_open(self) -> None:
        raise NotImplementedError

    def _on_round_decided(
        self, *, passed: bool, certificate: bytes, reason: str, policy: LedgerPolicy, now_ns: int
    ) -> None:
        raise NotImplementedError

    def _on_round_abandoned(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        raise NotImplementedError

    # -- the round, written once --------------------------------------------------------

    @property
    def validators(self) -> tuple[str, ...]:
        """The assigned validators, in the order quorum certificates index them."""
        verdict_round = self.current_round
        return verdict_round.validators if verdict_round else ()

    @property
    def verdicts(self) -> dict[str, Verdict]:
        """Revealed verdicts by validator id."""
        verdict_round = self.current_round
        return verdict_round.verdicts if verdict_round else {}

    def round_subject(self) -> str:
        """What a verdict commitment binds: ``job:<id>`` or ``attestation:<id>:<nonce>``."""
        return compute_subject(self.SUBJECT_KIND, self.id, self.round_nonce())

    def require_pending_reveal(self, validator_id: str, nonce: str | None) -> None:
        """Raise the rule a reveal by ``validator_id`` breaks before its signature is checked:
        the subject's own (``require_revealable``), then that the current round holds a
        commit of this validator still to reveal."""
        self.require_revealable(nonce)
        self._require_voting_round("reveal_verdict", nonce).check_reveal_expected(validator_id)

    def get_open_round(self) -> VerdictRound | None:
        """The round validators may act in now, or None (no subject under a vote)."""
        try:
            return self._require_voting_round("vote", None)
        except Rejection:
            return None

    def assign_validators(
        self,
        *,
        validators: tuple[str, ...],
        log_position: int,
        log_hash: bytes,
        policy: LedgerPolicy,
        now_ns: int,
        weights: tuple[int, ...] = (),
        randomness: bytes = b"",
        beacon_epoch: int = 0,
    ) -> None:
        """Open the verdict round; ``weights`` are the drawn validators' stakes (for a
        stake-weighted quorum), frozen for the whole round; ``randomness`` seeded the draw
        (from beacon epoch ``beacon_epoch``)."""
        self._require_round_can_open()
        if self.current_round is not None:
            raise InvalidTransition(
                "validators are already assigned",
                code=RejectionCode.VALIDATORS_ALREADY_ASSIGNED,
            )
        if not validators:
            raise Rejection(
                "no validator with stake is available",
                code=RejectionCode.NO_VALIDATORS_AVAILABLE,
            )
        opened = start_round(
            validators=validators,
            weights=weights or (1,) * len(validators),
            now_ns=now_ns,
            policy=policy,
        )
        self._trigger(
            self.ROUND_EVENTS.assigned,
            now_ns,
            validators=validators,
            weights=opened.weights,
            log_position=log_position,
            log_hash=log_hash,
            commit_deadline_ns=opened.commit_deadline_ns,
            reveal_deadline_ns=opened.reveal_deadline_ns,
            randomness=randomness,
            beacon_epoch=beacon_epoch,
        )

    def commit_verdict(
        self, *, validator_id: str, verdict_hash: bytes, now_ns: int, nonce: str | None = None
    ) -> None:
        """Record a validator's salted verdict hash during the commit window."""
        verdict_round = self._require_voting_round("commit_verdict", nonce)
        verdict_round.check_commit(validator_id, now_ns)
        self._trigger(
            self.ROUND_EVENTS.committed,
            now_ns,
            validator_id=validator_id,
            verdict_hash=verdict_hash,
        )

    def reveal_verdict(
        self,
        *,
        validator_id: str,
        verdict: Verdict,
        salt: bytes,
        now_ns: int,
        nonce: str | None = None,
    ) -> None:
        """Reveal a committed verdict once the commit phase is over; it must match."""
        verdict_round = self._require_voting_round("reveal_verdict", nonce)
        check_salt(salt)
        expected = compute_verdict_commitment(
            subject=self.round_subject(),
            result_commitment=self.round_commitment(),
            validator_id=validator_id,
            passed=verdict.passed,
            salt=salt,
        )
        verdict_round.check_reveal(validator_id, expected, now_ns)
        self._trigger(
            self.ROUND_EVENTS.recorded,
            now_ns,
            validator_id=validator_id,
            verdict=verdict,
            salt=salt,
        )

    def replace_absent_validators(
        self,
        *,
        replacements: tuple[str, ...],
        weights: tuple[int, ...],
        log_position: int,
        log_hash: bytes,
        policy: LedgerPolicy,
        now_ns: int,
        randomness: bytes = b"",
        beacon_epoch: int = 0,
    ) -> None:
        """After the reveal window: absent validators give way to a re-draw (in order); in a
        round where everybody revealed without a quorum (a split round, rules v2), the
        re-draw joins the round instead (an escalation: ``absent`` recorded empty, the votes
        cast stay; issue 14, split rounds)."""
        verdict_round = self._require_voting_round("replace_validators", None)
        _require_round_over(verdict_round, now_ns)
        absent = verdict_round.absent()
        is_split = not absent and is_escalation_allowed(verdict_round, policy)
        if not (absent or is_split) or not replacements:
            raise InvalidTransition(
                "no absent validator to replace", code=RejectionCode.NOTHING_TO_REPLACE
            )
        if verdict_round.replacements >= policy.validator_replacements_max:
            raise Rejection(
                f"validators were already replaced {verdict_round.replacements} times",
                code=RejectionCode.VALIDATOR_REPLACEMENTS_EXHAUSTED,
            )
        fresh = start_round(validators=(), weights=(), now_ns=now_ns, policy=policy)
        self._trigger(
            self.ROUND_EVENTS.replaced,
            now_ns,
            absent=absent[: len(replacements)],
            replacements=replacements,
            weights=weights,
            log_position=log_position,
            log_hash=log_hash,
            commit_deadline_ns=fresh.commit_deadline_ns,
            reveal_deadline_ns=fresh.reveal_deadline_ns,
            randomness=randomness,
            beacon_epoch=beacon_epoch,
        )

    def abandon_round(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        """A round over without a quorum and without replacements: give the subject up
        without blame (a job goes back to the market, an attestation is rejected)."""
        verdict_round = self._require_voting_round("abandon_verdict_round", None)
        _require_round_over(verdict_round, now_ns)
        if verdict_round.compute_outcome(policy) is not None:
            raise InvalidTransition("the round has a quorum", code=RejectionCode.QUORUM_REACHED)
        self._on_round_abandoned(policy=policy, now_ns=now_ns)

    def compute_quorum_outcome(self, policy: LedgerPolicy) -> bool | None:
        """True (passed) or False (failed) once a quorum agrees; None until then."""
        verdict_round = self.current_round
        return verdict_round.compute_outcome(policy) if verdict_round else None

    def majority_validators(self, outcome: bool) -> tuple[str, ...]:
        verdict_round = self.current_round
        return verdict_round.majority(outcome) if verdict_round else ()

    def decide_round(self, *, certificate: bytes, policy: LedgerPolicy, now_ns: int) -> bool:
        """Record the quorum's decision with its certificate; returns whether it passed."""
        verdict_round = self._require_voting_round("decide_round", None)
        outcome = verdict_round.compute_outcome(policy)
        if outcome is None:
            raise InvalidTransition(
                "no quorum of verdicts yet", code=RejectionCode.QUORUM_NOT_REACHED
            )
        reasons = sorted({v.reason for v in verdict_round.verdicts.values() if not v.passed})
        self._on_round_decided(
            passed=outcome,
            certificate=certificate,
            reason="" if outcome else "; ".join(reasons)[:REASON_CHARS_MAX],
            policy=policy,
            now_ns=now_ns,
        )
        return outcome

    def _require_voting_round(self, action: str, nonce: str | None) -> VerdictRound:
        self._require_round_state(action, nonce)
        verdict_round = self.current_round
        if verdict_round is None:
            raise InvalidTransition(
                "no validators are assigned", code=RejectionCode.VALIDATORS_NOT_ASSIGNED
            )
        return verdict_round


def _require_round_over(verdict_round: VerdictRound, now_ns: int) -> None:
    if not verdict_round.is_over(now_ns):
        raise Rejection(
            f"verdicts may be revealed until {verdict_round.reveal_deadline_ns}",
            code=RejectionCode.REVEAL_WINDOW_OPEN,
        )
