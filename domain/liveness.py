"""Liveness epochs (rules v3): which validators probe which node, and the uptime they decide.

Time is cut into epochs of ``liveness_epoch_ns``: epoch ``e = now_ns // liveness_epoch_ns``.
In each epoch every node is probed by ``liveness_probers`` validators, ranked by
``SHA-256(tag || u64 epoch || node id || validator id)`` among the validators active when
the epoch's first report arrived (the epoch's *snapshot*), without those the node's owner
owns (nobody probes their own node). Nobody chooses whom to probe: the daemon asks
``compute_probe_duties`` which nodes are its own this epoch.

A prober reports once per epoch (``liveness.report``), during the epoch or the one after:
for each of its nodes, up or down (a bit) and the round-trip time it measured. Once that
second epoch has passed anyone closes the epoch (``liveness.close``): a node is up (or
down) when a majority of its assigned probers, and at least two, say so; otherwise it is
undecided and nothing is recorded. One close event carries the epoch's nodes with two
bitmaps (decided, up); each decided node gets one ``NodeUptimeRecorded`` with the median
RTT of the probers that saw it up, overall and per prober region. A prober that lies is
outvoted by the others and changes nothing.

One stream per epoch, ``liveness:<epoch>``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import ClassVar

import msgspec

from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.events import FlopAggregate, ns_to_datetime
from domain.policy import LedgerPolicy

LIVENESS_STREAM_TYPE = "liveness"
PROBER_TAG = b"flopledger/liveness-probers/v1"
LIVENESS_QUORUM_MIN = 2
"""Fewest agreeing probers that decide a node's epoch (no lone prober decides)."""
LIVENESS_REPORT_NODES_MAX = 1_024
"""Nodes one report may name."""
LIVENESS_EPOCH_NODES_MAX = 4_096
"""Distinct nodes one epoch may decide (a bound on the closing command)."""
LIVENESS_RTT_US_MAX = 10_000_000
"""The largest round-trip time a report may state (10 s: anything slower is down)."""
REPORT_EPOCHS_LATE_MAX = 1
"""A report is accepted during its epoch and this many epochs after; then the epoch closes."""


class Prober(msgspec.Struct, frozen=True):
    """A validator of an epoch's snapshot: who may probe, owned by whom, measuring from where."""

    validator_id: str
    owner: str
    region: str = ""


class ProbeReport(msgspec.Struct, frozen=True):
    """One prober's report: ``nodes[i]`` is up when bit i of ``up`` is set."""

    nodes: tuple[str, ...]
    up: bytes
    rtt_us: tuple[int, ...]


class RegionRtt(msgspec.Struct, frozen=True):
    """The median round-trip time to a node measured from one region."""

    region: str
    rtt_us: int


class NodeUptime(msgspec.Struct, frozen=True):
    """What an epoch decided for one node."""

    node_id: str
    up: bool
    rtt_us: int
    rtt_by_region: tuple[RegionRtt, ...]


class Uptime(msgspec.Struct):
    """A node's decided liveness epochs (mutated by ``NodeUptimeRecorded``): how many were
    up and down, the last one, and the latest median RTT overall and by prober region."""

    epochs_up: int = 0
    epochs_down: int = 0
    last_epoch: int = -1
    last_up: bool = False
    rtt_us: int = 0
    rtt_by_region: dict[str, int] = msgspec.field(default_factory=dict)

    def record(self, epoch: int, up: bool, rtt_us: int, by_region: Sequence[RegionRtt]) -> None:
        self.epochs_up += up
        self.epochs_down += not up
        self.last_epoch, self.last_up = epoch, up
        if up:
            self.rtt_us = rtt_us
            self.rtt_by_region.update({r.region: r.rtt_us for r in by_region})

    def get_rtt_us(self, region: str) -> int | None:
        """The latest decided median RTT measured from ``region``; None when never measured."""
        return self.rtt_by_region.get(region)


