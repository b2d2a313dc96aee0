"""Routing a completion (issue 18, item 3): the nodes holding the model warm, region first,
then reputation in bands, then the measured time to first token; never past a node's
capacity; and the moving averages the router reads."""

from __future__ import annotations

from typing import Any

import pytest

from api.llm_router import (
    LlmRouter,
    NodeCandidate,
    NoNodeAvailable,
    get_warm_candidates,
    get_warm_models,
)
from api.metrics import ApiMetrics, NodeLatencies

MODEL = "smollm2-135m-instruct"


def node(
    node_id: str, *, region: str = "eu-west", reputation_bps: int = 5000, capacity: int = 2
) -> NodeCandidate:
    return NodeCandidate(
        node_id=node_id,
        region=region,
        reputation_bps=reputation_bps,
        endpoint=f"http://{node_id}.invalid",
        capacity=capacity,
    )


def view(
    node_id: str, *, state: str = "active", models: Any = None, endpoint: str = "http://n"
) -> dict[str, Any]:
    return {
        "id": node_id,
        "state": state,
        "region": "us-east",
        "reputation": {"score_bps": 6200, "as_of_ns": 0, "counts": {}},
        "warm_models": [{"model_id": MODEL, "capacity": 3}] if models is None else models,
        "llm_endpoint": endpoint,
    }


def unmeasured(node_id: str) -> float | None:
    return None


def test_candidates_are_active_nodes_holding_the_model_warm_with_an_endpoint() -> None:
    views = [
        view("warm"),
        view("inactive", state="jailed"),
        view("no-endpoint", endpoint=""),
        view("other-model", models=[{"model_id": "tiny-llama-1", "capacity": 1}]),
        view("cold", models=[]),
    ]
    assert get_warm_candidates(views, MODEL) == [
        NodeCandidate(
            node_id="warm", region="us-east", reputation_bps=6200, endpoint="http://n", capacity=3
        )
    ]
    assert get_warm_models([v for v in views if v["state"] == "active"]) == {MODEL, "tiny-llama-1"}


def test_region_first_then_its_group_then_elsewhere() -> None:
    router = LlmRouter()
    nodes = [
        node("far", region="us-east", reputation_bps=9000),
        node("group", region="eu-north", reputation_bps=8000),
        node("same", region="eu-west", reputation_bps=2000),
    ]
    chosen = [router.choose(MODEL, nodes, region="eu-west", ttft_s=unmeasured) for _ in range(6)]
    assert [lease.node.node_id for lease in chosen] == [
        "same",
        "same",
        "group",
        "group",
        "far",
        "far",
    ]
    with pytest.raises(NoNodeAvailable) as busy:
        router.choose(MODEL, nodes, region="eu-west", ttft_s=unmeasured)
    assert busy.value.busy


def test_reputation_in_bands_then_the_measured_time_to_first_token() -> None:
    router = LlmRouter()
    latencies = {"slow": 2.0, "fast": 0.1, "best-rep": 5.0}
    nodes = [
        node("slow", reputation_bps=5400, capacity=1),
        node("fast", reputation_bps=5100, capacity=1),  # same band (5000..5499) as "slow"
        node("best-rep", reputation_bps=7000, capacity=1),
        node("new", reputation_bps=4000, capacity=1),  # never measured, but a lower band
    ]
    order = [
        router.choose(MODEL, nodes, region=None, ttft_s=latencies.get).node.node_id for _ in nodes
    ]
    assert order == ["best-rep", "fast", "slow", "new"]


def test_a_never_measured_node_is_tried_before_a_measured_one_of_its_band() -> None:
    router = LlmRouter()
    nodes = [node("measured"), node("new")]
    lease = router.choose(MODEL, nodes, region=None, ttft_s={"measured": 0.05}.get)
    assert lease.node.node_id == "new"


def test_capacity_is_counted_until_the_lease_is_released_once() -> None:
    router = LlmRouter()
    only = [node("only", capacity=1)]
    lease = router.choose(MODEL, only, region=None, ttft_s=unmeasured)
    assert router.get_in_flight("only") == 1
    with pytest.raises(NoNodeAvailable):
        router.choose(MODEL, only, region=None, ttft_s=unmeasured)
    lease.release()
    lease.release()  # a second release counts nothing out
    assert router.get_in_flight("only") == 0
    assert router.choose(MODEL, only, region=None, ttft_s=unmeasured).node.node_id == "only"


def test_no_candidate_or_only_excluded_ones_is_not_busy() -> None:
    router = LlmRouter()
    with pytest.raises(NoNodeAvailable) as none:
        router.choose(MODEL, [], region=None, ttft_s=unmeasured)
    assert not none.value.busy
    with pytest.raises(NoNodeAvailable) as failed:
        router.choose(MODEL, [node("a")], region=None, ttft_s=unmeasured, excluded={"a"})
    assert not failed.value.busy


def test_latencies_are_moving_averages_per_node_and_bounded() -> None:
    latencies = NodeLatencies(nodes_max=2)
    latencies.observe("a", ttft_s=1.0, tokens_per_s=10.0)
    latencies.observe("a", ttft_s=2.0, tokens_per_s=None)
    assert latencies.get_ttft_s("a") == pytest.approx(1.2)  # 1.0 + 0.2 * (2.0 - 1.0)
    assert latencies.get_tokens_per_s("a") == 10.0
    latencies.observe("b", ttft_s=0.5, tokens_per_s=None)
    latencies.observe("c", ttft_s=0.5, tokens_per_s=None)  # "a" is the longest unmeasured
    assert latencies.get_ttft_s("a") is None and latencies.get_ttft_s("b") == 0.5


def test_completion_metrics_are_exported_per_node() -> None:
    metrics = ApiMetrics()
    metrics.observe_completion(node_id="n1", model=MODEL, ttft_s=0.3, tokens_per_s=25.0)
    text = metrics.render().decode()
    assert (
        'flop_llm_time_to_first_token_seconds_count{model="smollm2-135m-instruct",node_id="n1"} 1.0'
        in text
    )
    assert 'flop_llm_tokens_per_second_sum{model="smollm2-135m-instruct",node_id="n1"} 25.0' in text
    assert metrics.node_latencies.get_ttft_s("n1") == 0.3
