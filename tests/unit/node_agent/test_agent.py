"""The agent's loops against an in-memory ledger: the whole path, outages, restarts, shutdown."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import torch

from adapters.compute.nvml import Inventory
from adapters.ledger_api.client import ApiProblem, Conflict
from adapters.ledger_api.wire import JobView, NodeView
from domain import commands as c
from domain.commands import Command
from node_agent.agent import NodeAgent
from node_agent.config import AgentConfig
from node_agent.ledger_link import LedgerUnavailable
from proofs.identity import Identity

NODE = Identity.from_seed(b"agent".ljust(32, b"\0"))
RUN_TIMEOUT_S = 30.0
FAR_FUTURE_NS = 2**62


class FakeLedger:
    """Just the rules the agent meets; ``down`` makes every call fail like an outage."""

    def __init__(self) -> None:
        self.node: dict[str, Any] | None = None
        self.jobs: dict[str, dict[str, Any]] = {}
        self.down = False
        self.commit_failures = 0
        self.commits: dict[str, bytes] = {}
        self.released: list[str] = []
        self.encryption_keys: dict[str, bytes] = {}

    def _check(self) -> None:
        if self.down:
            raise LedgerUnavailable("down")

    def add_job(self, job_id: str, kind: str, params: dict[str, Any]) -> None:
        self.jobs[job_id] = {
            "id": job_id,
            "consumer": NODE.id,
            "state": "submitted",
            "region": "eu-west",
            "node_id": None,
            "workload": {"kind": kind, "gpu_class_min": "cpu", "params": params},
            "max_price": 100,
            "redundancy": 1,
            "deadline_ns": FAR_FUTURE_NS,
            "attempt": 0,
            "price": 0,
            "result_due_ns": FAR_FUTURE_NS,
            "validators": [],
            "verdicts": {},
            "payouts": [],
            "version": 1,
        }

    async def get_node(self, node_id: str) -> NodeView | None:
        self._check()
        return None if self.node is None else msgspec.convert(self.node, NodeView)

    async def list_jobs(self, **filters: Any) -> list[JobView]:
        self._check()
        return [
            msgspec.convert(j, JobView)
            for j in self.jobs.values()
            if j["state"] == filters.get("state") and filters.get("node") in (None, j["node_id"])
        ]

    async def get_job(self, job_id: str) -> JobView:
        self._check()
        return msgspec.convert(self.jobs[job_id], JobView)

    async def get_encryption_key(self, actor_id: str) -> bytes | None:
        self._check()
        return self.encryption_keys.get(actor_id)

    async def send(self, command: Command) -> None:
        self._check()
        handlers: dict[type[Command], Callable[[Any], None]] = {
            c.RegisterEncryptionKey: self._register_key,
            c.RegisterNode: self._register_node,
            c.BondStake: self._bond,
            c.RequestAttestationChallenge: self._request_challenge,
            c.SubmitAttestation: self._submit_attestation,
            c.ClaimJob: self._claim,
            c.ReleaseJob: self._release,
            c.CommitResult: self._commit_result,
        }
        handlers[type(command)](command)

    def _register_key(self, command: c.RegisterEncryptionKey) -> None:
        assert self.node is not None
        self.encryption_keys[self.node["id"]] = command.public_key

    def _register_node(self, command: c.RegisterNode) -> None:
        self.node = {
            **msgspec.to_builtins(command),
            "id": NODE.id,
            "owner": NODE.id,
            "state": "registered",
            "stake": 0,
            "unbonding": 0,
            "unbond_ready_ns": 0,
            "jailed_until_ns": 0,
            "slashed_total": 0,
            "version": 1,
            "challenge": None,
        }

    def _bond(self, command: c.BondStake) -> None:
        assert self.node is not None and command.target == NODE.id
        self.node["stake"] += command.amount

    def _request_challenge(self, command: c.RequestAttestationChallenge) -> None:
        assert self.node is not None
        seed = hashlib.sha256(b"seed").hexdigest()
        self.node["challenge"] = {
            "nonce": "n1",
            "seed": seed,
            "size": 32,
            "deadline_ns": FAR_FUTURE_NS,
        }

    def _submit_attestation(self, command: c.SubmitAttestation) -> None:
        assert self.node is not None and command.nonce == "n1"
        self.node.update(state="active", challenge=None)  # the quorum accepts at once

    def _claim(self, command: c.ClaimJob) -> None:
        job = self.jobs[command.job_id]
        if job["state"] != "submitted":
            raise Conflict(409, {"code": "job_already_claimed"})
        job.update(state="claimed", node_id=command.node_id)

    def _release(self, command: c.ReleaseJob) -> None:
        job = self.jobs[command.job_id]
        if job["state"] != "claimed":
            raise Conflict(409, {"code": f"job_{job['state']}"})
        job.update(state="submitted", node_id=None)
        self.released.append(command.job_id)

    def _commit_result(self, command: c.CommitResult) -> None:
        if self.commit_failures:
            self.commit_failures -= 1
            raise LedgerUnavailable("lost on the way")
        job = self.jobs[command.job_id]
        if job["state"] != "claimed":
            raise ApiProblem(409, {"code": "job_result_committed"})
        job["state"] = "result_committed"
        self.commits[command.job_id] = command.commitment


class FakeArtifacts:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.objects[digest] = data
        return digest

    async def get(self, digest: str) -> bytes:
        return self.objects[digest]


def make_agent(
    tmp_path: Path, ledger: FakeLedger, artifacts: FakeArtifacts, deadline_s: float = 5.0
) -> NodeAgent:
    config = AgentConfig(
        region="eu-west",
        price=10,
        api_url="http://unused",
        state_dir=tmp_path,
        poll_interval_s=0.05,
        shutdown_deadline_s=deadline_s,
    )
    return NodeAgent(
        config,
        identity=NODE,
        ledger=ledger,
        artifacts=artifacts,
        inventory=Inventory(device_class="cpu"),
        devices=[torch.device("cpu")],
    )


async def run_until(agent: NodeAgent, done: Any) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while not done():
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, RUN_TIMEOUT_S)


async def test_registers_attests_claims_and_commits(tmp_path: Path) -> None:
    ledger, artifacts = FakeLedger(), FakeArtifacts()
    ledger.add_job("job-1", "matmul", {"n": 32})
    ledger.add_job("job-2", "inference", {"seed": "m", "batch": 4, "width": 8, "depth": 1})
    agent = make_agent(tmp_path, ledger, artifacts)
    await run_until(agent, lambda: len(ledger.commits) == 2)
    assert ledger.node is not None and ledger.node["stake"] == 1_000
    assert sorted(agent.completed) == ["job-1", "job-2"]
    assert len(artifacts.objects) == 5  # the attestation report + 2 objects per job


async def test_commit_survives_an_outage_without_losing_the_result(tmp_path: Path) -> None:
    ledger, artifacts = FakeLedger(), FakeArtifacts()
    ledger.add_job("job-1", "matmul", {"n": 32})
    ledger.commit_failures = 3
    agent = make_agent(tmp_path, ledger, artifacts)
    await run_until(agent, lambda: "job-1" in ledger.commits)
    assert agent.spool.list_job_ids() == []


async def test_spooled_result_is_delivered_after_a_restart(tmp_path: Path) -> None:
    ledger, artifacts = FakeLedger(), FakeArtifacts()
    ledger.add_job("job-1", "matmul", {"n": 32})
    ledger.commit_failures = 10**6  # the API goes away before the commit, for good
    first = make_agent(tmp_path, ledger, artifacts, deadline_s=0.3)
    await run_until(first, lambda: first.spool.list_job_ids() == ["job-1"])
    assert first.abandoned == 1 or "job-1" not in ledger.commits
    assert ledger.released == []  # a spooled result is kept for the next start, not released
    ledger.commit_failures = 0
    second = make_agent(tmp_path, ledger, artifacts)
    await run_until(second, lambda: "job-1" in ledger.commits)
    assert second.spool.list_job_ids() == []


async def test_shutdown_waits_for_the_job_in_hand(tmp_path: Path) -> None:
    ledger, artifacts = FakeLedger(), FakeArtifacts()
    ledger.add_job(
        "job-1",
        "zk-prove",
        {"circuit": "poseidon_preimage", "inputs": '{"a": 1, "b": 2}', "setup_seed": 1},
    )
    agent = make_agent(tmp_path, ledger, artifacts)
    await run_until(agent, lambda: ledger.jobs["job-1"]["state"] == "claimed")
    assert ledger.jobs["job-1"]["state"] == "result_committed"
    assert agent.abandoned == 0


async def test_job_cut_off_by_the_shutdown_deadline_is_released(tmp_path: Path) -> None:
    ledger, artifacts = FakeLedger(), FakeArtifacts()
    ledger.add_job("job-1", "matmul", {"n": 2048})
    agent = make_agent(tmp_path, ledger, artifacts, deadline_s=0.0)
    await run_until(agent, lambda: ledger.jobs["job-1"]["state"] == "claimed")
    assert agent.abandoned == 1
    assert agent.released == ["job-1"] and ledger.released == ["job-1"]
    assert ledger.jobs["job-1"]["state"] == "submitted"
    assert "job-1" not in ledger.commits