class LivenessEpoch(FlopAggregate):
    """Stream ``liveness:<epoch>``: the snapshot of probers, their reports, the close."""

    STREAM_TYPE: ClassVar[str] = LIVENESS_STREAM_TYPE

    class LivenessEpochOpened(FlopAggregate.Created):
        epoch: int
        probers: tuple[Prober, ...]

        def apply(self, epoch: LivenessEpoch) -> None:
            epoch.epoch, epoch.probers = self.epoch, self.probers
            epoch.reports, epoch.closed = {}, False

    class ReportRecorded(FlopAggregate.Event):
        validator_id: str
        nodes: tuple[str, ...]
        up: bytes
        rtt_us: tuple[int, ...]

        def apply(self, epoch: LivenessEpoch) -> None:
            epoch.reports[self.validator_id] = ProbeReport(self.nodes, self.up, self.rtt_us)

    class LivenessEpochClosed(FlopAggregate.Event):
        nodes: tuple[str, ...]
        decided: bytes
        up: bytes

        def apply(self, epoch: LivenessEpoch) -> None:
            epoch.closed = True

    epoch: int
    probers: tuple[Prober, ...]
    reports: dict[str, ProbeReport]
    closed: bool

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @staticmethod
    def stream_id(epoch: int) -> str:
        return f"{LIVENESS_STREAM_TYPE}:{epoch}"

    @classmethod
    def open(cls, epoch: int, *, probers: tuple[Prober, ...], now_ns: int) -> LivenessEpoch:
        return cls._create(
            cls.LivenessEpochOpened,
            id=cls.stream_id(epoch),
            epoch=epoch,
            probers=probers,
            timestamp=ns_to_datetime(now_ns),
        )

    def prober_ids(self) -> tuple[str, ...]:
        return tuple(p.validator_id for p in self.probers)

    def record_report(
        self, *, validator_id: str, report: ProbeReport, policy: LedgerPolicy, now_ns: int
    ) -> None:
        """Record ``validator_id``'s report; the caller checked each node is one of its own
        (``compute_probers``) and the report's shape (``check_report_shape``)."""
        self._require_open(now_ns, policy, closing=False)
        if validator_id in self.reports:
            raise InvalidTransition(
                f"{validator_id} already reported epoch {self.epoch}",
                code=RejectionCode.LIVENESS_ALREADY_REPORTED,
            )
        known = {n for r in self.reports.values() for n in r.nodes}
        if len(known | set(report.nodes)) > LIVENESS_EPOCH_NODES_MAX:
            raise Rejection(
                f"epoch {self.epoch} already decides {len(known)} nodes, at most "
                f"{LIVENESS_EPOCH_NODES_MAX}",
                code=RejectionCode.LIVENESS_EPOCH_FULL,
            )
        self._trigger(
            self.ReportRecorded,
            now_ns,
            validator_id=validator_id,
            nodes=report.nodes,
            up=report.up,
            rtt_us=report.rtt_us,
        )

    def close(
        self,
        *,
        outcomes: Sequence[NodeUptime],
        nodes: tuple[str, ...],
        now_ns: int,
        policy: LedgerPolicy,
    ) -> None:
        """Record the close: ``nodes`` (every reported node, sorted), and of them the decided
        ones with their outcome (``compute_epoch_outcomes``)."""
        self._require_open(now_ns, policy, closing=True)
        decided = {o.node_id: o.up for o in outcomes}
        self._trigger(
            self.LivenessEpochClosed,
            now_ns,
            nodes=nodes,
            decided=encode_bitmap([n in decided for n in nodes]),
            up=encode_bitmap([decided.get(n, False) for n in nodes]),
        )

    def reported_nodes(self) -> tuple[str, ...]:
        return tuple(sorted({n for r in self.reports.values() for n in r.nodes}))

    def view(self) -> dict[str, object]:
        return {
            "epoch": self.epoch,
            "probers": [msgspec.structs.asdict(p) for p in self.probers],
            "reported": sorted(self.reports),
            "nodes": list(self.reported_nodes()),
            "closed": self.closed,
            "version": self.version,
        }

    def _require_open(self, now_ns: int, policy: LedgerPolicy, *, closing: bool) -> None:
        if self.closed:
            raise InvalidTransition(
                f"liveness epoch {self.epoch} is closed", code=RejectionCode.LIVENESS_EPOCH_CLOSED
            )
        check_epoch_timing(self.epoch, now_ns=now_ns, policy=policy, closing=closing)


def compute_liveness_epoch(now_ns: int, policy: LedgerPolicy) -> int:
    """The liveness epoch ``now_ns`` falls in."""
    return now_ns // max(1, policy.liveness_epoch_ns)


def check_epoch_timing(epoch: int, *, now_ns: int, policy: LedgerPolicy, closing: bool) -> None:
    """Raise unless a report (``closing`` False) or a close of ``epoch`` may happen now."""
    current = compute_liveness_epoch(now_ns, policy)
    last_report = epoch + REPORT_EPOCHS_LATE_MAX
    if closing and current <= last_report:
        raise Rejection(
            f"liveness epoch {epoch} takes reports until epoch {last_report} ends (now {current})",
            code=RejectionCode.LIVENESS_EPOCH_NOT_OVER,
        )
    if not closing and not epoch <= current <= last_report:
        raise Rejection(
            f"liveness epoch {epoch} takes reports in epochs {epoch}..{last_report}, "
            f"not in {current}",
            code=RejectionCode.LIVENESS_REPORT_OUT_OF_EPOCH,
        )


def compute_prober_rank(epoch: int, node_id: str, validator_id: str) -> bytes:
    """``SHA-256(tag || u64 epoch || node || 0x00 || validator)``: lower ranks probe first."""
    message = PROBER_TAG + struct.pack(">Q", epoch) + node_id.encode() + b"\0"
    return hashlib.sha256(message + validator_id.encode()).digest()


