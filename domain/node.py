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

from typing import ClassVar

import msgspec

from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.events import FlopAggregate, ns_to_datetime
from domain.policy import LedgerPolicy
from domain.stake import StakeRules
from domain.verdicts import (
    Verdict,
    VerdictRound,
    attestation_subject,
    check_salt,
    compute_verdict_commitment,
    start_round,
)

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


class GpuClaim(msgspec.Struct, frozen=True):
    """One device as the node claims it at registration."""

    name: str
    memory_mib: int


class Challenge(msgspec.Struct, frozen=True):
    nonce: str
    seed: str
    size: int
    deadline_ns: int


class Node(FlopAggregate, StakeRules):
    """A GPU provider. Its id is the node's Ed25519 key (base58)."""

    STREAM_TYPE: ClassVar[str] = "node"

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

    class AttestationChallenged(FlopAggregate.Event):
        nonce: str
        seed: str
        size: int
        deadline_ns: int

        def apply(self, node: Node) -> None:
            node.challenge = Challenge(self.nonce, self.seed, self.size, self.deadline_ns)
            node.attestation_commitment = b""
            node.attestation_round = None

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

        def apply(self, node: Node) -> None:
            node.attestation_round = VerdictRound(
                validators=self.validators,
                weights=self.weights,
                commit_deadline_ns=self.commit_deadline_ns,
                reveal_deadline_ns=self.reveal_deadline_ns,
            )

    class AttestationVerdictCommitted(FlopAggregate.Event):
        validator_id: str
        verdict_hash: bytes

        def apply(self, node: Node) -> None:
            assert node.attestation_round is not None
            node.attestation_round.commits[self.validator_id] = self.verdict_hash

    class AttestationVerdictRecorded(FlopAggregate.Event):
        validator_id: str
        verdict: Verdict
        salt: bytes

        def apply(self, node: Node) -> None:
            assert node.attestation_round is not None
            node.attestation_round.verdicts[self.validator_id] = self.verdict

    class AttestationValidatorsReplaced(FlopAggregate.Event):
        absent: tuple[str, ...]
        replacements: tuple[str, ...]
        weights: tuple[int, ...]
        log_position: int
        log_hash: bytes
        commit_deadline_ns: int
        reveal_deadline_ns: int

        def apply(self, node: Node) -> None:
            assert node.attestation_round is not None
            node.attestation_round = node.attestation_round.replaced(
                absent=self.absent,
                replacements=self.replacements,
                weights=self.weights,
                commit_deadline_ns=self.commit_deadline_ns,
                reveal_deadline_ns=self.reveal_deadline_ns,
            )

    class AttestationVerified(FlopAggregate.Event):
        certificate: bytes

        def apply(self, node: Node) -> None:
            node.challenge = None
            node.attestation_round = None
            node.is_attested = True
            if node.state == REGISTERED:
                node.state = ATTESTED

    class AttestationRejected(FlopAggregate.Event):
        certificate: bytes
        reason: str

        def apply(self, node: Node) -> None:
            node.challenge = None
            node.attestation_commitment = b""
            node.attestation_round = None

    class NodeActivated(FlopAggregate.Event):
        def apply(self, node: Node) -> None:
            node.state = ACTIVE

    class NodeDeactivated(FlopAggregate.Event):
        reason: str

        def apply(self, node: Node) -> None:
            node.state = ATTESTED

    class StakeBonded(FlopAggregate.Event):
        amount: int

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

        def apply(self, node: Node) -> None:
            node.stake -= self.amount
            node.slashed_total += self.amount

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
        self, *, nonce: str, seed: str, size: int, deadline_ns: int, now_ns: int
    ) -> None:
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
        assert self.challenge is not None
        if now_ns > self.challenge.deadline_ns:
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

    def accept_attestation(self, *, certificate: bytes, policy: LedgerPolicy, now_ns: int) -> None:
        self._require_submitted_attestation()
        self._trigger(self.AttestationVerified, now_ns, certificate=certificate)
        self._activate_if_ready(policy, now_ns)

    def reject_attestation(self, *, certificate: bytes, reason: str, now_ns: int) -> None:
        self._require_submitted_attestation()
        self._trigger(self.AttestationRejected, now_ns, certificate=certificate, reason=reason)

    def assign_attestation_validators(
        self,
        *,
        validators: tuple[str, ...],
        weights: tuple[int, ...],
        log_position: int,
        log_hash: bytes,
        policy: LedgerPolicy,
        now_ns: int,
    ) -> None:
        """Open the verdict round on the submitted attestation."""
        self._require_submitted_attestation()
        if self.attestation_round is not None:
            raise InvalidTransition(
                "validators are already assigned", code=RejectionCode.VALIDATORS_ALREADY_ASSIGNED
            )
        if not validators:
            raise Rejection(
                "no validator with stake is available", code=RejectionCode.NO_VALIDATORS_AVAILABLE
            )
        opened = start_round(validators=validators, weights=weights, now_ns=now_ns, policy=policy)
        self._trigger(
            self.AttestationValidatorsAssigned,
            now_ns,
            validators=validators,
            weights=weights,
            log_position=log_position,
            log_hash=log_hash,
            commit_deadline_ns=opened.commit_deadline_ns,
            reveal_deadline_ns=opened.reveal_deadline_ns,
        )

    def commit_attestation_verdict(
        self, *, nonce: str, validator_id: str, verdict_hash: bytes, now_ns: int
    ) -> None:
        verdict_round = self._require_attestation_round(nonce)
        verdict_round.check_commit(validator_id, now_ns)
        self._trigger(
            self.AttestationVerdictCommitted,
            now_ns,
            validator_id=validator_id,
            verdict_hash=verdict_hash,
        )

    def reveal_attestation_verdict(
        self, *, nonce: str, validator_id: str, verdict: Verdict, salt: bytes, now_ns: int
    ) -> None:
        verdict_round = self._require_attestation_round(nonce)
        check_salt(salt)
        expected = compute_verdict_commitment(
            subject=attestation_subject(self.id, nonce),
            result_commitment=self.attestation_commitment,
            validator_id=validator_id,
            passed=verdict.passed,
            salt=salt,
        )
        verdict_round.check_reveal(validator_id, expected, now_ns)
        self._trigger(
            self.AttestationVerdictRecorded,
            now_ns,
            validator_id=validator_id,
            verdict=verdict,
            salt=salt,
        )

    def replace_attestation_validators(
        self,
        *,
        replacements: tuple[str, ...],
        weights: tuple[int, ...],
        log_position: int,
        log_hash: bytes,
        policy: LedgerPolicy,
        now_ns: int,
    ) -> None:
        """After the reveal window: absent validators give way to a re-draw (in order)."""
        assert self.challenge is not None
        verdict_round = self._require_attestation_round(self.challenge.nonce)
        _require_round_over(verdict_round, now_ns)
        absent = verdict_round.absent()
        if not absent or not replacements:
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
            self.AttestationValidatorsReplaced,
            now_ns,
            absent=absent[: len(replacements)],
            replacements=replacements,
            weights=weights,
            log_position=log_position,
            log_hash=log_hash,
            commit_deadline_ns=fresh.commit_deadline_ns,
            reveal_deadline_ns=fresh.reveal_deadline_ns,
        )

    def abandon_attestation_round(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        """No quorum and no replacement left: the attestation is rejected without blame."""
        assert self.challenge is not None
        verdict_round = self._require_attestation_round(self.challenge.nonce)
        _require_round_over(verdict_round, now_ns)
        if verdict_round.compute_outcome(policy) is not None:
            raise InvalidTransition("the round has a quorum", code=RejectionCode.QUORUM_REACHED)
        self._trigger(
            self.AttestationRejected, now_ns, certificate=b"", reason="no validator quorum"
        )

    def bond(self, *, amount: int, policy: LedgerPolicy, now_ns: int) -> None:
        self._require_state({REGISTERED, ATTESTED, ACTIVE, JAILED}, "bond_stake")
        self._trigger(self.StakeBonded, now_ns, amount=amount)
        self._activate_if_ready(policy, now_ns)

    def request_unbond(self, *, amount: int, policy: LedgerPolicy, now_ns: int) -> None:
        self._require_state({REGISTERED, ATTESTED, ACTIVE, JAILED}, "request_unbond")
        self._request_unbond(amount=amount, policy=policy, now_ns=now_ns)
        if self.state == ACTIVE and self.stake < policy.node_stake_min:
            self._trigger(self.NodeDeactivated, now_ns, reason="stake below minimum")

    def slash(
        self, *, amount: int, reason: str, evidence: bytes, policy: LedgerPolicy, now_ns: int
    ) -> None:
        """Take ``amount`` of bonded stake and jail the node; every slash cites evidence."""
        if not evidence:
            raise Rejection("a slash must cite evidence", code=RejectionCode.SLASH_NEEDS_EVIDENCE)
        if amount < 0 or amount > self.stake:
            raise Rejection(
                f"can slash 0..{self.stake}, not {amount}",
                code=RejectionCode.SLASH_AMOUNT_OUT_OF_RANGE,
            )
        self._require_state({ATTESTED, ACTIVE, JAILED, REGISTERED}, "slash")
        self._trigger(self.NodeSlashed, now_ns, amount=amount, reason=reason, evidence=evidence)
        if self.state != JAILED:
            self._trigger(
                self.NodeJailed, now_ns, until_ns=now_ns + policy.jail_period_ns, reason=reason
            )

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
            "version": self.version,
            "challenge": msgspec.structs.asdict(self.challenge) if self.challenge else None,
            "attestation_validators": (
                list(self.attestation_round.validators) if self.attestation_round else []
            ),
        }

    def _activate_if_ready(self, policy: LedgerPolicy, now_ns: int) -> None:
        if self.state == ATTESTED and self.stake >= policy.node_stake_min:
            self._trigger(self.NodeActivated, now_ns)

    def _require_state(self, allowed: set[str], action: str) -> None:
        if self.state not in allowed:
            raise InvalidTransition(
                f"node {self.id} is {self.state}; {action} needs one of {sorted(allowed)}",
                code=STATE_CODES[self.state],
            )

    def require_attestation_vote(self, nonce: str) -> None:
        """Raise unless the vote on the answer to challenge ``nonce`` is open: checked before
        a revealed verdict's signature, so a late reveal is told the vote is over (its
        signature covers a commitment the decision has since cleared)."""
        self._require_attestation_round(nonce)

    def _require_open_challenge(self, nonce: str) -> None:
        if self.challenge is None:
            raise InvalidTransition(
                "no open attestation challenge", code=RejectionCode.NO_OPEN_CHALLENGE
            )
        if self.challenge.nonce != nonce:
            raise Rejection(
                "the answer names another challenge", code=RejectionCode.CHALLENGE_NONCE_MISMATCH
            )

    def _require_attestation_round(self, nonce: str) -> VerdictRound:
        self._require_open_challenge(nonce)
        if self.attestation_round is None:
            raise InvalidTransition(
                "no validators are assigned", code=RejectionCode.VALIDATORS_NOT_ASSIGNED
            )
        return self.attestation_round

    def _require_submitted_attestation(self) -> None:
        if self.challenge is None or not self.attestation_commitment:
            raise InvalidTransition(
                "no submitted attestation to decide on", code=RejectionCode.NO_SUBMITTED_ATTESTATION
            )


def _require_round_over(verdict_round: VerdictRound, now_ns: int) -> None:
    if not verdict_round.is_over(now_ns):
        raise Rejection(
            f"verdicts may be revealed until {verdict_round.reveal_deadline_ns}",
            code=RejectionCode.REVEAL_WINDOW_OPEN,
        )
