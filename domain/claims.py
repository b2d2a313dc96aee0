"""The one claim rule (issue 14, attacks 4 and 6): what a node's open claims reserve of its
stake, how many it may hold, and what it forfeits when it does not deliver.

A claim reserves, of the node's *bonded* stake, the slash it risks (what a rejection would
take at the moment of the claim) plus a claim bond (``claim_bond_bps`` of the job's
``max_price``, at least ``claim_bond_min``). A node may claim while its bonded stake covers
the reserves of all its open claims and this one, and while it holds fewer open claims than
its capacity (``ClaimRules.claim_capacity``: the GPUs it registered, or one for a CPU-only
node) in jobs still running (claimed, result not committed: a committed result frees its
device, and its bond is no longer at risk, so only its slash stays reserved). An unbond may not
take bonded stake below the open reserves (nor, while claims are open, below the stake
minimum that keeps the node active). The reservation ends when the claim does: its result
decided, the job released, reassigned or expired. A missed result window forfeits the bond
to the consumer; a release inside the window forfeits the share of the bond for the time
the job was held (at once, nothing; at the window's end, all of it), so releasing never
holds a job for less than vanishing would cost.

A take from a node's stake (a slash, a forfeited bond) comes first out of its unbonding
stake, which backs no claim, then out of its bonded stake: stake stays slashable until it is
withdrawn, and the bonded stake keeps covering the other open claims.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from domain.errors import Rejection, RejectionCode
from domain.policy import BPS, LedgerPolicy

CPU_ONLY_CLAIMS_MAX = 1
"""Open claims of a node that registered no GPU: its one device is the CPU."""


class OpenClaim(msgspec.Struct, frozen=True):
    """A claim the node holds: what it reserves and when its result is due."""

    slash_at_risk: int
    claim_bond: int
    claimed_at_ns: int
    due_ns: int
    committed: bool = False
    """Its result is committed: the device is free again, and no window can be missed, so
    only the slash stays reserved until the verdict."""

    @property
    def reserve(self) -> int:
        return self.slash_at_risk + (0 if self.committed else self.claim_bond)


def compute_slash_amount(stake: int, unbonding: int, policy: LedgerPolicy) -> int:
    """What a slash takes: ``slash_bps`` of the bonded and the unbonding stake."""
    return (stake + unbonding) * policy.slash_bps // BPS


def compute_claim_bond(max_price: int, policy: LedgerPolicy) -> int:
    return max(policy.claim_bond_min, max_price * policy.claim_bond_bps // BPS)


def compute_release_fee(claim: OpenClaim, now_ns: int) -> int:
    """The share of the bond a release at ``now_ns`` forfeits: the share of the window held."""
    window_ns = claim.due_ns - claim.claimed_at_ns
    if window_ns <= 0:
        return claim.claim_bond
    held_ns = min(max(now_ns - claim.claimed_at_ns, 0), window_ns)
    return claim.claim_bond * held_ns // window_ns


def compute_from_unbonding(amount: int, unbonding: int) -> int:
    """How much of a take of ``amount`` comes out of the unbonding stake (it goes first)."""
    return min(amount, unbonding)


class ClaimRules:
    """Mixin for the Node aggregate: its open claims and the stake they reserve."""

    gpus: tuple[Any, ...]
    stake: int
    unbonding: int
    claims: dict[str, OpenClaim]
    ClaimReserved: Any
    ClaimCommitted: Any
    ClaimBondForfeited: Any
    ClaimReleased: Any

    if TYPE_CHECKING:  # provided by FlopAggregate; declared for the type checker only

        @property
        def id(self) -> str: ...

        def _trigger(self, event_class: Any, now_ns: int, **fields: Any) -> None: ...

    def claim_capacity(self) -> int:
        """How many claims the node may hold at once: one per GPU it registered, and one for
        a node without any (its CPU runs ``cpu``-class jobs). The attestation issue narrows
        this to the attested devices: this is the one place to change."""
        return len(self.gpus) or CPU_ONLY_CLAIMS_MAX

    def count_claims_running(self) -> int:
        """Open claims whose result is not committed yet: each holds a device."""
        return sum(not claim.committed for claim in self.claims.values())

    def reserved_stake(self) -> int:
        """Bonded stake the open claims reserve (an unbond may not go below it)."""
        return sum(claim.reserve for claim in self.claims.values())

    def compute_claim(
        self, *, max_price: int, due_ns: int, policy: LedgerPolicy, now_ns: int
    ) -> OpenClaim:
        return OpenClaim(
            slash_at_risk=compute_slash_amount(self.stake, self.unbonding, policy),
            claim_bond=compute_claim_bond(max_price, policy),
            claimed_at_ns=now_ns,
            due_ns=due_ns,
        )

    def check_claim_room(self, claim: OpenClaim) -> None:
        """Raise unless the node can hold one more claim reserving ``claim.reserve``."""
        running = self.count_claims_running()
        if running >= self.claim_capacity():
            raise Rejection(
                f"node {self.id} runs {running} claimed jobs, its capacity",
                code=RejectionCode.CLAIM_CAPACITY_REACHED,
            )
        needed = self.reserved_stake() + claim.reserve
        if self.stake < needed:
            raise Rejection(
                f"bonded stake {self.stake} does not cover {needed}: the open claims' reserves "
                f"and this claim's (slash {claim.slash_at_risk}, claim bond {claim.claim_bond})",
                code=RejectionCode.STAKE_BELOW_CLAIM_RESERVE,
            )

    def check_claim_covered(self, job_id: str) -> None:
        """Raise unless the bonded stake still covers the open claims' reserves (checked at a
        commit: slashes or forfeits since the claim may have eaten into it)."""
        if job_id in self.claims and self.stake < self.reserved_stake():
            raise Rejection(
                f"bonded stake {self.stake} no longer covers the open claims' reserves "
                f"{self.reserved_stake()}",
                code=RejectionCode.STAKE_BELOW_CLAIM_RESERVE,
            )

    def reserve_claim(
        self,
        *,
        job_id: str,
        max_price: int,
        due_ns: int,
        policy: LedgerPolicy,
        now_ns: int,
        earliest_ns: int = 0,
    ) -> OpenClaim:
        """Reserve the claim; ``earliest_ns`` (when the node could first claim, rules v3) is
        recorded with it for the audit."""
        claim = self.compute_claim(max_price=max_price, due_ns=due_ns, policy=policy, now_ns=now_ns)
        self.check_claim_room(claim)
        self._trigger(
            self.ClaimReserved,
            now_ns,
            job_id=job_id,
            slash_at_risk=claim.slash_at_risk,
            claim_bond=claim.claim_bond,
            claimed_at_ns=now_ns,
            due_ns=due_ns,
            earliest_ns=earliest_ns,
        )
        return claim

    def commit_claim(self, *, job_id: str, now_ns: int) -> None:
        """The claim's result was committed: its device is free, its bond no longer at risk."""
        if job_id in self.claims and not self.claims[job_id].committed:
            self._trigger(self.ClaimCommitted, now_ns, job_id=job_id)

    def forfeit_claim_bond(
        self, *, job_id: str, amount: int, to_account: str, reason: str, now_ns: int
    ) -> tuple[int, int]:
        """Take ``amount`` (at most the claim's bond, and what stake is left) for the
        consumer; returns what is taken and how much of it comes out of the unbonding stake."""
        claim = self.claims[job_id]
        amount = min(amount, claim.claim_bond, self.stake + self.unbonding)
        from_unbonding = compute_from_unbonding(amount, self.unbonding)
        if amount > 0:
            self._trigger(
                self.ClaimBondForfeited,
                now_ns,
                job_id=job_id,
                amount=amount,
                from_unbonding=from_unbonding,
                to_account=to_account,
                reason=reason,
            )
        return amount, from_unbonding

    def release_claim(self, *, job_id: str, reason: str, now_ns: int, outcome: str = "") -> None:
        """End the claim; ``outcome`` is what it came to for the node's reputation
        (``domain.reputation.CLAIM_OUTCOMES``; empty under rules before v3, or when nobody
        is to blame, like a round without quorum)."""
        if job_id in self.claims:
            self._trigger(self.ClaimReleased, now_ns, job_id=job_id, reason=reason, outcome=outcome)

    def get_unbond_floor(self, policy: LedgerPolicy) -> int:
        """Bonded stake an unbond must leave: the open reserves and, while claims are open,
        the minimum that keeps the node active (an inactive node cannot commit)."""
        if not self.claims:
            return 0
        return max(self.reserved_stake(), policy.node_stake_min)
