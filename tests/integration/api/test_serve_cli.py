"""``flopledger serve`` on SQLite in a subprocess, driven by the client and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.ledger_api.client import ApiClient, NotAuthenticated
from domain.commands import Deposit
from proofs.identity import Identity
from tests.chain_tx import fresh_chain_reference
from tests.serve_process import running_serve

OPERATOR_SEED = b"operator".ljust(32, b"\0")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    # The log key signs the new store's genesis, so it is the operator.
    log_key = tmp_path / "log_key.hex"
    log_key.write_text(OPERATOR_SEED.hex() + "\n")
    env = {
        **os.environ,
        "FLOP_DATA_DIR": str(tmp_path / "data"),
        "FLOP_OPERATOR_IDS": Identity.from_seed(OPERATOR_SEED).id,
        "FLOP_LOG_KEY_FILE": str(log_key),
        "FLOP_LOG_LEVEL": "warning",
    }
    with running_serve(env) as (url, _process):
        yield url
    assert (tmp_path / "data" / "events.sqlite3").exists()


def cli(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "flopledger.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def write_key(path: Path, seed: bytes) -> str:
    path.write_text(seed.hex() + "\n")
    return str(path)


def test_cli_registers_a_node_and_submits_a_job(server: str, tmp_path: Path) -> None:
    node_key = write_key(tmp_path / "node.key", b"node".ljust(32, b"\0"))
    consumer_seed = b"consumer".ljust(32, b"\0")
    consumer_key = write_key(tmp_path / "consumer.key", consumer_seed)
    node_id = Identity.from_seed(b"node".ljust(32, b"\0")).id

    registered = cli(
        "node",
        "register",
        "--api",
        server,
        "--key",
        node_key,
        "--region",
        "eu-west",
        "--price",
        "100",
        "--gpu-class",
        "consumer",
        # rules v3: a consumer class needs a GPU of that class (a T4) in the device table
        "--gpus",
        '[{"name": "Tesla T4", "memory_mib": 15360}]',
    )
    assert registered["subject"] == node_id
    assert cli("node", "get", "--api", server, node_id)["state"] == "registered"
    listed = cli("node", "list", "--api", server, "--region", "eu-west")
    assert [n["id"] for n in listed["items"]] == [node_id]  # type: ignore[attr-defined]

    operator = ApiClient(server, identity=Identity.from_seed(OPERATOR_SEED))
    operator.send(
        Deposit(
            account_owner=Identity.from_seed(consumer_seed).id,
            amount=1_000,
            chain_reference=fresh_chain_reference(),
        )
    )
    submitted = cli(
        "job",
        "submit",
        "--api",
        server,
        "--key",
        consumer_key,
        "--max-price",
        "300",
        "--region",
        "eu-west",
        "--params",
        '{"n": 64}',
    )
    job_id = str(submitted["job_id"])
    assert submitted["escrow"] == {
        "account": f"escrow:{job_id}",
        "hold_id": f"escrow:{job_id}",
        "amount": 300,
    }
    assert cli("job", "get", "--api", server, job_id)["state"] == "submitted"
    jobs = cli("job", "list", "--api", server, "--state", "submitted")
    assert [j["id"] for j in jobs["items"]] == [job_id]  # type: ignore[attr-defined]


def test_client_maps_problems_and_log_head_is_served(server: str) -> None:
    stranger = ApiClient(server, identity=Identity.from_seed(b"x".ljust(32, b"\0")))
    stranger.clock_ns = lambda: 1  # far outside the freshness window
    with pytest.raises(NotAuthenticated) as caught:
        stranger.send(
            Deposit(
                account_owner=stranger.identity.id,
                amount=5,
                chain_reference=fresh_chain_reference(),
            )
        )  # type: ignore[union-attr]
    assert caught.value.code == "envelope_expired"
    operator = ApiClient(server, identity=Identity.from_seed(OPERATOR_SEED))
    operator.send(
        Deposit(
            account_owner=operator.identity.id, amount=5, chain_reference=fresh_chain_reference()
        )
    )  # type: ignore[union-attr]
    head = operator.get_tree_head()
    assert head.size >= 1
    metrics = httpx.get(f"{server}/metrics", timeout=5).text
    assert "flop_events_appended_total" in metrics
