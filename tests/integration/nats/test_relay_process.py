"""``flopledger relay`` as a process: SIGKILLed while mirroring, on FLOP_NATS_URL and embedded."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nats.aio.client import Client

from adapters.nats.codec import EVENT_STREAM
from adapters.nats.connection import close_nats, connect_nats
from adapters.store.sqlite import SqliteEventStore
from domain.records import NewEvent, Record, StreamAppend
from tests.integration.nats.helpers import assert_mirror_exact

BACKLOG_EVENTS = 10_000
EVENTS_PER_APPEND = 1000
KILLS = 20
KILL_SPAN_EVENTS = 9000
KILL_TEST_WINDOW = 64
POLL_INTERVAL_S = 0.002
PROCESS_TIMEOUT_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[3]
RELAY_MODULE = "flopledger.commands.relay"


async def make_sqlite_store(path: Path, count: int) -> list[Record]:
    store = await SqliteEventStore.open(path)
    try:
        for first in range(0, count, EVENTS_PER_APPEND):
            events = tuple(
                NewEvent(event_type="JobSubmitted", data=f"job {first + i}".encode() * 8)
                for i in range(EVENTS_PER_APPEND)
            )
            await store.append(
                [StreamAppend(f"job-{first}", "job", None, events)], command_id=f"fill-{first}"
            )
        records: list[Record] = []
        while batch := await store.read_all(len(records) + 1, 10_000):
            records.extend(batch)
        return records
    finally:
        await store.close()


def spawn_relay(
    env: dict[str, str], log: Path, *args: str, module: str = "flopledger.cli"
) -> subprocess.Popen[bytes]:
    """``flopledger relay ARGS``; ``module="flopledger.commands.relay"`` skips loading the
    other subcommands (faster restarts for the kill test)."""
    command = ["relay"] if module == "flopledger.cli" else []
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *command, *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def relay_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOP_")}
    env["FLOP_DATA_DIR"] = str(tmp_path / "data")
    env.update(extra)
    return env


async def last_sequence(nc: Client) -> int:
    try:
        info = await nc.jetstream().stream_info(EVENT_STREAM)
    except Exception:  # the stream does not exist until the relay's first start
        return 0
    return info.state.last_seq


async def wait_until(nc: Client, process: subprocess.Popen[bytes], sequence: int) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while await last_sequence(nc) < sequence:
        assert process.poll() is None, f"relay exited with {process.returncode}"
        assert time.monotonic() < deadline, f"stream never reached {sequence}"
        await asyncio.sleep(POLL_INTERVAL_S)


@pytest.mark.slow
async def test_sigkill_at_20_random_moments_leaves_exactly_1_to_n(
    nc: Client, nats_server, tmp_path: Path
) -> None:
    records = await make_sqlite_store(tmp_path / "events.sqlite3", BACKLOG_EVENTS)
    env = relay_env(tmp_path, FLOP_NATS_URL=nats_server.url)
    store_url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    args = ("--store-url", store_url, "--relay-id", "kill-test", "--window", str(KILL_TEST_WINDOW))
    rng = random.Random(20)
    kill_points: list[int] = []
    spacing = KILL_SPAN_EVENTS // KILLS
    targets = [k * spacing + rng.randint(1, spacing) for k in range(KILLS)]
    for target in targets:
        process = spawn_relay(env, tmp_path / "relay.log", *args, module=RELAY_MODULE)
        try:
            await wait_until(nc, process, max(target, await last_sequence(nc) + 1))
            await asyncio.sleep(rng.random() * 0.005)
        finally:
            process.kill()
            process.wait()
        kill_points.append(await last_sequence(nc))
    assert kill_points[-1] < BACKLOG_EVENTS, f"a kill came after the backlog: {kill_points}"
    assert len(set(kill_points)) == KILLS, f"kills did not all land mid-mirror: {kill_points}"
    log = tmp_path / "relay.log"
    leaderships = log.read_text().count("leader_lock_acquired")
    process = spawn_relay(env, log, *args)
    await wait_until(nc, process, BACKLOG_EVENTS)
    while log.read_text().count("leader_lock_acquired") == leaderships:
        await asyncio.sleep(POLL_INTERVAL_S)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=PROCESS_TIMEOUT_S) == 0
    await assert_mirror_exact(nc.jetstream(), records)


async def test_relay_command_on_embedded_server(tmp_path: Path) -> None:
    records = await make_sqlite_store(tmp_path / "events.sqlite3", 2 * EVENTS_PER_APPEND)
    env = relay_env(tmp_path)
    process = spawn_relay(
        env, tmp_path / "relay.log", "--store-url", f"sqlite:///{tmp_path / 'events.sqlite3'}"
    )
    try:
        ports_dir = tmp_path / "data" / "nats" / "run"
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while not list(ports_dir.glob("*.ports")):
            assert process.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.02)
        url = json.loads(next(ports_dir.glob("*.ports")).read_text())["nats"][0]
        nc = await connect_nats(url, name="test-embedded")
        try:
            await wait_until(nc, process, len(records))
            await assert_mirror_exact(nc.jetstream(), records)
        finally:
            await close_nats(nc)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=PROCESS_TIMEOUT_S) == 0
    finally:
        if process.poll() is None:  # a failed assertion: stop it cleanly, with its server
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=PROCESS_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert "nats_server_stopped" in (tmp_path / "relay.log").read_text()


async def test_relay_command_raises_the_alarm_when_the_stream_differs_from_the_store(
    nc: Client, nats_server, tmp_path: Path
) -> None:
    await make_sqlite_store(tmp_path / "a.sqlite3", EVENTS_PER_APPEND)
    env = relay_env(tmp_path, FLOP_NATS_URL=nats_server.url)
    log = tmp_path / "relay.log"
    first = spawn_relay(env, log, "--store-url", f"sqlite:///{tmp_path / 'a.sqlite3'}")
    try:
        await wait_until(nc, first, EVENTS_PER_APPEND)
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=PROCESS_TIMEOUT_S)
    other = tmp_path / "b.sqlite3"
    store = await SqliteEventStore.open(other)
    events = tuple(NewEvent("NodeRegistered", b"other history") for _ in range(2000))
    await store.append([StreamAppend("node-1", "node", None, events)], command_id="b")
    await store.close()
    second = spawn_relay(env, log, "--store-url", f"sqlite:///{other}", module=RELAY_MODULE)
    assert second.wait(timeout=PROCESS_TIMEOUT_S) == 3
    text = log.read_text()
    assert "ALARM" in text and f"stream sequence {EVENTS_PER_APPEND} diverges" in text
