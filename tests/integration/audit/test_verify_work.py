"""``flopledger audit --verify-work`` on a real SQLite store and a real nats-server object
store (issue 16, item 2): the audit fetches every decided job's artifacts and re-runs the
validators' verifier on them.

The history: an honest node's matmul result, passed by its validators; then a node that
commits a copy of that result for another job (the copied artifact names the first job), and
validators that pass it without checking. The replay alone cannot tell (every signature,
certificate and payment is valid); re-running the verifier can: the audit fails at the
decision's position. Then an honest result its validators rejected (its node slashed), and
a pass whose artifacts the object store lost, within retention and past it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from adapters.compute.results import ResultBundle, execute_workload
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.objects import ArtifactStore
from adapters.nats.server import EmbeddedNatsServer
from adapters.store.sqlite import SqliteEventStore
from domain.job import Job
from domain.policy import SECOND_NS, LedgerPolicy, compute_artifact_retention_ns
from domain.services.queries import get_aggregate
from flopledger.cli import main
from flopledger.network import LocalNetwork, ValidatorKeys, b64, make_validator_keys
from proofs.identity import Identity
from validator.audit import AuditOptions
from validator.audit_run import AuditReport, WorkCheck, open_source, run_audit
from validator.audit_work import open_objects

pytestmark = pytest.mark.slow

NODE, NODE_B, NODE_C = (
    Identity.from_seed(f"work-node-{i}".encode().ljust(32, b"\0")) for i in range(3)
)
CONSUMER = Identity.from_seed(b"work-consumer".ljust(32, b"\0"))
MATMUL = {"kind": "matmul", "gpu_class_min": "consumer", "params": {"n": 128, "seed": "w"}}


@dataclass
class Built:
    path: Path
    decisions: dict[str, int]
    """Step -> position of its job's JobVerified / JobRejected record."""
    now_ns: int
    """The network's clock after the last decision."""


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedNatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def _submit(net: LocalNetwork, seed: str) -> str:
    workload = {**MATMUL, "params": {"n": 128, "seed": seed}}
    result = await net.run(
        CONSUMER,
        "job.submit",
        {
            "workload": workload,
            "max_price": 1_000,
            "region": "eu-west",
            "redundancy": 3,
            "deadline_ns": net.now_ns + 3_600 * SECOND_NS,
        },
    )
    return result.subject


async def _deliver(
    net: LocalNetwork,
    node: Identity,
    job_id: str,
    bundle: ResultBundle,
    store: ArtifactStore,
    *,
    uploaded: bool = True,
) -> None:
    net.advance(60)  # past any claim stagger
    await net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id})
    if uploaded:
        await store.put(bundle.artifact)
        await store.put(bundle.proof)
    await net.run(
        node,
        "job.commit_result",
        {
            "job_id": job_id,
            "commitment": b64(bundle.commitment),
            "artifact_digest": b64(bundle.artifact_digest),
            "proof_digest": b64(bundle.proof_digest),
        },
    )
    await net.run_beacon()


async def _vote(
    net: LocalNetwork, validators: list[ValidatorKeys], job_id: str, passed: bool
) -> int:
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.round is not None
    assigned = [k for k in validators if k.identity.id in job.round.validators]
    await net.vote_round(job_id, [(keys, passed) for keys in assigned])
    records = await net.store.read_all(1, 100_000)
    decided = ("JobVerified", "JobRejected")
    return next(r.position for r in records if r.stream_id == job_id and r.event_type in decided)


def _bundle(job_id: str, seed: str, node: Identity) -> ResultBundle:
    params = {"n": 128, "seed": seed}
    return execute_workload(job_id, "matmul", params, node, torch.device("cpu"))


STEPS: dict[str, tuple[str, bool, bool]] = {
    # step -> (what the node commits, whether it uploads it, the validators' verdict)
    "honest": ("own", True, True),
    "copied": ("first", True, True),  # the first job's artifact, passed unchecked
    "lost": ("own", False, True),  # passed, and its objects are not in the store
    "rejected": ("own", True, False),  # an honest result rejected: its node slashed
    "unavailable": ("own", False, False),  # never uploaded, rejected
}
STEP_NODES = {"unavailable": NODE_B, "rejected": NODE_C}
"""A rejection jails its node: each rejected step has a node of its own (default NODE)."""


