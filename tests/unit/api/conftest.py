"""Fixtures for API unit tests: the app on a MemoryEventStore, a test client, a fixed clock."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from adapters.ledger_api.client import ApiClient
from adapters.store.memory import MemoryEventStore
from api.app import create_app
from api.bootstrap import build_deps
from api.state import ApiDeps
from flopledger.network import GENESIS_NS
from flopledger.settings import Settings
from proofs.identity import Identity

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


def make_deps(tmp_path: Path, operator: Identity, clock: Clock) -> ApiDeps:
    settings = Settings(data_dir=tmp_path, operator_ids=(operator.id,))
    deps = build_deps(MemoryEventStore(), settings)
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
    """Register, bond, attest and accept a node through the API."""
    client = env.client(node)
    client.register_node(
        region=region,
        gpus=[{"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}],
        gpu_class="datacenter",
        price=100,
    )
    env.client(env.operator).deposit(node.id, 5_000)
    client.send("/v1/stake/bond", "stake.bond", {"target": node.id, "amount": 2_000})
    client.send(
        f"/v1/nodes/{node.id}/attestation/challenge",
        "node.attestation.challenge",
        {"node_id": node.id},
    )
    challenge = client.get_node(node.id)["challenge"]
    client.send(
        f"/v1/nodes/{node.id}/attestation",
        "node.attestation.submit",
        {
            "node_id": node.id,
            "nonce": challenge["nonce"],
            "inventory_digest": b64(bytes(32)),
            "commitment": b64(bytes(32)),
            "timings_ns": [1_000_000],
        },
    )
    env.client(env.operator).send(
        f"/v1/nodes/{node.id}/attestation/decision",
        "node.attestation.decide",
        {"node_id": node.id, "accepted": True},
    )


def submit_job(env: ApiEnv, consumer: Identity, *, max_price: int = 500) -> dict[str, Any]:
    return env.client(consumer).submit_job(
        workload={"kind": "matmul", "gpu_class_min": "consumer", "params": {"n": 512}},
        max_price=max_price,
        region="eu-west",
        deadline_ns=env.clock.now_ns + 3_600 * SECOND_NS,
    )
