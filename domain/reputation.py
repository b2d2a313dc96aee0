"""A node's reputation: a score from its own records alone, in integer arithmetic (rules v3).

Observations (each one record of the node's stream, written under ``RULES_V3``):

| kind                 | record                                              | units |
|----------------------|-----------------------------------------------------|-------|
| ``verified``         | ``ClaimReleased`` outcome: its result passed        | +4    |
| ``attested``         | ``AttestationVerified`` (a challenge passed)        | +4    |
| ``up``               | ``NodeUptimeRecorded`` up (a liveness epoch)        | +1    |
| ``rejected``         | ``ClaimReleased`` outcome: its result failed        | -16   |
| ``attest_failed``    | ``AttestationRejected`` (a challenge failed/missed) | -16   |
| ``no_show``          | ``ClaimReleased`` outcome: its result window missed | -8    |
| ``released``         | ``ClaimReleased`` outcome: handed back after a while| -2    |
| ``down``             | ``NodeUptimeRecorded`` down                         | -4    |

Observations are counted per hour (``REPUTATION_BUCKET_NS``): an observation at ``t`` falls in
bucket ``b = t // REPUTATION_BUCKET_NS``, whose age at ``now`` is
``age = max(0, now - b·REPUTATION_BUCKET_NS)``. Its weight halves in steps, once per
``reputation_half_life_ns`` (policy) of age, and is zero past ``REPUTATION_HORIZON_NS``::

    w(age) = WEIGHT_ONE >> (age // half_life)    (0 when age >= REPUTATION_HORIZON_NS)
    good   = Σ_buckets w · Σ_kinds good_units(kind) · count
    bad    = Σ_buckets w · Σ_kinds bad_units(kind) · count
    prior  = PRIOR_UNITS · WEIGHT_ONE
    score  = BPS · (good + prior) // (good + bad + 2·prior)       (basis points, 0..10000)

A node without observations scores ``BPS // 2`` (the prior is half good, half bad); a
failure weighs four times a success, a down epoch four times an up one (being up is the
norm). Everything is an integer, so the audit recomputes the exact score from the log.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from domain.events import datetime_to_ns
from domain.liveness import NodeUptime, Uptime
from domain.policy import BPS, LedgerPolicy

REPUTATION_BUCKET_NS = 3_600 * 1_000_000_000
"""Observations are counted per hour: a node's state holds one bucket per hour it was seen."""
REPUTATION_HORIZON_NS = 32 * 86_400 * 1_000_000_000
"""Observations older than this no longer count (and are dropped from the node's state, so it
holds at most ``REPUTATION_HORIZON_NS // REPUTATION_BUCKET_NS`` buckets)."""
REPUTATION_BUCKETS_MAX = REPUTATION_HORIZON_NS // REPUTATION_BUCKET_NS + 1
WEIGHT_ONE = 1 << 20
"""The weight of a fresh observation (the halvings are shifts of it)."""
PRIOR_UNITS = 16

VERIFIED = "verified"
ATTESTED = "attested"
UP = "up"
REJECTED = "rejected"
ATTEST_FAILED = "attest_failed"
NO_SHOW = "no_show"
RELEASED = "released"
DOWN = "down"
KINDS: tuple[str, ...] = (VERIFIED, ATTESTED, UP, REJECTED, ATTEST_FAILED, NO_SHOW, RELEASED, DOWN)
"""Every observation kind, in the order of a bucket's counts."""
GOOD_UNITS: dict[str, int] = {VERIFIED: 4, ATTESTED: 4, UP: 1}
BAD_UNITS: dict[str, int] = {REJECTED: 16, ATTEST_FAILED: 16, NO_SHOW: 8, RELEASED: 2, DOWN: 4}
CLAIM_OUTCOMES = frozenset({VERIFIED, REJECTED, NO_SHOW, RELEASED})
"""The outcomes a released claim records (``ClaimReleased.outcome``; empty: none counted)."""


class Bucket(msgspec.Struct, frozen=True):
    """The observations of one hour: ``counts[i]`` of ``KINDS[i]``."""

    index: int
    counts: tuple[int, ...]


