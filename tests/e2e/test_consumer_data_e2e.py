"""Issue 17's end-to-end test: a consumer's own matrices in, its verified product out,
private end to end, over real processes (nats-server, ``flopledger serve`` on SQLite,
``flopledger relay``, three ``flopledger validator`` processes; node agents in this process,
two of them dishonest, ``tests/e2e/_dishonest_data.py``), on the current rules (v5).

The consumer runs the CLI: ``flopledger job submit --kind matmul --input a=A.npy --input
b=B.npy`` (private: the inputs sealed on its machine; the command stays until the inputs key
is released to the claiming node) and ``flopledger job result --wait``. Then:

- the honest job settles and the written C equals numpy's A·B within the honest rounding
  bound of a float32 product (Higham, "Accuracy and Stability of Numerical Algorithms",
  (3.5): |C - AB| <= γ_k·|A||B|, plus C's own rounding u·|C|);
- a node that changes one entry of C is rejected by Freivalds and slashed;
- a node that computes on other data (and hands the validators its own key for "its" inputs)
  is rejected, the validators' reason the AEAD failure on the consumer's ciphertext, and
  slashed;
- back on the market, each cheated job settles with the honest node (``job result --wait``
  releases the inputs key to the new claim) and its C is right too; a ``--public`` job runs
  and downloads the same way;
- no message of ``FLOP_OBJECTS`` (read raw from NATS), and nothing in the API's or the relay's
  logs, holds plaintext of A, B or C (distinctive 32-byte runs of each, raw and in hex).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nats.js.errors import NotFoundError

import domain.job  # noqa: F401  (registers the job events decode_event reads)
from adapters.ledger_api.client import ApiClient, NotFoundProblem
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.objects import OBJECT_STREAM
from adapters.store.factory import open_event_store
from domain import commands as c
from domain.events import decode_event
from domain.policy import SECOND_NS
from node_agent.bootstrap import run_agent
from node_agent.config import AgentConfig
from node_agent.work import Worker
from proofs.identity import Identity
from tests.e2e._dishonest_data import CorruptingWorker, SwappingWorker
from tests.e2e._network_harness import Network, wait_for_validator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

N = 512
VALIDATORS = 3
STAKE = 1_000
FUNDS = 100_000
PRICE = 10
MAX_PRICE = 100
STAGGER_S = 5.0
"""Long enough that each dishonest node claims the job of its own region first."""
WINDOW_S = 10
POLICY: dict[str, int | bool] = {
    "region_stagger_ns": int(STAGGER_S * SECOND_NS),
    "verdict_commit_window_ns": WINDOW_S * SECOND_NS,
    "verdict_reveal_window_ns": WINDOW_S * SECOND_NS,
    # the devnet's probes (flopledger.devnet.launch): CPU nodes on two shared cores
    "probe_side": 512,
    "probe_target_ns": 200_000_000,
    "probe_efficiency_min_bps": 2_500,
    "probe_slot_ns": 2 * SECOND_NS,
}
HONEST_REGION, CORRUPT_REGION, SWAP_REGION = "eu-west", "sa-east", "af-south"
STEP_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 240
SNIPPET_BYTES = 32
U32 = 2.0**-24


def _identity(name: str) -> Identity:
    return Identity.from_seed(f"e2e-data-{name}".encode().ljust(32, b"\0"))


OPERATOR = _identity("operator")
CONSUMER = _identity("consumer")
HONEST, CORRUPTER, SWAPPER = _identity("honest"), _identity("corrupter"), _identity("swapper")
AGENTS: tuple[tuple[Identity, str, type[Worker]], ...] = (
    (HONEST, HONEST_REGION, Worker),
    (CORRUPTER, CORRUPT_REGION, CorruptingWorker),
    (SWAPPER, SWAP_REGION, SwappingWorker),
)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    net = Network(root=tmp_path / "net", operator=OPERATOR, policy=POLICY)
    try:
        net.start()
        yield net
    finally:
        net.close()


async def test_consumer_matmul_private_end_to_end(network: Network, tmp_path: Path) -> None:
    operator = ApiClient(network.api_url, identity=OPERATOR)
    stop = asyncio.Event()
    agents: list[asyncio.Task[Any]] = []
    try:
        await _fund_and_start_validators(network, operator)
        agents = [
            asyncio.create_task(
                run_agent(_agent_config(network, tmp_path, region), who, stop, worker_type=kind)
            )
            for who, region, kind in AGENTS
        ]
        await _wait_until(lambda: _all_active(operator), "the three nodes active")
        a, b = _matrices()
        files = _write_inputs(tmp_path, a, b)
        key = tmp_path / "consumer.key"
        key.write_text(CONSUMER.seed().hex())
        submits = {
            region: _start_submit(network, key, files, region)
            for region in (HONEST_REGION, CORRUPT_REGION, SWAP_REGION)
        }
        job_ids = {region: await _job_id(proc) for region, proc in submits.items()}
        out = tmp_path / "c.npy"
        result = await asyncio.to_thread(
            _cli,
            network,
            key,
            "job",
            "result",
            job_ids[HONEST_REGION],
            "--out",
            str(out),
            "--wait",
            "--timeout-s",
            str(RUN_TIMEOUT_S),
        )
        assert result.returncode == 0, result.stderr
        product = np.load(out)
        _check_product(product, a, b)
        for region, cheater in ((CORRUPT_REGION, CORRUPTER), (SWAP_REGION, SWAPPER)):
            await _wait_until(lambda r=region: _is_rejected(network, job_ids[r]), "rejection")
            reasons = await _failed_reasons(network, job_ids[region])
            await _wait_until(lambda w=cheater: _is_slashed(operator, w.id), "slashing")
            if region == SWAP_REGION:
                assert "inputs_sealed_invalid" in reasons, reasons
            else:
                assert reasons and "inputs_sealed_invalid" not in reasons, reasons
        for proc in submits.values():
            assert proc.wait(timeout=STEP_TIMEOUT_S) == 0
        # Back on the market, each cheated job settles with the honest node: job result
        # --wait hands the inputs key to the new claim, and the product is right.
        cheated = (CORRUPT_REGION, SWAP_REGION)
        outs = {region: tmp_path / f"c-{region}.npy" for region in cheated}
        waits = [
            asyncio.to_thread(
                _cli,
                network,
                key,
                "job",
                "result",
                job_ids[region],
                "--out",
                str(outs[region]),
                "--wait",
                "--timeout-s",
                "240",
            )
            for region in cheated
        ]  # at once: the honest node holds one claim at a time, each waits for its key
        for region, waited in zip(cheated, await asyncio.gather(*waits), strict=True):
            assert waited.returncode == 0, waited.stderr
            _check_product(np.load(outs[region]), a, b)
        await _check_public_job(network, key, tmp_path)
        snippets = _snippets(a, b, product)
        await _check_objects_hold_no_plaintext(network, snippets)
        for name in ("serve", "relay"):
            log = (network.root / f"{name}.log").read_bytes()
            assert not any(s in log for s in snippets), f"plaintext in the {name} log"
    finally:
        stop.set()
        if agents:
            await asyncio.wait_for(asyncio.gather(*agents, return_exceptions=True), 60)
        operator.close()


async def _check_public_job(net: Network, key: Path, tmp_path: Path) -> None:
    """A job with --public inputs (other matrices: their plaintext is in the store on
    purpose) runs and downloads the same way."""
    rng = np.random.default_rng(64)
    a = rng.standard_normal((64, 48)).astype(np.float32)
    b = rng.standard_normal((48, 32)).astype(np.float32)
    files = _write_inputs(tmp_path / "public", a, b)
    proc = _start_submit(net, key, files, HONEST_REGION, "--public")
    job_id = await _job_id(proc)
    assert await asyncio.to_thread(proc.wait, STEP_TIMEOUT_S) == 0
    out = tmp_path / "public" / "c.npy"
    args = ("job", "result", job_id, "--out", str(out), "--wait", "--timeout-s", "120")
    result = await asyncio.to_thread(_cli, net, key, *args)
    assert result.returncode == 0, result.stderr
    _check_product(np.load(out), a, b)


def _matrices() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20261201)
    a = rng.standard_normal((N, N)).astype(np.float32)
    b = rng.standard_normal((N, N)).astype(np.float32)
    return a, b


def _write_inputs(directory: Path, a: np.ndarray, b: np.ndarray) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"a": directory / "a.npy", "b": directory / "b.npy"}
    np.save(paths["a"], a)
    np.save(paths["b"], b)
    return paths


def _check_product(product: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """C within the honest float32 bound: γ_k|A||B| for the dot products, u|C| for C's own
    rounding (and a little slack for the float64 reference's)."""
    k = a.shape[1]
    assert product.shape == (a.shape[0], b.shape[1]) and product.dtype == np.float32
    exact = a.astype(np.float64) @ b.astype(np.float64)
    gamma_k = k * U32 / (1 - k * U32)
    bound = gamma_k * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    bound += U32 * np.abs(exact) + 1e-30
    assert np.all(np.abs(product.astype(np.float64) - exact) <= bound)


def _snippets(*arrays: np.ndarray) -> list[bytes]:
    """Distinctive runs of each matrix's bytes, raw and as hex text."""
    found = []
    for array in arrays:
        raw = np.ascontiguousarray(array).tobytes()
        for start in (1_000, len(raw) // 2, len(raw) - 1_000):
            run = raw[start : start + SNIPPET_BYTES]
            found += [run, run.hex().encode()]
    return found


async def _check_objects_hold_no_plaintext(net: Network, snippets: list[bytes]) -> None:
    nc = await connect_nats(net.nats_url, name="e2e-object-scan")
    try:
        js = nc.jetstream()
        last = (await js.stream_info(OBJECT_STREAM)).state.last_seq
        scanned = 0
        for seq in range(1, last + 1):
            try:
                message = await js.get_msg(OBJECT_STREAM, seq)
            except NotFoundError:
                continue
            data = message.data or b""
            scanned += len(data)
            assert not any(s in data for s in snippets), f"plaintext in {message.subject}"
        assert scanned > 3 * N * N * 4, scanned  # the sealed A, B and C of each job at least
    finally:
        await close_nats(nc)


async def _fund_and_start_validators(net: Network, operator: ApiClient) -> None:
    files = [net.validator_files(i) for i in range(VALIDATORS)]
    owners = [f.identity.id for f in files] + [CONSUMER.id] + [w.id for w, _, _ in AGENTS]
    for owner in owners:
        deposit = c.Deposit(account_owner=owner, amount=FUNDS, chain_reference=f"e2e-{owner}")
        await asyncio.to_thread(operator.send, deposit)
    for i, f in enumerate(files):
        net.start_validator(i, f, STAKE)
    for f in files:
        await asyncio.to_thread(wait_for_validator, operator, f.identity.id, STAKE, STEP_TIMEOUT_S)


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


def _start_submit(
    net: Network, key: Path, files: dict[str, Path], region: str, *extra: str
) -> subprocess.Popen[str]:
    args = [
        "job",
        "submit",
        "--kind",
        "matmul",
        "--input",
        f"a={files['a']}",
        "--input",
        f"b={files['b']}",
        "--max-price",
        str(MAX_PRICE),
        "--region",
        region,
        *extra,
    ]
    return subprocess.Popen(
        [sys.executable, "-m", "flopledger.cli", *args, "--api", net.api_url, "--key", str(key)],
        env=net.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _job_id(proc: subprocess.Popen[str]) -> str:
    """The first line on stdout: the job id alone (read while the command still waits)."""
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    assert line.startswith("job-"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return line.strip()


def _cli(net: Network, key: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "flopledger.cli", *args, "--api", net.api_url]
    return subprocess.run(
        [*command, "--key", str(key)],
        env=net.env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S + 60,
        check=False,
    )


async def _all_active(operator: ApiClient) -> bool:
    for who, _, _ in AGENTS:
        try:
            node = await asyncio.to_thread(operator.get, f"/v1/nodes/{who.id}")
        except NotFoundProblem:
            return False
        if node["state"] != "active":
            return False
    return True


async def _is_slashed(operator: ApiClient, node_id: str) -> bool:
    node = await asyncio.to_thread(operator.get, f"/v1/nodes/{node_id}")
    return int(node["slashed_total"]) > 0


async def _job_events(net: Network, job_id: str) -> list[tuple[str, Any]]:
    store = await open_event_store(str(net.store_url))
    try:
        return [(r.event_type, decode_event(r)) for r in await store.read_stream(job_id)]
    finally:
        await store.close()


async def _is_rejected(net: Network, job_id: str) -> bool:
    return any(kind == "JobRejected" for kind, _ in await _job_events(net, job_id))


async def _failed_reasons(net: Network, job_id: str) -> list[str]:
    """The reasons of the failing verdicts of the job's first attempt."""
    reasons = []
    for kind, event in await _job_events(net, job_id):
        if kind == "JobRejected":
            break
        if kind == "VerdictRecorded" and not event.verdict.passed:
            reasons.append(str(event.verdict.reason))
    return reasons


async def _wait_until(probe: Any, what: str, timeout_s: float = STEP_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)
