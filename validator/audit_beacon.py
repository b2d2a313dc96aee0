"""The audit's beacon checks (issue 14, attack 2), for records written under rules v2.

- An epoch opens with the snapshot the rules give: the active validators at that position
  (stake at least ``validator_stake_min``, in order of registration) with their owners and
  stakes, and the deadline ``beacon_window_ns`` after its record.
- A contribution names a validator of the open epoch's snapshot that had not contributed,
  and its BLS signature over ``compute_beacon_message`` verifies with the validator's key.
- A closing closes the open epoch, complete or past its deadline, with the value that its
  recorded contributions give and the missing contributors named.
- Every draw (a round's validators, replacements for the absent, or an escalation of a
  split round: validators joining a round where everybody revealed without a quorum,
  recorded with nobody absent) is made by the command that closed the epoch it names, for
  a subject that waited for that epoch, with the randomness and the validators that the
  epoch's value and snapshot give, replacing exactly the round's absent validators: nobody
  can substitute a draw, or its randomness (the spot checks' openings), after the fact. A
  completion's draw picks only among the validators that had declared its model (issue 18).

Records written under rules v1 were drawn from the log head and are not checked here.
Pure functions: each returns why a record breaks a rule, or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.beacon import (
    BEACON_STREAM_TYPE,
    PURPOSE_ASSIGN,
    PURPOSE_REPLACE,
    Beacon,
    Epoch,
    Participant,
    compute_beacon_message,
    compute_draw,
    compute_draw_randomness,
    compute_epoch_value,
)
from domain.completions import Completion
from domain.policy import RULES_V2, LedgerPolicy
from domain.services.completion_rounds import compute_non_checkers
from domain.services.draws import compute_replacement_seed
from domain.services.rounds import ROUND_KINDS
from domain.verdict_subject import VotedAggregate
from proofs import bls

BEACON_RULES_VERSION = RULES_V2
"""The first rules under which draws come from the beacon."""
EPOCH_OPENED = (BEACON_STREAM_TYPE, "EpochOpened")
CONTRIBUTED = (BEACON_STREAM_TYPE, "Contributed")
EPOCH_CLOSED = (BEACON_STREAM_TYPE, "EpochClosed")
DRAW_EVENTS: dict[tuple[str, str], str] = {
    ("job", "ValidatorsAssigned"): PURPOSE_ASSIGN,
    ("job", "ValidatorsReplaced"): PURPOSE_REPLACE,
    ("node", "AttestationValidatorsAssigned"): PURPOSE_ASSIGN,
    ("node", "AttestationValidatorsReplaced"): PURPOSE_REPLACE,
    ("completion", "CompletionValidatorsAssigned"): PURPOSE_ASSIGN,  # issue 18
    ("completion", "CompletionValidatorsReplaced"): PURPOSE_REPLACE,
}
"""Events that record a draw, with what the draw was for."""
US_NS = 1_000
"""Record times are kept in microseconds: a deadline is checked to that precision."""


@dataclass(frozen=True)
class ClosedEpoch:
    """An epoch as the command that closed it left it: what its draws must come from."""

    epoch: Epoch
    value: bytes


def is_beacon_rule_in_force(policy: LedgerPolicy | None) -> bool:
    """Whether records governed by ``policy`` (None: no genesis yet) draw from the beacon."""
    return policy is not None and policy.rules_version >= BEACON_RULES_VERSION


def compute_snapshot(
    members: list[str], aggregates: Mapping[str, Any], policy: LedgerPolicy
) -> tuple[Participant, ...]:
    """The active validators among the directory's ``members`` (in order), as the rules say
    an epoch's snapshot freezes them."""
    snapshot = []
    for validator_id in members:
        validator = aggregates.get(validator_id)
        stake = getattr(validator, "stake", 0)
        if validator is not None and stake >= policy.validator_stake_min:
            snapshot.append(Participant(validator_id, str(validator.owner), stake))
    return tuple(snapshot)


def find_opening_violation(
    event: Any,
    *,
    beacon: Beacon | None,
    expected: tuple[Participant, ...],
    at_ns: int,
    policy: LedgerPolicy,
) -> str | None:
    """Why an ``EpochOpened`` is not the epoch the rules open at its record."""
    if beacon is not None and beacon.open_epoch is not None:
        return f"epoch {event.epoch} opened while epoch {beacon.open_epoch.number} is open"
    last = beacon.last_epoch if beacon is not None else 0
    if event.epoch != last + 1:
        return f"epoch {event.epoch} opened after epoch {last}"
    if tuple(event.participants) != expected:
        return (
            f"epoch {event.epoch}'s snapshot is not the active validators at its opening "
            f"({len(event.participants)} recorded, {len(expected)} active)"
        )
    opened_ns = event.deadline_ns - policy.beacon_window_ns
    if not at_ns <= opened_ns < at_ns + US_NS:
        return f"epoch {event.epoch}'s deadline is not {policy.beacon_window_ns} ns after it"
    return None


