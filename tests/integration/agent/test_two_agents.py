"""Two node agents in two regions against ``flopledger serve`` (SQLite) and an embedded
nats-server: they register, bond, attest (an operator accepts after checking each report
with the validators' check), then claim, execute and commit matmul, inference and zk-prove
jobs; every committed result is fetched from the object store and verified.

A us-west job is claimed by the us-east agent after one region stagger (5 s); one job is
also announced as a NATS offer. The agents stop gracefully at the end.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.compute.attestation import verify_attestation
from adapters.compute.results import verify_result
from adapters.ledger_api.client import ApiClient, Conflict
from adapters.ledger_api.wire import JobView
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.objects import ArtifactStore
from adapters.nats.server import EmbeddedNatsServer
from adapters.nats.signals import JobOffer, publish_offer
from domain import commands as c
from flopledger.network import ValidatorKeys, make_validator_keys
from node_agent.bootstrap import run_agent
from node_agent.config import AgentConfig
from proofs import bls
from proofs.identity import Identity
from tests.serve_process import running_serve

SCENARIO_TIMEOUT_S = 120.0
OPENINGS_SEED = hashlib.sha256(b"two-agents/openings").digest()
"""A stand-in for a round's beacon randomness: an honest result passes under any."""
SECOND_NS = 1_000_000_000
OPERATOR = Identity.from_seed(b"operator".ljust(32, b"\0"))
CONSUMER = Identity.from_seed(b"consumer".ljust(32, b"\0"))
EU_NODE = Identity.from_seed(b"node-eu".ljust(32, b"\0"))
US_NODE = Identity.from_seed(b"node-us".ljust(32, b"\0"))
JOBS: list[tuple[str, str, dict[str, Any]]] = [
    ("eu-west", "matmul", {"n": 256, "seed": "m1"}),
    ("eu-west", "inference", {"seed": "model-a", "batch": 48}),
    (
        "us-east",
        "zk-prove",
        {"circuit": "poseidon_preimage", "inputs": '{"a": 5, "b": 9}', "setup_seed": 11},
    ),
    ("us-west", "matmul", {"n": 128, "seed": "m2"}),
]


@pytest.fixture
def api_url(tmp_path: Path) -> Iterator[str]:
    # The log key signs the new store's genesis, so it is the operator.
    log_key = tmp_path / "log_key.hex"
    log_key.write_text(OPERATOR.seed().hex() + "\n")
    env = {
        **os.environ,
        "FLOP_DATA_DIR": str(tmp_path / "data"),
        "FLOP_OPERATOR_IDS": OPERATOR.id,
        "FLOP_LOG_KEY_FILE": str(log_key),
        "FLOP_LOG_LEVEL": "warning",
        # The zk-prove job uses setup_seed test keys: a devnet-like genesis allows them. Rules
        # v2 on purpose: with no validator, the operator here checks each agent's own report,
        # the path a ledger written before issue 15 still runs (rules v3 probes run in the
        # devnet, tests/e2e/test_devnet.py).
        "FLOP_POLICY_JSON": '{"insecure_setups_allowed": true, "rules_version": 2}',
    }
    with running_serve(env) as (url, _process):
        yield url


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    server = EmbeddedNatsServer(tmp_path / "nats")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
async def artifacts(nats_url: str) -> AsyncIterator[ArtifactStore]:
    nc = await connect_nats(nats_url, name="test-operator")
    try:
        yield await ArtifactStore.open(nc)
    finally:
        await close_nats(nc)


def config(tmp_path: Path, region: str, api: str, nats: str) -> AgentConfig:
    return AgentConfig(
        region=region,
        price=10,
        api_url=api,
        nats_url=nats,
        state_dir=tmp_path / region,
        stake=1_000,
        poll_interval_s=0.3,
        heartbeat_interval_s=1.0,
        shutdown_deadline_s=10.0,
    )


