"""A network ready for the OpenAI-compatible routes (issue 18) on the unit tests' API, with
fake nodes behind an in-process link (``api.state.NodeLink``).

``OpenAINet`` registers a model, funds a consumer with a delegated key (its secret is what a
client sends as the bearer), and adds active nodes that advertise the model warm at an
endpoint of their own. ``FakeLink`` answers each node's calls as its ``FakeNode`` says: tokens
as they come, then the node's ``completion.commit`` on the ledger (signed by the node, as the
real server does) and its done event; or a refusal, an unreachable node, a stream that dies
after some tokens, a done event without a commit. Done events carry made-up counts
(``DONE_COUNT``), so a test sees that the usage a client is told is the ledger's.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from adapters.llm_link.client import NodeStreamBroken, NodeUnreachable
from adapters.llm_link.wire import DoneEvent, ErrorEvent, NodeCompletionCall, NodeEvent, TokenEvent
from api.state import ApiDeps
from domain import commands as c
from domain.api_keys import compute_api_key_hash, compute_api_key_id
from domain.commands import command_kind, encode_command_body
from proofs.envelope import sign_command
from proofs.identity import Identity
from tests.completion_network import (
    CONSUMER_FUNDS,
    CONTEXT_TOKENS,
    MODEL_ID,
    PRICE_PER_1K_INPUT,
    PRICE_PER_1K_OUTPUT,
    SPEND_LIMIT,
)
from tests.unit.api.conftest import ApiEnv, deposit, register_active_node, seeded

DONE_COUNT = 999
"""What a fake node's done event claims; the ledger's record holds the real counts."""
CONSUMER = seeded("openai-consumer")


@dataclass
class FakeNode:
    """How one node answers: ``mode`` ok, refuse, unreachable, die (after ``die_after``
    tokens) or no_commit; ``prompt_tokens`` is what it commits."""

    identity: Identity
    endpoint: str
    region: str = "eu-west"
    mode: str = "ok"
    tokens: list[str] = field(default_factory=lambda: ["The", " capital", " is", " Paris."])
    prompt_tokens: int = 7
    die_after: int = 2
    gap_s: float = 0.0
    calls: list[NodeCompletionCall] = field(default_factory=list)
    hung_up: int = 0
    """Streams the API closed before the node's last event."""


class FakeLink:
    """The API's link to fake nodes, running in the API's own event loop."""

    def __init__(self, deps: ApiDeps) -> None:
        self.deps = deps
        self.nodes: dict[str, FakeNode] = {}

    def stream_completion(
        self, endpoint: str, call: NodeCompletionCall
    ) -> AsyncGenerator[NodeEvent, None]:
        return self._answer(self.nodes[endpoint], call)

    async def aclose(self) -> None:
        return None

    async def _answer(
        self, node: FakeNode, call: NodeCompletionCall
    ) -> AsyncGenerator[NodeEvent, None]:
        node.calls.append(call)
        if node.mode == "unreachable":
            raise NodeUnreachable(f"cannot reach the node at {node.endpoint}")
        if node.mode == "refuse":
            yield ErrorEvent(code="node_at_capacity", message="no slot free")
            return
        try:
            for index, text in enumerate(node.tokens):
                if node.mode == "die" and index == node.die_after:
                    raise NodeStreamBroken("the node's stream broke off")
                await asyncio.sleep(node.gap_s)
                yield TokenEvent(token_id=index, text=text)
            if node.mode != "no_commit":
                await self._commit(node, call.completion_id, len(node.tokens))
            yield DoneEvent(
                prompt_tokens=DONE_COUNT,
                completion_tokens=DONE_COUNT,
                finish_reason="stop",
                commitment="00" * 32,
            )
        except (GeneratorExit, asyncio.CancelledError):
            # closed while waiting at a token (GeneratorExit) or cancelled while producing
            # one (the client's disconnect cancels the response task)
            node.hung_up += 1
            raise

    async def _commit(self, node: FakeNode, completion_id: str, completion_tokens: int) -> None:
        command = c.CommitCompletion(
            completion_id=completion_id,
            prompt_tokens=node.prompt_tokens,
            completion_tokens=completion_tokens,
            commitment=hashlib.sha256(completion_id.encode()).digest(),
            proof_digest=hashlib.sha256(b"bundle" + completion_id.encode()).digest(),
        )
        envelope = sign_command(
            node.identity,
            command_kind(command),
            encode_command_body(command),
            nonce=secrets.token_hex(12),
            issued_at_ns=self.deps.clock_ns(),
            network=await self.deps.service.get_network_id(),
        )
        await self.deps.service.execute(envelope, now_ns=self.deps.clock_ns())


@dataclass
class OpenAINet:
    env: ApiEnv
    link: FakeLink
    secret: str
    key_id: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.secret}"}

    def add_node(self, name: str, *, region: str = "eu-west", capacity: int = 2) -> FakeNode:
        identity = seeded(f"openai-node-{name}")
        node = FakeNode(identity=identity, endpoint=f"http://{name}.node.test:9300", region=region)
        register_active_node(self.env, identity, region=region)
        self.env.client(identity).send(
            c.AdvertiseModels(
                node_id=identity.id,
                models=[c.WarmModelSpec(model_id=MODEL_ID, capacity=capacity)],
                endpoint=node.endpoint,
            )
        )
        self.link.nodes[node.endpoint] = node
        return node

    def create_key(self, name: str, *, spend_limit: int, expires_ns: int = 0) -> str:
        """A new key of the consumer's; its secret."""
        secret = f"flk_{name}"
        key_hash = compute_api_key_hash(secret)
        self.env.client(CONSUMER).send(
            c.CreateApiKey(
                key_id=compute_api_key_id(key_hash),
                key_hash=key_hash,
                spend_limit=spend_limit,
                expires_ns=expires_ns,
            )
        )
        return secret


def start_openai_net(env: ApiEnv) -> OpenAINet:
    """The model registered, the consumer funded with a key, the operator the API's
    completion signer (the policy names no other), fake nodes behind the link; no node yet."""
    env.client(env.operator).send(
        c.RegisterModel(
            model_id=MODEL_ID,
            content_digest=hashlib.sha256(MODEL_ID.encode()).digest(),
            architecture="llama",
            dtype="float32",
            context_tokens=CONTEXT_TOKENS,
            price_per_1k_input_tokens=PRICE_PER_1K_INPUT,
            price_per_1k_output_tokens=PRICE_PER_1K_OUTPUT,
        )
    )
    deposit(env, CONSUMER, CONSUMER_FUNDS)
    link = FakeLink(env.deps)
    env.deps.llm.link = link
    env.deps.llm.signer = env.operator
    net = OpenAINet(env=env, link=link, secret="", key_id="")
    net.secret = net.create_key("consumer", spend_limit=SPEND_LIMIT)
    net.key_id = compute_api_key_id(compute_api_key_hash(net.secret))
    return net
