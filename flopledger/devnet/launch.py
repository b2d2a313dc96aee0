"""The devnet's processes, in start order, each with its readiness check.

nats-server (embedded binary, JetStream) -> API (``flopledger serve``, with its sealer
signing a tree head every ``SEAL_INTERVAL_S`` and its completion signer's key, named in the
genesis's ``completion_signers``) -> relay (log to JetStream) -> operator (LiteSVM chain,
Solana gateway loop anchoring the heads, offer publisher) -> SmolLM2 registered by the
operator -> participants funded through Solana deposits -> 3 validators -> 3 node agents in
two regions (eu-west x2, us-east x1, on the CPU), each holding SmolLM2 warm with its
completion server on a free loopback port, started together (each loads the model, 10-40 s
on two busy cores) -> every node attested by the validators -> every node advertising the
model warm.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from adapters.keyfile import (
    DEPOSIT_AUTHORITY_KEY_FILE_NAME,
    LOG_KEY_FILE_NAME,
    load_or_create_identity,
    read_key_seed,
    write_key_file,
)
from adapters.nats.server import find_server_binary
from flopledger.devnet.chain import ChainClient
from flopledger.devnet.llm import (
    COMPLETION_SIGNER,
    LLM_MODEL_ID,
    MODELS_WARM_TIMEOUT_S,
    compute_agent_args,
    compute_policy_overrides,
    compute_validator_args,
    is_model_warm,
    register_devnet_model,
)
from flopledger.devnet.nats_users import (
    DevnetNatsUsers,
    create_devnet_users,
    provision_streams,
    write_server_config,
)
from flopledger.devnet.supervisor import DevnetError, ProcessSpec, Supervisor
from operations.bridge import BRIDGE_INTERVAL_S
from proofs.identity import Identity

AGENTS: tuple[tuple[str, str], ...] = (
    ("agent-eu-1", "eu-west"),
    ("agent-eu-2", "eu-west"),
    ("agent-us-1", "us-east"),
)
VALIDATORS: tuple[str, ...] = ("validator-1", "validator-2", "validator-3")
AGENT_PRICE = 200
STAKE = 1_000
PARTICIPANT_DEPOSIT = 2_000_000
"""Above the withdrawal minimum (Solana's rent-exempt minimum, ``LedgerPolicy.withdrawal_min``):
every participant can take its money back out (issue 16, item 7)."""
PROBE_TIMEOUT_S = 2.0
NATS_READY_TIMEOUT_S = 20.0
API_READY_TIMEOUT_S = 60.0
PROCESS_READY_TIMEOUT_S = 90.0
AGENTS_READY_TIMEOUT_S = 300.0
"""Three agents loading SmolLM2 at once (10-40 s each alone) on two cores shared with the rest."""
NODES_ACTIVE_TIMEOUT_S = 360.0
"""The validators attest once they have loaded SmolLM2 too (six loads on two cores)."""
SEAL_INTERVAL_S = 3.0
DEVNET_POLICY_OVERRIDES: dict[str, int | bool] = {
    "insecure_setups_allowed": True,
    "probe_side": 512,
    "probe_target_ns": 200_000_000,
    "probe_efficiency_min_bps": 2_500,
    "probe_slot_ns": 2 * 1_000_000_000,
    "liveness_epoch_ns": 60 * 1_000_000_000,
}
"""The devnet genesis's policy over the defaults: its zk-prove jobs use ``setup_seed`` test
keys (a devnet has no ceremony), which the default policy refuses (issue 14, attack 8); its
nodes are CPUs sharing two cores with every other devnet process, so the validators' probes
(rules v3, issue 15) are small (a 512-row product, 0.2 s of the cpu class's rate), allow a
quarter of that rate, take 2 s slots, and liveness epochs last a minute."""
QUIESCE_STABLE_S = 2 * SEAL_INTERVAL_S + 2 * BRIDGE_INTERVAL_S + 1.0
QUIESCE_TIMEOUT_S = 60.0
QUIESCE_POLL_S = 0.5
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Participant:
    """A key of the devnet: name, key file, and its seed (also a Solana keypair)."""

    name: str
    key_file: Path
    seed: bytes

    @property
    def id(self) -> str:
        return Identity.from_seed(self.seed).id


@dataclass
class Devnet:
    """One local network under ``root`` (its store, keys, logs and status file)."""

    root: Path
    supervisor: Supervisor
    database_url: str | None = None
    api_port: int = 0
    nats_url: str = ""
    nats_monitoring_url: str = ""
    api_url: str = ""
    operator_url: str = ""
    operator_id: str = ""
    deposit_authority_id: str = ""
    """Issue 16, item 5: the operator key apart from the log key that alone credits deposits
    (the operator process's gateway signs with it; both are named in the genesis)."""
    participants: dict[str, Participant] = field(default_factory=dict)
    nats_users: DevnetNatsUsers | None = None
    serve_llm: bool = True
    """Whether the agents serve SmolLM2 (False when it or the llm extra is not installed)."""

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.root / 'events.sqlite3'}"

    def start_infrastructure(self) -> None:
        """nats-server, API, relay and operator, each ready before the next starts."""
        identity = load_or_create_identity(self.root / LOG_KEY_FILE_NAME)
        self.operator_id = identity.id
        self.deposit_authority_id = load_or_create_identity(
            self.root / DEPOSIT_AUTHORITY_KEY_FILE_NAME
        ).id
        self.start_nats()
        if self.database_url and self.database_url.startswith(("postgres://", "postgresql://")):
            self._migrate()
        port = self.api_port or pick_free_port()
        self.api_url = f"http://{LOOPBACK}:{port}"
        signer = self.participant(COMPLETION_SIGNER)
        policy = compute_policy_overrides(DEVNET_POLICY_OVERRIDES, signer.id)
        self.supervisor.start(
            ProcessSpec(
                name="api",
                argv=[
                    *_cli(),
                    "serve",
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(port),
                    "--completion-key",
                    str(signer.key_file),
                ],
                env={
                    **self.env("api"),
                    "FLOP_SEAL": "1",
                    "FLOP_SEAL_INTERVAL_S": str(SEAL_INTERVAL_S),
                    "FLOP_POLICY_JSON": json.dumps(policy),
                },
                is_ready=lambda: _http_ok(f"{self.api_url}/ready"),
                ready_timeout_s=API_READY_TIMEOUT_S,
                health_url=f"{self.api_url}/ready",
            )
        )
        self.supervisor.start(
            ProcessSpec(
                name="relay",
                argv=[sys.executable, "-m", "flopledger.commands.relay"],
                env=self.env("relay"),
                is_ready=self._is_stream_created,
                ready_timeout_s=PROCESS_READY_TIMEOUT_S,
                health_url=f"{self.nats_monitoring_url}/jsz",
            )
        )
        port = pick_free_port()
        self.operator_url = f"http://{LOOPBACK}:{port}"
        self.supervisor.start(
            ProcessSpec(
                name="operator",
                argv=[sys.executable, "-m", "flopledger.devnet.operator", "--port", str(port)],
                env=self.env("operator"),
                is_ready=lambda: _http_ok(f"{self.operator_url}/health"),
                ready_timeout_s=PROCESS_READY_TIMEOUT_S,
                health_url=f"{self.operator_url}/health",
            )
        )
        self.supervisor.extra.update(
            api_url=self.api_url,
            operator_url=self.operator_url,
            nats_url=self.nats_url,
            store_url=self.store_url,
            dashboard_url=f"{self.api_url}/",
        )
        self.supervisor.write_status()

    def register_model(self) -> str:
        """The operator registers SmolLM2 (``flopledger.devnet.llm``); the line it prints."""
        operator = load_or_create_identity(self.root / LOG_KEY_FILE_NAME)
        return register_devnet_model(self.api_url, operator)

    def fund_participants(self, names: list[str], amount: int) -> None:
        """Give each participant ``amount`` through a Solana deposit (credited once)."""
        chain = ChainClient(self.operator_url)
        try:
            for name in names:
                chain.deposit(self.participant(name).seed, amount)
        finally:
            chain.close()

    def start_validators(self) -> None:
        (self.root / "validators").mkdir(parents=True, exist_ok=True)
        for name in VALIDATORS:
            key = self.participant(name)
            bls_file = self.root / "keys" / f"{name}.bls"
            if not bls_file.exists():
                write_key_file(bls_file)
            validator_id = key.id
            self.supervisor.start(
                ProcessSpec(
                    name=name,
                    argv=[
                        *_cli(),
                        "validator",
                        "--key",
                        str(key.key_file),
                        "--bls-key",
                        str(bls_file),
                        "--api",
                        self.api_url,
                        "--stake",
                        str(STAKE),
                        "--db",
                        str(self.root / "validators" / f"{name}.db"),
                        *self._checking_args(),
                    ],
                    env=self.env(name),
                    is_ready=lambda vid=validator_id: self._is_staked("validators", vid),  # type: ignore[misc]
                    ready_timeout_s=PROCESS_READY_TIMEOUT_S,
                    health_url=f"{self.api_url}/v1/validators/{validator_id}",
                )
            )

    def start_agents(self) -> None:
        """The three agents at once (each loads SmolLM2 before it registers), ready when
        every node is registered."""
        specs = []
        for name, region in AGENTS:
            key = self.participant(name)
            node_id = key.id
            specs.append(
                ProcessSpec(
                    name=name,
                    argv=[
                        *_cli(),
                        "agent",
                        "--key",
                        str(key.key_file),
                        "--region",
                        region,
                        "--price",
                        str(AGENT_PRICE),
                        "--api",
                        self.api_url,
                        "--stake",
                        str(STAKE),
                        "--cpu",
                        "--state-dir",
                        str(self.root / "agents" / name),
                        "--poll-interval",
                        "1.0",
                        "--heartbeat-interval",
                        "5.0",
                        "--shutdown-deadline",
                        "10.0",
                        *self._serving_args(),
                    ],
                    env={**self.env(name), "OMP_NUM_THREADS": "1"},
                    is_ready=lambda nid=node_id: _http_ok(f"{self.api_url}/v1/nodes/{nid}"),  # type: ignore[misc]
                    ready_timeout_s=AGENTS_READY_TIMEOUT_S,
                    health_url=f"{self.api_url}/v1/nodes/{node_id}",
                )
            )
        self.supervisor.start_together(specs)

    def _checking_args(self) -> list[str]:
        return compute_validator_args() if self.serve_llm else []

    def _serving_args(self) -> list[str]:
        return compute_agent_args(f"{LOOPBACK}:{pick_free_port()}") if self.serve_llm else []

    def wait_nodes_active(self) -> None:
        """Until every agent's node is attested by the validators and active."""
        node_ids = [self.participant(name).id for name, _ in AGENTS]

        def all_active() -> bool:
            return all(
                _get_json(f"{self.api_url}/v1/nodes/{n}")["state"] == "active" for n in node_ids
            )

        self.supervisor.wait_until(all_active, NODES_ACTIVE_TIMEOUT_S, "every node to be attested")

    def wait_models_warm(self) -> None:
        """Until every node's view shows SmolLM2 warm (its agent advertised it)."""
        node_ids = [self.participant(name).id for name, _ in AGENTS]

        def all_warm() -> bool:
            return all(is_model_warm(_get_json(f"{self.api_url}/v1/nodes/{n}")) for n in node_ids)

        self.supervisor.wait_until(
            all_warm, MODELS_WARM_TIMEOUT_S, f"every node to hold {LLM_MODEL_ID} warm"
        )

    @property
    def openai_base_url(self) -> str:
        """What an OpenAI client takes as its base URL."""
        return f"{self.api_url}/v1"

    def quiesce(self) -> int:
        """Stop the agents and validators, then wait until the log stops growing (the sealer
        seals the tail, the bridge loop anchors it); returns the head position. The audit then
        replays a log nobody appends to (a head read during appends would race the replay)."""
        self.supervisor.stop([name for name, _ in AGENTS] + list(VALIDATORS))
        infrastructure = ["nats", "api", "relay", "operator"]
        deadline = time.monotonic() + QUIESCE_TIMEOUT_S
        head, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            self.supervisor.check_alive(infrastructure)
            position = int(str(_get_json(f"{self.api_url}/v1/events?limit=1")["head_position"]))
            if position != head:
                head, stable_since = position, time.monotonic()
            elif time.monotonic() - stable_since >= QUIESCE_STABLE_S:
                return head
            time.sleep(QUIESCE_POLL_S)
        raise DevnetError(f"the log kept growing for {QUIESCE_TIMEOUT_S:.0f} s after the stop")

    def participant(self, name: str) -> Participant:
        """The participant ``name``, its key file created under ``<root>/keys`` if new."""
        if name not in self.participants:
            keys = self.root / "keys"
            keys.mkdir(parents=True, exist_ok=True)
            key_file = keys / f"{name}.key"
            if not key_file.exists():
                write_key_file(key_file)
            seed = read_key_seed(key_file)
            self.participants[name] = Participant(name=name, key_file=key_file, seed=seed)
        return self.participants[name]

    def nats_url_for(self, process: str) -> str:
        """The NATS URL with the login of ``process`` (its secret in it: keep it off argv)."""
        if self.nats_users is None:
            raise DevnetError("nats-server has not been started")
        return self.nats_users.get_user(process).compute_url(self.nats_url)

    def env(self, process: str | None = None) -> dict[str, str]:
        """The children's environment: this devnet's data dir, store and operator, and the NATS
        URL with the login of ``process`` (None: no NATS)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOP_")}
        env |= {
            "FLOP_DATA_DIR": str(self.root),
            "FLOP_OPERATOR_IDS": f"{self.operator_id},{self.deposit_authority_id}",
            "FLOP_LOG_LEVEL": os.environ.get("FLOP_LOG_LEVEL", "info"),
            "PYTHONUNBUFFERED": "1",
        }
        if process is not None:
            env["FLOP_NATS_URL"] = self.nats_url_for(process)
        if self.database_url:
            env["FLOP_DATABASE_URL"] = self.database_url
        return env

    def start_nats(self) -> None:
        """nats-server with a fresh login per process (``flopledger.devnet.nats_users``), then
        the object stream, created as the operator."""
        run_dir = self.root / "nats" / "run"
        store_dir = self.root / "nats" / "store"
        run_dir.mkdir(parents=True, exist_ok=True)
        store_dir.mkdir(parents=True, exist_ok=True)
        node_ids = {name: self.participant(name).id for name, _ in AGENTS}
        self.nats_users = create_devnet_users(node_ids, VALIDATORS)
        config = write_server_config(self.root / "nats", self.nats_users)
        argv = [
            str(find_server_binary()),
            "-a",
            LOOPBACK,
            "-p",
            "-1",
            "-js",
            "-sd",
            str(store_dir),
            "--ports_file_dir",
            str(run_dir),
            "-m",
            "-1",
            "-c",
            str(config),
        ]

        def is_ready() -> bool:
            ports_files = list(run_dir.glob("*.ports"))
            if not ports_files:
                return False
            ports = json.loads(ports_files[0].read_text())
            self.nats_url, self.nats_monitoring_url = ports["nats"][0], ports["monitoring"][0]
            return _http_ok(f"{self.nats_monitoring_url}/healthz?js-enabled-only=true")

        child = self.supervisor.start(
            ProcessSpec(
                name="nats",
                argv=argv,
                env=self.env(),
                is_ready=is_ready,
                ready_timeout_s=NATS_READY_TIMEOUT_S,
            )
        )
        child.spec = replace(child.spec, health_url=f"{self.nats_monitoring_url}/healthz")
        self.supervisor.write_status()
        provision_streams(self.nats_url, self.nats_users)

    def _migrate(self) -> None:
        import subprocess

        result = subprocess.run(
            [*_cli(), "db", "migrate", "--url", str(self.database_url)],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise DevnetError(f"flopledger db migrate failed: {result.stderr.strip()}")

    def _is_stream_created(self) -> bool:
        return int(_get_json(f"{self.nats_monitoring_url}/jsz").get("streams", 0)) >= 1

    def _is_staked(self, collection: str, actor_id: str) -> bool:
        view = _get_json(f"{self.api_url}/v1/{collection}/{actor_id}")
        return int(view.get("stake", 0)) >= STAKE


def pick_free_port() -> int:
    """A free TCP port on 127.0.0.1 (for processes that cannot report the one they chose)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _cli() -> list[str]:
    return [sys.executable, "-m", "flopledger.cli"]


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=PROBE_TIMEOUT_S).status_code == httpx.codes.OK
    except httpx.HTTPError:
        return False


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise OSError(str(exc)) from exc
    if response.status_code != httpx.codes.OK:
        raise KeyError(url)
    body: dict[str, Any] = response.json()
    return body
