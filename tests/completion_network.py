"""A network ready for LLM completions (issue 18), for the completion tests: a registered
model, a funded consumer with a delegated key, an active node holding the model warm, and the
operator as the completion signer; helpers that open, commit and abort through the bus."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from adapters.store.memory import MemoryEventStore
from domain.api_keys import ApiKey, compute_api_key_stream_id
from domain.completions import Completion, compute_completion_stream_id
from domain.node import Node
from domain.policy import SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate, get_balances
from domain.verdicts import completion_subject, compute_verdict_commitment
from flopledger.network import LocalNetwork, ValidatorKeys, b64, make_validator_keys
from proofs import bls
from proofs.identity import Identity
from proofs.quorum import completion_verdict_message

MODEL_ID = "tiny-llama-7"
PRICE_PER_1K_INPUT = 1_000
"""1 base unit per prompt token."""
PRICE_PER_1K_OUTPUT = 2_000
"""2 base units per completion token."""
CONTEXT_TOKENS = 2_048
NODE_STAKE = 5_000
CONSUMER_FUNDS = 100_000
SPEND_LIMIT = 10_000
POLICY = LedgerPolicy(
    node_stake_min=1_000,
    validator_stake_min=500,
    verdict_commit_window_ns=10 * SECOND_NS,
    verdict_reveal_window_ns=10 * SECOND_NS,
)
CONSUMER = Identity.from_seed(bytes([211]) * 32)
NODE = Identity.from_seed(bytes([212]) * 32)
DIGEST = bytes(range(32))


def make_key(name: str) -> tuple[str, bytes]:
    """(key id, key hash) of a secret key named ``name``."""
    key_hash = hashlib.sha256(f"flk_{name}".encode()).digest()
    return hashlib.sha256(key_hash).hexdigest(), key_hash


def compute_escrow(prompt_tokens_max: int, max_tokens: int) -> int:
    """The test model's price of a bound, by its per-token prices (whole units here)."""
    return prompt_tokens_max * 1 + max_tokens * 2