class Observations(msgspec.Struct):
    """A node's observations by hour (oldest first) and their totals since registration."""

    buckets: list[Bucket] = msgspec.field(default_factory=list)
    totals: dict[str, int] = msgspec.field(default_factory=dict)

    def observe(self, kind: str, at_ns: int) -> None:
        """Count one observation of ``kind`` at ``at_ns`` (mutates: called by event applies)."""
        position = KINDS.index(kind)
        index = at_ns // REPUTATION_BUCKET_NS
        last = self.buckets[-1] if self.buckets else None
        if last is not None and last.index >= index:
            # Records come in log order; a same-hour (or, across a clock step, an earlier-hour)
            # observation joins the latest bucket.
            counts = list(last.counts)
            counts[position] += 1
            self.buckets[-1] = Bucket(last.index, tuple(counts))
        else:
            counts = [0] * len(KINDS)
            counts[position] = 1
            self.buckets.append(Bucket(index, tuple(counts)))
        self.totals[kind] = self.totals.get(kind, 0) + 1
        oldest = index - REPUTATION_BUCKETS_MAX
        while self.buckets and self.buckets[0].index <= oldest:
            self.buckets.pop(0)


def compute_weight(age_ns: int, half_life_ns: int) -> int:
    """``WEIGHT_ONE`` halved once per whole half-life of ``age_ns``; 0 past the horizon."""
    age_ns = max(0, age_ns)
    if age_ns >= REPUTATION_HORIZON_NS:
        return 0
    halvings = age_ns // max(1, half_life_ns)
    return WEIGHT_ONE >> halvings if halvings < WEIGHT_ONE.bit_length() else 0


def compute_reputation_bps(buckets: list[Bucket], *, now_ns: int, half_life_ns: int) -> int:
    """The score at ``now_ns`` of a node with these observations (the module docstring)."""
    good = bad = 0
    for bucket in buckets:
        weight = compute_weight(now_ns - bucket.index * REPUTATION_BUCKET_NS, half_life_ns)
        if weight == 0:
            continue
        for kind, count in zip(KINDS, bucket.counts, strict=True):
            good += weight * GOOD_UNITS.get(kind, 0) * count
            bad += weight * BAD_UNITS.get(kind, 0) * count
    prior = PRIOR_UNITS * WEIGHT_ONE
    return BPS * (good + prior) // (good + bad + 2 * prior)


class ReputationRules:
    """Mixin for the Node aggregate: its reputation and uptime."""

    reputation: Observations
    uptime: Uptime
    modified_on: datetime
    NodeUptimeRecorded: Any

    if TYPE_CHECKING:  # provided by FlopAggregate; declared for the type checker only

        def _trigger(self, event_class: Any, now_ns: int, **fields: Any) -> None: ...

    def record_uptime(self, epoch: int, outcome: NodeUptime, *, now_ns: int) -> None:
        """A liveness epoch decided the node up or down (``liveness.close``)."""
        self._trigger(
            self.NodeUptimeRecorded,
            now_ns,
            epoch=epoch,
            up=outcome.up,
            rtt_us=outcome.rtt_us,
            rtt_by_region=outcome.rtt_by_region,
        )

    def reputation_bps(self, now_ns: int, policy: LedgerPolicy) -> int:
        """The node's score at ``now_ns`` (the module docstring), under ``policy``'s half-life."""
        return compute_reputation_bps(
            self.reputation.buckets, now_ns=now_ns, half_life_ns=policy.reputation_half_life_ns
        )

    def view_reputation(
        self, *, now_ns: int | None = None, policy: LedgerPolicy | None = None
    ) -> dict[str, Any]:
        """The view's reputation and uptime. Without ``now_ns`` the score is as of the node's
        last record (what a stored view can know), under the default policy's half-life."""
        at_ns = datetime_to_ns(self.modified_on) if now_ns is None else now_ns
        uptime = self.uptime
        return {
            "reputation": {
                "score_bps": self.reputation_bps(at_ns, policy or LedgerPolicy()),
                "as_of_ns": at_ns,
                "counts": {kind: self.reputation.totals.get(kind, 0) for kind in KINDS},
            },
            "uptime": {
                "epochs_up": uptime.epochs_up,
                "epochs_down": uptime.epochs_down,
                "last_epoch": uptime.last_epoch,
                "last_up": uptime.last_up,
                "rtt_us": uptime.rtt_us,
                "rtt_by_region": dict(sorted(uptime.rtt_by_region.items())),
            },
        }
