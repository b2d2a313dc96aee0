"""The node's completion server at the ASGI boundary, against a fake ledger.

Given a completion the (fake) ledger opened to this node, when the API calls, then the
tokens stream back and the completion is committed with a bundle the validators can check;
every call the ledger did not open exactly so is refused before a token, nothing committed.
The ASGI exchange is driven by hand so a test can stop reading, or hang up, mid-stream.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import msgspec
import pytest

pytest.importorskip("transformers")

from adapters.compute import llm_model, llm_prompts, llm_stream, llm_toploc
from adapters.llm_link.wire import (
    DoneEvent,
    ErrorEvent,
    NodeCompletionCall,
    NodeErrorCode,
    NodeEvent,
    TokenEvent,
    decode_event,
)
from node_agent import llm_server
from node_agent.ledger_link import CompletionRecord
from proofs import toploc
from proofs.llm_request import ChatMessage, LlmRequest, decode_bundle
from tests.llm_node_fakes import FakeCompletionLedger, make_record

NODE_ID = "a" * 64
OTHER_NODE_ID = "b" * 64
MODEL_ID = "tiny-llama-0"
COMPLETION_ID = "cmpl-" + "0" * 32
TIMEOUT_S = 30.0
SCOPE: Any = {"type": "http", "method": "POST", "path": "/v1/node/completions"}


@pytest.fixture(scope="module")
def tiny() -> llm_model.LoadedModel:
    return llm_model.build_tiny_llama(seed=0)


def _request(max_tokens: int = 24, **changes: Any) -> LlmRequest:
    request = LlmRequest(
        model=MODEL_ID,
        messages=[ChatMessage(role="user", content="Say hi.")],
        prompt=None,
        max_tokens=max_tokens,
        temperature=0.0,
        top_p=1.0,
        seed=0,
        stop=[],
    )
    return msgspec.structs.replace(request, **changes)


def _record(request: LlmRequest, **changes: Any) -> CompletionRecord:
    return make_record(COMPLETION_ID, NODE_ID, request, **changes)


class Exchange:
    """One ASGI request/response, by hand: hang up after ``hang_up_after`` token events, or
    stop reading (``send`` blocks) from the ``stall_at``-th body message on."""

    def __init__(
        self, body: bytes, *, hang_up_after: int | None = None, stall_at: int | None = None
    ) -> None:
        self.body, self.hang_up_after, self.stall_at = body, hang_up_after, stall_at
        self.messages: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self._asked = False

    async def receive(self) -> Any:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Any) -> None:
        self.messages.append(message)
        bodies = sum(m["type"] == "http.response.body" for m in self.messages)
        if self.hang_up_after is not None and bodies == self.hang_up_after:
            self.gone.set()
        if self.stall_at is not None and bodies >= self.stall_at:
            await asyncio.Event().wait()  # a reader that reads no more

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def events(self) -> list[NodeEvent]:
        data = b"".join(m.get("body", b"") for m in self.messages[1:])
        return [decode_event(line) for line in data.splitlines() if line]


class Harness:
    def __init__(self, tiny: llm_model.LoadedModel, capacity: int = 2, queued: int = 4) -> None:
        self.ledger = FakeCompletionLedger()
        self.generations = 0

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.generations += 1
            return llm_stream.generate_stream(*args, **kwargs)

        self.server = llm_server.CompletionServer(
            node_id=NODE_ID,
            models={MODEL_ID: llm_server.ServedModel(tiny, capacity)},
            ledger=self.ledger,
            generate=counting,
            token_events_queued_max=queued,
        )

    async def call(self, call: NodeCompletionCall | bytes, **exchange: Any) -> Exchange:
        body = call if isinstance(call, bytes) else msgspec.json.encode(call)
        ex = Exchange(body, **exchange)
        await asyncio.wait_for(self.server.handle(SCOPE, ex.receive, ex.send), TIMEOUT_S)
        await asyncio.wait_for(self.server.drain(TIMEOUT_S), TIMEOUT_S)
        self.server.stopping = False
        return ex

    def open(self, request: LlmRequest, **changes: Any) -> NodeCompletionCall:
        self.ledger.records[COMPLETION_ID] = _record(request, **changes)
        return NodeCompletionCall(completion_id=COMPLETION_ID, request=request)


async def test_an_opened_completion_streams_its_tokens_and_commits_a_checkable_bundle(
    tiny: llm_model.LoadedModel,
) -> None:
    harness = Harness(tiny)
    request = _request()
    ex = await harness.call(harness.open(request))
    assert ex.status == 200
    *tokens, done = ex.events
    prompt = llm_prompts.encode(tiny, request)
    [reference] = llm_toploc.generate(tiny, [list(prompt)], request.max_tokens)
    assert [t.token_id for t in tokens if isinstance(t, TokenEvent)] == list(reference.token_ids)
    assert done == DoneEvent(
        prompt_tokens=len(prompt),
        completion_tokens=request.max_tokens,
        finish_reason="length",
        commitment=harness.ledger.commits[0].commitment.hex(),
    )
    [commit] = harness.ledger.commits
    data = harness.ledger.objects[commit.proof_digest.hex()]
    assert hashlib.sha256(data).digest() == commit.proof_digest
    bundle = decode_bundle(data)
    assert bundle is not None and bundle.request == request
    assert bundle.compute_commitment() == commit.commitment
    assert bundle.proof == llm_toploc.compute_toploc_proof(reference)
    assert (commit.prompt_tokens, commit.completion_tokens) == (len(prompt), request.max_tokens)
    assert harness.server.models[MODEL_ID].in_flight == 0


@pytest.mark.parametrize(
    ("code", "status", "record_changes"),
    [
        (NodeErrorCode.COMPLETION_NOT_FOR_THIS_NODE, 403, {"node_id": OTHER_NODE_ID}),
        (NodeErrorCode.COMPLETION_NOT_OPEN, 409, {"state": "committed"}),
        (NodeErrorCode.COMPLETION_NOT_OPEN, 409, {"state": "aborted"}),
        (NodeErrorCode.COMPLETION_MODEL_MISMATCH, 409, {"model_id": "tiny-llama-1"}),
        (NodeErrorCode.REQUEST_DIGEST_MISMATCH, 409, {"request_digest": bytes(32)}),
        (NodeErrorCode.COMPLETION_TERMS_MISMATCH, 409, {"max_tokens": 23}),
        (NodeErrorCode.COMPLETION_TERMS_MISMATCH, 409, {"greedy": False}),
    ],
)
async def test_a_completion_not_opened_so_to_this_node_is_refused_before_a_token(
    tiny: llm_model.LoadedModel, code: NodeErrorCode, status: int, record_changes: dict[str, Any]
) -> None:
    harness = Harness(tiny)
    ex = await harness.call(harness.open(_request(), **record_changes))
    assert (ex.status, [_code(e) for e in ex.events]) == (status, [code])
    _assert_nothing_done(harness)


async def test_a_changed_request_does_not_match_the_opened_digest(
    tiny: llm_model.LoadedModel,
) -> None:
    harness = Harness(tiny)
    opened = harness.open(_request())
    system = ChatMessage(role="system", content="Answer in French.")
    changed = _request(messages=[system, ChatMessage(role="user", content="Say hi.")])
    dropped_system = NodeCompletionCall(completion_id=COMPLETION_ID, request=changed)
    assert opened.request != changed
    ex = await harness.call(dropped_system)
    assert [_code(e) for e in ex.events] == [NodeErrorCode.REQUEST_DIGEST_MISMATCH]
    _assert_nothing_done(harness)


async def test_unknown_completion_unknown_model_bad_call_and_ledger_down_are_refused(
    tiny: llm_model.LoadedModel,
) -> None:
    harness = Harness(tiny)
    unknown = NodeCompletionCall(completion_id=COMPLETION_ID, request=_request())
    assert _refusal(await harness.call(unknown)) == (404, NodeErrorCode.COMPLETION_NOT_FOUND)
    other_model = harness.open(_request(model="smollm2-135m-instruct"))
    assert _refusal(await harness.call(other_model)) == (404, NodeErrorCode.MODEL_NOT_SERVED)
    assert _refusal(await harness.call(b'{"completion_id": 1}')) == (
        422,
        NodeErrorCode.CALL_INVALID,
    )
    harness.ledger.down = True
    opened = harness.open(_request())
    assert _refusal(await harness.call(opened)) == (503, NodeErrorCode.LEDGER_UNAVAILABLE)
    _assert_nothing_done(harness)


async def test_a_prompt_above_the_opened_bound_is_refused_one_at_it_served(
    tiny: llm_model.LoadedModel,
) -> None:
    harness = Harness(tiny)
    request = _request(max_tokens=2)
    prompt_tokens = len(llm_prompts.encode(tiny, request))
    above = harness.open(request, prompt_tokens_max=prompt_tokens - 1)
    assert _refusal(await harness.call(above)) == (422, NodeErrorCode.PROMPT_TOKENS_ABOVE_MAX)
    _assert_nothing_done(harness)
    at = harness.open(request, prompt_tokens_max=prompt_tokens)
    assert isinstance((await harness.call(at)).events[-1], DoneEvent)
    assert len(harness.ledger.commits) == 1


async def test_a_prompt_leaving_no_room_for_max_tokens_in_the_context_is_refused(
    tiny: llm_model.LoadedModel,
) -> None:
    harness = Harness(tiny)
    prompt_tokens = len(llm_prompts.encode(tiny, _request()))
    room = tiny.context_tokens - prompt_tokens
    past = harness.open(_request(max_tokens=room + 1))
    assert _refusal(await harness.call(past)) == (422, NodeErrorCode.PROMPT_TOKENS_ABOVE_MAX)
    _assert_nothing_done(harness)


async def test_an_empty_prompt_is_refused(tiny: llm_model.LoadedModel) -> None:
    harness = Harness(tiny)
    empty = harness.open(_request(messages=None, prompt=""))
    assert _refusal(await harness.call(empty)) == (422, NodeErrorCode.PROMPT_EMPTY)
    _assert_nothing_done(harness)


async def test_a_full_node_and_a_stopping_node_refuse(tiny: llm_model.LoadedModel) -> None:
    harness = Harness(tiny, capacity=1)
    harness.server.models[MODEL_ID].in_flight = 1
    assert _refusal(await harness.call(harness.open(_request()))) == (
        503,
        NodeErrorCode.NODE_AT_CAPACITY,
    )
    harness.server.models[MODEL_ID].in_flight = 0
    harness.server.stopping = True
    ex = Exchange(msgspec.json.encode(harness.open(_request())))
    await harness.server.handle(SCOPE, ex.receive, ex.send)
    assert _refusal(ex) == (503, NodeErrorCode.NODE_STOPPING)
    _assert_nothing_done(harness)


async def test_a_client_that_hangs_up_cancels_generation_and_the_partial_is_committed(
    tiny: llm_model.LoadedModel,
) -> None:
    harness = Harness(tiny, queued=4)
    request = _request(max_tokens=400)
    ex = await harness.call(harness.open(request), hang_up_after=3)
    generation_tokens = harness.ledger.commits[0].completion_tokens
    assert generation_tokens < 50  # stopped soon after the hang-up, not at 400
    assert not isinstance(ex.events[-1], DoneEvent)
    [commit] = harness.ledger.commits
    bundle = decode_bundle(harness.ledger.objects[commit.proof_digest.hex()])
    assert bundle is not None and bundle.finish_reason == "length"
    assert len(bundle.token_ids) == commit.completion_tokens
    # what was committed is what the model generates: a validator's check passes
    assert llm_toploc.is_valid_toploc(
        tiny, bundle.prompt_ids, bundle.token_ids, bundle.proof.chunks,
        toploc.FLOAT32_THRESHOLDS,
    )  # fmt: skip


async def test_a_reader_that_stops_reading_holds_the_node_to_its_queue(
    tiny: llm_model.LoadedModel,
) -> None:
    queued = 4
    harness = Harness(tiny, queued=queued)
    request = _request(max_tokens=400)
    ex = Exchange(msgspec.json.encode(harness.open(request)), stall_at=3)
    handling = asyncio.create_task(harness.server.handle(SCOPE, ex.receive, ex.send))
    [generation] = await _wait_for_generation(harness.server)
    counts = []
    for _ in range(4):
        await asyncio.sleep(0.25)
        counts.append(generation.tokens_generated)
    # Stalled: 2 sent, 1 in the blocked send, the queue, 1 in the generation thread's put.
    assert counts[-1] == counts[-2] <= 3 + queued + 1
    assert generation.queue.qsize() == queued
    ex.gone.set()  # then it hangs up: the node cancels and commits what it made
    await asyncio.wait_for(handling, TIMEOUT_S)
    await asyncio.wait_for(harness.server.drain(TIMEOUT_S), TIMEOUT_S)
    assert [c.completion_tokens for c in harness.ledger.commits] == [counts[-1]]


async def test_a_refused_commit_ends_the_stream_with_an_error(
    tiny: llm_model.LoadedModel,
) -> None:
    harness = Harness(tiny)
    harness.ledger.refuse_commit = "completion_not_open"
    ex = await harness.call(harness.open(_request(max_tokens=3)))
    assert ex.status == 200
    assert ex.events[-1] == ErrorEvent(
        code=NodeErrorCode.COMMIT_FAILED, message="completion_not_open"
    )
    assert harness.server.models[MODEL_ID].in_flight == 0


async def test_a_failing_generation_ends_the_stream_with_an_error_and_frees_its_slot(
    tiny: llm_model.LoadedModel,
) -> None:
    harness = Harness(tiny)

    def broken(*args: Any, **kwargs: Any) -> Any:
        yield llm_stream.StreamedToken(token_id=1, text="")
        raise RuntimeError("device lost")

    harness.server.generate = broken
    ex = await harness.call(harness.open(_request()))
    assert [_code(e) for e in ex.events[1:]] == [NodeErrorCode.GENERATION_FAILED]
    assert harness.ledger.commits == [] and harness.server.models[MODEL_ID].in_flight == 0


def _code(event: NodeEvent) -> str:
    assert isinstance(event, ErrorEvent), event
    return event.code


def _refusal(ex: Exchange) -> tuple[int, str]:
    [event] = ex.events
    return ex.status, _code(event)


def _assert_nothing_done(harness: Harness) -> None:
    assert harness.generations == 0
    assert harness.ledger.commits == [] and harness.ledger.objects == {}
    assert all(m.in_flight == 0 for m in harness.server.models.values())


async def _wait_for_generation(server: llm_server.CompletionServer) -> list[llm_server.Generation]:
    for _ in range(200):
        if server.in_flight:
            return list(server._generations)
        await asyncio.sleep(0.01)
    raise AssertionError("no generation started")
