"""The live dashboard: ``/`` (static HTML, JS and CSS from ``api/static``) and ``/v1/stats``.

``/v1/stats`` is one summary read for the dashboard: nodes by region (GPU class, stake,
reputation, trust), validators, the job pipeline by state, verification outcomes, ledger
totals, the log head with its Solana anchors and settlements per time bucket. Nodes, jobs
and validators come from the read model; the rest from ``LogStats``, which folds the global log
incrementally (each request reads only the records appended since the last one). The page
refreshes on the SSE feed (``/v1/events/stream``). Trust is the share of a node's decided
jobs that validators verified (None before any decision); reputation is the node's score
(``domain.reputation``) as of its last record, as the read model's view holds it.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.static_files import create_static_files_router

from api.controllers.common import LIST_ERRORS
from api.state import Deps
from domain.ledger import BOUNDARY_ACCOUNT
from domain.ports import READ_ALL_LIMIT_MAX, EventStore
from domain.records import Record

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
DASHBOARD_HTML = "dashboard.html"
STATE_KEY = "dashboard_log_stats"
RECENT_EVENTS_MAX = 30
ANCHORS_SHOWN_MAX = 10
THROUGHPUT_BUCKET_S = 10
THROUGHPUT_BUCKETS = 30
VIEWS_MAX = 10_000
US_PER_S = 1_000_000
THROUGHPUT_WINDOW_US = (THROUGHPUT_BUCKETS + 1) * THROUGHPUT_BUCKET_S * US_PER_S
READ_BATCHES_PER_REQUEST_MAX = 50


class NodeStats(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    region: str
    gpu_class: str
    state: str
    stake: int
    price: int
    slashed_total: int
    jobs_verified: int
    jobs_rejected: int
    trust: float | None
    reputation_bps: int | None = None
    """The node's reputation score as of its last record (``domain.reputation``)."""


