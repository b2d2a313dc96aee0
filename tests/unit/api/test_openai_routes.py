"""The OpenAI-compatible routes end to end in process (issue 18, items 1 and 3): a bearer key,
the ledger's completion commands, fake nodes behind the link (``tests.openai_fakes``).

Each test reads the outcome off the ledger: the completion's record, the consumer's account
and the key's spent amount; the usage a client is told equals the record's committed counts
(the fake nodes' done events claim others)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from adapters.ledger_api.wire import CompletionRecordView
from domain import commands as c
from domain.api_keys import compute_api_key_hash, compute_api_key_id
from domain.ledger import user_account
from proofs.llm_request import LlmRequest, compute_request_digest
from tests.openai_fakes import (
    CONSUMER,
    CONSUMER_FUNDS,
    DONE_COUNT,
    MODEL_ID,
    OpenAINet,
    start_openai_net,
)
from tests.unit.api.conftest import SECOND_NS, ApiEnv

CHAT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Capital of France?"}]}
ANSWER = "The capital is Paris."


@pytest.fixture
def net(api_env: ApiEnv) -> OpenAINet:
    return start_openai_net(api_env)


def record(net: OpenAINet, completion_id: str) -> CompletionRecordView:
    return net.env.client().get_completion_record(completion_id)


def available(net: OpenAINet) -> int:
    return net.env.client().get_balance(user_account(CONSUMER.id)).available


def spent(net: OpenAINet) -> int:
    return net.env.client().get_api_key(net.key_id).spent


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) of each server-sent event."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


def assert_openai_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return dict(body["error"])


def test_models_lists_the_registered_models_an_active_node_holds_warm(net: OpenAINet) -> None:
    http = net.env.http
    assert http.get("/v1/models").json() == {"object": "list", "data": []}
    net.add_node("a")
    listed = http.get("/v1/models").json()
    assert [m["id"] for m in listed["data"]] == [MODEL_ID]
    assert listed["data"][0]["object"] == "model"
    assert listed["data"][0]["owned_by"] == net.env.operator.id
    assert http.get(f"/v1/models/{MODEL_ID}").json()["id"] == MODEL_ID
    assert_openai_error(http.get("/v1/models/gpt-4o"), 404, "model_not_found")


def test_a_chat_completion_is_settled_on_the_ledger_and_its_usage_is_the_records(
    net: OpenAINet,
) -> None:
    node = net.add_node("a")
    response = net.env.http.post(
        "/v1/chat/completions", json={**CHAT, "max_tokens": 8, "temperature": 0}, headers=net.bearer
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"content": ANSWER, "role": "assistant"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    completion = record(net, body["id"])
    assert response.headers["x-flop-completion-id"] == body["id"]
    assert (completion.state, completion.node_id, completion.key_id) == (
        "cleared",  # settled at its commit; no validator here to check it
        node.identity.id,
        net.key_id,
    )
    assert (completion.prompt_tokens, completion.completion_tokens) == (7, 4)
    assert completion.charge == 7 * 1 + 4 * 2
    assert available(net) == CONSUMER_FUNDS - completion.charge
    assert spent(net) == completion.charge
    [call] = node.calls
    assert call.completion_id == body["id"]
    assert call.request.messages is not None and call.request.max_tokens == 8
    assert compute_request_digest(call.request).hex() == completion.request_digest
    assert completion.greedy and completion.max_tokens == 8


def test_a_streamed_chat_ends_with_the_ledgers_usage_and_done(net: OpenAINet) -> None:
    net.add_node("a")
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = net.env.http.post("/v1/chat/completions", json=body, headers=net.bearer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == (None, "[DONE]")
    chunks = [msgspec.json.decode(data) for name, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL_ID for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == ANSWER
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert DONE_COUNT not in chunks[-1]["usage"].values()
    # settled at its commit; no validator here to check it: cleared
    assert record(net, chunks[0]["id"]).state == "cleared"


def test_a_streamed_text_completion_without_usage_asked(net: OpenAINet) -> None:
    net.add_node("a")
    body = {"model": MODEL_ID, "prompt": "The capital of France", "stream": True}
    response = net.env.http.post("/v1/completions", json=body, headers=net.bearer)
    events = sse_events(response.text)
    assert events[-1] == (None, "[DONE]")
    chunks = [msgspec.json.decode(data) for _, data in events[:-1]]
    assert all(c["object"] == "text_completion" and c["usage"] is None for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == ANSWER
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    request = net.link.nodes["http://a.node.test:9300"].calls[0].request
    assert isinstance(request, LlmRequest) and request.prompt == "The capital of France"
    assert request.max_tokens == 16  # OpenAI's default for /v1/completions


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions"])
def test_no_unknown_revoked_or_expired_key_is_a_401_in_openais_shape(
    net: OpenAINet, route: str
) -> None:
    net.add_node("a")
    body = CHAT if route.endswith("chat/completions") else {"model": MODEL_ID, "prompt": "x"}
    http = net.env.http
    assert_openai_error(http.post(route, json=body), 401, "invalid_api_key")
    unknown = {"authorization": "Bearer flk_nobody"}
    assert_openai_error(http.post(route, json=body, headers=unknown), 401, "invalid_api_key")
    expiring = net.create_key(
        "expiring", spend_limit=1_000, expires_ns=net.env.clock.now_ns + SECOND_NS
    )
    revoked = net.create_key("revoked", spend_limit=1_000)
    net.env.client(CONSUMER).send(
        c.RevokeApiKey(key_id=compute_api_key_id(compute_api_key_hash(revoked)))
    )
    refused = http.post(route, json=body, headers={"authorization": f"Bearer {revoked}"})
    assert "revoked" in assert_openai_error(refused, 401, "invalid_api_key")["message"]
    net.env.clock.advance(2)
    late = http.post(route, json=body, headers={"authorization": f"Bearer {expiring}"})
    assert "expired" in assert_openai_error(late, 401, "invalid_api_key")["message"]
    assert available(net) == CONSUMER_FUNDS


def test_an_escrow_above_the_keys_cap_is_insufficient_quota_and_opens_nothing(
    net: OpenAINet,
) -> None:
    node = net.add_node("a")
    small = net.create_key("small", spend_limit=50)
    body = {**CHAT, "max_tokens": 8}  # escrow: prompt bound 90 tokens + 8 -> above 50
    response = net.env.http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {small}"}
    )
    error = assert_openai_error(response, 429, "insufficient_quota")
    assert error["type"] == "insufficient_quota"
    assert response.headers["x-should-retry"] == "false"
    assert node.calls == [] and available(net) == CONSUMER_FUNDS


def test_no_node_holding_the_model_warm_is_a_503_and_an_unregistered_model_a_404(
    net: OpenAINet,
) -> None:
    http = net.env.http
    response = http.post("/v1/chat/completions", json=CHAT, headers=net.bearer)
    assert_openai_error(response, 503, "model_not_warm")
    assert "retry-after" in response.headers
    other = {**CHAT, "model": "gpt-4o"}
    assert_openai_error(
        http.post("/v1/chat/completions", json=other, headers=net.bearer), 404, "model_not_found"
    )
    assert available(net) == CONSUMER_FUNDS


def test_a_node_dying_mid_stream_is_an_error_event_and_an_abort_with_no_charge(
    net: OpenAINet,
) -> None:
    node = net.add_node("a")
    node.mode = "die"
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = net.env.http.post("/v1/chat/completions", json=body, headers=net.bearer)
    assert response.status_code == 200
    events = sse_events(response.text)
    name, data = events[-1]
    assert name == "error"
    assert msgspec.json.decode(data)["error"]["code"] == "node_failed"
    delivered = [msgspec.json.decode(d) for n, d in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in delivered) == "The capital"
    completion = record(net, response.headers["x-flop-completion-id"])
    assert (completion.state, completion.charge) == ("aborted", 0)
    assert available(net) == CONSUMER_FUNDS and spent(net) == 0


def test_a_done_without_a_commit_on_the_ledger_is_a_node_failure(net: OpenAINet) -> None:
    node = net.add_node("a")
    node.mode = "no_commit"
    response = net.env.http.post("/v1/chat/completions", json=CHAT, headers=net.bearer)
    assert_openai_error(response, 502, "node_failed")
    assert record(net, node.calls[0].completion_id).state == "aborted"
    assert available(net) == CONSUMER_FUNDS and spent(net) == 0


def test_a_node_that_cannot_take_the_call_is_aborted_and_the_next_one_serves(
    net: OpenAINet,
) -> None:
    down = net.add_node("down", region="eu-west")
    busy = net.add_node("busy", region="eu-north")
    up = net.add_node("up", region="us-east")
    down.mode, busy.mode = "unreachable", "refuse"
    response = net.env.http.post(
        "/v1/chat/completions", json=CHAT, headers={**net.bearer, "x-flop-region": "eu-west"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-flop-node-id"] == up.identity.id
    assert record(net, down.calls[0].completion_id).state == "aborted"
    assert record(net, busy.calls[0].completion_id).state == "aborted"
    served = record(net, response.json()["id"])
    assert served.state == "cleared"  # settled at its commit; no validator here to check it
    assert available(net) == CONSUMER_FUNDS - served.charge and spent(net) == served.charge


def test_when_every_node_refuses_the_answer_is_a_502_and_nothing_is_charged(
    net: OpenAINet,
) -> None:
    net.add_node("a").mode = "refuse"
    response = net.env.http.post("/v1/chat/completions", json=CHAT, headers=net.bearer)
    assert_openai_error(response, 502, "node_failed")
    assert available(net) == CONSUMER_FUNDS and spent(net) == 0


def test_the_region_asked_is_served_first(net: OpenAINet) -> None:
    net.add_node("us", region="us-east")
    eu = net.add_node("eu", region="eu-west")
    body = {**CHAT, "region": "eu-west"}
    response = net.env.http.post("/v1/chat/completions", json=body, headers=net.bearer)
    assert response.headers["x-flop-node-id"] == eu.identity.id
    assert len(eu.calls) == 1


def test_a_bad_body_is_a_400_after_the_key_and_without_a_signer_a_503(net: OpenAINet) -> None:
    net.add_node("a")
    http = net.env.http
    bad = http.post("/v1/chat/completions", json={**CHAT, "n": 3}, headers=net.bearer)
    assert assert_openai_error(bad, 400, "invalid_value")["param"] == "n"
    assert_openai_error(
        http.post("/v1/chat/completions", json={**CHAT, "n": 3}), 401, "invalid_api_key"
    )
    net.env.deps.llm.signer = None
    off = http.post("/v1/chat/completions", json=CHAT, headers=net.bearer)
    assert_openai_error(off, 503, "completions_unavailable")


def test_other_routes_keep_problem_json(net: OpenAINet) -> None:
    response = net.env.http.get("/v1/registered-models/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_time_to_first_token_is_recorded_per_node_and_the_faster_node_is_preferred(
    net: OpenAINet,
) -> None:
    slow, fast = net.add_node("slow"), net.add_node("fast")
    slow.gap_s, fast.gap_s = 0.05, 0.0
    served = []
    for _ in range(3):
        response = net.env.http.post("/v1/chat/completions", json=CHAT, headers=net.bearer)
        assert response.status_code == 200, response.text
        served.append(response.headers["x-flop-node-id"])
    # each is tried once while unmeasured (the order between them: their ids), then the
    # faster one wins
    assert sorted(served[:2]) == sorted([slow.identity.id, fast.identity.id])
    assert served[2] == fast.identity.id
    latencies = net.env.deps.metrics.node_latencies
    slow_ttft, fast_ttft = (latencies.get_ttft_s(n.identity.id) for n in (slow, fast))
    assert slow_ttft is not None and fast_ttft is not None and slow_ttft > fast_ttft
    assert (latencies.get_tokens_per_s(slow.identity.id) or 0) > 0
    metrics = net.env.deps.metrics.render().decode()
    labels = f'{{model="{MODEL_ID}",node_id="{fast.identity.id}"}}'
    assert f"flop_llm_time_to_first_token_seconds_count{labels} 2.0" in metrics
    assert f'flop_llm_completions_total{{model="{MODEL_ID}",outcome="committed"}} 3.0' in metrics
