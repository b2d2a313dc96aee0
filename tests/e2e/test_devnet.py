"""``flopledger devnet --scenario quick --exit``: the whole network as separate processes
(nats-server, API, relay, operator with the LiteSVM chain, 3 validators, 3 agents) runs the
quick scenario; every submitted job reaches a final state, the audit passes (with
``--verify-work``: every settled job's verifier re-run on its artifacts in the devnet's own
object store), every process stopped and left its log under the data directory, and NATS
ran with a login per process whose secret no log and no argv shows. The consumer's private
matmul on its own matrices and its private inference of its own MLP (issue 17, item 6)
settle with their inputs keys released to the claiming nodes, and the downloaded results
match numpy's computation within the stated tolerance."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.keyfile import DEPOSIT_AUTHORITY_KEY_FILE_NAME, LOG_KEY_FILE_NAME, load_identity
from adapters.store.factory import open_event_store
from domain.policy import LedgerPolicy
from domain.services.network_rules import load_network_rules

SEEDED_JOBS = 4
PRIVATE_DATA_JOBS = 2
"""The consumer's private matmul and inference on its own data (issue 17, item 6)."""
QUICK_JOBS = SEEDED_JOBS + PRIVATE_DATA_JOBS
MATCH_LINES = (
    re.compile(
        r"consumer: own matmul (\d+)x\1 float32 \(private\) result matches numpy "
        r"\(max \|diff\| [0-9.e+-]+, worst entry at [0-9.]+% of its tolerance\)"
    ),
    re.compile(
        r"consumer: own inference MLP [0-9-]+ batch \d+ \(private\) result matches numpy "
        r"\(max \|diff\| [0-9.e+-]+, worst entry at [0-9.]+% of its tolerance\)"
    ),
)
TEST_TIMEOUT_S = 480  # pytest-timeout: start-up, scenario and the ordered stop
DEVNET_COMMAND = (sys.executable, "-m", "flopledger.cli", "devnet", "--scenario", "quick")
DEVNET_TIMEOUT_S = 280
PROCESSES = {
    "nats",
    "api",
    "relay",
    "operator",
    "validator-1",
    "validator-2",
    "validator-3",
    "agent-eu-1",
    "agent-eu-2",
    "agent-us-1",
}


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_quick_scenario_settles_every_job_and_the_audit_passes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOP_")}
    result = subprocess.run(
        [*DEVNET_COMMAND, "--exit", "--data-dir", str(tmp_path), "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEVNET_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "AUDIT PASSED" in output, output
    assert re.search(r"trusted\s+heads\s+held:\s+1;", output), output  # taken mid-run
    assert f"{QUICK_JOBS}/{QUICK_JOBS} jobs final" in output, output
    assert re.search(rf"jobs\s+\{{'settled': {QUICK_JOBS}\}}", output), output
    reverified = re.search(r"verified work: (\d+) of (\d+) decisions re-verified", output)
    assert reverified is not None, output
    assert int(reverified.group(1)) >= SEEDED_JOBS, output  # every settled public job
    # a private job's data is sealed to its parties: the auditor says so, and no more
    private = re.search(r"private no key (\d+)", output)
    assert private is not None and int(private.group(1)) >= PRIVATE_DATA_JOBS, output
    assert all(len(line.findall(output)) == 1 for line in MATCH_LINES), output
    assert f"consumer: {PRIVATE_DATA_JOBS}/{PRIVATE_DATA_JOBS} own-data results match" in output
    released = re.findall(r"consumer: inputs key of \S+ released to", output)
    assert len(released) >= PRIVATE_DATA_JOBS, output  # one per claim
    root = tmp_path / "devnet"
    status = json.loads((root / "status.json").read_text())
    assert status["stopped"] is True
    assert [entry["matches"] for entry in status["consumer_results"]] == [True, True]
    assert (root / "keys" / "consumer.key").is_file()
    job_id = status["consumer_results"][0]["job_id"]
    assert (root / "consumer" / "keys" / f"{job_id}.key").is_file()  # the inputs' data key
    assert {p["name"] for p in status["processes"]} == PROCESSES
    for process in status["processes"]:
        assert process["exit_status"] is not None, process["name"]
        assert Path(process["log"]).parent == root / "logs"
        assert Path(process["log"]).is_file(), process["name"]
    # Issue 16, item 5: the genesis names the devnet's two operator keys, apart (the audit
    # that passed checked every tree head against the one and every deposit the other).
    policy = asyncio.run(_rules_in_force(f"sqlite:///{root / 'events.sqlite3'}"))
    assert policy.log_key == load_identity(root / LOG_KEY_FILE_NAME).id
    assert policy.deposit_authority == load_identity(root / DEPOSIT_AUTHORITY_KEY_FILE_NAME).id
    assert policy.log_key != policy.deposit_authority
    # NATS ran with a login per process (issue 16, item 6); no secret reached a log or argv.
    config = (root / "nats" / "nats-server.conf").read_text()
    secrets = re.findall(r'"password": "([^"]+)"', config)
    # one login per process but nats itself, plus the launcher's (admin) and the audit's
    assert len(secrets) == len(PROCESSES - {"nats"}) + 2
    written = [path.read_text(errors="replace") for path in (root / "logs").glob("*.log")]
    written.append((root / "status.json").read_text())
    assert not [secret for secret in secrets if any(secret in text for text in written)]


async def _rules_in_force(url: str) -> LedgerPolicy:
    store = await open_event_store(url)
    try:
        return (await load_network_rules(store)).current
    finally:
        await store.close()
