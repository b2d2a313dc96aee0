"""A network on loopback serving SmolLM2 to the official ``openai`` client (``bench/llm.py``).

nats-server, ``flopledger serve`` (SQLite, its completion signer the operator's key) and the
relay (``tests/e2e/_network_harness.Network``), then one ``flopledger agent`` process holding
``smollm2-135m-instruct`` warm (``--serve-model``, its completion server on a loopback port).
No validator runs (the validators are idle in this benchmark): the operator passes the node's
attestation, the bootstrap path of a network without staked validators, and the policy samples
no completion for a check. A funded consumer delegates a key (``apikey.create``); the client
streams completions with it and notes when each content chunk arrives.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from adapters.compute.llm_model import SMOLLM2_GGUF, compute_files_digest, get_smollm2_dir
from adapters.ledger_api.client import ApiClient
from domain import commands as c
from domain.api_keys import compute_api_key_hash, compute_api_key_id
from proofs.identity import Identity
from proofs.llm_request import LlmRequest
from tests.e2e._network_harness import Child, Network, free_port

OPERATOR = Identity.from_seed(b"bench-llm-operator".ljust(32, b"\0"))
CONSUMER = Identity.from_seed(b"bench-llm-consumer".ljust(32, b"\0"))
NODE = Identity.from_seed(b"bench-llm-node".ljust(32, b"\0"))
SECRET_KEY = "flk_bench_llm_consumer_key"
MODEL_ID = "smollm2-135m-instruct"
CONTEXT_TOKENS = 8192
FUNDS = 10_000_000
NODE_STAKE = 1_000
POLICY: dict[str, int | bool] = {"completion_sample_rate_ppm": 0}
READY_TIMEOUT_S = 300.0
POLL_S = 0.2


@dataclass(frozen=True)
class EndpointFigures:
    """Tokens/s after the first token of each long completion through the network and of
    ``model.generate`` run between them (same token count), and the times to first token of
    the short ones."""

    tokens_per_s: list[float]
    baseline_per_s: list[float]
    tokens: int
    ttft_s: list[float]


def measure_endpoint(
    request: LlmRequest,
    ttft_requests: int,
    ttft_tokens: int,
    *,
    repeats: int,
    baseline: Callable[[int], float],
) -> EndpointFigures:
    """Stream ``request`` through the network once warm, ``repeats`` times, each followed by
    ``baseline(tokens)`` (``model.generate`` in this process, while the network idles: both
    sides see the same machine); then ``ttft_requests`` short ones."""
    with serving_network() as base_url:
        import openai

        client = openai.OpenAI(base_url=base_url, api_key=SECRET_KEY, max_retries=0)
        stream_times(client, request, max_tokens=8)  # warm-up
        baseline(8)  # warm-up
        rates: list[float] = []
        baselines: list[float] = []
        tokens = 0
        for _ in range(repeats):
            times, tokens = stream_times(client, request, max_tokens=request.max_tokens)
            rates.append((len(times) - 1) / (times[-1] - times[0]))
            baselines.append(baseline(tokens))
        ttft: list[float] = []
        stream_times(client, request, max_tokens=ttft_tokens)  # warm-up
        for _ in range(ttft_requests):
            started = time.perf_counter()
            first, _ = stream_times(client, request, max_tokens=ttft_tokens)
            ttft.append(first[0] - started)
        client.close()
        return EndpointFigures(
            tokens_per_s=rates, baseline_per_s=baselines, tokens=tokens, ttft_s=ttft
        )


def stream_times(client: Any, request: LlmRequest, *, max_tokens: int) -> tuple[list[float], int]:
    """The arrival time of every content chunk of one streamed chat completion and the
    completion's token count (its usage, as the ledger settled it)."""
    messages = [{"role": m.role, "content": m.content} for m in request.messages or ()]
    stream = client.chat.completions.create(
        model=request.model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    times: list[float] = []
    tokens = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    assert times, "the endpoint streamed no content"
    return times, tokens


@contextmanager
def serving_network() -> Iterator[str]:
    """The processes of the module docstring; yields the OpenAI base URL (``.../v1``)."""
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
        root = Path(tmp)
        key_file = root / "completion_key.hex"
        key_file.write_text(OPERATOR.seed().hex() + "\n")
        key_file.chmod(0o600)
        net = Network(
            root=root / "net",
            operator=OPERATOR,
            policy=POLICY,
            extra_env={"FLOP_COMPLETION_KEY_FILE": str(key_file)},
        )
        try:
            net.start()
            operator = ApiClient(net.api_url, identity=OPERATOR)
            prepare_ledger(operator)
            agent = start_agent(net, root)
            wait_until(lambda: pass_attestation(operator, agent), "the node to be attested")
            wait_until(lambda: is_serving(operator), "the node to advertise SmolLM2 warm")
            operator.close()
            yield f"{net.api_url}/v1"
        finally:
            net.close()


def prepare_ledger(operator: ApiClient) -> None:
    """Register SmolLM2, fund the consumer and the node, delegate the consumer's key."""
    operator.send(
        c.RegisterModel(
            model_id=MODEL_ID,
            content_digest=compute_files_digest([get_smollm2_dir() / SMOLLM2_GGUF]),
            architecture="llama",
            dtype="float32",
            context_tokens=CONTEXT_TOKENS,
            price_per_1k_input_tokens=100,
            price_per_1k_output_tokens=200,
        )
    )
    for owner in (CONSUMER, NODE):
        tag = hashlib.sha256(owner.id.encode()).hexdigest()[:16]
        operator.send(
            c.Deposit(account_owner=owner.id, amount=FUNDS, chain_reference=f"bench-{tag}")
        )
    key_hash = compute_api_key_hash(SECRET_KEY)
    consumer = ApiClient(str(operator.http.base_url), identity=CONSUMER)
    consumer.send(
        c.CreateApiKey(
            key_id=compute_api_key_id(key_hash),
            key_hash=key_hash,
            spend_limit=FUNDS,
            expires_ns=0,
        )
    )
    consumer.close()


def start_agent(net: Network, root: Path) -> Child:
    key = root / "node.key"
    key.write_text(NODE.seed().hex() + "\n")
    port = free_port()
    return net.spawn(
        "agent",
        [
            "agent",
            "--key",
            str(key),
            "--region",
            "eu-west",
            "--price",
            "10",
            "--api",
            net.api_url,
            "--stake",
            str(NODE_STAKE),
            "--cpu",
            "--state-dir",
            str(root / "agent"),
            "--poll-interval",
            "1.0",
            "--heartbeat-interval",
            "2.0",
            "--serve-model",
            MODEL_ID,
            "--llm-listen",
            f"127.0.0.1:{port}",
        ],
    )


def pass_attestation(operator: ApiClient, agent: Child) -> bool:
    """Once the node asks for a challenge, the operator passes it (no validator is staked)."""
    assert agent.is_running(), f"the agent exited:\n{agent.log()[-4000:]}"
    view = get_node(operator)
    if view is None:
        return False
    if view["state"] == "active":
        return True
    if view.get("challenge") is not None:
        operator.send(
            c.DecideAttestation(
                node_id=NODE.id, accepted=True, reason="bootstrap: no validators (bench)"
            )
        )
    return False


def is_serving(operator: ApiClient) -> bool:
    view = get_node(operator)
    warm = (view or {}).get("warm_models") or []
    return any(model["model_id"] == MODEL_ID for model in warm)


def get_node(operator: ApiClient) -> dict[str, Any] | None:
    answer = operator.http.get(f"/v1/nodes/{NODE.id}")
    if answer.status_code == httpx.codes.NOT_FOUND:
        return None
    answer.raise_for_status()
    view: dict[str, Any] = answer.json()
    return view


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/llm.py: timed out waiting for {what}")
        time.sleep(POLL_S)
