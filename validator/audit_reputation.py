"""The audit's liveness and reputation rules (issue 15), for records under ``RULES_V3``:

- a liveness epoch's snapshot is the validators active when it opened (owner, region);
- every node a report names is one its signer was assigned (``domain.liveness``);
- a close names every reported node, and its bitmaps and each ``NodeUptimeRecorded`` are what
  a majority of the assigned probers' reports decide (recomputed from the reports);
- the outcome a ``ClaimReleased`` records is what its command did: the job decided (verified,
  rejected) in it, the result window missed (``job.expire`` of a claim past due), the job
  handed back with a fee (``job.release`` forfeiting part of the bond), or nothing (also for
  a private job's claim that lapsed for want of its inputs key, issue 17);
- every node's reputation is recomputed from the observations the audit itself collects
  from the records (``domain.reputation``'s formula), and at each ``ClaimReserved`` the
  claim was not earlier than ``offered + tier·stagger + offset`` computed from that
  reputation and the latency the audit tracked (``domain.scheduling``), which is also the
  ``earliest_ns`` the claim recorded.

``ReputationAudit`` keeps the observations and what the current command did; its methods
return why a record breaks a rule, or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.liveness import (
    LIVENESS_STREAM_TYPE,
    Prober,
    compute_node_uptime,
    compute_probers,
    encode_bitmap,
)
from domain.policy import RULES_V3, LedgerPolicy
from domain.reputation import (
    ATTEST_FAILED,
    ATTESTED,
    DOWN,
    NO_SHOW,
    REJECTED,
    RELEASED,
    UP,
    VERIFIED,
    Observations,
    compute_reputation_bps,
)
from domain.scheduling import compute_region_tier, compute_stagger_offset_ns

DECISIONS = {"JobVerified": VERIFIED, "JobRejected": REJECTED}


@dataclass
class _CommandFacts:
    """What one command did that a released claim's outcome follows from."""

    decided: dict[str, str] = field(default_factory=dict)
    forfeited: set[str] = field(default_factory=set)
    lapsed: set[str] = field(default_factory=set)
    """Jobs whose claim lapsed for want of the inputs key (issue 17): no one to blame."""
    released: list[tuple[int, str, str, str, bool]] = field(default_factory=list)
    """(position, node, job, recorded outcome, claim past due and not committed)."""


@dataclass
class ReputationAudit:
    """Each node's observations and latencies, collected from the records (not the nodes)."""

    observations: dict[str, Observations] = field(default_factory=dict)
    rtt_by_region: dict[str, dict[str, int]] = field(default_factory=dict)
    facts: _CommandFacts = field(default_factory=_CommandFacts)

    def check_event(
        self,
        record: Any,
        event: Any,
        data: dict[str, Any],
        *,
        kind: str,
        aggregates: dict[str, Any],
        policy: LedgerPolicy | None,
        expected_probers: tuple[Prober, ...],
    ) -> str | None:
        """Why this event (``aggregates`` as before it) breaks a liveness or reputation rule."""
        if policy is None or policy.rules_version < RULES_V3 or event is None:
            return None
        key = (record.stream_type, record.event_type)
        at_ns = int(data.get("at_us", 0)) * 1000
        if key[0] == "job" and key[1] in DECISIONS:
            self.facts.decided[record.stream_id] = DECISIONS[key[1]]
        elif key == ("job", "ClaimLapsed"):  # issue 17: the node never got the inputs key
            self.facts.lapsed.add(record.stream_id)
        elif key == ("node", "ClaimBondForfeited"):
            self.facts.forfeited.add(event.job_id)
        elif key == ("node", "ClaimReleased"):
            return self._note_release(record, event, kind, aggregates, at_ns)
        elif key == ("node", "ClaimReserved"):
            return self._check_claim(record, event, aggregates, policy, at_ns)
        elif key == ("node", "NodeUptimeRecorded"):
            return self._check_uptime(record, event, aggregates, policy, at_ns)
        elif key == ("node", "AttestationVerified") and event.tier:  # a rules v3 pass
            self._observe(record.stream_id, ATTESTED, at_ns)
        elif key == ("node", "AttestationRejected") and event.is_failure:
            self._observe(record.stream_id, ATTEST_FAILED, at_ns)
        elif key[0] == LIVENESS_STREAM_TYPE:
            return _check_epoch_event(record, event, aggregates, policy, expected_probers)
        return None

    def end_command(self) -> str | None:
        """Why a released claim's outcome is not what its command did, or None."""
        facts, self.facts = self.facts, _CommandFacts()
        for _position, node_id, job_id, recorded, past_due in facts.released:
            expected = facts.decided.get(job_id, "")
            if job_id in facts.lapsed:
                expected = ""
            elif not expected and past_due:
                expected = NO_SHOW
            elif not expected and job_id in facts.forfeited:
                expected = RELEASED
            if recorded != expected:
                return (
                    f"the claim of {node_id} on {job_id} was released as {recorded!r}; "
                    f"its command makes it {expected!r}"
                )
        return None

    def compute_reputation_bps(self, node_id: str, now_ns: int, policy: LedgerPolicy) -> int:
        observations = self.observations.get(node_id, Observations())
        return compute_reputation_bps(
            observations.buckets, now_ns=now_ns, half_life_ns=policy.reputation_half_life_ns
        )

    def _observe(self, node_id: str, kind: str, at_ns: int) -> None:
        self.observations.setdefault(node_id, Observations()).observe(kind, at_ns)

    def _note_release(
        self, record: Any, event: Any, kind: str, aggregates: dict[str, Any], at_ns: int
    ) -> str | None:
        node = aggregates.get(record.stream_id)
        claim = getattr(node, "claims", {}).get(event.job_id)
        past_due = (
            kind == "job.expire"
            and claim is not None
            and not claim.committed
            and claim.due_ns < at_ns
        )
        self.facts.released.append(
            (record.position, record.stream_id, event.job_id, event.outcome, past_due)
        )
        if event.outcome:
            self._observe(record.stream_id, event.outcome, at_ns)
        return None

    def _check_claim(
        self,
        record: Any,
        event: Any,
        aggregates: dict[str, Any],
        policy: LedgerPolicy,
        at_ns: int,
    ) -> str | None:
        node, job = aggregates.get(record.stream_id), aggregates.get(event.job_id)
        reputation = self.compute_reputation_bps(record.stream_id, at_ns, policy)
        replayed = node.reputation_bps(at_ns, policy) if node is not None else None
        if replayed != reputation:
            return (
                f"node {record.stream_id}'s reputation replays to {replayed} at the claim of "
                f"{event.job_id}; its records give {reputation}"
            )
        region = getattr(job, "region", "")
        tier = compute_region_tier(region, getattr(node, "region", ""))
        earliest = getattr(job, "offered_at_ns", 0) + tier * policy.region_stagger_ns
        earliest += compute_stagger_offset_ns(
            reputation_bps=reputation,
            rtt_us=self.rtt_by_region.get(record.stream_id, {}).get(region),
            stagger_ns=policy.region_stagger_ns,
        )
        if event.earliest_ns != earliest:
            return (
                f"the claim of {event.job_id} records earliest {event.earliest_ns}; reputation "
                f"{reputation} and the node's latency make it {earliest}"
            )
        if at_ns < earliest:
            return f"{record.stream_id} claimed {event.job_id} at {at_ns}, before {earliest}"
        return None

    def _check_uptime(
        self,
        record: Any,
        event: Any,
        aggregates: dict[str, Any],
        policy: LedgerPolicy,
        at_ns: int,
    ) -> str | None:
        epoch = aggregates.get(f"{LIVENESS_STREAM_TYPE}:{event.epoch}")
        node = aggregates.get(record.stream_id)
        if epoch is None or not epoch.closed:
            return f"uptime of {record.stream_id} for epoch {event.epoch}, which did not close"
        assigned = compute_probers(
            event.epoch,
            record.stream_id,
            epoch.probers,
            count=policy.liveness_probers,
            node_owner=getattr(node, "owner", ""),
        )
        expected = compute_node_uptime(record.stream_id, assigned, epoch.reports, epoch.probers)
        recorded = (event.up, event.rtt_us, tuple(event.rtt_by_region))
        if expected is None or recorded != (expected.up, expected.rtt_us, expected.rtt_by_region):
            return (
                f"uptime of {record.stream_id} in epoch {event.epoch} is recorded as {recorded}; "
                f"its probers' reports decide {expected}"
            )
        self._observe(record.stream_id, UP if event.up else DOWN, at_ns)
        if event.up:
            measured = self.rtt_by_region.setdefault(record.stream_id, {})
            measured.update({r.region: r.rtt_us for r in event.rtt_by_region})
        return None