async def _build(path: Path, url: str, steps: tuple[str, ...]) -> Built:
    nc = await connect_nats(url, name="work-history")
    store = await ArtifactStore.open(nc)
    sqlite = await SqliteEventStore.open(path)
    try:
        net = LocalNetwork.create(sqlite, policy=LedgerPolicy())
        validators = [make_validator_keys(i) for i in range(3)]
        for keys in validators:
            await net.deposit(keys.identity, 20_000)
            await net.register_validator(keys, stake=10_000)
        for node in (NODE, NODE_B, NODE_C):
            await net.deposit(node, 50_000)
            await net.register_active_node(node, region="eu-west", price=400, stake=20_000)
        await net.deposit(CONSUMER, 50_000)
        decisions: dict[str, int] = {}
        first: ResultBundle | None = None
        for step in steps:
            commits, uploaded, passed = STEPS[step]
            node = STEP_NODES.get(step, NODE)
            job_id = await _submit(net, step)
            bundle = _bundle(job_id, step, node)
            first = first or bundle
            if commits == "first":
                bundle = first
            await _deliver(net, node, job_id, bundle, store, uploaded=uploaded)
            decisions[step] = await _vote(net, validators, job_id, passed)
        return Built(path, decisions, net.now_ns)
    finally:
        await sqlite.close()
        await close_nats(nc)


def _history(name: str, steps: tuple[str, ...], url: str, factory: pytest.TempPathFactory) -> Built:
    path = factory.mktemp(name) / "history.sqlite3"
    return asyncio.run(_build(path, url, steps))


@pytest.fixture(scope="module")
def copied(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _history("copied", ("honest", "copied"), nats_url, tmp_path_factory)


@pytest.fixture(scope="module")
def mixed(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    steps = ("honest", "unavailable", "lost", "rejected")
    return _history("mixed", steps, nats_url, tmp_path_factory)


def _audit(
    built: Built, url: str, *, at: int | None = None, now_ns: int | None = None
) -> AuditReport:
    async def go() -> AuditReport:
        source = await open_source(f"sqlite:///{built.path}")
        objects = await open_objects(url)
        try:
            work = WorkCheck(artifacts=objects, now_ns=now_ns or built.now_ns)
            options = AuditOptions(verify_work=True, at_position=at)
            return await run_audit(source, options, work=work)
        finally:
            await source.close()
            await objects.close()

    return asyncio.run(go())


def _cli(built: Built, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["audit", "--source", f"sqlite:///{built.path}", "--json", *args])
    # The report is the last line (structlog's default logger prints to stdout too).
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_clean_history_is_reverified(copied: Built, nats_url: str) -> None:
    report = _audit(copied, nats_url, at=copied.decisions["copied"] - 1)
    assert report.ok, report.failure
    assert report.checks["work"].status == "passed"
    assert report.state["work"]["reverified"] == 1


def test_a_copied_result_passed_by_validators_fails_at_its_decision(
    copied: Built, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, plain = _cli(copied, capsys=capsys)
    assert code == 0, plain["failure"]  # every signature, certificate and payment holds
    assert plain["checks"]["work"]["status"] == "skipped"
    code, report = _cli(copied, "--verify-work", "--objects", nats_url, capsys=capsys)
    assert code == 1
    assert report["failure"]["position"] == copied.decisions["copied"]
    assert report["failure"]["check"] == "work"
    assert "manifest_mismatch" in report["failure"]["message"]


def test_a_pass_whose_objects_are_missing_within_retention_fails(
    mixed: Built, nats_url: str
) -> None:
    report = _audit(mixed, nats_url, at=mixed.decisions["rejected"] - 1)
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (mixed.decisions["lost"], "work")
    assert "missing" in report.failure.message


def test_objects_past_retention_are_counted_not_passed(mixed: Built, nats_url: str) -> None:
    later = mixed.now_ns + compute_artifact_retention_ns(LedgerPolicy()) + SECOND_NS
    report = _audit(mixed, nats_url, at=mixed.decisions["rejected"] - 1, now_ns=later)
    assert report.ok, report.failure
    work = report.state["work"]
    assert (work["reverified"], work["past_retention"]) == (1, 2)
    assert report.checks["work"].status == "partial"


def test_a_rejection_whose_objects_were_never_stored_is_counted(
    mixed: Built, nats_url: str
) -> None:
    report = _audit(mixed, nats_url, at=mixed.decisions["lost"] - 1)
    assert report.ok, report.failure
    work = report.state["work"]
    assert (work["reverified"], work["unavailable_rejected"]) == (1, 1)


def test_an_honest_result_rejected_fails_at_its_decision(mixed: Built, nats_url: str) -> None:
    later = mixed.now_ns + compute_artifact_retention_ns(LedgerPolicy()) + SECOND_NS
    report = _audit(mixed, nats_url, now_ns=later)
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (
        mixed.decisions["rejected"],
        "work",
    )
    assert "pass the verifier" in report.failure.message
