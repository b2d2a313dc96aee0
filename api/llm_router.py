"""Which node serves a completion (issue 18, item 3).

Candidates are the active nodes whose last ``node.advertise_models`` holds the model warm,
with the endpoint they advertised (``get_warm_candidates``, from the read model's node
views). They are ranked by the network's rules (``compute_route_order``):

1. region: the asked region (``X-Flop-Region`` or the body's ``region``), then its group,
   then elsewhere (``domain.scheduling.compute_region_tier``, the tiers jobs are offered by);
   no region asked ranks every node alike;
2. reputation, in bands of ``REPUTATION_BAND_BPS`` (a few points of score say nothing; a band
   does), higher first;
3. the time to first token this process measured (``api.metrics.NodeLatencies``), lower
   first; a node never measured counts as the fastest, so a new node gets its first calls;
4. fewer completions in flight through this process, then the node id (a fixed order).

``LlmRouter`` keeps the completions in flight per node and never sends a node more than the
capacity it advertised. The count is this process's: replicas of the API each keep their
own, so a node behind N replicas may see up to N times its capacity at once; it refuses what
it cannot take (``wire.ErrorEvent``) and the router goes on to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from api.read_model import ReadModel
from domain.node import ACTIVE, Node
from domain.scheduling import SAME_REGION, compute_region_tier

REPUTATION_BAND_BPS = 500
NODE_PAGE = 1_000
NODES_SCANNED_MAX = 10_000
"""Active nodes read to route one completion (a named bound; the network is far smaller)."""


@dataclass(frozen=True, slots=True)
class NodeCandidate:
    """An active node holding the model warm: where it listens and how many it takes."""

    node_id: str
    region: str
    reputation_bps: int
    endpoint: str
    capacity: int


class NoNodeAvailable(Exception):
    """No node can take the completion now: none holds the model warm (``busy`` false), or
    every one that does is at its capacity (``busy`` true)."""

    def __init__(self, model_id: str, *, busy: bool) -> None:
        what = "every node holding it warm is busy" if busy else "no active node holds it warm"
        super().__init__(f"model {model_id}: {what}")
        self.model_id = model_id
        self.busy = busy


async def read_active_node_views(read_model: ReadModel) -> list[Mapping[str, Any]]:
    """The views of the active nodes (at most ``NODES_SCANNED_MAX``), caught up now."""
    views: list[Mapping[str, Any]] = []
    while len(views) < NODES_SCANNED_MAX:
        page, total = await read_model.list(
            Node.STREAM_TYPE, {"state": ACTIVE}, offset=len(views), limit=NODE_PAGE
        )
        views.extend(page)
        if not page or len(views) >= total:
            break
    return views


def get_warm_models(views: Collection[Mapping[str, Any]]) -> set[str]:
    """The model ids some active node holds warm and says where to reach it."""
    return {
        entry["model_id"]
        for view in views
        if view.get("llm_endpoint")
        for entry in view.get("warm_models") or ()
    }


def get_warm_candidates(views: Collection[Mapping[str, Any]], model_id: str) -> list[NodeCandidate]:
    """The nodes among ``views`` (active nodes) holding ``model_id`` warm, with an endpoint."""
    candidates = []
    for view in views:
        endpoint = view.get("llm_endpoint") or ""
        if view.get("state") != ACTIVE or not endpoint:
            continue
        for entry in view.get("warm_models") or ():
            if entry["model_id"] == model_id:
                reputation = view.get("reputation") or {}
                candidates.append(
                    NodeCandidate(
                        node_id=view["id"],
                        region=view.get("region", ""),
                        reputation_bps=int(reputation.get("score_bps", 0)),
                        endpoint=endpoint,
                        capacity=int(entry["capacity"]),
                    )
                )
    return candidates


def compute_route_order(
    candidates: Collection[NodeCandidate],
    *,
    region: str | None,
    ttft_s: Callable[[str], float | None],
    in_flight: Mapping[str, int],
) -> list[NodeCandidate]:
    """``candidates`` best first, by the rules of the module docstring."""

    def rank(node: NodeCandidate) -> tuple[int, int, float, int, str]:
        tier = compute_region_tier(region, node.region) if region else SAME_REGION
        measured = ttft_s(node.node_id)
        return (
            tier,
            -(node.reputation_bps // REPUTATION_BAND_BPS),
            0.0 if measured is None else measured,
            in_flight.get(node.node_id, 0),
            node.node_id,
        )

    return sorted(candidates, key=rank)


class NodeLease:
    """One completion in flight to ``node``, counted from the choice until ``release``."""

    def __init__(self, router: LlmRouter, node: NodeCandidate) -> None:
        self.node = node
        self._router: LlmRouter | None = router

    def release(self) -> None:
        """Count the completion out (once; later calls do nothing)."""
        if self._router is not None:
            self._router._count_out(self.node.node_id)
            self._router = None


class LlmRouter:
    """Picks nodes and counts the completions in flight to each (this process's)."""

    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}

    def get_in_flight(self, node_id: str) -> int:
        return self._in_flight.get(node_id, 0)

    def choose(
        self,
        model_id: str,
        candidates: Collection[NodeCandidate],
        *,
        region: str | None,
        ttft_s: Callable[[str], float | None],
        excluded: Collection[str] = (),
    ) -> NodeLease:
        """The best candidate below its capacity and not ``excluded`` (nodes that failed
        this request already), counted in flight at once (no other request can take its
        last slot meanwhile); NoNodeAvailable when there is none."""
        allowed = [c for c in candidates if c.node_id not in excluded]
        if not allowed:
            raise NoNodeAvailable(model_id, busy=False)
        ranked = compute_route_order(
            allowed, region=region, ttft_s=ttft_s, in_flight=self._in_flight
        )
        for node in ranked:
            if self.get_in_flight(node.node_id) < node.capacity:
                self._in_flight[node.node_id] = self.get_in_flight(node.node_id) + 1
                return NodeLease(self, node)
        raise NoNodeAvailable(model_id, busy=True)

    def _count_out(self, node_id: str) -> None:
        left = self._in_flight[node_id] - 1
        if left:
            self._in_flight[node_id] = left
        else:
            del self._in_flight[node_id]
