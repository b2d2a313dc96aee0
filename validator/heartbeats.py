"""The last verified heartbeat of every node, as a validator sees them (issue 15).

Heartbeats are signed by their node (``adapters.nats.signals``) and the subscription drops
unsigned and forged ones; the tracker also checks each signature itself (a beat may come from
elsewhere than the subscription) and keeps, per node, the newest beat by its signed
``sent_at_ns``, so a replayed older beat changes nothing. A heartbeat only says a node was
alive when it sent it: uptime on the ledger comes from probes (``domain.liveness``), not from
heartbeats, which keeps the log small; the daemon may use the tracker to choose whom to
probe first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from adapters.nats.signals import NodeHeartbeat, is_heartbeat_signed

ClockNs = Callable[[], int]
HEARTBEAT_NODES_MAX = 65_536
"""Nodes tracked at most (the oldest-heard node is forgotten past it)."""


@dataclass(frozen=True)
class SeenBeat:
    """A verified heartbeat and when this validator received it (its own clock)."""

    beat: NodeHeartbeat
    received_ns: int


@dataclass
class HeartbeatTracker:
    """Per node, the newest heartbeat whose signature verified."""

    nodes_max: int = HEARTBEAT_NODES_MAX
    _last: dict[str, SeenBeat] = field(default_factory=dict)
    dropped: int = 0
    """Beats refused: unsigned, wrongly signed, or older than the one kept."""

    def observe(self, beat: NodeHeartbeat, *, received_ns: int) -> bool:
        """Keep ``beat`` if it is signed by its node and newer than the node's last; returns
        whether it was kept."""
        last = self._last.get(beat.node_id)
        if not is_heartbeat_signed(beat) or (
            last is not None and beat.sent_at_ns <= last.beat.sent_at_ns
        ):
            self.dropped += 1
            return False
        self._last.pop(beat.node_id, None)
        self._last[beat.node_id] = SeenBeat(beat, received_ns)
        while len(self._last) > self.nodes_max:
            del self._last[next(iter(self._last))]
        return True

    def get_last(self, node_id: str) -> SeenBeat | None:
        return self._last.get(node_id)

    def is_alive(self, node_id: str, *, now_ns: int, max_age_ns: int) -> bool:
        """Whether a verified beat of ``node_id`` arrived within ``max_age_ns`` of ``now_ns``
        (by this validator's clock, not the node's)."""
        seen = self._last.get(node_id)
        return seen is not None and now_ns - seen.received_ns <= max_age_ns

    async def follow(self, beats: AsyncIterator[NodeHeartbeat], clock_ns: ClockNs) -> None:
        """Observe every beat of ``beats`` (``subscribe_heartbeats``) until it ends."""
        async for beat in beats:
            self.observe(beat, received_ns=clock_ns())
