"""The node's completion server over real HTTP on a loopback port, read by the API's client.

uvicorn serves ``node_agent.llm_server`` inside the test's event loop (as inside the agent);
``adapters.llm_link.client.NodeLinkClient`` reads it as the API does. First against the fake
ledger of ``tests.llm_node_fakes`` (what crosses the wire, what a hang-up does), then against
the ledger itself: the API app in process on a memory store, the node's ``ApiLedger`` talking
to it through its client, completions opened by the completion signer under a consumer's
key, the committed bundle replayed by the validators' check.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest

pytest.importorskip("transformers")

from litestar.testing import TestClient

from adapters.compute import llm_catalog, llm_model, llm_prompts, llm_toploc
from adapters.ledger_api.client import ApiClient
from adapters.ledger_api.objects_client import get_object_bytes
from adapters.ledger_api.wire import CompletionRecordView
from adapters.llm_link.client import NodeLinkClient, NodeUnreachable
from adapters.llm_link.wire import (
    DoneEvent,
    ErrorEvent,
    NodeCompletionCall,
    NodeErrorCode,
    NodeEvent,
    TokenEvent,
)
from api.app import create_app
from domain import commands as c
from node_agent.config import AgentConfig
from node_agent.ledger_link import ApiLedger
from node_agent.llm_server import HEALTH_PATH, ServedModel
from node_agent.llm_serving import LlmService
from proofs.llm_request import (
    LlmRequest,
    compute_prompt_tokens_bound,
    compute_request_digest,
    decode_bundle,
)
from tests.llm_node_fakes import FakeCompletionLedger, make_record
from tests.unit.api.conftest import (
    ApiEnv,
    Clock,
    deposit,
    make_deps,
    register_active_node,
    seeded,
)
from validator.completion_check import CompletionRecord as ValidatorRecord
from validator.completion_check import check_completion

NODE_ID = "c" * 64
MODEL_ID = "tiny-llama-0"
COMPLETION_ID = "cmpl-" + "1" * 24
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def tiny() -> llm_model.LoadedModel:
    return llm_model.build_tiny_llama(seed=0)


@pytest.fixture
async def service(
    tiny: llm_model.LoadedModel, tmp_path: Path
) -> AsyncIterator[tuple[LlmService, FakeCompletionLedger]]:
    config = AgentConfig(
        region="eu-west",
        price=1,
        api_url="http://unused",
        state_dir=tmp_path,
        serve_models=(MODEL_ID,),
        llm_listen="127.0.0.1:0",
        llm_capacity=2,
        shutdown_deadline_s=10.0,
        prefer_cuda=False,  # generated where the test replays it: on the CPU
    )
    ledger = FakeCompletionLedger()
    served = {MODEL_ID: ServedModel(tiny, config.llm_capacity)}
    llm = LlmService(config, node_id=NODE_ID, ledger=ledger, models=served)
    await llm.start()
    try:
        yield llm, ledger
    finally:
        await asyncio.wait_for(llm.shutdown(TIMEOUT_S), TIMEOUT_S)


def _request(max_tokens: int) -> LlmRequest:
    return LlmRequest(
        model=MODEL_ID, messages=None, prompt="The sky is", max_tokens=max_tokens,
        temperature=0.0, top_p=1.0, seed=0, stop=[],
    )  # fmt: skip


def _open(
    ledger: FakeCompletionLedger, request: LlmRequest, **changes: object
) -> NodeCompletionCall:
    ledger.records[COMPLETION_ID] = make_record(COMPLETION_ID, NODE_ID, request, **changes)
    return NodeCompletionCall(completion_id=COMPLETION_ID, request=request)


async def _read_all(endpoint: str, call: NodeCompletionCall) -> list[NodeEvent]:
    client = NodeLinkClient()
    try:
        return [event async for event in client.stream_completion(endpoint, call)]
    finally:
        await client.aclose()


async def test_a_completion_streams_over_http_and_is_committed(
    service: tuple[LlmService, FakeCompletionLedger], tiny: llm_model.LoadedModel
) -> None:
    llm, ledger = service
    request = _request(max_tokens=40)
    events = await asyncio.wait_for(_read_all(llm.endpoint, _open(ledger, request)), TIMEOUT_S)
    *tokens, done = events
    prompt = list(llm_prompts.encode(tiny, request))
    [reference] = llm_toploc.generate(tiny, [prompt], 40)
    assert [t.token_id for t in tokens if isinstance(t, TokenEvent)] == list(reference.token_ids)
    assert "".join(t.text for t in tokens if isinstance(t, TokenEvent)) == llm_prompts.decode(
        tiny, reference.token_ids
    )
    [commit] = ledger.commits
    assert isinstance(done, DoneEvent)
    assert (done.prompt_tokens, done.completion_tokens) == (len(prompt), 40)
    assert done.commitment == commit.commitment.hex()
    bundle = decode_bundle(ledger.objects[commit.proof_digest.hex()])
    assert bundle is not None
    assert bundle.proof == llm_toploc.compute_toploc_proof(reference)


async def test_a_refusal_reaches_the_api_as_its_error_event(
    service: tuple[LlmService, FakeCompletionLedger],
) -> None:
    llm, ledger = service
    call = _open(ledger, _request(max_tokens=4), node_id="d" * 64)
    events = await asyncio.wait_for(_read_all(llm.endpoint, call), TIMEOUT_S)
    assert [type(e) for e in events] == [ErrorEvent]
    assert isinstance(events[0], ErrorEvent)
    assert events[0].code == NodeErrorCode.COMPLETION_NOT_FOR_THIS_NODE
    assert ledger.commits == [] and ledger.objects == {}
    async with httpx.AsyncClient() as http:
        malformed = await http.post(llm.endpoint + "/v1/node/completions", content=b"[]")
        assert malformed.status_code == 422
        assert msgspec.json.decode(malformed.content)["code"] == NodeErrorCode.CALL_INVALID


async def test_an_api_that_hangs_up_cancels_the_generation(
    service: tuple[LlmService, FakeCompletionLedger],
) -> None:
    llm, ledger = service
    max_tokens = 480  # the tiny model's context is 512: never reached below
    client = NodeLinkClient()
    try:
        stream = client.stream_completion(llm.endpoint, _open(ledger, _request(max_tokens)))
        async with contextlib.aclosing(stream) as events:
            received = 0
            async for _event in events:
                received += 1
                if received == 3:
                    break  # the API's client went away: it closes the node connection
    finally:
        await client.aclose()
    await asyncio.wait_for(ledger.committed.wait(), TIMEOUT_S)
    [commit] = ledger.commits
    assert 3 <= commit.completion_tokens < max_tokens
    bundle = decode_bundle(ledger.objects[commit.proof_digest.hex()])
    assert bundle is not None and bundle.finish_reason == "length"


async def test_health_shows_the_models_and_a_stopped_server_is_unreachable(
    tiny: llm_model.LoadedModel, service: tuple[LlmService, FakeCompletionLedger]
) -> None:
    llm, ledger = service
    async with httpx.AsyncClient() as http:
        health = (await http.get(llm.endpoint + HEALTH_PATH)).json()
    assert health["models"] == {MODEL_ID: {"capacity": 2, "in_flight": 0}}
    await llm.shutdown(TIMEOUT_S)
    assert ledger.advertisements[-1] == ([], "")  # no models: the API stops routing here
    with pytest.raises(NodeUnreachable):
        await _read_all(llm.endpoint, _open(ledger, _request(max_tokens=4)))


# -- against the ledger: the API app in process (its HTTP client), the node over real HTTP ----

CONSUMER, NODE, OTHER_NODE = seeded("llm-consumer"), seeded("llm-node"), seeded("llm-other")
KEY_HASH = hashlib.sha256(b"flk_llm-consumer").digest()
KEY_ID = hashlib.sha256(KEY_HASH).hexdigest()
SPEND_LIMIT = 50_000


@dataclass
class Served:
    env: ApiEnv
    llm: LlmService

    @property
    def signer(self) -> ApiClient:
        """The completion signer (the operator: the policy names none)."""
        return self.env.client(self.env.operator)

    async def open(
        self, request: LlmRequest, *, node: str = NODE.id, prompt_tokens_max: int | None = None
    ) -> str:
        bound = compute_prompt_tokens_bound(request)
        opened = await asyncio.to_thread(
            lambda: self.signer.open_completion(
                key_id=KEY_ID, model_id=MODEL_ID, node_id=node,
                request_digest=compute_request_digest(request), greedy=request.is_greedy,
                prompt_tokens_max=bound if prompt_tokens_max is None else prompt_tokens_max,
                max_tokens=request.max_tokens,
            )
        )  # fmt: skip
        return opened.completion_id

    async def record(self, completion_id: str) -> CompletionRecordView:
        return await asyncio.to_thread(self.env.client().get_completion_record, completion_id)

    async def stream(self, completion_id: str, request: LlmRequest) -> list[NodeEvent]:
        call = NodeCompletionCall(completion_id=completion_id, request=request)
        return await asyncio.wait_for(_read_all(self.llm.endpoint, call), TIMEOUT_S)


@pytest.fixture
def api_env(tmp_path: Path, tiny: llm_model.LoadedModel) -> Iterator[ApiEnv]:
    clock = Clock()
    operator = seeded("operator")
    deps = make_deps(tmp_path, operator, clock)
    with TestClient(create_app(deps)) as http:
        env = ApiEnv(deps=deps, http=http, clock=clock, operator=operator)
        env.client(operator).send(
            c.RegisterModel(
                model_id=MODEL_ID,
                content_digest=llm_catalog.compute_model_digest(tiny),
                architecture="llama",
                dtype="float32",
                context_tokens=llm_model.TINY_CONTEXT,
                price_per_1k_input_tokens=1_000,
                price_per_1k_output_tokens=2_000,
            )
        )
        deposit(env, CONSUMER, 100_000)
        env.client(CONSUMER).send(
            c.CreateApiKey(key_id=KEY_ID, key_hash=KEY_HASH, spend_limit=SPEND_LIMIT)
        )
        register_active_node(env, NODE)
        yield env


@pytest.fixture
async def served(api_env: ApiEnv, tmp_path: Path) -> AsyncIterator[Served]:
    config = AgentConfig(
        region="eu-west",
        price=1,
        api_url="http://unused",
        state_dir=tmp_path,
        serve_models=(MODEL_ID,),
        llm_listen="127.0.0.1:0",
        llm_capacity=2,
        shutdown_deadline_s=10.0,
        prefer_cuda=False,  # generated where the test replays it: on the CPU
    )
    ledger = ApiLedger(api_env.client(NODE))
    stop = asyncio.Event()
    llm = await LlmService.prepare(config, node_id=NODE.id, ledger=ledger, stop=stop)
    assert llm is not None  # the model here is the registered one
    await llm.start()
    try:
        assert await llm.advertise_if_stale()
        yield Served(env=api_env, llm=llm)
    finally:
        await asyncio.wait_for(llm.shutdown(TIMEOUT_S), TIMEOUT_S)


async def test_the_node_advertises_what_it_serves_once(served: Served) -> None:
    view = await asyncio.to_thread(served.env.client().get_node, NODE.id)
    assert [(m.model_id, m.capacity) for m in view.warm_models] == [(MODEL_ID, 2)]
    assert view.llm_endpoint == served.llm.endpoint
    assert await served.llm.advertise_if_stale()  # unchanged: nothing sent, no refusal


async def test_an_opened_completion_is_served_committed_and_passes_the_validators_check(
    served: Served, tiny: llm_model.LoadedModel
) -> None:
    request = _request(max_tokens=40)
    completion_id = await served.open(request)
    *tokens, done = await served.stream(completion_id, request)
    assert isinstance(done, DoneEvent) and len(tokens) == done.completion_tokens == 40
    record = await served.record(completion_id)
    # settled at its commit; with no validator in this network to check it, cleared at once
    assert record.state == "cleared"
    assert (record.prompt_tokens, record.completion_tokens) == (done.prompt_tokens, 40)
    assert record.commitment == done.commitment
    assert record.charge == record.prompt_tokens * 1 + 40 * 2
    bundle_bytes = await asyncio.to_thread(
        get_object_bytes, served.env.client(NODE), NODE, record.proof_digest
    )
    check = check_completion(
        bundle_bytes,
        ValidatorRecord(
            model_id=MODEL_ID,
            dtype="float32",
            request_digest=bytes.fromhex(record.request_digest),
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            commitment=bytes.fromhex(record.commitment),
            greedy=record.greedy,
        ),
        tiny,
        llm_prompts.encode,
    )
    assert check.passed, check.reason


async def test_completions_the_ledger_did_not_open_so_are_refused_and_nothing_committed(
    served: Served, api_env: ApiEnv
) -> None:
    register_active_node(api_env, OTHER_NODE)
    await asyncio.to_thread(
        api_env.client(OTHER_NODE).advertise_models,
        OTHER_NODE.id,
        [(MODEL_ID, 1)],
        "http://127.0.0.1:9",
    )
    request = _request(max_tokens=8)
    elsewhere = await served.open(request, node=OTHER_NODE.id)
    changed = msgspec.structs.replace(request, prompt="The sea is")
    for_this_node = await served.open(request)
    tight = await served.open(request, prompt_tokens_max=len("The sky is") - 1)
    aborted = await served.open(request)
    await asyncio.to_thread(served.signer.abort_completion, aborted, "test")
    cases = [
        (elsewhere, request, NodeErrorCode.COMPLETION_NOT_FOR_THIS_NODE),
        (for_this_node, changed, NodeErrorCode.REQUEST_DIGEST_MISMATCH),
        (tight, request, NodeErrorCode.PROMPT_TOKENS_ABOVE_MAX),
        (aborted, request, NodeErrorCode.COMPLETION_NOT_OPEN),
        ("cmpl-" + "f" * 24, request, NodeErrorCode.COMPLETION_NOT_FOUND),
    ]
    for completion_id, sent, code in cases:
        [event] = await served.stream(completion_id, sent)
        assert isinstance(event, ErrorEvent) and event.code == code, (completion_id, event)
    for completion_id in (elsewhere, for_this_node, tight):
        assert (await served.record(completion_id)).state == "opened"  # the API aborts these


async def test_a_hang_up_commits_what_was_generated_and_the_charge_follows(
    served: Served,
) -> None:
    max_tokens = 400
    request = _request(max_tokens)
    completion_id = await served.open(request)
    client = NodeLinkClient()
    call = NodeCompletionCall(completion_id=completion_id, request=request)
    try:
        async with contextlib.aclosing(client.stream_completion(served.llm.endpoint, call)) as it:
            async for _event in it:
                break
    finally:
        await client.aclose()
    for _ in range(int(TIMEOUT_S / 0.05)):
        record = await served.record(completion_id)
        if record.state != "opened":
            break
        await asyncio.sleep(0.05)
    assert record.state == "cleared"  # committed, and no validator to check it
    assert 1 <= record.completion_tokens < max_tokens
    assert record.charge == record.prompt_tokens * 1 + record.completion_tokens * 2
