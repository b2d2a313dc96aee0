"""``flopledger serve`` seals tree heads itself (FLOP_SEAL_INTERVAL_S), or not (FLOP_SEAL=0)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapters.ledger_api.client import ApiClient
from domain.commands import Deposit
from proofs.identity import Identity
from proofs.tree_head import SignedTreeHead, verify_tree_head
from tests.chain_tx import fresh_chain_reference
from tests.serve_process import free_port, running_serve

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 15.0
SEAL_WAIT_S = 15.0
OPERATOR = Identity.from_seed(b"operator".ljust(32, b"\0"))
LOG_KEY_SEED = b"log-key".ljust(32, b"\0")


@contextmanager
def serve(tmp_path: Path, **extra: str) -> Iterator[str]:
    key_file = tmp_path / "log_key.hex"
    key_file.write_text(LOG_KEY_SEED.hex() + "\n")
    env = {
        **os.environ,
        "FLOP_DATA_DIR": str(tmp_path / "data"),
        "FLOP_OPERATOR_IDS": f"{OPERATOR.id},{Identity.from_seed(LOG_KEY_SEED).id}",
        "FLOP_LOG_KEY_FILE": str(key_file),
        "FLOP_LOG_LEVEL": "warning",
        **extra,
    }
    with running_serve(env, shutdown_timeout_s=SHUTDOWN_TIMEOUT_S) as (url, process):
        yield url
    assert process.returncode == 0


def test_serve_seals_heads_with_the_log_key(tmp_path: Path) -> None:
    with serve(tmp_path, FLOP_SEAL_INTERVAL_S="0.2") as url:
        client = ApiClient(url, identity=OPERATOR)
        client.send(
            Deposit(
                account_owner=Identity.from_seed(bytes([7]) * 32).id,
                amount=100,
                chain_reference=fresh_chain_reference(),
            )
        )
        deadline = time.monotonic() + SEAL_WAIT_S
        while (head := client.get_tree_head()).source != "sealed":
            assert time.monotonic() < deadline, "serve sealed no head"
            time.sleep(0.1)
        client.close()
    sth = SignedTreeHead(
        size=head.size,
        root=bytes.fromhex(head.root),
        timestamp_ns=head.timestamp_ns,
        signer=bytes.fromhex(head.signer),
        signature=bytes.fromhex(head.signature),
    )
    assert sth.size >= 1
    assert verify_tree_head(sth, Identity.from_seed(LOG_KEY_SEED).public_key_bytes)


def test_serve_with_seal_off_serves_in_process_heads(tmp_path: Path) -> None:
    with serve(tmp_path, FLOP_SEAL="0", FLOP_SEAL_INTERVAL_S="0.1") as url:
        client = ApiClient(url, identity=OPERATOR)
        client.send(
            Deposit(
                account_owner=Identity.from_seed(bytes([7]) * 32).id,
                amount=100,
                chain_reference=fresh_chain_reference(),
            )
        )
        time.sleep(1.0)
        assert client.get_tree_head().source == "in_process"
        client.close()


def test_serve_refuses_a_bad_seal_setting(tmp_path: Path) -> None:
    env = {**os.environ, "FLOP_DATA_DIR": str(tmp_path), "FLOP_SEAL_INTERVAL_S": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "flopledger.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2
    assert "FLOP_SEAL_INTERVAL_S" in done.stderr
