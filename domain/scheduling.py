"""Task grabbing policy: who may claim an open job, and from when.

A node in the job's region may claim at once; a node in the same region group (the part of
the region before the first '-', e.g. ``eu`` for ``eu-west``) after one stagger; anyone after
two staggers. Staggers count from when the job was offered (submitted or reassigned).
Eligibility rules are checked in a fixed order, each with a stable code; the one claim rule
of issue 14 (stake coverage and device capacity) is ``domain.claims``.

Under rules v3 (issue 15) a node's reputation and its latency to the job's region move it
within its tier: ``earliest = offered + tier·stagger + offset`` with ``0 <= offset <
stagger`` (so the tier order never changes)::

    reputation_penalty = BPS · max(0, NEUTRAL_BPS - reputation_bps) // NEUTRAL_BPS
    latency_penalty    = BPS · clamp(rtt_us - LATENCY_RTT_FREE_US, 0, span) // span
                         span = LATENCY_RTT_CAP_US - LATENCY_RTT_FREE_US
    offset = (stagger - 1) · (REPUTATION_SHARE · reputation_penalty
                              + LATENCY_SHARE · latency_penalty) // (BPS · SHARES)

Both penalties are anchored where a new node stands: a node at or above the reputation a new
node starts with (``NEUTRAL_BPS``, the prior of ``domain.reputation``) and within
``LATENCY_RTT_FREE_US`` of the job's region (or never measured from it) claims at its tier's
start, as before rules v3; a node whose reputation fell below the start claims later, up to
three quarters of a stagger at reputation 0, and a node measured far from the job's region
up to a quarter later. ``rtt_us`` is the node's latest decided median RTT from validators in
the job's region (``domain.liveness``).
"""

from __future__ import annotations

from typing import Protocol

from domain.errors import ClaimConflict, InvalidTransition, Rejection, RejectionCode
from domain.job_states import CLAIMED, RESULT_COMMITTED, STATE_CODES, SUBMITTED
from domain.node import ACTIVE, JAILED, Node
from domain.policy import BPS, RULES_V3, LedgerPolicy, gpu_class_rank

SAME_REGION, SAME_GROUP, ELSEWHERE = 0, 1, 2
NEUTRAL_BPS = BPS // 2
"""The reputation a node without observations has (``domain.reputation``): no offset above."""
LATENCY_RTT_FREE_US = 10_000
"""Round-trip time (10 ms, within a region) that costs no offset."""
LATENCY_RTT_CAP_US = 200_000
"""Round-trip time (200 ms) from which every node counts as equally far."""
REPUTATION_SHARE = 3
LATENCY_SHARE = 1
"""How much of the offset each penalty may take (reputation three quarters, latency one)."""
SHARES = REPUTATION_SHARE + LATENCY_SHARE


class ClaimableWorkload(Protocol):
    @property
    def gpu_class_min(self) -> str: ...


class ClaimableJob(Protocol):
    """What the claim rules read of a job (``domain.job.Job`` is one; it checks its claims
    here, so this module names no Job, and the two do not import each other)."""

    @property
    def id(self) -> str: ...

    state: str
    node_id: str
    region: str
    deadline_ns: int
    max_price: int
    offered_at_ns: int
    excluded_nodes: set[str]

    @property
    def workload(self) -> ClaimableWorkload: ...


def compute_region_tier(job_region: str, node_region: str) -> int:
    if job_region == node_region:
        return SAME_REGION
    if job_region.split("-", 1)[0] == node_region.split("-", 1)[0]:
        return SAME_GROUP
    return ELSEWHERE


def compute_stagger_offset_ns(*, reputation_bps: int, rtt_us: int | None, stagger_ns: int) -> int:
    """How much later than its tier's start a node may claim (the module docstring)."""
    reputation_penalty = BPS * max(0, NEUTRAL_BPS - reputation_bps) // NEUTRAL_BPS
    latency_penalty = 0
    if rtt_us is not None:
        span = LATENCY_RTT_CAP_US - LATENCY_RTT_FREE_US
        latency_penalty = BPS * min(max(rtt_us - LATENCY_RTT_FREE_US, 0), span) // span
    weighted = REPUTATION_SHARE * reputation_penalty + LATENCY_SHARE * latency_penalty
    return max(stagger_ns - 1, 0) * weighted // (BPS * SHARES)


