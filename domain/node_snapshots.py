"""Node snapshots: a node's whole state at a stream version (``domain.snapshots`` does the same
for accounts).

Every claim a node makes adds records to its stream (``domain.claims``: reserved, released,
a forfeited bond), so a busy node's stream grows with every job it runs; loading it from its
latest snapshot and the records after it keeps what a command reads bounded. A snapshot is a
cache: one that no longer decodes into today's ``NodeState`` (a field added or removed) is
ignored and the stream replayed.
"""

from __future__ import annotations

import msgspec

from domain.claims import OpenClaim
from domain.completions import WarmModel
from domain.events import datetime_to_ns
from domain.liveness import Uptime
from domain.node import Challenge, GpuClaim, Node
from domain.reputation import Observations
from domain.snapshots import restore_aggregate
from domain.verdicts import VerdictRound

NODE_SNAPSHOT_EVERY_EVENTS = 64
"""A node is re-snapshotted once this many events were appended since its last snapshot."""


class NodeState(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Every field of a Node (``domain.node``) and its eventsourcing envelope. The fields
    with defaults came later (``LATE_NODE_FIELDS``): left out at their default, so a node
    that never set them snapshots to the bytes it did before them."""

    version: int
    created_on_ns: int
    modified_on_ns: int
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
    # issue 15: liveness and reputation (domain.liveness, domain.reputation)
    reputation: Observations
    uptime: Uptime
    # issue 15: hardware attestation
    challenged_gpus: tuple[GpuClaim, ...]
    attested_gpus: tuple[GpuClaim, ...]
    attestation_tier: str
    attested_at_ns: int
    attestation_expires_ns: int
    failed_challenges: int
    failed_certificates: tuple[bytes, ...]
    last_challenged_ns: int
    round_assigned_ns: int
    # issue 18: LLM completions (``domain.node`` class defaults)
    warm_models: tuple[WarmModel, ...] = ()
    llm_endpoint: str = ""
    completion_charges: tuple[tuple[int, int], ...] = ()


ENVELOPE_FIELDS = ("version", "created_on_ns", "modified_on_ns")
NODE_FIELDS = tuple(name for name in NodeState.__struct_fields__ if name not in ENVELOPE_FIELDS)
LATE_NODE_FIELDS = frozenset({"warm_models", "llm_endpoint", "completion_charges"})


def encode_node_state(node: Node) -> bytes:
    """The node as it stands (at ``node.version``), canonically encoded."""
    state = NodeState(
        version=node.version,
        created_on_ns=datetime_to_ns(node.created_on),
        modified_on_ns=datetime_to_ns(node.modified_on),
        **{name: getattr(node, name) for name in NODE_FIELDS},
    )
    return msgspec.json.encode(state, order="sorted")


def decode_node_state(node_id: str, state: bytes) -> Node:
    """The node a snapshot holds, ready to take the events after it.

    Raises msgspec.ValidationError / DecodeError when the bytes are not a node snapshot."""
    decoded = msgspec.json.decode(state, type=NodeState)
    fields = {
        name: getattr(decoded, name)
        for name in NODE_FIELDS
        # a late field at its default stays the class's, as a replay leaves it
        if name not in LATE_NODE_FIELDS or getattr(decoded, name) != getattr(Node, name)
    }
    node = restore_aggregate(Node, node_id, decoded, **fields)
    node.claims = dict(decoded.claims)
    return node
