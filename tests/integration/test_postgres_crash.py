"""Fault test: a writer process SIGKILLed at random moments loses no acknowledged append.

Twenty times: start two ``crash_writer`` processes against one database (so they also race
each other for the head), let each write for a random while after its first
acknowledgement, SIGKILL it. After each kill the whole log must verify from
genesis (gapless positions, valid chain), every stream's versions must be 1..n, every
command in the log must be whole (its stored outcome matches its records), and every append
the killed process logged as acknowledged must be there exactly as acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from adapters.store.chaining import decode_outcome
from adapters.store.postgres import PostgresEventStore
from adapters.store.postgres_schema import COMMANDS_TABLE, migrate
from domain.records import Record, verify_chain
from tests.conftest_pg import pg_server_url, pg_url
from tests.contract.event_store_contract import read_everything

__all__ = ["pg_server_url", "pg_url"]
pytestmark = pytest.mark.slow

KILLS = 20
# Writers at once: two processes also race each other for the head (the locked path).
WRITER_PROCESSES = 2
RUN_AFTER_FIRST_ACK_MAX_S = 0.4
FIRST_ACK_TIMEOUT_S = 30.0
BACKENDS_GONE_TIMEOUT_S = 30.0
REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_sigkilled_writer_loses_no_acknowledged_append(pg_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    seed = int(os.environ.get("FLOP_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    store = await PostgresEventStore.connect(pg_url)
    acknowledged: dict[str, tuple[int, int, str]] = {}
    try:
        for round_no in range(KILLS):
            logs = [tmp_path / f"acks-{round_no}-{n}.log" for n in range(WRITER_PROCESSES)]
            await _run_and_kill(pg_url, logs, f"r{round_no}", rng)
            for log in logs:
                acknowledged.update(_read_acks(log))
            records = await read_everything(store, page=5000)
            context = f"seed {seed}, after kill {round_no + 1}"
            assert verify_chain(records) == await store.head(), context
            await _assert_commands_whole(pg_url, records)
            _assert_versions_contiguous(records)
            by_position = {r.position: r for r in records}
            for command_id, (first, last, head_hash) in acknowledged.items():
                assert by_position[last].hash.hex() == head_hash, (context, command_id)
                assert {by_position[p].command_id for p in range(first, last + 1)} == {
                    command_id
                }, (context, command_id)
        assert len(acknowledged) > KILLS, "the writer barely wrote: the test proved little"
        print(f"crash test: seed {seed}, {len(records)} records, {len(acknowledged)} acked")
    finally:
        await store.close()


async def _run_and_kill(url: str, logs: list[Path], run_id: str, rng: random.Random) -> None:
    """Start one writer per log, wait for an acknowledgement from each, kill each at random,
    then wait until the server has finished their transactions."""
    before = await _backend_pids(url)
    try:
        await _start_and_kill(logs, url, run_id, rng)
    finally:
        await _wait_backends_gone(url, before)


async def _backend_pids(url: str) -> set[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return {row["pid"] for row in rows}


async def _wait_backends_gone(url: str, keep: set[int]) -> None:
    """A SIGKILLed client's backend may still be committing what it last sent: until it is
    gone, the log can still grow, and a read of the records then of the head can disagree."""
    deadline = asyncio.get_running_loop().time() + BACKENDS_GONE_TIMEOUT_S
    while (await _backend_pids(url)) - keep:
        assert asyncio.get_running_loop().time() < deadline, "killed writers' backends linger"
        await asyncio.sleep(0.05)


async def _start_and_kill(logs: list[Path], url: str, run_id: str, rng: random.Random) -> None:
    procs = []
    try:
        for n, log in enumerate(logs):
            log.touch()
            with log.with_suffix(".stderr").open("wb") as stderr:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tests.integration.crash_writer", url, str(log),
                         f"{run_id}p{n}"],
                        cwd=REPO_ROOT,
                        stderr=stderr,
                    )
                )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_ACK_TIMEOUT_S
        for proc, log in zip(procs, logs, strict=True):
            while b"\n" not in log.read_bytes():
                stderr_text = log.with_suffix(".stderr").read_text()
                assert proc.poll() is None, f"writer exited early: {stderr_text}"
                assert loop.time() < deadline, "writer never acknowledged an append"
                await asyncio.sleep(0.01)
        for proc in procs:
            await asyncio.sleep(rng.uniform(0, RUN_AFTER_FIRST_ACK_MAX_S))
            proc.send_signal(signal.SIGKILL)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _read_acks(log: Path) -> dict[str, tuple[int, int, str]]:
    acks = {}
    for line in log.read_text(encoding="ascii").splitlines(keepends=True):
        if not line.endswith("\n"):
            continue  # cut by the kill while being written: it was never acknowledged
        command_id, first, last, head_hash = line.split()
        acks[command_id] = (int(first), int(last), head_hash)
    return acks


async def _assert_commands_whole(url: str, records: list[Record]) -> None:
    """Every stored command covers exactly its records, and every record has its command."""
    spans: dict[str, list[int]] = {}
    for record in records:
        spans.setdefault(record.command_id, []).append(record.position)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(f"SELECT outcome FROM {COMMANDS_TABLE}")
    finally:
        await conn.close()
    outcomes = {o.command_id: o for o in (decode_outcome(row["outcome"]) for row in rows)}
    assert outcomes.keys() == spans.keys()
    for command_id, positions in spans.items():
        outcome = outcomes[command_id]
        assert positions == list(range(outcome.first_position, outcome.last_position + 1))


def _assert_versions_contiguous(records: list[Record]) -> None:
    versions: dict[str, int] = {}
    for record in records:
        assert record.version == versions.get(record.stream_id, 0) + 1, record.stream_id
        versions[record.stream_id] = record.version