def compute_earliest_claim_ns(
    job: ClaimableJob, node: Node, *, now_ns: int, policy: LedgerPolicy
) -> int:
    """When ``node`` may first claim ``job``: its region tier's start and, under rules v3,
    the offset its reputation at ``now_ns`` and its latency to the job's region give."""
    tier = compute_region_tier(job.region, node.region)
    earliest = job.offered_at_ns + tier * policy.region_stagger_ns
    if policy.rules_version < RULES_V3:
        return earliest
    return earliest + compute_stagger_offset_ns(
        reputation_bps=node.reputation_bps(now_ns, policy),
        rtt_us=node.uptime.get_rtt_us(job.region),
        stagger_ns=policy.region_stagger_ns,
    )


def compute_result_due_ns(job: ClaimableJob, *, now_ns: int, policy: LedgerPolicy) -> int:
    """When a claim made now must have its result committed: one window, within the
    job's deadline."""
    return min(now_ns + policy.result_window_ns, job.deadline_ns)


def check_claim(job: ClaimableJob, node: Node, *, now_ns: int, policy: LedgerPolicy) -> None:
    """Raise the first rule the claim breaks; return quietly when the node may claim now."""
    if job.state in (CLAIMED, RESULT_COMMITTED):
        raise ClaimConflict(f"job {job.id} was already claimed by {job.node_id}")
    if job.state != SUBMITTED:
        raise InvalidTransition(f"job {job.id} is {job.state}", code=STATE_CODES[job.state])
    if now_ns > job.deadline_ns:
        raise Rejection(f"job {job.id} passed its deadline", code=RejectionCode.JOB_DEADLINE_PASSED)
    if node.state == JAILED:
        raise Rejection(f"node {node.id} is jailed", code=RejectionCode.NODE_JAILED)
    if node.state != ACTIVE:
        raise Rejection(
            f"node {node.id} is {node.state}, not active", code=RejectionCode.NODE_NOT_ACTIVE
        )
    if node.stake < policy.node_stake_min:
        raise Rejection(
            f"node stake {node.stake} is below {policy.node_stake_min}",
            code=RejectionCode.STAKE_BELOW_MINIMUM,
        )
    if policy.rules_version >= RULES_V3:  # issue 15: an attestation that covers it now
        node.check_attestation_current(now_ns=now_ns)
    # The one claim rule (``domain.claims``): within the node's capacity, and its bonded
    # stake covers every open claim's reserve and this one's.
    due_ns = compute_result_due_ns(job, now_ns=now_ns, policy=policy)
    node.check_claim_room(
        node.compute_claim(max_price=job.max_price, due_ns=due_ns, policy=policy, now_ns=now_ns)
    )
    if gpu_class_rank(node.gpu_class) < gpu_class_rank(job.workload.gpu_class_min):
        raise Rejection(
            f"job needs GPU class {job.workload.gpu_class_min}, node has {node.gpu_class}",
            code=RejectionCode.GPU_CLASS_TOO_LOW,
        )
    if node.price > job.max_price:
        raise Rejection(
            f"node price {node.price} exceeds the job's maximum {job.max_price}",
            code=RejectionCode.PRICE_ABOVE_MAXIMUM,
        )
    if node.id in job.excluded_nodes:
        raise Rejection(
            f"node {node.id} already failed this job", code=RejectionCode.NODE_EXCLUDED_FROM_JOB
        )
    earliest = compute_earliest_claim_ns(job, node, now_ns=now_ns, policy=policy)
    if now_ns < earliest:
        raise Rejection(
            f"nodes in {node.region} may claim this {job.region} job from {earliest}",
            code=RejectionCode.CLAIM_TOO_EARLY_FOR_REGION,
        )


def check_commit(job: ClaimableJob, node: Node) -> None:
    """Raise unless the claiming node may still commit: active, not jailed, and its bonded
    stake still covering its open claims (a slash or a forfeit since may have taken it)."""
    if node.state == JAILED:
        raise Rejection(f"node {node.id} is jailed", code=RejectionCode.NODE_JAILED)
    if node.state != ACTIVE:
        raise Rejection(
            f"node {node.id} is {node.state}, not active", code=RejectionCode.NODE_NOT_ACTIVE
        )
    node.check_claim_covered(job.id)