async def test_two_agents_attest_and_complete_every_workload(
    api_url: str, nats_url: str, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    operator = ApiClient(api_url, identity=OPERATOR)
    consumer = ApiClient(api_url, identity=CONSUMER)
    validators = [make_validator_keys(i) for i in range(3)]
    for actor in (EU_NODE, US_NODE, CONSUMER, *(v.identity for v in validators)):
        operator.send(
            c.Deposit(
                account_owner=actor.id, amount=100_000, chain_reference=f"test-deposit-{actor.id}"
            )
        )
    for keys in validators:
        _register_validator(ApiClient(api_url, identity=keys.identity), keys)
    stop = asyncio.Event()
    agents = [
        asyncio.create_task(
            run_agent(config(tmp_path, "eu-west", api_url, nats_url), EU_NODE, stop)
        ),
        asyncio.create_task(
            run_agent(config(tmp_path, "us-east", api_url, nats_url), US_NODE, stop)
        ),
    ]
    try:
        await asyncio.wait_for(_accept_attestations(operator, artifacts), SCENARIO_TIMEOUT_S)
        job_ids = [_submit(consumer, region, kind, params) for region, kind, params in JOBS]
        await _announce(nats_url, job_ids[0])
        jobs = await asyncio.wait_for(_committed(operator, job_ids), SCENARIO_TIMEOUT_S)
    finally:
        stop.set()
        finished = await asyncio.wait_for(asyncio.gather(*agents), 30)
    assert [j.node_id for j in jobs] == [EU_NODE.id, EU_NODE.id, US_NODE.id, US_NODE.id]
    for (_, kind, params), job in zip(JOBS, jobs, strict=True):
        result = _result_event(operator, job.id)
        assert job.node_id is not None
        verdict = verify_result(
            job_id=job.id,
            node_id=job.node_id,
            kind=kind,
            raw_params=params,
            commitment=result["commitment"],
            artifact_digest=result["artifact_digest"],
            proof_digest=result["proof_digest"],
            artifact=await artifacts.get(result["artifact_digest"].hex()),
            proof=await artifacts.get(result["proof_digest"].hex()),
            openings_seed=OPENINGS_SEED,
            insecure_setups_allowed=True,
        )
        assert verdict == "ok", (kind, verdict)
    assert sorted(len(a.completed) for a in finished) == [2, 2]
    assert all(a.abandoned == 0 for a in finished)


async def _accept_attestations(operator: ApiClient, artifacts: ArtifactStore) -> None:
    """Act as the attestation quorum: verify each submitted report, then accept it."""
    pending = {EU_NODE.id, US_NODE.id}
    while pending:
        for event in _events(operator, "AttestationSubmitted"):
            node_id = event["stream_id"]
            if node_id not in pending:
                continue
            challenge = operator.get_node(node_id).challenge
            assert challenge is not None
            data = event["data"]
            report = await artifacts.get(_bytes(data["inventory_digest"]).hex())
            verdict = verify_attestation(
                report,
                node_id=node_id,
                nonce=challenge.nonce,
                seed=challenge.seed,
                size=challenge.size,
                inventory_digest=_bytes(data["inventory_digest"]),
                commitment=_bytes(data["commitment"]),
                timings_ns=list(data["timings_ns"]),
            )
            assert verdict == "ok", verdict
            try:
                operator.send(
                    c.DecideAttestation(node_id=node_id, accepted=True, reason="test bootstrap")
                )
            except Conflict:
                continue
            pending.discard(node_id)
        await asyncio.sleep(0.2)
    while any(operator.get_node(n.id).state != "active" for n in (EU_NODE, US_NODE)):
        await asyncio.sleep(0.2)


def _register_validator(client: ApiClient, keys: ValidatorKeys) -> None:
    client.send(
        c.RegisterValidator(
            bls_public_key=keys.bls_public, proof_of_possession=bls.pop_prove(keys.bls_secret)
        )
    )
    client.send(c.BondStake(target=keys.identity.id, amount=1_000))


def _submit(consumer: ApiClient, region: str, kind: str, params: dict[str, Any]) -> str:
    workload = msgspec.convert({"kind": kind, "gpu_class_min": "cpu", "params": params}, c.Workload)
    answer = consumer.send(
        c.SubmitJob(
            workload=workload,
            max_price=100,
            region=region,
            deadline_ns=time.time_ns() + 600 * SECOND_NS,
            redundancy=3,
        )
    )
    return answer.job_id


async def _announce(nats_url: str, job_id: str) -> None:
    nc = await connect_nats(nats_url, name="test-scheduler")
    try:
        offer = JobOffer(
            job_id=job_id,
            region="eu-west",
            workload_kind="matmul",
            max_price_base_units=100,
            redundancy=3,
            deadline_ns=time.time_ns() + 600 * SECOND_NS,
            offered_at_ns=time.time_ns(),
        )
        await publish_offer(nc, offer)
    finally:
        await close_nats(nc)


async def _committed(client: ApiClient, job_ids: list[str]) -> list[JobView]:
    while True:
        jobs = [client.get_job(job_id) for job_id in job_ids]
        if all(j.state not in ("submitted", "claimed") for j in jobs):
            return jobs
        await asyncio.sleep(0.3)


def _events(client: ApiClient, event_type: str) -> list[dict[str, Any]]:
    page = client.get("/v1/events", {"from_position": 1, "limit": 1000})
    return [e for e in page["items"] if e["event_type"].endswith(event_type)]


def _result_event(client: ApiClient, job_id: str) -> dict[str, bytes]:
    for event in _events(client, "ResultCommitted"):
        if event["stream_id"] == job_id:
            return {k: _bytes(v) for k, v in event["data"]["result"].items()}
    raise AssertionError(f"no ResultCommitted for {job_id}")


def _bytes(value: Any) -> bytes:
    """Event payload bytes: hex or base64, whichever the record encoding uses."""
    if isinstance(value, str) and len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    return base64.b64decode(value)
