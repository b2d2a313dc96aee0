"""A whole network as processes on loopback, for end-to-end tests.

``Network`` starts an embedded nats-server (the venv's binary, a free port, a temporary
directory), ``flopledger serve`` on a SQLite file (or a PostgreSQL database), ``flopledger
relay`` mirroring that store onto JetStream, and ``flopledger validator`` processes. Every
child runs in its own process group with its output in a log file, and ``close`` ends them
all (SIGTERM, then SIGKILL past a deadline), so a failing test leaves nothing behind. Where
util-linux ``setpriv`` exists, children also get SIGKILL when the test process dies without
running its finalizers (pytest-timeout's exit, a SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from adapters.ledger_api.client import ApiClient, NotFoundProblem
from adapters.nats.server import EmbeddedNatsServer
from proofs import bls
from proofs.identity import Identity

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """One child process (its own process group) and the file its output goes to."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        setpriv = shutil.which("setpriv")
        prefix = [setpriv, "--pdeathsig", "KILL"] if setpriv else []
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*prefix, *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group (a crash: no clean shutdown of any kind)."""
        assert self.process is not None
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL past ``STOP_TIMEOUT_S``; the exit status (None if killed)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        _signal_group(self.process, signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(self.process, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
            return None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class ValidatorFiles:
    """A validator's identity and the key files ``flopledger validator`` reads."""

    identity: Identity
    bls_secret: int
    key_path: Path
    bls_key_path: Path
    db_path: Path


@dataclass
class Network:
    """The processes of one network (see the module docstring)."""

    root: Path
    operator: Identity
    policy: dict[str, int | bool]
    store_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    """Set for every child over the defaults (``FLOP_COMPLETION_KEY_FILE``, say)."""
    nats: EmbeddedNatsServer | None = None
    nats_url: str = ""
    api_url: str = ""
    children: list[Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.store_url is None:
            self.store_url = f"sqlite:///{self.root / 'events.sqlite3'}"

    @property
    def env(self) -> dict[str, str]:
        assert self.store_url is not None
        # The operator's key is the log key: it signs the new store's genesis. The sealer
        # stays off (these networks seal nothing; the devnet tests cover sealing).
        log_key = self.root / "operator_key.hex"
        if not log_key.exists():
            log_key.write_text(self.operator.seed().hex() + "\n")
        return {
            **os.environ,
            "FLOP_DATA_DIR": str(self.root / "data"),
            "FLOP_DATABASE_URL": self.store_url,
            "FLOP_OPERATOR_IDS": self.operator.id,
            "FLOP_LOG_KEY_FILE": str(log_key),
            "FLOP_SEAL": "0",
            "FLOP_NATS_URL": self.nats_url,
            "FLOP_POLICY_JSON": json.dumps(self.policy),
            "FLOP_LOG_LEVEL": "info",
            **self.extra_env,
        }

    def start(self) -> None:
        """nats-server, then the API (ready), then the relay."""
        self.nats = EmbeddedNatsServer(self.root / "nats")
        self.nats_url = self.nats.start()
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        serve = self.spawn("serve", ["serve", "--host", "127.0.0.1", "--port", str(port)])
        self._wait_ready(serve)
        self.spawn(
            "relay", ["relay", "--store-url", str(self.store_url), "--nats-url", self.nats_url]
        )

    def spawn(self, name: str, cli_args: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(
            name=name,
            args=[sys.executable, "-m", "flopledger.cli", *cli_args],
            env=env or self.env,
            log_path=self.root / f"{name}.log",
        )
        child.start()
        self.children.append(child)
        return child

    def validator_files(self, index: int) -> ValidatorFiles:
        seed = f"e2e-validator-{index}".encode().ljust(32, b"\0")
        key_path = self.root / f"validator-{index}.key"
        bls_key_path = self.root / f"validator-{index}.bls"
        key_path.write_text(seed.hex(), encoding="utf-8")
        bls_key_path.write_text(seed.hex(), encoding="utf-8")
        return ValidatorFiles(
            identity=Identity.from_seed(seed),
            bls_secret=bls.key_gen(seed),
            key_path=key_path,
            bls_key_path=bls_key_path,
            db_path=self.root / f"validator-{index}.db",
        )

    def start_validator(self, index: int, files: ValidatorFiles, stake: int) -> Child:
        """``flopledger validator`` with its own signing database; restarts append to its log."""
        args = [
            "validator",
            "--key",
            str(files.key_path),
            "--bls-key",
            str(files.bls_key_path),
            "--api",
            self.api_url,
            "--nats",
            self.nats_url,
            "--db",
            str(files.db_path),
            "--stake",
            str(stake),
        ]
        return self.spawn(f"validator-{index}", args)

    def close(self) -> dict[str, int | None]:
        """Stop every child (newest first), then nats-server; their exit statuses."""
        statuses: dict[str, int | None] = {}
        for child in reversed(self.children):
            statuses.setdefault(child.name, child.stop())
        if self.nats is not None:
            self.nats.stop()
            self.nats = None
        return statuses

    def _wait_ready(self, serve: Child) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{self.api_url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert serve.is_running(), f"serve exited during start-up:\n{serve.log()[-3000:]}"
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(POLL_S)


def wait_for_validator(client: ApiClient, validator_id: str, stake: int, timeout_s: float) -> None:
    """Until the validator is registered with ``stake`` bonded (its process did both)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            view: dict[str, Any] = client.get(f"/v1/validators/{validator_id}")
            if int(view.get("stake", 0)) >= stake:
                return
        except NotFoundProblem:
            pass
        assert time.monotonic() < deadline, f"validator {validator_id} did not register and bond"
        time.sleep(POLL_S * 3)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
