"""``flopledger devnet --scenario quick --exit``: the whole network as separate processes
(nats-server, API, relay, operator with the LiteSVM chain, 3 validators, 3 agents) runs the
quick scenario; every submitted job reaches a final state, the audit passes (with
``--verify-work``: every settled job's verifier re-run on its artifacts in the devnet's own
object store), every process stopped and left its log under the data directory, and NATS
ran with a login per process whose secret no log and no argv shows."""

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

QUICK_JOBS = 4 + 2
"""The quick scenario's four, and the consumer's two private jobs on its own data."""
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
    assert output.count("the downloaded result matches the local computation") == 2, output
    assert re.search(rf"jobs\s+\{{'settled': {QUICK_JOBS}\}}", output), output
    reverified = re.search(r"verified work: (\d+) of (\d+) decisions re-verified", output)
    assert reverified is not None, output
    # every settled job but the two private ones (the auditor holds no key), at least
    assert int(reverified.group(1)) >= QUICK_JOBS - 2, output
    root = tmp_path / "devnet"
    status = json.loads((root / "status.json").read_text())
    assert status["stopped"] is True
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