def compute_probers(
    epoch: int,
    node_id: str,
    probers: Sequence[Prober],
    *,
    count: int,
    node_owner: str = "",
) -> tuple[str, ...]:
    """The ``count`` validators assigned to probe ``node_id`` in ``epoch``: the lowest ranks
    among ``probers`` (an epoch's snapshot), leaving out those owned by (or being) the node
    or its owner."""
    excluded = {node_id, node_owner} - {""}
    eligible = [
        p.validator_id
        for p in probers
        if p.validator_id not in excluded and p.owner not in excluded
    ]
    eligible.sort(key=lambda v: compute_prober_rank(epoch, node_id, v))
    return tuple(eligible[:count])


def compute_probe_duties(
    epoch: int,
    validator_id: str,
    nodes: Sequence[tuple[str, str]],
    probers: Sequence[Prober],
    *,
    count: int,
) -> tuple[str, ...]:
    """Which of ``nodes`` ((node id, owner) pairs) ``validator_id`` must probe in ``epoch``
    (what the validator daemon calls each epoch; ``probers`` is the epoch's snapshot, or the
    active validators now when the epoch has none yet)."""
    return tuple(
        node_id
        for node_id, owner in nodes
        if validator_id in compute_probers(epoch, node_id, probers, count=count, node_owner=owner)
    )


def compute_liveness_quorum(assigned: int) -> int:
    """Agreeing probers that decide: a majority of the assigned, and at least two."""
    return max(LIVENESS_QUORUM_MIN, assigned // 2 + 1)


def compute_node_uptime(
    node_id: str,
    assigned: Sequence[str],
    reports: dict[str, ProbeReport],
    probers: Sequence[Prober],
) -> NodeUptime | None:
    """What the assigned probers' reports decide for ``node_id``; None when undecided."""
    regions = {p.validator_id: p.region for p in probers}
    up_rtts: list[tuple[str, int]] = []
    down = 0
    for validator_id in assigned:
        report = reports.get(validator_id)
        if report is None or node_id not in report.nodes:
            continue
        index = report.nodes.index(node_id)
        if is_bit_set(report.up, index):
            up_rtts.append((regions.get(validator_id, ""), report.rtt_us[index]))
        else:
            down += 1
    quorum = compute_liveness_quorum(len(assigned))
    if len(up_rtts) >= quorum:
        by_region: dict[str, list[int]] = {}
        for region, rtt in up_rtts:
            if region:
                by_region.setdefault(region, []).append(rtt)
        return NodeUptime(
            node_id=node_id,
            up=True,
            rtt_us=compute_median([rtt for _, rtt in up_rtts]),
            rtt_by_region=tuple(
                RegionRtt(region, compute_median(rtts))
                for region, rtts in sorted(by_region.items())
            ),
        )
    if down >= quorum:
        return NodeUptime(node_id=node_id, up=False, rtt_us=0, rtt_by_region=())
    return None


def compute_median(values: Sequence[int]) -> int:
    """The lower median (an integer, so the audit recomputes it exactly); 0 for none."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def check_report_shape(report: ProbeReport) -> None:
    """Raise unless the report names distinct nodes with one bit and one RTT each."""
    if len(set(report.nodes)) != len(report.nodes):
        raise Rejection("a report names a node twice", code=RejectionCode.LIVENESS_REPORT_MALFORMED)
    if len(report.rtt_us) != len(report.nodes) or len(report.up) != compute_bitmap_bytes(
        len(report.nodes)
    ):
        raise Rejection(
            f"a report of {len(report.nodes)} nodes has {compute_bitmap_bytes(len(report.nodes))} "
            f"bytes of bits and one RTT per node (got {len(report.up)} and {len(report.rtt_us)})",
            code=RejectionCode.LIVENESS_REPORT_MALFORMED,
        )


def compute_bitmap_bytes(bits: int) -> int:
    return (bits + 7) // 8


def encode_bitmap(bits: Sequence[bool]) -> bytes:
    """Bit i is bit ``i % 8`` (least significant first) of byte ``i // 8``."""
    data = bytearray(compute_bitmap_bytes(len(bits)))
    for index, bit in enumerate(bits):
        if bit:
            data[index // 8] |= 1 << (index % 8)
    return bytes(data)


def is_bit_set(bitmap: bytes, index: int) -> bool:
    return index // 8 < len(bitmap) and bool(bitmap[index // 8] >> (index % 8) & 1)


def require_prober(validator_id: str, node_id: str, assigned: Sequence[str], epoch: int) -> None:
    """Raise unless ``validator_id`` is among ``node_id``'s assigned probers in ``epoch``."""
    if validator_id not in assigned:
        raise Unauthorized(
            f"{validator_id} is not assigned to probe {node_id} in liveness epoch {epoch}",
            code=RejectionCode.LIVENESS_NOT_ASSIGNED,
        )
