"""Issue 8's end-to-end test: three ``flopledger validator`` processes keep a network of
honest and dishonest nodes honest, over a real nats-server, ``flopledger serve`` on a
SQLite file and ``flopledger relay``.

Cast: three honest node agents (``node_agent``, in this process), and dishonest nodes built
in ``_dishonest``: one corrupts 5% of a matmul's rows (with a consistent commitment), one
commits another job's result, one forges its hardware attestation. Thirty matmul jobs (three
validators on each). Midway one validator is SIGKILLed, preferably between its commit and its
reveal, and restarted on the same signing database.

Then: every job settles (the two cheated ones after the cheat was caught, by an honest node);
each cheat is rejected by a quorum certificate and its node slashed and jailed; the forged
attestation is rejected and its node slashed; balances sum to zero and only the boundary is
negative; no validator committed or revealed twice, or contradicted itself, on any subject
(the restarted one resumed from its checkpoint and revealed what it had decided before the
crash); ``flopledger audit`` of the store passes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.ledger_api.client import ApiClient
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.objects import ArtifactStore
from adapters.store.factory import open_event_store
from domain import commands as c
from domain.events import decode_event, rebuild
from domain.job import Job
from domain.ledger import BOUNDARY_ACCOUNT, stake_account
from domain.node import Node
from domain.policy import BPS, RULES_V2, SECOND_NS, LedgerPolicy
from domain.records import Record
from domain.services.queries import get_aggregate, get_balances
from domain.verdicts import compute_verdict_commitment
from node_agent.bootstrap import run_agent
from node_agent.config import AgentConfig
from proofs import bls
from proofs.identity import Identity
from proofs.quorum import attestation_verdict_message, decode_qc, verdict_message, verify_qc
from tests.e2e._dishonest import DishonestNode
from tests.e2e._network_harness import Child, Network, wait_for_validator
from validator.protection import SigningDatabase

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

VALIDATORS = 3
JOBS = 30
STAKE = 1_000
FUNDS = 10_000
PRICE = 10
MAX_PRICE = 100
STAGGER_S = 0.5
# Rounds close early once every drawn validator committed, so the windows cost time only when
# a validator is absent (the crash below). At 2 s, a validator verifying six attestations in a
# row on a loaded 2-core machine missed them, the round was given up and the cheat went back
# to the market unrejected: 5 s leaves that margin.
VERDICT_WINDOW_S = 5
POLICY: dict[str, int | bool] = {
    "region_stagger_ns": int(STAGGER_S * SECOND_NS),
    "verdict_commit_window_ns": VERDICT_WINDOW_S * SECOND_NS,
    "verdict_reveal_window_ns": VERDICT_WINDOW_S * SECOND_NS,
    # Rules v2 on purpose: a ledger written before issue 15 still runs the report path (its
    # forger answers its challenge with a report claiming an impossible matmul time). The
    # validator-timed probes of rules v3 run end to end in the devnet (tests/e2e/test_devnet.py)
    # and against real daemons in tests/adversarial/test_hardware_probes.py.
    "rules_version": RULES_V2,
}
SLASHED_STAKE = STAKE - STAKE * LedgerPolicy().slash_bps // BPS
HONEST_REGIONS = ("eu-west", "us-east", "ap-south")
CHEAT_REGION = "sa-east"
STEP_TIMEOUT_S = 90.0
SETTLE_TIMEOUT_S = 240.0
KILL_HUNT_S = 10.0
RESTART_AFTER_S = 3.0
AUDIT_TIMEOUT_S = 240.0
NEVER_REFUSED = (
    "reveal_does_not_match_commit",  # a reveal that is not what it committed
    "verdict_already_recorded",  # a second reveal
    "verdict_signature_invalid",
    "hold_already_closed",  # a torn read (decided again since)
)


def _identity(name: str) -> Identity:
    return Identity.from_seed(f"e2e-{name}".encode().ljust(32, b"\0"))


OPERATOR = _identity("operator")
CONSUMER = _identity("consumer")
HONEST = [_identity(f"honest-{region}") for region in HONEST_REGIONS]
CORRUPTER, COPIER, FORGER = (_identity(n) for n in ("corrupter", "copier", "forger"))


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    net = Network(root=tmp_path / "net", operator=OPERATOR, policy=POLICY)
    try:
        net.start()
        yield net
    finally:
        net.close()


@pytest.fixture
async def artifacts(network: Network) -> AsyncIterator[ArtifactStore]:
    nc = await connect_nats(network.nats_url, name="e2e-dishonest")
    try:
        yield await ArtifactStore.open(nc)
    finally:
        await close_nats(nc)


class Scenario:
    """The test's view of the running network: clients, the jobs and what happened when."""

    def __init__(self, net: Network, artifacts: ArtifactStore) -> None:
        self.net = net
        self.operator = ApiClient(net.api_url, identity=OPERATOR)
        self.consumer = ApiClient(net.api_url, identity=CONSUMER)
        self.validator_files = [net.validator_files(i) for i in range(VALIDATORS)]
        self.cheaters = {
            who.id: DishonestNode(who, net.api_url, artifacts)
            for who in (CORRUPTER, COPIER, FORGER)
        }
        self.jobs: list[str] = []
        self.cheated: dict[str, str] = {}  # job id -> cheating node id
        self.killed_between_commit_and_reveal = False
        self.restart_position = 0

    def close(self) -> None:
        for node in self.cheaters.values():
            node.close()
        self.operator.close()
        self.consumer.close()

    async def get(self, path: str) -> Any:
        return await asyncio.to_thread(self.operator.get, path)

    async def submit(self, index: int, region: str) -> str:
        params: dict[str, str | int | bool] = {"n": 32 + (index * 7) % 33, "seed": f"e2e-{index}"}
        job = c.SubmitJob(
            workload=c.Workload(kind="matmul", gpu_class_min="cpu", params=params),
            max_price=MAX_PRICE,
            region=region,
            deadline_ns=time.time_ns() + 900 * SECOND_NS,
            redundancy=VALIDATORS,
        )
        answer = await asyncio.to_thread(self.consumer.send, job)
        job_id = answer.job_id
        self.jobs.append(job_id)
        return job_id


