"""Issue 18's endpoint end to end: the official ``openai`` package against ``flopledger serve``
(a real process, with nats-server and the relay: ``tests/e2e/_network_harness.py``) and a
node's completion server (``node_agent.llm_serving``, in this process, on a loopback port,
serving a tiny random Llama on the CPU, its ledger the serve process's HTTP API).

The API signs ``completion.open`` with ``FLOP_COMPLETION_KEY_FILE`` (the operator's key: an
operator is a completion signer while the policy names none). The client lists the model,
gets a chat completion and a streamed one whose usage equals the ledger's record of the
node's commit, and a revoked key is refused with OpenAI's error shape."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("transformers")

import openai

from adapters.compute import llm_catalog, llm_model
from adapters.ledger_api.client import ApiClient
from domain import commands as c
from domain.ledger import user_account
from node_agent.config import AgentConfig
from node_agent.ledger_link import ApiLedger
from node_agent.llm_serving import LlmService
from proofs.identity import Identity
from tests.e2e._network_harness import Network
from tests.unit.api.conftest import ApiEnv, register_active_node

pytestmark = [pytest.mark.timeout(300)]

MODEL_ID = "tiny-llama-0"
OPERATOR = Identity.from_seed(b"openai-e2e-operator".ljust(32, b"\0"))
CONSUMER = Identity.from_seed(b"openai-e2e-consumer".ljust(32, b"\0"))
NODE = Identity.from_seed(b"openai-e2e-node".ljust(32, b"\0"))
FUNDS = 1_000_000
SECRET = "flk_openai_e2e"
MESSAGES = [{"role": "user", "content": "The sky is"}]
SHUTDOWN_S = 30.0


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    key_file = tmp_path / "completion_key.hex"
    key_file.write_text(OPERATOR.seed().hex() + "\n")
    key_file.chmod(0o600)
    net = Network(
        root=tmp_path / "net",
        operator=OPERATOR,
        policy={},
        extra_env={"FLOP_COMPLETION_KEY_FILE": str(key_file)},
    )
    try:
        net.start()
        yield net
    finally:
        net.close()


@pytest.fixture
async def node(network: Network, tmp_path: Path) -> AsyncIterator[LlmService]:
    tiny = llm_model.build_tiny_llama(seed=0)
    with httpx.Client(base_url=network.api_url, timeout=30) as http:
        env = ApiEnv(deps=None, http=http, clock=time.time_ns, operator=OPERATOR)  # type: ignore[arg-type]
        env.client(OPERATOR).send(
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
        env.client(OPERATOR).send(
            c.Deposit(account_owner=CONSUMER.id, amount=FUNDS, chain_reference="openai-e2e-funds")
        )
        key_hash = hashlib.sha256(SECRET.encode()).digest()
        env.client(CONSUMER).send(
            c.CreateApiKey(
                key_id=hashlib.sha256(key_hash).hexdigest(), key_hash=key_hash, spend_limit=FUNDS
            )
        )
        register_active_node(env, NODE)
    config = AgentConfig(
        region="eu-west",
        price=1,
        api_url=network.api_url,
        state_dir=tmp_path / "node",
        serve_models=(MODEL_ID,),
        llm_listen="127.0.0.1:0",
        llm_capacity=2,
        shutdown_deadline_s=10.0,
        prefer_cuda=False,
    )
    stop = asyncio.Event()
    ledger = ApiLedger(ApiClient(network.api_url, identity=NODE))
    llm = await LlmService.prepare(config, node_id=NODE.id, ledger=ledger, stop=stop)
    assert llm is not None
    await llm.start()
    try:
        assert await llm.advertise_if_stale()
        yield llm
    finally:
        await asyncio.wait_for(llm.shutdown(SHUTDOWN_S), SHUTDOWN_S)
        ledger.close()


async def test_the_openai_client_against_serve_and_a_node(
    network: Network, node: LlmService
) -> None:
    ai = openai.OpenAI(base_url=f"{network.api_url}/v1", api_key=SECRET, max_retries=0)
    ledger = ApiClient(network.api_url)

    listed = await asyncio.to_thread(ai.models.list)
    assert [m.id for m in listed] == [MODEL_ID]

    answer = await asyncio.to_thread(
        ai.chat.completions.create,
        model=MODEL_ID,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=12,
        temperature=0,
    )
    record = await asyncio.to_thread(ledger.get_completion_record, answer.id)
    # settled at its commit; no validator here to check it: cleared
    assert record.state == "cleared" and record.node_id == NODE.id
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
        record.prompt_tokens,
        record.completion_tokens,
    )
    assert answer.choices[0].finish_reason in ("stop", "length")

    def stream_all() -> list[openai.types.chat.ChatCompletionChunk]:
        stream = ai.chat.completions.create(
            model=MODEL_ID,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        return list(stream)

    chunks = await asyncio.to_thread(stream_all)
    usage = chunks[-1].usage
    streamed = await asyncio.to_thread(ledger.get_completion_record, chunks[0].id)
    # settled at its commit; no validator here to check it: cleared
    assert usage is not None and streamed.state == "cleared"
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        streamed.prompt_tokens,
        streamed.completion_tokens,
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == answer.choices[0].message.content  # greedy: the same tokens both times
    charged = record.charge + streamed.charge
    balance = await asyncio.to_thread(ledger.get_balance, user_account(CONSUMER.id))
    assert balance.available == FUNDS - charged

    key_id = hashlib.sha256(hashlib.sha256(SECRET.encode()).digest()).hexdigest()
    await asyncio.to_thread(
        ApiClient(network.api_url, identity=CONSUMER).send, c.RevokeApiKey(key_id=key_id)
    )
    with pytest.raises(openai.AuthenticationError) as refused:
        await asyncio.to_thread(
            ai.chat.completions.create,
            model=MODEL_ID,
            messages=MESSAGES,  # type: ignore[arg-type]
        )
    body = refused.value.body
    assert refused.value.status_code == 401 and isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    assert (body["type"], body["code"]) == ("invalid_request_error", "invalid_api_key")
