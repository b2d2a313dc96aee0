"""Fixtures for API unit tests: the app on a MemoryEventStore, a test client, a fixed clock."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from adapters.ledger_api.client import ApiClient
from adapters.ledger_api.wire import JobAccepted
from adapters.store.memory import MemoryEventStore
from api.app import create_app
from api.bootstrap import build_deps
from api.object_backend import ObjectBackend
from api.state import ApiDeps
from domain import commands as c
from domain.services.ledger_service import LedgerService
from flopledger.genesis import build_policy, ensure_genesis
from flopledger.network import GENESIS_NS
from flopledger.settings import Settings
from proofs.identity import Identity
from tests.chain_tx import fresh_chain_reference
from tests.object_fakes import MemoryObjectStore

SECOND_NS = 1_000_000_000


def seeded(name: str) -> Identity:
    return Identity.from_seed(name.encode().ljust(32, b"\0"))


@dataclass
class Clock:
    now_ns: int = GENESIS_NS

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * SECOND_NS)


@dataclass
class ApiEnv:
    deps: ApiDeps
    http: TestClient  # type: ignore[type-arg,unused-ignore]
    clock: Clock
    operator: Identity

    def client(self, identity: Identity | None = None) -> ApiClient:
        return ApiClient(identity=identity, http=self.http, clock_ns=self.clock)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_deps(
    tmp_path: Path,
    operator: Identity,
    clock: Clock,
    *,
    actor_commands_burst: int | None = None,
    policy_overrides: dict[str, int | bool] | None = None,
) -> ApiDeps:
    """The API's deps on a new MemoryEventStore whose genesis (written as ``flopledger serve``
    writes it) names ``operator``; ``actor_commands_burst`` raises the per-actor limit;
    ``policy_overrides`` are FLOP_POLICY_JSON's."""
    settings = Settings(
        data_dir=tmp_path, operator_ids=(operator.id,), policy_overrides=policy_overrides or {}
    )
    if actor_commands_burst is not None:
        settings = msgspec.structs.replace(settings, api_actor_commands_burst=actor_commands_burst)
    store = MemoryEventStore()
    seed = build_policy(settings, signer_id=operator.id)
    asyncio.run(ensure_genesis(LedgerService(store), operator, seed, now_ns=clock.now_ns))
    deps = build_deps(store, settings)
    deps.objects = ObjectBackend.of(MemoryObjectStore())
    deps.clock_ns = clock
    deps.log.clock_ns = clock
    return deps


@pytest.fixture
def api_env(tmp_path: Path) -> Iterator[ApiEnv]:
    clock = Clock()
    operator = seeded("operator")
    deps = make_deps(tmp_path, operator, clock)
    with TestClient(create_app(deps)) as http:
        yield ApiEnv(deps=deps, http=http, clock=clock, operator=operator)


def register_active_node(env: ApiEnv, node: Identity, *, region: str = "eu-west") -> None:
    """Register, bond, ask for a challenge and have the operator pass it (rules v3: no
    validator is drawn yet) through the API."""
    client = env.client(node)
    gpus = [c.GpuSpec(name="NVIDIA H100 80GB HBM3", memory_mib=81559)]
    client.send(c.RegisterNode(region=region, gpus=gpus, gpu_class="datacenter", price=100))
    env.client(env.operator).send(
        c.Deposit(account_owner=node.id, amount=5_000, chain_reference=fresh_chain_reference())
    )
    client.send(c.BondStake(target=node.id, amount=2_000))
    client.send(c.RequestAttestationChallenge(node_id=node.id))
    challenge = client.get_node(node.id).challenge
    assert challenge is not None and challenge.probes
    env.client(env.operator).send(
        c.DecideAttestation(node_id=node.id, accepted=True, reason="test bootstrap")
    )


def deposit(env: ApiEnv, owner: Identity, amount: int) -> None:
    """Credit ``owner`` (a deposit signed by the operator)."""
    env.client(env.operator).send(
        c.Deposit(account_owner=owner.id, amount=amount, chain_reference=fresh_chain_reference())
    )


def submit_job(env: ApiEnv, consumer: Identity, *, max_price: int = 500) -> JobAccepted:
    workload = c.Workload(kind="matmul", gpu_class_min="consumer", params={"n": 512})
    return env.client(consumer).send(
        c.SubmitJob(
            workload=workload,
            max_price=max_price,
            region="eu-west",
            deadline_ns=env.clock.now_ns + 3_600 * SECOND_NS,
        )
    )