def find_contribution_violation(
    event: Any, *, beacon: Beacon | None, bls_key: bytes, verify_signatures: bool
) -> str | None:
    """Why a ``Contributed`` is not a fresh, valid contribution to the open epoch."""
    opened = beacon.open_epoch if beacon is not None else None
    if opened is None or opened.number != event.epoch:
        return f"a contribution to epoch {event.epoch}, which is not open"
    if event.validator_id not in {p.validator_id for p in opened.participants}:
        return f"{event.validator_id} is not in epoch {event.epoch}'s snapshot"
    if event.validator_id in opened.contributions:
        return f"{event.validator_id} contributed to epoch {event.epoch} twice"
    message = compute_beacon_message(event.epoch, opened.previous_value)
    if verify_signatures and not bls.verify(bls_key, message, event.signature):
        return f"the contribution of {event.validator_id} does not verify"
    return None


def find_closing_violation(event: Any, *, beacon: Beacon | None, at_ns: int) -> str | None:
    """Why an ``EpochClosed`` does not close the open epoch with the value it has."""
    opened = beacon.open_epoch if beacon is not None else None
    if opened is None or opened.number != event.epoch:
        return f"epoch {event.epoch} closed, but it is not open"
    participants = tuple(p.validator_id for p in opened.participants)
    missing = tuple(v for v in participants if v not in opened.contributions)
    if missing and at_ns <= opened.deadline_ns - US_NS:
        return f"epoch {event.epoch} closed before its deadline without {len(missing)} of them"
    if tuple(event.missing) != missing:
        return f"epoch {event.epoch}'s missing contributors are not {list(missing)}"
    value = compute_epoch_value(
        previous_value=opened.previous_value,
        epoch=event.epoch,
        participants=participants,
        contributions=opened.contributions,
    )
    if event.value != value:
        return f"epoch {event.epoch}'s value is not the one its contributions give"
    return None


def compute_non_judges(
    subject: VotedAggregate, participants: tuple[Participant, ...], aggregates: Mapping[str, Any]
) -> frozenset[str]:
    """The participants the rules never draw for ``subject``, from the validators as the log
    stood at the draw: for a completion, those that had not declared its model (issue 18;
    ``domain.services.completion_rounds.compute_non_checkers``, which the ledger calls too)."""
    if not isinstance(subject, Completion):
        return frozenset()
    return compute_non_checkers(
        participants,
        subject.model_id,
        lambda validator_id: getattr(aggregates.get(validator_id), "check_models", ()),
    )


def find_draw_violation(
    event: Any,
    *,
    subject: VotedAggregate | None,
    purpose: str,
    closed: ClosedEpoch | None,
    aggregates: Mapping[str, Any],
) -> str | None:
    """Why a draw was not made from the beacon epoch its command closed, as the rules say
    (``aggregates``: the audit's state before the draw, for who may be drawn)."""
    if closed is None or event.beacon_epoch != closed.epoch.number:
        return f"a draw not seeded by an epoch its command closed (epoch {event.beacon_epoch})"
    if subject is None:
        return "a draw for a subject that does not exist"
    kind = ROUND_KINDS[subject.SUBJECT_KIND]
    verdict_round = subject.current_round
    if purpose == PURPOSE_ASSIGN:
        seed_id, excluded = subject.round_seed(), frozenset[str]()
    else:
        if verdict_round is None:
            return "replacements for a round that is not open"
        seed_id = compute_replacement_seed(subject.round_seed(), verdict_round.replacements + 1)
        excluded = frozenset(verdict_round.validators)
        # The absent are replaced, in order; with nobody absent the draw joins a split
        # round (an escalation, recorded with ``absent`` empty; issue 14, split rounds).
        absent = verdict_round.absent()[: len(event.replacements)]
        if tuple(event.absent) != absent:
            return f"the draw of {seed_id} replaces {list(event.absent)}, not {list(absent)}"
    waiting = [
        w
        for w in closed.epoch.waiting
        if (w.kind, w.aggregate_id, w.seed_id, w.purpose)
        == (kind.name, subject.id, seed_id, purpose)
    ]
    if not waiting:
        return f"{seed_id} did not wait for epoch {closed.epoch.number}"
    randomness = compute_draw_randomness(closed.value, seed_id)
    if event.randomness != randomness:
        return f"the draw of {seed_id} does not record epoch {closed.epoch.number}'s randomness"
    drawn = event.validators if purpose == PURPOSE_ASSIGN else event.replacements
    count = waiting[0].count
    expected = compute_draw(
        closed.epoch.participants,
        randomness=randomness,
        count=count,
        excluded_owners=kind.excluded_owners(subject),
        excluded=excluded | compute_non_judges(subject, closed.epoch.participants, aggregates),
    )
    if (tuple(drawn), tuple(event.weights)) != expected:
        return f"the validators drawn for {seed_id} are not the ones the epoch gives"
    return None