def compute_probers_snapshot(
    validator_ids: list[str], aggregates: dict[str, Any], policy: LedgerPolicy
) -> tuple[Prober, ...]:
    """The probers an epoch opening now must freeze: the active validators, in order."""
    probers = []
    for validator_id in validator_ids:
        validator = aggregates.get(validator_id)
        if validator is not None and validator.is_active(policy):
            probers.append(Prober(validator_id, validator.owner, validator.region))
    return tuple(probers)


def _check_epoch_event(
    record: Any,
    event: Any,
    aggregates: dict[str, Any],
    policy: LedgerPolicy,
    expected_probers: tuple[Prober, ...],
) -> str | None:
    epoch = aggregates.get(record.stream_id)
    if record.event_type == "LivenessEpochOpened":
        if record.stream_id != f"{LIVENESS_STREAM_TYPE}:{event.epoch}":
            return f"{record.stream_id} opens epoch {event.epoch}"
        if tuple(event.probers) != expected_probers:
            return f"epoch {event.epoch}'s snapshot is not the validators active when it opened"
        return None
    if epoch is None:
        return f"{record.stream_id} was never opened"
    if record.event_type == "ReportRecorded":
        for node_id in event.nodes:
            assigned = compute_probers(
                epoch.epoch,
                node_id,
                epoch.probers,
                count=policy.liveness_probers,
                node_owner=getattr(aggregates.get(node_id), "owner", ""),
            )
            if event.validator_id not in assigned:
                return f"{event.validator_id} reported {node_id}, which it was not assigned"
        return None
    if record.event_type == "LivenessEpochClosed":
        return _find_close_violation(epoch, event, aggregates, policy)
    return None


def _find_close_violation(
    epoch: Any, event: Any, aggregates: dict[str, Any], policy: LedgerPolicy
) -> str | None:
    nodes = epoch.reported_nodes()
    if tuple(event.nodes) != nodes:
        return f"epoch {epoch.epoch} closes over {len(event.nodes)} nodes; {len(nodes)} reported"
    outcomes = []
    for node_id in nodes:
        assigned = compute_probers(
            epoch.epoch,
            node_id,
            epoch.probers,
            count=policy.liveness_probers,
            node_owner=getattr(aggregates.get(node_id), "owner", ""),
        )
        outcomes.append(compute_node_uptime(node_id, assigned, epoch.reports, epoch.probers))
    decided = encode_bitmap([o is not None for o in outcomes])
    up = encode_bitmap([o is not None and o.up for o in outcomes])
    if (event.decided, event.up) != (decided, up):
        return f"epoch {epoch.epoch}'s close bitmaps are not what its reports decide"
    return None
