"""The Node aggregate: a provider's machine, from registration to deregistration.

States: registered -> attested -> active <-> jailed -> deregistered. A node becomes
*attested* when a validator quorum accepts its hardware attestation, and *active* once it is
attested and its bonded stake reaches the minimum. A submitted attestation is judged by a
commit-reveal verdict round (``domain.verdicts``) of validators drawn like a job's; an
operator may still decide it directly (bootstrap, before any validator has stake). Stake
amounts live in the ledger's ``stake:<node>`` account; the node keeps the same figure to
decide its own transitions.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import msgspec

from domain.attestation import (
    DEACTIVATED_BY_FAILED_CHALLENGE,
    TIER_TIMED,
    AttestationRules,
    Challenge,
    GpuClaim,
    compute_tier,
)
from domain.claims import ClaimRules, OpenClaim, compute_from_unbonding
from domain.completions import WarmModel, compute_charge_bucket
from domain.devices import ProbeSpec
from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.events import FlopAggregate, datetime_to_ns, ns_to_datetime
from domain.invariants import present
from domain.liveness import RegionRtt, Uptime
from domain.policy import RULES_V3, LedgerPolicy
from domain.reputation import ATTEST_FAILED, CLAIM_OUTCOMES, DOWN, UP, Observations, ReputationRules
from domain.reputation import ATTESTED as ATTESTATION_PASSED
from domain.stake import StakeRules
from domain.verdict_subject import RoundEvents, VotedAggregate
from domain.verdicts import SUBJECT_ATTESTATION, Verdict, VerdictRound

REGISTERED = "registered"
ATTESTED = "attested"
ACTIVE = "active"
JAILED = "jailed"
DEREGISTERED = "deregistered"
STATE_CODES: dict[str, RejectionCode] = {
    REGISTERED: RejectionCode.NODE_REGISTERED,
    ATTESTED: RejectionCode.NODE_ATTESTED,
    ACTIVE: RejectionCode.NODE_ACTIVE,
    JAILED: RejectionCode.NODE_JAILED,
    DEREGISTERED: RejectionCode.NODE_DEREGISTERED,
}
"""The code of a command refused because the node is in that state."""


class Node(VotedAggregate, ClaimRules, StakeRules, ReputationRules, AttestationRules):
    """A GPU provider. Its id is the node's Ed25519 key (base58)."""

    STREAM_TYPE: ClassVar[str] = "node"
    SUBJECT_KIND: ClassVar[str] = SUBJECT_ATTESTATION

    class Registered(FlopAggregate.Created):
        owner: str
        region: str
        gpus: tuple[GpuClaim, ...]
        gpu_class: str
        price: int

        def apply(self, node: Node) -> None:
            node.owner, node.region, node.gpus = self.owner, self.region, self.gpus
            node.gpu_class, node.price = self.gpu_class, self.price
            node.state, node.stake, node.unbonding = REGISTERED, 0, 0
            node.unbond_ready_ns = 0
            node.challenge = None
            node.attestation_commitment = b""
            node.jailed_until_ns = 0
            node.slashed_total = 0
            node.attestation_round = None
            node.is_attested = False
            node.claims = {}
            node.reputation, node.uptime = Observations(), Uptime()  # issue 15
            # issue 15: hardware attestation
            node.challenged_gpus = ()
            node.attested_gpus = ()
            node.attestation_tier = ""
            node.attested_at_ns = 0
            node.attestation_expires_ns = 0
            node.failed_challenges = 0
            node.failed_certificates = ()
            node.last_challenged_ns = 0
            node.round_assigned_ns = 0

    class AttestationChallenged(FlopAggregate.Event):
        nonce: str
        seed: str
        size: int
        deadline_ns: int
        probes: tuple[ProbeSpec, ...] = ()
        """The protocol's probes of each device (rules v3; empty in report challenges)."""
        group: str = ""
        """The group of nodes sharing a GPU UUID challenged with this one ("" alone)."""

        def apply(self, node: Node) -> None:
            node.challenge = Challenge(
                self.nonce, self.seed, self.size, self.deadline_ns, self.probes, self.group
            )
            node.attestation_round = None
            # A timed challenge is judged at once: its votes bind the seed (no report comes).
            # Its fields stay unset by report challenges, as history written before has them.
            node.attestation_commitment = bytes.fromhex(self.seed) if self.probes else b""
            if self.probes:
                node.challenged_gpus = node.gpus
                node.last_challenged_ns = datetime_to_ns(self.timestamp)

    class AttestationSubmitted(FlopAggregate.Event):
        nonce: str
        inventory_digest: bytes
        commitment: bytes
        timings_ns: tuple[int, ...]
        signature: bytes

        def apply(self, node: Node) -> None:
            node.attestation_commitment = self.commitment

    class AttestationValidatorsAssigned(FlopAggregate.Event):
        validators: tuple[str, ...]
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

        def apply(self, node: Node) -> None:
            node.attestation_round = VerdictRound(
                validators=self.validators,
                weights=self.weights,
                commit_deadline_ns=self.commit_deadline_ns,
                reveal_deadline_ns=self.reveal_deadline_ns,
            )
            if node.challenge is not None and node.challenge.is_timed:
                node.round_assigned_ns = datetime_to_ns(self.timestamp)

    class AttestationVerdictCommitted(FlopAggregate.Event):
        validator_id: str
        verdict_hash: bytes

        def apply(self, node: Node) -> None:
            verdict_round = present(node.attestation_round, "a commit needs a round")
            verdict_round.commits[self.validator_id] = self.verdict_hash

    class AttestationVerdictRecorded(FlopAggregate.Event):
        validator_id: str
        verdict: Verdict
        salt: bytes

        def apply(self, node: Node) -> None:
            verdict_round = present(node.attestation_round, "a verdict needs a round")
            verdict_round.verdicts[self.validator_id] = self.verdict

    class AttestationValidatorsReplaced(FlopAggregate.Event):
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

        def apply(self, node: Node) -> None:
            verdict_round = present(node.attestation_round, "a replacement needs a round")
            node.attestation_round = verdict_round.replaced(
                absent=self.absent,
                replacements=self.replacements,
                weights=self.weights,
                commit_deadline_ns=self.commit_deadline_ns,
                reveal_deadline_ns=self.reveal_deadline_ns,
            )
            if node.challenge is not None and node.challenge.is_timed:
                node.round_assigned_ns = datetime_to_ns(self.timestamp)

    class AttestationVerified(FlopAggregate.Event):
        certificate: bytes
        tier: str = ""
        """How it passed (rules v3: ``TIER_TIMED``, ``TIER_CC``, ``TIER_OPERATOR``; else "")."""
        models: tuple[str, ...] = ()
        """The device models probed (rules v3)."""
        expires_at_ns: int = 0
        """When it stops letting the node claim (rules v3; 0: never, a report attestation)."""

        def apply(self, node: Node) -> None:
            challenge, node.challenge = node.challenge, None
            node.attestation_round = None
            node.is_attested = True
            if node.state == REGISTERED:
                node.state = ATTESTED
            if not self.tier:  # a report attestation (before rules v3) binds none of it
                return
            # The inventory attested is the one a timed challenge was issued for (a report
            # challenge decided under rules v3, after a policy change, attests the GPUs now).
            is_timed = challenge is not None and challenge.is_timed
            node.attested_gpus = node.challenged_gpus if is_timed else node.gpus
            node.attestation_tier = self.tier
            node.attested_at_ns = datetime_to_ns(self.timestamp)
            node.attestation_expires_ns = self.expires_at_ns
            node.failed_challenges = 0
            node.failed_certificates = ()
            node.reputation.observe(ATTESTATION_PASSED, node.attested_at_ns)

    class AttestationRejected(FlopAggregate.Event):
        certificate: bytes
        reason: str
        is_failure: bool = False
        """The node failed or missed the challenge (rules v3): its attestation is revoked and
        the failure counts towards ``probe_misses_slash`` (an abandoned round counts nothing)."""

        def apply(self, node: Node) -> None:
            node.challenge = None
            node.attestation_commitment = b""
            node.attestation_round = None
            if self.is_failure:
                node.is_attested = False
                node.attestation_expires_ns = 0
                node.failed_challenges += 1
                node.failed_certificates += (hashlib.sha256(self.certificate).digest(),)
                if node.state == ATTESTED:
                    node.state = REGISTERED
                node.reputation.observe(ATTEST_FAILED, datetime_to_ns(self.timestamp))

    class NodeActivated(FlopAggregate.Event):
        def apply(self, node: Node) -> None:
            node.state = ACTIVE

    class NodeDeactivated(FlopAggregate.Event):
        reason: str
        state_after: str = ATTESTED
        """``REGISTERED`` when a failed challenge revoked its attestation (rules v3)."""

        def apply(self, node: Node) -> None:
            node.state = self.state_after

    class StakeBonded(FlopAggregate.Event):
        amount: int
        funded_by: str = ""
        """The account debited, ``user:<owner>`` (empty in records written before bonds had
        to be signed by the owner; the audit checks that rule where it is set)."""

        def apply(self, node: Node) -> None:
            node.stake += self.amount

    class UnbondRequested(FlopAggregate.Event):
        amount: int
        ready_ns: int

        def apply(self, node: Node) -> None:
            node.stake -= self.amount
            node.unbonding += self.amount
            node.unbond_ready_ns = self.ready_ns

    class StakeWithdrawn(FlopAggregate.Event):
        amount: int

        def apply(self, node: Node) -> None:
            node.unbonding -= self.amount

    class NodeSlashed(FlopAggregate.Event):
        amount: int
        reason: str
        evidence: bytes
        from_unbonding: int = 0
        """The part taken from the unbonding stake (0 in records written before unbonding
        stake was slashable)."""
        misses: int = 0
        """The failed challenges this slash is for (rules v3; their count starts again)."""

        def apply(self, node: Node) -> None:
            node.stake -= self.amount - self.from_unbonding
            node.unbonding -= self.from_unbonding
            node.slashed_total += self.amount
            if self.misses:
                node.failed_challenges = 0
                node.failed_certificates = ()

    class ClaimReserved(FlopAggregate.Event):
        """The node claimed ``job_id``: this much of its bonded stake is reserved for it."""

        job_id: str
        slash_at_risk: int
        claim_bond: int
        claimed_at_ns: int
        due_ns: int
        earliest_ns: int = 0
        """When the node could first claim the job (``domain.scheduling``; rules v3: region
        tier, reputation and latency), recorded for the audit; 0 in older records."""

        def apply(self, node: Node) -> None:
            node.claims[self.job_id] = OpenClaim(
                self.slash_at_risk, self.claim_bond, self.claimed_at_ns, self.due_ns
            )

    class ClaimCommitted(FlopAggregate.Event):
        """The claim's result was committed: its device is free, only its slash reserved."""

        job_id: str

        def apply(self, node: Node) -> None:
            node.claims[self.job_id] = msgspec.structs.replace(
                node.claims[self.job_id], committed=True
            )

    class ClaimBondForfeited(FlopAggregate.Event):
        """The node missed the claim's window (or released it late): ``amount`` of its
        stake goes to the job's consumer."""

        job_id: str
        amount: int
        from_unbonding: int
        to_account: str
        reason: str

        def apply(self, node: Node) -> None:
            node.stake -= self.amount - self.from_unbonding
            node.unbonding -= self.from_unbonding

    class ClaimReleased(FlopAggregate.Event):
        job_id: str
        reason: str
        outcome: str = ""
        """What the claim came to for reputation (``domain.reputation.CLAIM_OUTCOMES``;
        empty: nothing to count, or a record written before rules v3)."""

        def apply(self, node: Node) -> None:
            node.claims.pop(self.job_id)
            if self.outcome in CLAIM_OUTCOMES:
                node.reputation.observe(self.outcome, datetime_to_ns(self.timestamp))

    class NodeUptimeRecorded(FlopAggregate.Event):
        """A liveness epoch decided the node up or down (``domain.liveness``, rules v3)."""

        epoch: int
        up: bool
        rtt_us: int
        rtt_by_region: tuple[RegionRtt, ...]

        def apply(self, node: Node) -> None:
            node.uptime.record(self.epoch, self.up, self.rtt_us, self.rtt_by_region)
            node.reputation.observe(UP if self.up else DOWN, datetime_to_ns(self.timestamp))

    class NodeJailed(FlopAggregate.Event):
        until_ns: int
        reason: str

        def apply(self, node: Node) -> None:
            node.state = JAILED
            node.jailed_until_ns = self.until_ns

    class NodeUnjailed(FlopAggregate.Event):
        state_after: str

        def apply(self, node: Node) -> None:
            node.state = self.state_after

    class NodeDeregistered(FlopAggregate.Event):
        def apply(self, node: Node) -> None:
            node.state = DEREGISTERED

    class InventoryUpdated(FlopAggregate.Event):
        """The node's new GPU list (rules v3): it claims again once this list is attested."""

        gpus: tuple[GpuClaim, ...]
        gpu_class: str

        def apply(self, node: Node) -> None:
            node.gpus, node.gpu_class = self.gpus, self.gpu_class

    class ModelsAdvertised(FlopAggregate.Event):
        """The registered models the node holds warm now, and where the API reaches its
        completion server (issue 18; an empty list: none)."""

        models: tuple[WarmModel, ...]
        endpoint: str

        def apply(self, node: Node) -> None:
            node.warm_models, node.llm_endpoint = self.models, self.endpoint

    class CompletionCharged(FlopAggregate.Event):
        """A completion the node served was settled for ``charge`` (issue 18): added to the
        minute ``bucket`` of its tally, buckets before ``kept_from_bucket`` dropped."""

        completion_id: str
        bucket: int
        charge: int
        kept_from_bucket: int

        def apply(self, node: Node) -> None:
            buckets = {b: c for b, c in node.completion_charges if b >= self.kept_from_bucket}
            buckets[self.bucket] = buckets.get(self.bucket, 0) + self.charge
            node.completion_charges = tuple(sorted(buckets.items()))

    ROUND_EVENTS: ClassVar[RoundEvents] = RoundEvents(
        assigned=AttestationValidatorsAssigned,
        committed=AttestationVerdictCommitted,
        recorded=AttestationVerdictRecorded,
        replaced=AttestationValidatorsReplaced,
    )

    owner: str
    region: str
    gpus: tuple[GpuClaim, ...]
    gpu_class: str
    price: int
    state: str
    stake: int
    unbonding: int
    unbond_ready_ns: int
    challenge: Challenge | None
    attestation_commitment: bytes
    jailed_until_ns: int
    slashed_total: int
    attestation_round: VerdictRound | None
    is_attested: bool
    claims: dict[str, OpenClaim]
    reputation: Observations
    uptime: Uptime
    # issue 15: hardware attestation (rules v3)
    challenged_gpus: tuple[GpuClaim, ...]
    """The GPU list when the last challenge was issued (what a pass attests)."""
    attested_gpus: tuple[GpuClaim, ...]
    attestation_tier: str
    attested_at_ns: int
    attestation_expires_ns: int
    failed_challenges: int
    """Failed challenges since the last pass or misses slash."""
    failed_certificates: tuple[bytes, ...]
    """SHA-256 of each counted failure's certificate: the evidence of a misses slash."""
    last_challenged_ns: int
    round_assigned_ns: int
    """When the attestation round's validators were drawn (its probe slots count from it)."""
    # issue 18: LLM completions. Class defaults, so that a node whose history never named
    # them replays to exactly the state that history recorded.
    warm_models: tuple[WarmModel, ...] = ()
    llm_endpoint: str = ""
    completion_charges: tuple[tuple[int, int], ...] = ()
    """(minute bucket, charges) of the completions it was paid for of late."""

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def register(
        cls,
        node_id: str,
        *,
        owner: str,
        region: str,
        gpus: tuple[GpuClaim, ...],
        gpu_class: str,
        price: int,
        now_ns: int,
    ) -> Node:
        return cls._create(
            cls.Registered,
            id=node_id,
            owner=owner,
            region=region,
            gpus=gpus,
            gpu_class=gpu_class,
            price=price,
            timestamp=ns_to_datetime(now_ns),
        )

    def challenge_attestation(
        self,
        *,
        nonce: str,
        seed: str,
        size: int,
        deadline_ns: int,
        now_ns: int,
        probes: tuple[ProbeSpec, ...] = (),
        group: str = "",
    ) -> None:
        """Open a challenge: a report challenge of ``size``, or (``probes``, rules v3) one
        the drawn validators time themselves, its votes binding ``seed``."""
        self._require_state({REGISTERED, ATTESTED, ACTIVE}, "challenge_attestation")
        if self.attestation_round is not None:
            raise InvalidTransition(
                "validators are still voting on the last attestation",
                code=RejectionCode.ATTESTATION_VOTE_OPEN,
            )
        if self.challenge is not None and self.challenge.deadline_ns >= now_ns:
            raise InvalidTransition(
                f"node {self.id} already has an open challenge until {self.challenge.deadline_ns}",
                code=RejectionCode.CHALLENGE_ALREADY_OPEN,
            )
        self._trigger(
            self.AttestationChallenged,
            now_ns,
            nonce=nonce,
            seed=seed,
            size=size,
            deadline_ns=deadline_ns,
            probes=probes,
            group=group,
        )

    def can_be_challenged(self, now_ns: int) -> bool:
        """Whether ``challenge_attestation`` would accept a challenge now (no vote on, no
        open challenge within its deadline, a state that attests)."""
        return (
            self.state in (REGISTERED, ATTESTED, ACTIVE)
            and self.attestation_round is None
            and (self.challenge is None or self.challenge.deadline_ns < now_ns)
        )

    def submit_attestation(
        self,
        *,
        nonce: str,
        inventory_digest: bytes,
        commitment: bytes,
        timings_ns: tuple[int, ...],
        signature: bytes,
        now_ns: int,
    ) -> None:
        self._require_open_challenge(nonce)
        challenge = present(self.challenge, "an open challenge was just checked")
        if challenge.is_timed:
            raise Rejection(
                "this challenge is timed by the drawn validators; no report answers it",
                code=RejectionCode.ATTESTATION_BY_REPORT_RETIRED,
            )
        if now_ns > challenge.deadline_ns:
            raise Rejection(
                "the attestation challenge deadline has passed; ask for a new one",
                code=RejectionCode.CHALLENGE_EXPIRED,
            )
        if self.attestation_commitment:
            raise InvalidTransition(
                "an answer to this challenge was already submitted",
                code=RejectionCode.ATTESTATION_ALREADY_SUBMITTED,
            )
        self._trigger(
            self.AttestationSubmitted,
            now_ns,
            nonce=nonce,
            inventory_digest=inventory_digest,
            commitment=commitment,
            timings_ns=timings_ns,
            signature=signature,
        )

    def accept_attestation(
        self, *, certificate: bytes, policy: LedgerPolicy, now_ns: int, tier: str = TIER_TIMED
    ) -> None:
        """Record a pass; under rules v3 with its ``tier``, the models probed and an expiry
        ``attestation_ttl_ns`` from now."""
        self._require_submitted_attestation()
        challenge = present(self.challenge, "a decision needs a challenge")
        if policy.rules_version >= RULES_V3:
            self._trigger(
                self.AttestationVerified,
                now_ns,
                certificate=certificate,
                tier=tier,
                models=tuple(probe.model for probe in challenge.probes),
                # from the decision's time as its record keeps it (microseconds)
                expires_at_ns=datetime_to_ns(ns_to_datetime(now_ns)) + policy.attestation_ttl_ns,
            )
        else:
            self._trigger(self.AttestationVerified, now_ns, certificate=certificate)
        self._activate_if_ready(policy, now_ns)

    def reject_attestation(
        self, *, certificate: bytes, reason: str, now_ns: int, policy: LedgerPolicy | None = None
    ) -> None:
        """Record a fail. Under rules v3 (``policy``) it is a failure of the node: its
        attestation is revoked, an active node deactivated (it stops claiming), and the
        failure counted (``is_misses_slash_due``)."""
        self._require_submitted_attestation()
        is_failure = policy is not None and policy.rules_version >= RULES_V3
        self._trigger(
            self.AttestationRejected,
            now_ns,
            certificate=certificate,
            reason=reason,
            is_failure=is_failure,
        )
        if is_failure and self.state == ACTIVE:
            self._trigger(
                self.NodeDeactivated,
                now_ns,
                reason=DEACTIVATED_BY_FAILED_CHALLENGE,
                state_after=REGISTERED,
            )

    def update_inventory(self, *, gpus: tuple[GpuClaim, ...], gpu_class: str, now_ns: int) -> None:
        """Replace the GPU list (rules v3): claims wait until the new one is attested."""
        self._require_state({REGISTERED, ATTESTED, ACTIVE, JAILED}, "update_inventory")
        self._trigger(self.InventoryUpdated, now_ns, gpus=gpus, gpu_class=gpu_class)

    def bond(self, *, signer: str, amount: int, policy: LedgerPolicy, now_ns: int) -> None:
        """Bond ``amount`` from the owner's account; ``signer`` must be the owner."""
        self._require_state({REGISTERED, ATTESTED, ACTIVE, JAILED}, "bond_stake")
        self._bond(signer=signer, amount=amount, now_ns=now_ns)
        self._activate_if_ready(policy, now_ns)

    def request_unbond(self, *, amount: int, policy: LedgerPolicy, now_ns: int) -> None:
        self._require_state({REGISTERED, ATTESTED, ACTIVE, JAILED}, "request_unbond")
        self._request_unbond(amount=amount, policy=policy, now_ns=now_ns)
        if self.state == ACTIVE and self.stake < policy.node_stake_min:
            self._trigger(self.NodeDeactivated, now_ns, reason="stake below minimum")

    def slash(
        self,
        *,
        amount: int,
        reason: str,
        evidence: bytes,
        policy: LedgerPolicy,
        now_ns: int,
        misses: int = 0,
    ) -> int:
        """Take ``amount`` of stake, unbonding stake first (it stays slashable until it is
        withdrawn), and jail the node; every slash cites evidence. Returns the part taken
        from the unbonding stake."""
        if not evidence:
            raise Rejection("a slash must cite evidence", code=RejectionCode.SLASH_NEEDS_EVIDENCE)
        slashable = self.stake + self.unbonding
        if amount < 0 or amount > slashable:
            raise Rejection(
                f"can slash 0..{slashable}, not {amount}",
                code=RejectionCode.SLASH_AMOUNT_OUT_OF_RANGE,
            )
        self._require_state({ATTESTED, ACTIVE, JAILED, REGISTERED}, "slash")
        from_unbonding = compute_from_unbonding(amount, self.unbonding)
        self._trigger(
            self.NodeSlashed,
            now_ns,
            amount=amount,
            reason=reason,
            evidence=evidence,
            from_unbonding=from_unbonding,
            misses=misses,
        )
        if self.state != JAILED:
            self._trigger(
                self.NodeJailed, now_ns, until_ns=now_ns + policy.jail_period_ns, reason=reason
            )
        return from_unbonding

    def unjail(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        self._require_state({JAILED}, "unjail")
        if now_ns < self.jailed_until_ns:
            raise Rejection(
                f"jailed until {self.jailed_until_ns}", code=RejectionCode.JAIL_NOT_SERVED
            )
        if not self.is_attested:
            after = REGISTERED
        else:
            after = ACTIVE if self.stake >= policy.node_stake_min else ATTESTED
        self._trigger(self.NodeUnjailed, now_ns, state_after=after)

    def deregister(self, *, now_ns: int) -> None:
        self._require_state({REGISTERED, ATTESTED, ACTIVE, JAILED}, "deregister")
        if self.stake or self.unbonding:
            raise Rejection(
                "unbond and withdraw all stake before deregistering",
                code=RejectionCode.STAKE_MUST_BE_WITHDRAWN,
            )
        self._trigger(self.NodeDeregistered, now_ns)

    def require_owner(self, actor: str) -> None:
        if actor not in (self.owner, self.id):
            raise Unauthorized(f"{actor} is neither node {self.id} nor its owner")

    def view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "owner": self.owner,
            "region": self.region,
            "gpus": [msgspec.structs.asdict(g) for g in self.gpus],
            "gpu_class": self.gpu_class,
            "price": self.price,
            "state": self.state,
            "stake": self.stake,
            "unbonding": self.unbonding,
            "unbond_ready_ns": self.unbond_ready_ns,
            "jailed_until_ns": self.jailed_until_ns,
            "slashed_total": self.slashed_total,
            "open_claims": sorted(self.claims),
            "reserved_stake": self.reserved_stake(),
            "claim_capacity": self.claim_capacity(),
            "version": self.version,
            "challenge": msgspec.structs.asdict(self.challenge) if self.challenge else None,
            "attestation_validators": (
                list(self.attestation_round.validators) if self.attestation_round else []
            ),
            **self.view_reputation(),
            # issue 15: hardware attestation
            "models": [g.model for g in self.gpus],
            "uuids": [g.uuid for g in self.gpus if g.uuid],
            "attestation_tier": self.attestation_tier,
            "attested_at_ns": self.attested_at_ns,
            "attestation_expires_ns": self.attestation_expires_ns,
            "inventory_attested": self.is_attested and self.gpus == self.attested_gpus,
            "failed_challenges": self.failed_challenges,
            "group": self.challenge.group if self.challenge else "",
            # issue 18: LLM completions
            "warm_models": [msgspec.structs.asdict(m) for m in self.warm_models],
            "llm_endpoint": self.llm_endpoint,
        }

    def advertise_models(
        self, *, models: tuple[WarmModel, ...], endpoint: str, now_ns: int
    ) -> None:
        """Record the models the node holds warm now (issue 18); the same list and endpoint
        again is refused (``node_models_unchanged``), so a periodic advertisement does not
        grow the log."""
        self._require_state({REGISTERED, ATTESTED, ACTIVE, JAILED}, "advertise_models")
        if (models, endpoint) == (self.warm_models, self.llm_endpoint):
            raise InvalidTransition(
                f"node {self.id} advertises these models already",
                code=RejectionCode.NODE_MODELS_UNCHANGED,
            )
        self._trigger(self.ModelsAdvertised, now_ns, models=models, endpoint=endpoint)

    def get_warm_model(self, model_id: str) -> WarmModel | None:
        return next((m for m in self.warm_models if m.model_id == model_id), None)

    def record_completion_charge(
        self, *, completion_id: str, charge: int, window_ns: int, now_ns: int
    ) -> None:
        """Add a settled completion's charge to the tally a rejected check slashes by; the
        tally keeps two windows, so a check decided within a window of its commit finds
        the whole window before it."""
        self._trigger(
            self.CompletionCharged,
            now_ns,
            completion_id=completion_id,
            bucket=compute_charge_bucket(now_ns),
            charge=charge,
            kept_from_bucket=compute_charge_bucket(max(now_ns - 2 * window_ns, 0)),
        )

    def compute_window_charges(self, *, until_ns: int, window_ns: int) -> int:
        """The charges of the completions committed in the window before ``until_ns``,
        rounded out to whole minutes (``domain.completions.CHARGE_BUCKET_NS``)."""
        first = compute_charge_bucket(max(until_ns - window_ns, 0))
        last = compute_charge_bucket(until_ns)
        return sum(c for b, c in self.completion_charges if first <= b <= last)

    def _activate_if_ready(self, policy: LedgerPolicy, now_ns: int) -> None:
        if self.state == ATTESTED and self.is_attested and self.stake >= policy.node_stake_min:
            self._trigger(self.NodeActivated, now_ns)

    def _require_state(self, allowed: set[str], action: str) -> None:
        if self.state not in allowed:
            raise InvalidTransition(
                f"node {self.id} is {self.state}; {action} needs one of {sorted(allowed)}",
                code=STATE_CODES[self.state],
            )

    @property
    def current_round(self) -> VerdictRound | None:
        return self.attestation_round

    def round_nonce(self) -> str:
        return self.challenge.nonce if self.challenge else ""

    def round_commitment(self) -> bytes:
        return self.attestation_commitment

    def round_seed(self) -> str:
        return self.round_subject()

    def require_revealable(self, nonce: str | None) -> None:
        """Checked before a revealed verdict's signature, so a late reveal is told the vote
        is over (its signature covers a commitment the decision has since cleared)."""
        self._require_voting_round("reveal_verdict", nonce)

    def _require_round_state(self, action: str, nonce: str | None) -> None:
        self._require_open_challenge(self.round_nonce() if nonce is None else nonce)

    def _require_round_can_open(self) -> None:
        self._require_submitted_attestation()

    def _on_round_decided(
        self, *, passed: bool, certificate: bytes, reason: str, policy: LedgerPolicy, now_ns: int
    ) -> None:
        if passed:
            tier = compute_tier(present(self.attestation_round, "a decided round"), policy)
            self.accept_attestation(
                certificate=certificate, policy=policy, now_ns=now_ns, tier=tier
            )
        else:
            self.reject_attestation(
                certificate=certificate, reason=reason, now_ns=now_ns, policy=policy
            )

    def _on_round_abandoned(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        self._trigger(
            self.AttestationRejected, now_ns, certificate=b"", reason="no validator quorum"
        )

    def _require_open_challenge(self, nonce: str) -> None:
        if self.challenge is None:
            raise InvalidTransition(
                "no open attestation challenge", code=RejectionCode.NO_OPEN_CHALLENGE
            )
        if self.challenge.nonce != nonce:
            raise Rejection(
                "the answer names another challenge", code=RejectionCode.CHALLENGE_NONCE_MISMATCH
            )

    def _require_submitted_attestation(self) -> None:
        if self.challenge is None or not self.attestation_commitment:
            raise InvalidTransition(
                "no submitted attestation to decide on", code=RejectionCode.NO_SUBMITTED_ATTESTATION
            )
