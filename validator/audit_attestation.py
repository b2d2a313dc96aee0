"""The audit's hardware attestation rules (issue 15), for records written under
``rules_version`` 3 or later (``domain.node``, ``domain.inventory`` and
``domain.services.attestation`` state the rules):

- a registration or inventory update names, for each GPU, the model it gave or the one its
  NVML name identifies, and a GPU class within the best class of those models;
- a challenge carries exactly the probes ``compute_probe_specs`` sizes for the node's models
  under the record's policy; a re-challenge is by the node's owner or an active validator,
  not within ``rechallenge_interval_min_ns`` of the node's last challenge; the nodes reporting
  a UUID of the challenged node that could be challenged were challenged in the same
  command, with one group id;
- no report answers a challenge (``attestation_by_report_retired``);
- a pass records the probed models, the tier its decision gives (``operator`` only by an
  operator while no validator was assigned; ``cc`` or ``timed`` from the verdicts) and
  expires ``attestation_ttl_ns`` after its decision; a fail by the validators or an operator
  is a counted failure, a round given up is not;
- no claim by a node whose attestation had expired or did not cover its GPUs;
- a slash for misses cites that many failed rounds (their certificates' digests) and comes
  at ``probe_misses_slash``; after each command no node holds that many failures
  unslashed, and no active node lacks an attestation.

``AttestationAudit`` keeps what one command did; each check returns why a record breaks a
rule, or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.attestation import TIER_OPERATOR, compute_tier
from domain.commands import GpuSpec
from domain.devices import ProbeSpec, compute_probe_specs, load_device_table
from domain.directory import Directory
from domain.errors import Rejection
from domain.events import datetime_to_ns
from domain.inventory import resolve_gpus
from domain.node import ACTIVE, DEREGISTERED, Node
from domain.policy import CHALLENGE_GROUP_NODES_MAX, RULES_V3, LedgerPolicy
from domain.services.attestation import compute_uuid_directory
from domain.validators import Validator

ATTESTATION_RULES_VERSION = RULES_V3
DECIDE_KIND = "node.attestation.decide"
RECHALLENGE_KIND = "node.attestation.rechallenge"
FAILURE_KINDS = frozenset({"node.attestation.record_verdict", DECIDE_KIND})
"""The kinds whose rejection is the node's failure (a decision, not a round given up)."""
INVENTORY_EVENTS = frozenset({"Registered", "InventoryUpdated"})


def is_attestation_rule_in_force(policy: LedgerPolicy | None) -> bool:
    return policy is not None and policy.rules_version >= ATTESTATION_RULES_VERSION


@dataclass(frozen=True)
class CommandFacts:
    """What a node event's check reads of the command that caused it."""

    kind: str
    actor: str
    body: Any
    policy: LedgerPolicy


@dataclass
class AttestationAudit:
    """What one command challenged and which nodes it touched (reset per command)."""

    challenged: dict[str, str] = field(default_factory=dict)
    """Node id -> the group its challenge recorded."""
    touched: set[str] = field(default_factory=set)
    challenged_at_ns: int = 0
    initiator: str = ""
    """The node the command challenged (the others are its UUID peers)."""

    def check_event(
        self,
        event_type: str,
        node: Any,
        event: Any,
        facts: CommandFacts,
        aggregates: dict[str, Any],
    ) -> str | None:
        """Why this node event (``node`` the aggregate before it) breaks a rule, or None."""
        node_id = getattr(node, "id", "") or event.originator_id
        self.touched.add(node_id)
        at_ns = datetime_to_ns(event.timestamp)
        if event_type in INVENTORY_EVENTS:
            return find_inventory_violation(event, facts, getattr(node, "gpu_class", ""))
        if not isinstance(node, Node):
            return None
        if event_type == "AttestationChallenged":
            self.challenged[node_id] = event.group
            self.challenged_at_ns = at_ns
            if getattr(facts.body, "node_id", "") == node_id:
                self.initiator = node_id
            return find_challenge_violation(node, event, facts, aggregates, at_ns)
        if event_type == "AttestationSubmitted":
            return "a report answers a challenge under rules v3 (attestation_by_report_retired)"
        if event_type == "AttestationVerified":
            return find_pass_violation(node, event, facts, at_ns)
        if event_type == "AttestationRejected":
            return find_fail_violation(node, event, facts)
        if event_type == "ClaimReserved":
            return find_claim_violation(node, event)
        if event_type == "NodeSlashed" and event.misses:
            return find_misses_slash_violation(node, event, facts.policy)
        return None

    def end_command(self, aggregates: dict[str, Any], policy: LedgerPolicy) -> str | None:
        """At a command's end: no failures left unslashed, no active node unattested, and
        the challenged nodes' UUID peers challenged with them."""
        for node_id in sorted(self.touched):
            node = aggregates.get(node_id)
            if not isinstance(node, Node):
                continue
            if node.is_misses_slash_due(policy):
                return f"node {node_id} failed {node.failed_challenges} challenges, unslashed"
            if node.state == ACTIVE and not node.is_attested:
                return f"node {node_id} is active without a passed attestation"
        return self._find_group_violation(aggregates)

    def _find_group_violation(self, aggregates: dict[str, Any]) -> str | None:
        if not self.challenged:
            return None
        groups = set(self.challenged.values())
        together = len(self.challenged) > 1
        if len(groups) != 1 or (next(iter(groups)) != "") == (not together):
            return f"the nodes challenged together record groups {sorted(groups)}"
        if len(self.challenged) > CHALLENGE_GROUP_NODES_MAX:  # the initiator and its peers
            return None
        peer = find_unchallenged_peer(
            self.initiator, aggregates, self.challenged, self.challenged_at_ns
        )
        if peer is not None:
            return f"node {peer} shares a GPU UUID with {self.initiator}, not challenged with it"
        return None