async def test_validators_settle_honest_jobs_and_slash_every_cheat(
    network: Network, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    await run_scenario(network, artifacts, tmp_path)


async def run_scenario(network: Network, artifacts: ArtifactStore, tmp_path: Path) -> None:
    """The whole scenario (module docstring) on a started ``network``, any store."""
    started = time.monotonic()
    scenario = Scenario(network, artifacts)
    stop = asyncio.Event()
    agents: list[asyncio.Task[Any]] = []
    try:
        validators = await _start_validators(scenario)
        agents = [
            asyncio.create_task(run_agent(_agent_config(network, tmp_path, r), who, stop))
            for r, who in zip(HONEST_REGIONS, HONEST, strict=True)
        ]
        await _join_cheaters(scenario)
        await _wait_until(lambda: _are_active(scenario, [h.id for h in HONEST]), "agents active")
        await _run_jobs(scenario, validators)
    finally:
        stop.set()
        if agents:
            await asyncio.wait_for(asyncio.gather(*agents, return_exceptions=True), 60)
        scenario.close()
    statuses: dict[str, int | None] = {}
    for child in reversed(network.children):  # the restarted validator 0 before the killed one
        if child.name.startswith("validator-"):
            statuses.setdefault(child.name, child.stop())
    elapsed_s = time.monotonic() - started
    assert statuses == {f"validator-{i}": 0 for i in range(VALIDATORS)}, statuses
    records = await _read_log(network)
    await _check_outcomes(scenario, network, records)
    _check_no_double_votes(scenario, records)
    _check_restarted_validator(scenario, network, records)
    _run_audit(network)
    print(
        f"e2e: {JOBS} jobs, {len(records)} records, {elapsed_s:.1f} s; validator 0 killed "
        f"between commit and reveal: {scenario.killed_between_commit_and_reveal}"
    )


async def _start_validators(scenario: Scenario) -> list[Child]:
    net = scenario.net
    for files in scenario.validator_files:
        await asyncio.to_thread(scenario.operator.send, _deposit(files.identity.id))
    for who in (CONSUMER, *HONEST, *(n.identity for n in scenario.cheaters.values())):
        await asyncio.to_thread(scenario.operator.send, _deposit(who.id))
    children = [net.start_validator(i, f, STAKE) for i, f in enumerate(scenario.validator_files)]
    for files in scenario.validator_files:
        await asyncio.to_thread(
            wait_for_validator, scenario.operator, files.identity.id, STAKE, STEP_TIMEOUT_S
        )
    return children


async def _join_cheaters(scenario: Scenario) -> None:
    for node in scenario.cheaters.values():
        await node.join(region=CHEAT_REGION, stake=STAKE, price=PRICE, forge=node.id == FORGER.id)
    await _wait_until(lambda: _are_active(scenario, [CORRUPTER.id, COPIER.id]), "cheaters active")
    await _wait_until(lambda: _is_state(scenario, FORGER.id, "jailed"), "forger jailed")


async def _run_jobs(scenario: Scenario, validators: list[Child]) -> None:
    """Honest jobs in three batches (before the crash of validator 0, while it is down, after
    its restart), the two cheats during the first."""
    first, down = JOBS // 3, JOBS // 3 - 2
    for index in range(first):
        await scenario.submit(index, HONEST_REGIONS[index % len(HONEST_REGIONS)])
    corrupted = await scenario.submit(first, CHEAT_REGION)
    await scenario.cheaters[CORRUPTER.id].claim(corrupted)
    job = await scenario.get(f"/v1/jobs/{corrupted}")
    await scenario.cheaters[CORRUPTER.id].corrupt(corrupted, job["workload"]["params"])
    scenario.cheated[corrupted] = CORRUPTER.id

    source = await _wait_until(lambda: _first_settled(scenario), "a first job settled")
    copied = await scenario.submit(first + 1, CHEAT_REGION)
    await scenario.cheaters[COPIER.id].claim(copied)
    await scenario.cheaters[COPIER.id].copy(copied, await _result_of(scenario.net, source))
    scenario.cheated[copied] = COPIER.id

    for index in range(first + 2, first + 2 + down):
        await scenario.submit(index, HONEST_REGIONS[index % len(HONEST_REGIONS)])
    await _crash_validator(scenario, validators[0])
    await asyncio.sleep(RESTART_AFTER_S)
    scenario.restart_position = await _head_position(scenario.net)
    validators[0] = scenario.net.start_validator(0, scenario.validator_files[0], STAKE)
    await _wait_until(lambda: _has_resumed(scenario.net), "validator 0 resumed")
    for index in range(first + 2 + down, JOBS):
        await scenario.submit(index, HONEST_REGIONS[index % len(HONEST_REGIONS)])
    await _wait_until(lambda: _all_settled(scenario), "every job settled", SETTLE_TIMEOUT_S)


async def _crash_validator(scenario: Scenario, child: Child) -> None:
    """SIGKILL validator 0, at a moment it has committed on a job and not yet revealed when
    such a moment turns up within ``KILL_HUNT_S`` (read from the store: the freshest view).
    Not while one of its pending commits is on a cheated job: that round is decided without
    it, the job gets a new result, and the restarted daemon, replaying, would reveal on the
    old one (refused by the ledger: a stale reveal, which this test counts as a bug)."""
    me = scenario.validator_files[0].identity.id
    pending: set[str] = set()
    cheated = set(scenario.cheated)
    position = 0
    store = await open_event_store(str(scenario.net.store_url))
    try:
        deadline = time.monotonic() + KILL_HUNT_S
        while time.monotonic() < deadline and not (pending and not pending & cheated):
            for record in await store.read_all(position + 1, 1_000):
                position = record.position
                if record.event_type in ("VerdictCommitted", "VerdictRecorded"):
                    if decode_event(record).validator_id == me:  # type: ignore[attr-defined]
                        pending ^= {record.stream_id}
                elif record.event_type in ("JobSettled", "JobRejected", "ValidatorsReplaced"):
                    pending.discard(record.stream_id)
            await asyncio.sleep(0.01)
    finally:
        await store.close()
    child.kill()
    scenario.killed_between_commit_and_reveal = bool(pending) and not pending & cheated


async def _check_outcomes(scenario: Scenario, net: Network, records: list[Record]) -> None:
    store = await open_event_store(str(net.store_url))
    try:
        for job_id in scenario.jobs:
            job = await get_aggregate(store, Job, job_id)
            assert job is not None and job.state == "settled", (job_id, job and job.state)
            assert job.node_id in {h.id for h in HONEST}, (job_id, job.node_id)
            assert all(v.passed for v in job.verdicts.values()), (job_id, job.verdicts)
        honest_jobs = [j for j in scenario.jobs if j not in scenario.cheated]
        assert len(honest_jobs) == JOBS - 2
        for job_id, cheater in scenario.cheated.items():
            _check_rejected(scenario, records, job_id, cheater)
        _check_attestation_rejected(scenario, records)
        for node_id in (CORRUPTER.id, COPIER.id, FORGER.id):
            node = await get_aggregate(store, Node, node_id)
            assert node is not None and node.state == "jailed" and node.stake == SLASHED_STAKE
        for honest in HONEST:
            node = await get_aggregate(store, Node, honest.id)
            assert node is not None and node.state == "active" and node.stake == STAKE
        slashed = {r.stream_id for r in records if r.event_type == "NodeSlashed"}
        assert slashed == {CORRUPTER.id, COPIER.id, FORGER.id}
        accounts = await get_balances(store)
        assert sum(a.balance for a in accounts.values()) == 0
        negative = {i: a.balance for i, a in accounts.items() if a.balance < 0}
        assert set(negative) <= {BOUNDARY_ACCOUNT}, negative
        for node_id in (CORRUPTER.id, COPIER.id, FORGER.id):
            assert accounts[stake_account(node_id)].balance == SLASHED_STAKE
    finally:
        await store.close()


def _check_rejected(scenario: Scenario, records: list[Record], job_id: str, cheater: str) -> None:
    """The cheat was rejected by a quorum certificate of failing verdicts, the cheater's
    stake slashed citing that certificate, and the job went back to the market."""
    stream = [r for r in records if r.stream_id == job_id]
    rejected_at = next(i for i, r in enumerate(stream) if r.event_type == "JobRejected")
    job = rebuild(stream[: rejected_at + 1], Job)
    assert job is not None and job.node_id == cheater and job.result is not None
    rejection = decode_event(stream[rejected_at])
    expected = "proof_invalid" if cheater == CORRUPTER.id else "manifest_invalid"
    assert expected in rejection.reason, rejection.reason  # type: ignore[attr-defined]
    certificate = rejection.certificate  # type: ignore[attr-defined]
    keys = _bls_keys(scenario, job.validators)
    qc = decode_qc(certificate)
    assert qc.message == verdict_message(job_id, job.result.commitment, False)
    assert verify_qc(keys, qc, 2)
    slash = next(r for r in records if r.stream_id == cheater and r.event_type == "NodeSlashed")
    assert decode_event(slash).evidence == certificate  # type: ignore[attr-defined]
    assert any(r.event_type == "JobReassigned" for r in stream[rejected_at:])


def _check_attestation_rejected(scenario: Scenario, records: list[Record]) -> None:
    stream = [r for r in records if r.stream_id == FORGER.id]
    rejected_at = next(i for i, r in enumerate(stream) if r.event_type == "AttestationRejected")
    node = rebuild(stream[:rejected_at], Node)
    assert node is not None and node.attestation_round is not None and node.challenge
    rejection = decode_event(stream[rejected_at])
    assert "timing_implausible" in rejection.reason  # type: ignore[attr-defined]
    qc = decode_qc(rejection.certificate)  # type: ignore[attr-defined]
    message = attestation_verdict_message(
        FORGER.id, node.challenge.nonce, node.attestation_commitment, False
    )
    assert qc.message == message
    assert verify_qc(_bls_keys(scenario, node.attestation_round.validators), qc, 2)
    assert any(r.event_type == "NodeSlashed" for r in stream[rejected_at:])


def _check_no_double_votes(scenario: Scenario, records: list[Record]) -> None:
    """Per round of a subject: at most one commit and one reveal by each validator; per
    (subject, result commitment, validator), across rounds, one verdict value (a round given
    up and re-drawn can meet the same commitment again, since honest nodes compute the same
    result); no validator was ever slashed."""
    commits: Counter[tuple[str, int, str]] = Counter()
    reveals: dict[tuple[str, int, str], list[bool]] = defaultdict(list)
    values: dict[tuple[str, bytes, str], set[bool]] = defaultdict(set)
    current: dict[str, bytes] = {}
    rounds: Counter[str] = Counter()
    for record in records:
        if record.event_type in ("ResultCommitted", "AttestationSubmitted"):
            current[record.stream_id] = _subject_commitment(record)
        elif record.event_type in ("ValidatorsAssigned", "AttestationValidatorsAssigned"):
            rounds[record.stream_id] += 1
        elif record.event_type in ("VerdictCommitted", "AttestationVerdictCommitted"):
            event: Any = decode_event(record)
            commits[(record.stream_id, rounds[record.stream_id], event.validator_id)] += 1
        elif record.event_type in ("VerdictRecorded", "AttestationVerdictRecorded"):
            event = decode_event(record)
            reveals[(record.stream_id, rounds[record.stream_id], event.validator_id)].append(
                event.verdict.passed
            )
            values[(record.stream_id, current[record.stream_id], event.validator_id)].add(
                event.verdict.passed
            )
    assert commits and reveals
    assert max(commits.values()) == 1, [k for k, n in commits.items() if n > 1]
    assert all(len(v) == 1 for v in reveals.values()), [k for k, v in reveals.items() if len(v) > 1]
    assert all(len(v) == 1 for v in values.values()), [k for k, v in values.items() if len(v) > 1]
    assert not [r for r in records if r.stream_type == "validator" and "Slashed" in r.event_type]


def _check_restarted_validator(scenario: Scenario, net: Network, records: list[Record]) -> None:
    """Validator 0 resumed from its checkpoint, took part after the restart, and every
    commit and reveal of its on the ledger is the decision (and salt) in its signing
    database: nothing it sent after the crash contradicts what it decided before."""
    files = scenario.validator_files[0]
    log = (net.root / "validator-0.log").read_text(encoding="utf-8")
    replays = [line for line in log.splitlines() if "validator_replay" in line]
    assert len(replays) == 2 and "from_position=1" in replays[0], replays
    assert "from_position=1 " not in replays[1] + " ", replays  # resumed from its checkpoint
    for index in range(VALIDATORS):
        text = (net.root / f"validator-{index}.log").read_text(encoding="utf-8")
        refused = [line for line in text.splitlines() if "duty_refused" in line]
        assert not [line for line in refused if any(code in line for code in NEVER_REFUSED)]
    db = SigningDatabase(files.db_path)
    try:
        current: dict[str, bytes] = {}
        revealed, committed_after_restart = 0, 0
        for record in records:
            if record.event_type == "ResultCommitted":
                current[record.stream_id] = _subject_commitment(record)
            elif record.event_type in ("VerdictCommitted", "VerdictRecorded"):
                event: Any = decode_event(record)
                if event.validator_id != files.identity.id:
                    continue
                subject, commitment = f"job:{record.stream_id}", current[record.stream_id]
                decision = db.get_decision(subject, commitment)
                assert decision is not None, (subject, record.event_type)
                if record.event_type == "VerdictRecorded":
                    assert decision.passed == event.verdict.passed and decision.salt == event.salt
                    revealed += 1
                    continue
                assert event.verdict_hash == compute_verdict_commitment(
                    subject=subject,
                    result_commitment=commitment,
                    validator_id=files.identity.id,
                    passed=decision.passed,
                    salt=decision.salt,
                )
                committed_after_restart += record.position > scenario.restart_position
    finally:
        db.close()
    assert committed_after_restart > 0, (revealed, committed_after_restart)


def _run_audit(net: Network) -> None:
    args = [sys.executable, "-m", "flopledger.cli", "audit", "--source", str(net.store_url)]
    result = subprocess.run(
        [*args, "--operator", OPERATOR.id],
        env=net.env,
        capture_output=True,
        text=True,
        timeout=AUDIT_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


# -- helpers ------------------------------------------------------------------------------


def _agent_config(net: Network, tmp_path: Path, region: str) -> AgentConfig:
    return AgentConfig(
        region=region,
        price=PRICE,
        api_url=net.api_url,
        nats_url=net.nats_url,
        state_dir=tmp_path / "agents" / region,
        stake=STAKE,
        poll_interval_s=0.3,
        heartbeat_interval_s=1.0,
        shutdown_deadline_s=10.0,
        region_stagger_s=STAGGER_S,
        prefer_cuda=False,
    )


def _bls_keys(scenario: Scenario, validator_ids: tuple[str, ...]) -> list[bytes]:
    by_id = {f.identity.id: f for f in scenario.validator_files}
    return [bls.sk_to_pk(by_id[v].bls_secret) for v in validator_ids]


async def _wait_until(
    probe: Callable[[], Awaitable[Any]], what: str, timeout_s: float = STEP_TIMEOUT_S
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def _are_active(scenario: Scenario, node_ids: list[str]) -> bool:
    for node_id in node_ids:
        if not await _is_state(scenario, node_id, "active"):
            return False
    return True


async def _is_state(scenario: Scenario, node_id: str, state: str) -> bool:
    node = await scenario.get(f"/v1/nodes/{node_id}")
    return bool(node["state"] == state)


async def _first_settled(scenario: Scenario) -> str | None:
    for job_id in scenario.jobs:
        if job_id not in scenario.cheated:
            job = await scenario.get(f"/v1/jobs/{job_id}")
            if job["state"] == "settled":
                return job_id
    return None


async def _all_settled(scenario: Scenario) -> bool:
    for job_id in scenario.jobs:
        job = await scenario.get(f"/v1/jobs/{job_id}")
        if job["state"] != "settled":
            return False
    return True


async def _result_of(net: Network, job_id: str) -> dict[str, bytes]:
    store = await open_event_store(str(net.store_url))
    try:
        for record in await store.read_stream(job_id):
            if record.event_type == "ResultCommitted":
                result = decode_event(record).result  # type: ignore[attr-defined]
                return {
                    "commitment": result.commitment,
                    "artifact_digest": result.artifact_digest,
                    "proof_digest": result.proof_digest,
                }
    finally:
        await store.close()
    raise AssertionError(f"no ResultCommitted for {job_id}")


async def _has_resumed(net: Network) -> bool:
    log = (net.root / "validator-0.log").read_text(encoding="utf-8")
    return log.count("validator_replay") == 2


async def _head_position(net: Network) -> int:
    store = await open_event_store(str(net.store_url))
    try:
        return (await store.head()).position
    finally:
        await store.close()


async def _read_log(net: Network) -> list[Record]:
    store = await open_event_store(str(net.store_url))
    try:
        records: list[Record] = []
        while True:
            page = await store.read_all(len(records) + 1, 1_000)
            if not page:
                return records
            records.extend(page)
    finally:
        await store.close()


def _subject_commitment(record: Record) -> bytes:
    """The commitment a verdict is about: a job's result or an attestation's answer."""
    event: Any = decode_event(record)
    return bytes(
        event.result.commitment if record.event_type == "ResultCommitted" else event.commitment
    )


def _deposit(owner: str) -> c.Deposit:
    # One chain transaction per credit: the audit's chain_money check refuses a reference
    # credited twice (issue 16, item 3).
    return c.Deposit(account_owner=owner, amount=FUNDS, chain_reference=f"test-deposit-{owner}")
