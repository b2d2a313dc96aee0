"""The devnet's nats-server as ``flopledger devnet`` starts it (``Devnet.start_nats``): a
real nats-server with a login per process, each holding its role's permissions only
(issue 16, item 6). A node's login is refused on ``flop.ev.>`` and on another node's
heartbeats, the relay's is not; the secrets stay off argv and out of a world-readable file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from adapters.nats.codec import EVENT_STREAM
from adapters.nats.connection import connect_nats
from adapters.nats.errors import NatsError
from adapters.nats.objects import OBJECT_STREAM
from adapters.nats.signals import compute_heartbeat_subject
from adapters.nats.stream import build_event_stream_config, ensure_event_stream
from flopledger.devnet.launch import AGENTS, Devnet
from flopledger.devnet.nats_users import ADMIN, AUDITOR, CONFIG_FILE
from flopledger.devnet.supervisor import Supervisor

VIOLATION_TIMEOUT_S = 5.0
NODE_A, NODE_B = AGENTS[0][0], AGENTS[1][0]


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Devnet]:
    root = tmp_path / "devnet"
    supervisor = Supervisor(root, threading.Event())
    devnet = Devnet(root=root, supervisor=supervisor)
    try:
        devnet.start_nats()
        yield devnet
    finally:
        supervisor.stop_all()


@contextlib.asynccontextmanager
async def login(devnet: Devnet, process: str) -> AsyncIterator[tuple[Client, list[str]]]:
    """Connect with the URL the devnet gives ``process``; yield the client and the
    permission violations the server reports to it."""
    violations: list[str] = []

    async def on_error(exc: Exception) -> None:
        if "permissions violation" in str(exc).lower():
            violations.append(str(exc))

    nc = Client()
    await nc.connect(
        servers=[devnet.env(process)["FLOP_NATS_URL"]], error_cb=on_error, allow_reconnect=False
    )
    try:
        yield nc, violations
    finally:
        await nc.close()


async def publish_and_flush(nc: Client, subject: str, payload: bytes) -> None:
    await nc.publish(subject, payload)
    await nc.flush()


async def wait_for(violations: list[str], count: int) -> None:
    """Until the server has reported ``count`` violations (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VIOLATION_TIMEOUT_S
    while len(violations) < count and loop.time() < deadline:
        await asyncio.sleep(0.01)


async def count_events(devnet: Devnet) -> int:
    async with login(devnet, AUDITOR) as (nc, _):
        info = await nc.jetstream().stream_info(EVENT_STREAM)
        return info.state.messages


async def test_a_node_cannot_publish_events_and_the_relay_can(devnet: Devnet) -> None:
    async with login(devnet, "relay") as (relay, _):
        await ensure_event_stream(relay, relay.jetstream(), build_event_stream_config())
    async with login(devnet, NODE_A) as (node, violations):
        await publish_and_flush(node, "flop.ev.job.JobSubmitted", b"{}")
        await wait_for(violations, 1)
        assert len(violations) == 1, violations
    assert await count_events(devnet) == 0
    async with login(devnet, "relay") as (relay, violations):
        await relay.jetstream().publish("flop.ev.job.JobSubmitted", b"{}")
        assert violations == []
    assert await count_events(devnet) == 1


async def test_a_node_publishes_only_its_own_heartbeats(devnet: Devnet) -> None:
    own = devnet.participant(NODE_A).id
    other = devnet.participant(NODE_B).id
    async with (
        login(devnet, "validator-1") as (validator, _),
        login(devnet, NODE_A) as (node, violations),
    ):
        beats = await validator.subscribe(compute_heartbeat_subject(None))
        await validator.flush()
        await publish_and_flush(node, compute_heartbeat_subject(other), b"forged")
        await wait_for(violations, 1)
        await publish_and_flush(node, compute_heartbeat_subject(own), b"own")
        received = await beats.next_msg(timeout=VIOLATION_TIMEOUT_S)
        assert len(violations) == 1, violations
        assert received.subject == compute_heartbeat_subject(own)
        assert received.data == b"own"  # the forged one never reached the validator


async def test_the_launch_made_the_write_once_object_stream_as_the_operator(
    devnet: Devnet,
) -> None:
    async with login(devnet, NODE_A) as (node, _):
        info = await node.jetstream().stream_info(OBJECT_STREAM)
    assert info.config.max_msgs_per_subject == 1


def test_secrets_stay_off_argv_and_the_config_is_the_owners_alone(devnet: Devnet) -> None:
    users = devnet.nats_users
    assert users is not None
    secrets = [user.secret for user in users.users]
    status = (devnet.root / "status.json").read_text()
    assert not any(secret in status for secret in secrets)
    config = devnet.root / "nats" / CONFIG_FILE
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    argv = json.loads(status)["processes"][0]["argv"]
    assert "-c" in argv and str(config) in argv
    assert "FLOP_NATS_URL" not in devnet.env()
    node_url = devnet.env(NODE_A)["FLOP_NATS_URL"]
    assert f"//{devnet.participant(NODE_A).id}:" in node_url  # a node's login is its id
    assert users.get_user(ADMIN).secret not in " ".join(
        devnet.env(process)["FLOP_NATS_URL"] for process in ("api", "relay", "operator", NODE_A)
    )


async def test_a_failed_connect_names_the_server_without_the_secret(devnet: Devnet) -> None:
    url = devnet.env(NODE_A)["FLOP_NATS_URL"]
    secret = url.partition("@")[0].rpartition(":")[2]
    closed = url.rpartition(":")[0] + ":1"  # the same login, at a port nobody listens on
    with pytest.raises(NatsError) as error:
        await connect_nats(closed, name="t", connect_attempts=1)
    assert secret not in str(error.value)
    assert "127.0.0.1:1" in str(error.value)