class ValidatorStats(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    stake: int
    state: str


class VerificationStats(msgspec.Struct, frozen=True, kw_only=True):
    verdicts_passed: int
    verdicts_failed: int
    jobs_verified: int
    jobs_rejected: int
    attestations_verified: int
    attestations_rejected: int


class LedgerStats(msgspec.Struct, frozen=True, kw_only=True):
    deposited: int
    withdrawn: int
    escrow_held: int
    paid_to_providers: int
    paid_to_validators: int
    paid_to_treasury: int
    refunded: int
    slashed: int


class AnchorStats(msgspec.Struct, frozen=True, kw_only=True):
    size: int
    root: str
    chain_signature: str
    slot: int


class LogHeadStats(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    sealed_size: int
    sealed_root: str
    tree_heads: int
    anchors: list[AnchorStats]


class RecentEvent(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    stream_type: str
    stream_id: str
    event_type: str
    at_us: int


class ThroughputBucket(msgspec.Struct, frozen=True, kw_only=True):
    start_us: int
    settled: int


class StatsView(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the dashboard shows, as of ``log.position``."""

    nodes: list[NodeStats]
    validators: list[ValidatorStats]
    jobs_by_state: dict[str, int]
    jobs_by_kind: dict[str, int]
    jobs_total: int
    verification: VerificationStats
    ledger: LedgerStats
    log: LogHeadStats
    recent_events: list[RecentEvent]
    throughput: list[ThroughputBucket]
    throughput_bucket_s: int


class LogStats:
    """Counters folded from the global log, one record at a time, from position 1."""

    def __init__(self) -> None:
        self.position = 0
        self.counts: dict[str, int] = {}
        self.amounts: dict[str, int] = {}
        self.holds: dict[str, int] = {}
        # The node of each job still in flight (dropped at its decision or expiry).
        self.job_node: dict[str, str] = {}
        self.node_decisions: dict[str, list[int]] = {}
        self.settled_at_us: list[int] = []
        self.last_head: tuple[int, bytes] = (0, b"")
        self.heads_count = 0
        self.anchors: list[AnchorStats] = []
        self.recent: list[RecentEvent] = []
        self._lock = asyncio.Lock()

    async def catch_up(self, store: EventStore) -> int:
        """Fold the records appended since the last call (bounded per request)."""
        async with self._lock:
            for _ in range(READ_BATCHES_PER_REQUEST_MAX):
                batch = await store.read_all(self.position + 1, READ_ALL_LIMIT_MAX)
                for record in batch:
                    self._apply(record)
                    self.position = record.position
                if len(batch) < READ_ALL_LIMIT_MAX:
                    break
            return self.position

    def _apply(self, record: Record) -> None:
        data: dict[str, Any] = msgspec.json.decode(record.data) if record.data else {}
        kind = record.event_type
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.recent.append(
            RecentEvent(
                position=record.position,
                stream_type=record.stream_type,
                stream_id=record.stream_id,
                event_type=kind,
                at_us=int(data.get("at_us", 0)),
            )
        )
        del self.recent[:-RECENT_EVENTS_MAX]
        if record.stream_type == "account":
            self._apply_account(record.stream_id, kind, data)
        elif kind == "JobClaimed":
            self.job_node[record.stream_id] = str(data["node_id"])
        elif kind in ("JobVerified", "JobRejected"):
            node = self.job_node.pop(record.stream_id, "")
            decisions = self.node_decisions.setdefault(node, [0, 0])
            decisions[0 if kind == "JobVerified" else 1] += 1
        elif kind in ("JobExpired", "JobRefunded", "JobCancelled"):
            self.job_node.pop(record.stream_id, None)
            if kind in ("JobRefunded", "JobCancelled"):  # escrow back to the consumer either way
                self.amounts["refunded"] = self.amounts.get("refunded", 0) + int(data["amount"])
        elif kind == "JobSettled":
            self._add_settlement(int(data.get("at_us", 0)))
            for payout in data.get("payouts", []):
                key = f"paid_{payout.get('role', 'other')}"
                self.amounts[key] = self.amounts.get(key, 0) + int(payout.get("amount", 0))
        elif kind in ("VerdictRecorded", "AttestationVerdictRecorded"):
            outcome = "passed" if data.get("verdict", {}).get("passed") else "failed"
            key = f"verdicts_{outcome}"
            self.counts[key] = self.counts.get(key, 0) + 1
        elif kind == "NodeSlashed":
            self.amounts["slashed"] = self.amounts.get("slashed", 0) + int(data["amount"])
        elif kind == "TreeHeadSigned":
            self.last_head = (int(data["size"]), _decode_bytes(data["root"]))
            self.heads_count += 1
        elif kind == "LogAnchored":
            anchor = AnchorStats(
                size=int(data["size"]),
                root=_decode_bytes(data["root"]).hex(),
                chain_signature=str(data["chain_signature"]),
                slot=int(data["slot"]),
            )
            self.anchors.append(anchor)
            del self.anchors[:-ANCHORS_SHOWN_MAX]

    def _apply_account(self, account_id: str, kind: str, data: dict[str, Any]) -> None:
        if not account_id.startswith("user:"):
            return
        counterparty = str(data.get("counterparty", ""))
        if counterparty == BOUNDARY_ACCOUNT and kind in ("Credited", "Debited"):
            key = "deposited" if kind == "Credited" else "withdrawn"
            self.amounts[key] = self.amounts.get(key, 0) + int(data["amount"])
        elif kind == "HoldPlaced" and counterparty.startswith("escrow:"):
            self.holds[str(data["transfer_id"])] = int(data["amount"])
        elif kind in ("HoldPosted", "HoldVoided"):
            self.holds.pop(str(data.get("transfer_id", "")), None)

    def _add_settlement(self, at_us: int) -> None:
        """Keep the settlement times of the chart's window only (older ones are never shown)."""
        self.settled_at_us.append(at_us)
        oldest_us = max(self.settled_at_us) - THROUGHPUT_WINDOW_US
        if self.settled_at_us[0] < oldest_us:
            self.settled_at_us = [t for t in self.settled_at_us if t >= oldest_us]

    def compute_throughput(self, now_us: int) -> list[ThroughputBucket]:
        """Settlements per bucket over the last ``THROUGHPUT_BUCKETS`` buckets, oldest first."""
        width = THROUGHPUT_BUCKET_S * US_PER_S
        last = now_us // width
        first = last - THROUGHPUT_BUCKETS + 1
        counts = [0] * THROUGHPUT_BUCKETS
        for at_us in self.settled_at_us:
            index = at_us // width - first
            if 0 <= index < THROUGHPUT_BUCKETS:
                counts[index] += 1
        return [
            ThroughputBucket(start_us=(first + i) * width, settled=count)
            for i, count in enumerate(counts)
        ]


class DashboardController(Controller):
    """``/`` (the page) and ``/v1/stats`` (its summary read)."""

    tags = ("dashboard",)

    @get("/", include_in_schema=False, media_type="text/html")
    async def index(self) -> Response[bytes]:
        """The dashboard page (plain HTML; its JS and CSS are under ``/static``)."""
        html = await asyncio.to_thread((STATIC_DIR / DASHBOARD_HTML).read_bytes)
        return Response(html, media_type="text/html", headers={"cache-control": "no-cache"})

    @get("/v1/stats", operation_id="getStats", responses=LIST_ERRORS)
    async def stats(self, deps: Deps, state: State) -> StatsView:
        """A summary of the whole network for the dashboard (see the module docstring)."""
        log_stats: LogStats = state.setdefault(STATE_KEY, LogStats())
        await log_stats.catch_up(deps.store)
        nodes, _ = await deps.read_model.list("node", {}, offset=0, limit=VIEWS_MAX)
        _, total = await deps.read_model.list("job", {}, offset=0, limit=0)
        validators, _ = await deps.read_model.list("validator", {}, offset=0, limit=VIEWS_MAX)
        return StatsView(
            nodes=[_node_stats(view, log_stats) for view in nodes],
            validators=[
                ValidatorStats(
                    id=str(v["id"]), stake=int(v.get("stake", 0)), state=str(v.get("state", ""))
                )
                for v in validators
            ],
            jobs_by_state=deps.read_model.count_by("job", "state"),
            jobs_by_kind=deps.read_model.count_by("job", "workload.kind"),
            jobs_total=total,
            verification=_verification(log_stats),
            ledger=_ledger(log_stats),
            log=_log_head(log_stats),
            recent_events=list(reversed(log_stats.recent)),
            throughput=log_stats.compute_throughput(deps.clock_ns() // 1_000),
            throughput_bucket_s=THROUGHPUT_BUCKET_S,
        )


dashboard_static_files = create_static_files_router(
    path="/static", directories=[STATIC_DIR], include_in_schema=False, name="dashboard_static"
)
"""``/static/<file>``: the dashboard's JS and CSS."""


def _node_stats(view: dict[str, Any], log_stats: LogStats) -> NodeStats:
    verified, rejected = log_stats.node_decisions.get(str(view["id"]), [0, 0])
    decided = verified + rejected
    return NodeStats(
        id=str(view["id"]),
        region=str(view["region"]),
        gpu_class=str(view["gpu_class"]),
        state=str(view["state"]),
        stake=int(view["stake"]),
        price=int(view["price"]),
        slashed_total=int(view.get("slashed_total", 0)),
        jobs_verified=verified,
        jobs_rejected=rejected,
        trust=round(verified / decided, 4) if decided else None,
        reputation_bps=view.get("reputation", {}).get("score_bps"),
    )


def _verification(log_stats: LogStats) -> VerificationStats:
    counts = log_stats.counts
    return VerificationStats(
        verdicts_passed=counts.get("verdicts_passed", 0),
        verdicts_failed=counts.get("verdicts_failed", 0),
        jobs_verified=counts.get("JobVerified", 0),
        jobs_rejected=counts.get("JobRejected", 0),
        attestations_verified=counts.get("AttestationVerified", 0),
        attestations_rejected=counts.get("AttestationRejected", 0),
    )


def _ledger(log_stats: LogStats) -> LedgerStats:
    amounts = log_stats.amounts
    return LedgerStats(
        deposited=amounts.get("deposited", 0),
        withdrawn=amounts.get("withdrawn", 0),
        escrow_held=sum(log_stats.holds.values()),
        paid_to_providers=amounts.get("paid_provider", 0),
        paid_to_validators=amounts.get("paid_validator", 0),
        paid_to_treasury=amounts.get("paid_treasury", 0),
        refunded=amounts.get("refunded", 0),
        slashed=amounts.get("slashed", 0),
    )


def _log_head(log_stats: LogStats) -> LogHeadStats:
    size, root = log_stats.last_head
    return LogHeadStats(
        position=log_stats.position,
        sealed_size=size,
        sealed_root=root.hex(),
        tree_heads=log_stats.heads_count,
        anchors=list(reversed(log_stats.anchors)),
    )


def _decode_bytes(value: Any) -> bytes:
    """Event payload bytes (base64 in the canonical record encoding)."""
    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(value)