@dataclass
class CompletionNet:
    net: LocalNetwork
    key_id: str

    @property
    def signer(self) -> Identity:
        return self.net.operator

    async def create_key(
        self, consumer: Identity, name: str, *, spend_limit: int, expires_ns: int = 0
    ) -> str:
        key_id, key_hash = make_key(name)
        body = {
            "key_id": key_id,
            "key_hash": b64(key_hash),
            "spend_limit": spend_limit,
            "expires_ns": expires_ns,
        }
        await self.net.run(consumer, "apikey.create", body)
        return key_id

    async def open(
        self,
        *,
        prompt_tokens_max: int = 100,
        max_tokens: int = 50,
        key_id: str | None = None,
        signer: Identity | None = None,
        node: Identity = NODE,
        model_id: str = MODEL_ID,
    ) -> str:
        """Open a completion; returns its id (``cmpl-...``)."""
        body = {
            "key_id": key_id or self.key_id,
            "model_id": model_id,
            "node_id": node.id,
            "request_digest": b64(DIGEST),
            "prompt_tokens_max": prompt_tokens_max,
            "max_tokens": max_tokens,
            "greedy": True,
        }
        result = await self.net.run(signer or self.signer, "completion.open", body)
        return result.subject.removeprefix("completion:")

    async def commit(
        self,
        completion_id: str,
        *,
        prompt_tokens: int = 40,
        completion_tokens: int = 20,
        node: Identity = NODE,
        commitment: bytes = DIGEST,
    ) -> None:
        body = {
            "completion_id": completion_id,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "commitment": b64(commitment),
            "proof_digest": b64(DIGEST),
        }
        await self.net.run(node, "completion.commit", body)

    async def abort(self, completion_id: str, *, by: Identity | None = None) -> None:
        body: dict[str, Any] = {"completion_id": completion_id}
        await self.net.run(by or self.signer, "completion.abort", body)

    async def add_validators(
        self, count: int, *, stake: int = 1_000, check_models: tuple[str, ...] = (MODEL_ID,)
    ) -> list[ValidatorKeys]:
        """``count`` funded validators with ``stake`` bonded (the beacon's contributors), each
        declaring that it checks ``check_models`` (none declared when empty)."""
        validators = [make_validator_keys(100 + i) for i in range(count)]
        for keys in validators:
            await self.net.deposit(keys.identity, stake + 1_000)
            await self.net.register_validator(keys, stake=stake)
            if check_models:
                await self.declare_models(keys.identity, check_models)
        return validators

    async def declare_models(self, validator: Identity, models: tuple[str, ...]) -> None:
        """``validator.declare_models``, signed by the validator."""
        body = {"validator_id": validator.id, "models": list(models)}
        await self.net.run(validator, "validator.declare_models", body)

    async def vote(
        self, completion_id: str, votes: list[tuple[ValidatorKeys, bool]], reason: str = ""
    ) -> None:
        """Have the drawn validators commit ``votes`` (the draw completed first), let the
        commit window close, and reveal in order until the check is decided."""
        await self.net.run_beacon()
        completion = await self.get(completion_id)
        assert completion.round is not None, "not sampled"
        commitment = completion.round_commitment()
        salts = []
        for keys, passed in votes:
            salt = hashlib.sha256(f"{keys.identity.id}/{completion_id}".encode()).digest()
            verdict_hash = compute_verdict_commitment(
                subject=completion_subject(completion_id),
                result_commitment=commitment,
                validator_id=keys.identity.id,
                passed=passed,
                salt=salt,
            )
            body = {"completion_id": completion_id, "verdict_hash": b64(verdict_hash)}
            await self.net.run(keys.identity, "completion.commit_verdict", body)
            salts.append(salt)
        committed = await self.get(completion_id)
        assert committed.round is not None
        if not committed.round.is_commit_phase_over(self.net.now_ns):
            self.net.now_ns = committed.round.commit_deadline_ns + 1
        for (keys, passed), salt in zip(votes, salts, strict=True):
            message = completion_verdict_message(completion_id, commitment, passed)
            reveal: dict[str, Any] = {
                "completion_id": completion_id,
                "passed": passed,
                "reason": reason,
                "signature": b64(bls.sign(keys.bls_secret, message)),
                "salt": b64(salt),
            }
            await self.net.run(keys.identity, "completion.record_verdict", reveal)
            if (await self.get(completion_id)).state != "committed":
                return

    async def get(self, completion_id: str) -> Completion:
        stream_id = compute_completion_stream_id(completion_id)
        completion = await get_aggregate(self.net.store, Completion, stream_id)
        assert completion is not None
        return completion

    async def get_key(self, key_id: str | None = None) -> ApiKey:
        stream_id = compute_api_key_stream_id(key_id or self.key_id)
        key = await get_aggregate(self.net.store, ApiKey, stream_id)
        assert key is not None
        return key

    async def get_node(self, node: Identity = NODE) -> Node:
        found = await get_aggregate(self.net.store, Node, node.id)
        assert found is not None
        return found

    async def balance(self, account_id: str) -> int:
        accounts = await get_balances(self.net.store)
        return accounts[account_id].balance if account_id in accounts else 0

    async def money_total(self) -> int:
        return sum(a.balance for a in (await get_balances(self.net.store)).values())


async def register_model(net: LocalNetwork, model_id: str = MODEL_ID) -> None:
    body = {
        "model_id": model_id,
        "content_digest": b64(DIGEST),
        "architecture": "llama",
        "dtype": "float32",
        "context_tokens": CONTEXT_TOKENS,
        "price_per_1k_input_tokens": PRICE_PER_1K_INPUT,
        "price_per_1k_output_tokens": PRICE_PER_1K_OUTPUT,
    }
    await net.run(net.operator, "model.register", body)


async def add_serving_node(net: LocalNetwork, node: Identity, model_id: str = MODEL_ID) -> None:
    """An active node holding ``model_id`` warm."""
    await net.deposit(node, NODE_STAKE + 1_000)
    await net.register_active_node(node, region="eu-west", price=10, stake=NODE_STAKE)
    body = {
        "node_id": node.id,
        "models": [{"model_id": model_id, "capacity": 4}],
        "endpoint": "http://127.0.0.1:9300",
    }
    await net.run(node, "node.advertise_models", body)


async def start_completion_network(
    policy: LedgerPolicy = POLICY, *, spend_limit: int = SPEND_LIMIT
) -> CompletionNet:
    net = await LocalNetwork.start(MemoryEventStore(), policy=policy)
    await register_model(net)
    await net.deposit(CONSUMER, CONSUMER_FUNDS)
    await add_serving_node(net, NODE)
    cnet = CompletionNet(net=net, key_id="")
    cnet.key_id = await cnet.create_key(CONSUMER, "consumer", spend_limit=spend_limit)
    return cnet