def find_inventory_violation(event: Any, facts: CommandFacts, class_before: str) -> str | None:
    """A GPU list recorded as ``domain.inventory.resolve_gpus`` resolves the signed one, with
    the signed class (an update that names none keeps the class before)."""
    specs: list[GpuSpec] = list(getattr(facts.body, "gpus", ()))
    gpu_class = getattr(facts.body, "gpu_class", None) or class_before
    try:
        expected = resolve_gpus(specs, gpu_class=gpu_class, table=load_device_table())
    except Rejection as exc:
        return f"{facts.kind} breaks {exc.code}: {exc.message}"
    if tuple(event.gpus) != expected or event.gpu_class != gpu_class:
        return f"{facts.kind} recorded GPUs {list(event.gpus)} of class {event.gpu_class}"
    return None


def find_challenge_violation(
    node: Node, event: Any, facts: CommandFacts, aggregates: dict[str, Any], at_ns: int
) -> str | None:
    expected: tuple[ProbeSpec, ...] = compute_probe_specs(
        tuple(gpu.model for gpu in node.gpus), policy=facts.policy
    )
    if tuple(event.probes) != expected:
        return f"the challenge of {node.id} records probes the protocol does not size"
    if facts.kind != RECHALLENGE_KIND or getattr(facts.body, "node_id", "") != node.id:
        return None
    if facts.actor not in (node.owner, node.id):
        validator = aggregates.get(facts.actor)
        if not (isinstance(validator, Validator) and validator.is_active(facts.policy)):
            return (
                f"{facts.actor} re-challenged {node.id}: neither its owner nor an active validator"
            )
    earliest = node.last_challenged_ns + facts.policy.rechallenge_interval_min_ns
    if node.last_challenged_ns and at_ns < earliest:
        return f"{node.id} re-challenged at {at_ns}, before {earliest}"
    return None


def find_pass_violation(node: Node, event: Any, facts: CommandFacts, at_ns: int) -> str | None:
    challenge = node.challenge
    if challenge is None:
        return f"{node.id} passed no challenge"
    if event.expires_at_ns != at_ns + facts.policy.attestation_ttl_ns:
        return f"{node.id}'s attestation expires at {event.expires_at_ns}, not decision + ttl"
    if tuple(event.models) != tuple(probe.model for probe in challenge.probes):
        return f"{node.id}'s attestation records models {list(event.models)}, not those probed"
    if facts.kind == DECIDE_KIND:
        if node.attestation_round is not None:
            return f"an operator decided {node.id}'s attestation with validators assigned"
        expected = TIER_OPERATOR
    elif node.attestation_round is not None:
        expected = compute_tier(node.attestation_round, facts.policy)
    else:
        return f"{node.id}'s attestation passed without a decision"
    if event.tier != expected:
        return (
            f"{node.id}'s attestation records tier {event.tier!r}, its decision gives {expected!r}"
        )
    return None


def find_fail_violation(node: Node, event: Any, facts: CommandFacts) -> str | None:
    if facts.kind == DECIDE_KIND and node.attestation_round is not None:
        return f"an operator decided {node.id}'s attestation with validators assigned"
    is_failure = facts.kind in FAILURE_KINDS
    if event.is_failure != is_failure:
        return f"{facts.kind} records {node.id}'s rejection with is_failure {event.is_failure}"
    return None


def find_claim_violation(node: Node, event: Any) -> str | None:
    if node.attestation_expires_ns <= event.claimed_at_ns:
        return (
            f"node {node.id} claimed {event.job_id} at {event.claimed_at_ns}, its attestation "
            f"expired at {node.attestation_expires_ns}"
        )
    if node.gpus != node.attested_gpus:
        return f"node {node.id} claimed {event.job_id} with GPUs its attestation does not cover"
    return None


def find_misses_slash_violation(node: Node, event: Any, policy: LedgerPolicy) -> str | None:
    if event.misses != policy.probe_misses_slash or node.failed_challenges != event.misses:
        return (
            f"node {node.id} slashed for {event.misses} misses with {node.failed_challenges} "
            f"failures counted (the rule: {policy.probe_misses_slash})"
        )
    if event.evidence != node.compute_misses_evidence():
        return f"node {node.id}'s misses slash does not cite its failed rounds"
    return None


def find_unchallenged_peer(
    node_id: str, aggregates: dict[str, Any], challenged: dict[str, str], at_ns: int
) -> str | None:
    """A node reporting a GPU UUID of ``node_id`` that could have been challenged with it."""
    node = aggregates.get(node_id)
    for uuid in dict.fromkeys(gpu.uuid for gpu in getattr(node, "gpus", ()) if gpu.uuid):
        directory = aggregates.get(Directory.stream_id(compute_uuid_directory(uuid)))
        for member in getattr(directory, "members", ()):
            peer = aggregates.get(member)
            if member in challenged or not isinstance(peer, Node):
                continue
            reports = any(gpu.uuid == uuid for gpu in peer.gpus)
            if reports and peer.state != DEREGISTERED and peer.can_be_challenged(at_ns):
                return member
    return None
