"""A node's hardware attestation under rules v3 (issue 15): what it claims of each GPU,
what a challenge asks, the tier of a pass, and the rules the Node aggregate
(``domain.node``) reads its attestation state by.

A timed challenge carries the probes the protocol sizes from the node's device models
(``domain.devices``); the drawn validators time the node themselves, so the votes bind the
challenge's seed. A pass lets the node claim for ``attestation_ttl_ns`` with the GPUs it
was challenged with; a failed or missed challenge revokes it and is counted, and
``probe_misses_slash`` counted failures slash the node (``domain.services.attestation_misses``)
citing the failed rounds' certificate digests. Re-challenges wait
``rechallenge_interval_min_ns`` after the last challenge. The validators of one round probe
in turn, slot i at the draw + i × ``probe_slot_ns``; nodes challenged together (one GPU
UUID) are drawn at one moment, so their slots coincide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from domain.devices import ProbeSpec, compute_probe_duration_ns
from domain.errors import InvalidTransition, Rejection, RejectionCode
from domain.policy import LedgerPolicy
from domain.verdicts import VerdictRound, has_quorum

TIER_TIMED = "timed"
"""Passed the validators' timed probes."""
TIER_CC = "cc"
"""A quorum of pass verdicts checked the GPU's confidential-computing report (reason "cc")."""
TIER_OPERATOR = "operator"
"""Decided by an operator while no validator was assigned (bootstrap)."""
DEACTIVATED_BY_FAILED_CHALLENGE = "attestation challenge failed"


class GpuClaim(msgspec.Struct, frozen=True):
    """One device as the node claims it at registration."""

    name: str
    memory_mib: int
    model: str = ""
    """Its device table key (``domain.devices``; rules v3, else "")."""
    uuid: str = ""
    """The UUID the node reports for it ("" when none was given)."""


class Challenge(msgspec.Struct, frozen=True):
    """An open attestation challenge: its nonce names the verdict round."""

    nonce: str
    seed: str
    size: int
    deadline_ns: int
    probes: tuple[ProbeSpec, ...] = ()
    """What the drawn validators ask of each device (rules v3; empty: a report challenge)."""
    group: str = ""
    """Shared by the nodes reporting one GPU UUID that were challenged in one command."""

    @property
    def is_timed(self) -> bool:
        """Whether the validators time the node themselves (rules v3) rather than judge a
        report the node submits."""
        return bool(self.probes)


class AttestationRules:
    """Mixin for the Node aggregate: the rules read of its attestation state."""

    if TYPE_CHECKING:

        @property
        def id(self) -> str: ...

    gpus: tuple[GpuClaim, ...]
    attested_gpus: tuple[GpuClaim, ...]
    attestation_round: VerdictRound | None
    attestation_expires_ns: int
    failed_challenges: int
    failed_certificates: tuple[bytes, ...]
    last_challenged_ns: int
    round_assigned_ns: int
    challenge: Challenge | None

    def require_rechallenge_allowed(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        """Raise unless a re-challenge may open now: not within ``rechallenge_interval_min_ns``
        of the last challenge (re-challenges at random times must not become a denial of
        service), and no vote open."""
        earliest = self.last_challenged_ns + policy.rechallenge_interval_min_ns
        if self.last_challenged_ns and now_ns < earliest:
            raise Rejection(
                f"node {self.id} was challenged at {self.last_challenged_ns}; "
                f"it may be challenged again from {earliest}",
                code=RejectionCode.RECHALLENGE_TOO_SOON,
            )
        if self.attestation_round is not None:
            raise InvalidTransition(
                "validators are still voting on the last attestation",
                code=RejectionCode.ATTESTATION_VOTE_OPEN,
            )

    def is_misses_slash_due(self, policy: LedgerPolicy) -> bool:
        """Whether the failed challenges reached ``probe_misses_slash`` (rules v3)."""
        return policy.probe_misses_slash > 0 and self.failed_challenges >= policy.probe_misses_slash

    def compute_misses_evidence(self) -> bytes:
        """A misses slash's evidence: the digests of the failed rounds' certificates."""
        return b"".join(self.failed_certificates)

    def check_attestation_current(self, *, now_ns: int) -> None:
        """Raise unless the node's attestation still lets it claim (rules v3): not expired,
        and covering the GPUs it has now."""
        if self.attestation_expires_ns <= now_ns:
            raise Rejection(
                f"node {self.id}'s attestation expired at {self.attestation_expires_ns}; "
                "pass a new challenge",
                code=RejectionCode.ATTESTATION_EXPIRED,
            )
        if self.gpus != self.attested_gpus:
            raise Rejection(
                f"node {self.id}'s GPUs changed since its attestation; pass a new challenge",
                code=RejectionCode.INVENTORY_NOT_ATTESTED,
            )

    def compute_probe_slot_ns(self, validator_id: str, policy: LedgerPolicy) -> int | None:
        """When ``validator_id``'s probe slot in the open attestation round starts: slot i
        at the draw + (i + 1) × slot, slot = ``probe_slot_ns`` or the probe's own length if
        longer (``compute_probe_duration_ns``), so an honest device serves one probe at a
        time and the first slot leaves the node time to see who was drawn. Nodes challenged
        together share slots, so a device they share would have to serve two probes at
        once. None when it is not assigned."""
        verdict_round = self.attestation_round
        if verdict_round is None or validator_id not in verdict_round.validators:
            return None
        index = verdict_round.validators.index(validator_id)
        probes = self.challenge.probes if self.challenge is not None else ()
        slot_ns = max(policy.probe_slot_ns, compute_probe_duration_ns(probes))
        return self.round_assigned_ns + (index + 1) * slot_ns


def compute_tier(verdict_round: VerdictRound, policy: LedgerPolicy) -> str:
    """The tier of a passed round (rules v3): ``TIER_CC`` when the pass verdicts whose reason
    is "cc" (a confidential-computing report checked) are a quorum by themselves, else
    ``TIER_TIMED``."""
    cc_voters = tuple(
        v
        for v in verdict_round.validators
        if v in verdict_round.verdicts
        and verdict_round.verdicts[v].passed
        and verdict_round.verdicts[v].reason == TIER_CC
    )
    weight = sum(
        w
        for v, w in zip(verdict_round.validators, verdict_round.weights, strict=True)
        if v in cc_voters
    )
    is_cc = has_quorum(
        signed_weight=weight,
        drawn_weight=sum(verdict_round.weights),
        signers=len(cc_voters),
        policy=policy,
    )
    return TIER_CC if is_cc else TIER_TIMED
