"""What a validator does about nodes between rounds (rules v3, issue 15): liveness probes
and re-challenges at random times.

*Liveness.* In each epoch (``domain.liveness``) the validator pings the nodes the protocol
assigns it (``compute_probe_duties``: nobody chooses whom to probe), at a random moment of
the epoch's first half, and reports them once (``liveness.report``: an up bitmap and the
RTTs it measured on its own clock). Epochs that ended one epoch ago and were not closed yet
are closed by whichever validator gets there first (``liveness.close``; the others are
refused, which is fine).

*Re-challenges.* An attestation lasts ``attestation_ttl_ns``, but a node that knew when it
would be probed could rent a GPU for those minutes only. So each validator re-challenges
every active, attested node at exponentially distributed random times (mean
``RECHALLENGE_MEAN_TTLS`` times the attestation lifetime per validator); the ledger spaces
challenges of one node by ``rechallenge_interval_min_ns`` whoever asks, and the validators
who judge a re-challenge are drawn by the beacon, not chosen by the one who asked.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Protocol

import structlog

from domain.commands import CloseLiveness, Command, RechallengeNode, ReportLiveness
from domain.liveness import (
    LivenessEpoch,
    compute_liveness_epoch,
    compute_probe_duties,
    encode_bitmap,
)
from domain.liveness import (
    Prober as EpochProber,
)
from domain.node import ACTIVE, Node
from domain.policy import RULES_V3, LedgerPolicy
from domain.validators import Validator
from validator.refusal import CommandRefused

PINGS_IN_FLIGHT_MAX = 16
REPORT_WINDOW_SHARE = 2
"""Report at a random moment of the first 1/2 of the epoch (the rest is slack for retries)."""
RECHALLENGE_MEAN_TTLS = 1.0
"""Mean time between one validator's re-challenges of one node, in attestation lifetimes."""
NS_PER_US = 1_000

_log = structlog.get_logger("flopledger.validator")


class Pinger(Protocol):
    async def ping(self, node_id: str) -> int | None: ...


class Sender(Protocol):
    async def send(self, command: Command) -> None: ...


class WatchedState(Protocol):
    """What the watch reads of the validator's view of the ledger."""

    @property
    def nodes(self) -> Sequence[Node]: ...

    @property
    def validators(self) -> Sequence[Validator]: ...

    def get_liveness_epoch(self, epoch: int) -> LivenessEpoch | None: ...

    def current_policy(self) -> LedgerPolicy: ...


class NodeWatch:
    """One validator's liveness reports and re-challenges (module docstring)."""

    def __init__(
        self,
        validator_id: str,
        *,
        state: WatchedState,
        pinger: Pinger,
        ledger: Sender,
        rng: random.Random | None = None,
    ) -> None:
        self.validator_id = validator_id
        self.state = state
        self.pinger = pinger
        self.ledger = ledger
        self.rng = rng or random.Random()
        self._report_at: dict[int, int] = {}
        self._reported: set[int] = set()
        self._closed: set[int] = set()
        self._rechallenge_at: dict[str, int] = {}
        self.reports_sent = 0
        self.rechallenges_sent = 0

    async def tick(self, now_ns: int) -> None:
        """Report, close and re-challenge whatever is due at ``now_ns`` (rules v3 only)."""
        policy = self.state.current_policy()
        if policy.rules_version < RULES_V3:
            return
        await self._report_liveness(now_ns, policy)
        await self._close_liveness(now_ns, policy)
        await self._rechallenge(now_ns, policy)

    async def _report_liveness(self, now_ns: int, policy: LedgerPolicy) -> None:
        epoch = compute_liveness_epoch(now_ns, policy)
        if epoch in self._reported:
            return
        start = epoch * policy.liveness_epoch_ns
        report_at = self._report_at.setdefault(
            epoch,
            start + self.rng.randrange(max(1, policy.liveness_epoch_ns // REPORT_WINDOW_SHARE)),
        )
        if now_ns < report_at:
            return
        recorded = self.state.get_liveness_epoch(epoch)
        if recorded is not None and self.validator_id in recorded.reports:
            self._reported.add(epoch)
            return
        probers = recorded.probers if recorded is not None else self._probers_now(policy)
        nodes = [(n.id, n.owner) for n in self.state.nodes if n.state == ACTIVE]
        mine = compute_probe_duties(
            epoch, self.validator_id, nodes, probers, count=policy.liveness_probers
        )
        self._reported.add(epoch)
        self._report_at.pop(epoch - 1, None)
        if not mine:
            return
        slots = asyncio.Semaphore(PINGS_IN_FLIGHT_MAX)

        async def ping(node_id: str) -> int | None:
            async with slots:
                return await self.pinger.ping(node_id)

        rtts = await asyncio.gather(*(ping(node_id) for node_id in mine))
        command = ReportLiveness(
            epoch=epoch,
            nodes=list(mine),
            up=encode_bitmap([rtt is not None for rtt in rtts]),
            rtt_us=[0 if rtt is None else max(0, rtt // NS_PER_US) for rtt in rtts],
        )
        await self._send(command, "liveness_reported", epoch=epoch, nodes=len(mine))
        self.reports_sent += 1

    async def _close_liveness(self, now_ns: int, policy: LedgerPolicy) -> None:
        current = compute_liveness_epoch(now_ns, policy)
        for epoch in (current - 2, current - 3):
            recorded = self.state.get_liveness_epoch(epoch)
            if epoch < 0 or epoch in self._closed or recorded is None or recorded.closed:
                continue
            self._closed.add(epoch)
            await self._send(CloseLiveness(epoch=epoch), "liveness_closed", epoch=epoch)

    async def _rechallenge(self, now_ns: int, policy: LedgerPolicy) -> None:
        mean_ns = max(1, int(policy.attestation_ttl_ns * RECHALLENGE_MEAN_TTLS))
        for node in self.state.nodes:
            if node.state != ACTIVE or not node.attestation_tier or node.challenge is not None:
                self._rechallenge_at.pop(node.id, None)
                continue
            due = self._rechallenge_at.setdefault(
                node.id, now_ns + int(self.rng.expovariate(1 / mean_ns))
            )
            too_soon = now_ns < node.last_challenged_ns + policy.rechallenge_interval_min_ns
            if now_ns < due or too_soon:
                continue
            del self._rechallenge_at[node.id]
            await self._send(RechallengeNode(node_id=node.id), "node_rechallenged", node=node.id)
            self.rechallenges_sent += 1

    def _probers_now(self, policy: LedgerPolicy) -> tuple[EpochProber, ...]:
        return tuple(
            EpochProber(v.id, v.owner, v.region)
            for v in self.state.validators
            if v.is_active(policy)
        )

    async def _send(self, command: Command, event: str, **fields: object) -> None:
        try:
            await self.ledger.send(command)
        except CommandRefused as refused:
            _log.info(f"{event}_refused", code=refused.code, **fields)
            return
        _log.info(event, **fields)
