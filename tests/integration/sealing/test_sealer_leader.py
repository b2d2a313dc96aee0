"""The sealer inside ``flopledger serve``: leader locks (SQLite file lock, PostgreSQL advisory
lock) admit one holder across processes, two sealer services on one store seal with one
holder, and the FLOP_SEAL* settings are checked at their bounds."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from structlog.testing import capture_logs

from adapters.keyfile import load_or_create_identity
from adapters.store.factory import migrate_event_store, open_event_store
from adapters.store.leader import try_acquire_leader_lock
from domain.log import LOG_STREAM_ID, Log
from domain.policy import LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.commands.serve import build_sealer_config
from flopledger.network import LocalNetwork
from flopledger.settings import (
    SEAL_EVERY_RECORDS_MAX,
    SEAL_INTERVAL_S_MIN,
    Settings,
    SettingsError,
    load_settings,
)
from operations.sealer import SEAL_EVERY_RECORDS, SEAL_EVERY_S
from operations.sealer_thread import SealerConfig, run_sealer_service
from proofs.identity import Identity
from tests.conftest_pg import pg_server_url, pg_url  # noqa: F401  (fixtures)

SEAL_WAIT_S = 15.0
HOLD_SCRIPT = """
import asyncio, sys
from adapters.store.leader import try_acquire_leader_lock
async def main():
    lock = await try_acquire_leader_lock(sys.argv[1], "sealer")
    print("held" if lock else "busy", flush=True)
    if lock:
        sys.stdin.readline()
        await lock.release()
asyncio.run(main())
"""


@contextlib.asynccontextmanager
async def held_in_another_process(url: str) -> AsyncIterator[str]:
    """Take the lock in a child process; yields what the child got ("held" or "busy")."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD_SCRIPT,
        url,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        yield line.decode().strip()
    finally:
        child.stdin.write(b"\n")
        await child.stdin.drain()
        await asyncio.wait_for(child.wait(), 30)


async def _check_exclusive(url: str) -> None:
    async with held_in_another_process(url) as got:
        assert got == "held"
        assert await try_acquire_leader_lock(url, "sealer") is None
        other = await try_acquire_leader_lock(url, "relay")  # another name is another lock
        assert other is not None
        await other.release()
    mine = await try_acquire_leader_lock(url, "sealer")
    assert mine is not None and await mine.is_held()
    async with held_in_another_process(url) as got:
        assert got == "busy"
    await mine.release()
    assert not await mine.is_held()


async def test_sqlite_file_lock_has_one_holder_across_processes(tmp_path: Path) -> None:
    await _check_exclusive(f"sqlite:///{tmp_path / 'events.sqlite3'}")


async def test_postgres_advisory_lock_has_one_holder_across_processes(pg_url: str) -> None:  # noqa: F811
    await _check_exclusive(pg_url)


async def test_postgres_lock_is_lost_with_its_connection(pg_url: str) -> None:  # noqa: F811
    lock = await try_acquire_leader_lock(pg_url, "sealer")
    assert lock is not None
    await lock._conn.close()  # type: ignore[attr-defined]
    assert not await lock.is_held()
    again = await try_acquire_leader_lock(pg_url, "sealer")
    assert again is not None
    await again.release()
    await lock.release()


def _config(tmp_path: Path, url: str | None = None) -> SealerConfig:
    log_key = load_or_create_identity(tmp_path / "log_key.hex")
    operator = Identity.from_seed(b"operator".ljust(32, b"\0"))
    settings = Settings(data_dir=tmp_path, database_url=url, operator_ids=(operator.id, log_key.id))
    config = build_sealer_config(settings)
    assert config.log_key_path == tmp_path / "log_key.hex"
    return msgspec.structs.replace(config, every_records=1, interval_s=0.1)


async def _two_services_seal_once_each_head(config: SealerConfig) -> None:
    store = await open_event_store(config.store_url)
    # The genesis names the log key among the operators (the sealer reads them from the log).
    log_key = load_or_create_identity(config.log_key_path)
    net = LocalNetwork.create(store, policy=LedgerPolicy(operators=(log_key.id,)))
    stop = asyncio.Event()
    with capture_logs() as logs:
        services = [asyncio.create_task(run_sealer_service(config, stop)) for _ in range(2)]
        try:
            for round_ in range(3):
                await net.deposit(Identity.from_seed(bytes([round_ + 1]) * 32), 100)
                size = (await store.head()).position
                deadline = asyncio.get_running_loop().time() + SEAL_WAIT_S
                while True:
                    log = await get_aggregate(store, Log, LOG_STREAM_ID)
                    if log is not None and log.last_size >= size:
                        break
                    assert asyncio.get_running_loop().time() < deadline, "no head sealed"
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*services)
            await store.close()
    leaders = [entry for entry in logs if entry["event"] == "sealer_leader_acquired"]
    assert len(leaders) == 1
    assert not [entry for entry in logs if entry["event"] == "sealer_error"]


async def test_two_sealer_services_on_sqlite_one_leader(tmp_path: Path) -> None:
    await _two_services_seal_once_each_head(_config(tmp_path))


async def test_two_sealer_services_on_postgres_one_leader(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    await migrate_event_store(pg_url)
    await _two_services_seal_once_each_head(_config(tmp_path, pg_url))


async def test_sealer_stays_off_when_the_log_key_is_not_an_operator(tmp_path: Path) -> None:
    # FLOP_OPERATOR_IDS names the log key, but the store's genesis does not: the log rules.
    log_key = load_or_create_identity(tmp_path / "log_key.hex")
    config = build_sealer_config(Settings(data_dir=tmp_path, operator_ids=(log_key.id,)))
    store = await open_event_store(config.store_url)
    await LocalNetwork.create(store).declare_genesis()
    await store.close()
    with capture_logs() as logs:
        await asyncio.wait_for(run_sealer_service(config, asyncio.Event()), timeout=5)
    assert [entry["event"] for entry in logs] == ["sealer_off"]


async def test_sealer_stays_off_when_the_genesis_names_another_log_key(tmp_path: Path) -> None:
    # Issue 16, item 5: the sealer's key is an operator, but the genesis names another key
    # to seal tree heads; the sealer does not try.
    log_key = load_or_create_identity(tmp_path / "log_key.hex")
    other = Identity.from_seed(b"sealer-other-log-key".ljust(32, b"\0"))
    config = build_sealer_config(Settings(data_dir=tmp_path))
    store = await open_event_store(config.store_url)
    policy = LedgerPolicy(operators=(other.id, log_key.id), log_key=other.id)
    await LocalNetwork.create(store, policy=policy, operator=other).declare_genesis()
    await store.close()
    with capture_logs() as logs:
        await asyncio.wait_for(run_sealer_service(config, asyncio.Event()), timeout=5)
    assert [entry["event"] for entry in logs] == ["sealer_off"]
    assert other.id in logs[0]["reason"]


def test_seal_settings_defaults_and_off() -> None:
    defaults = load_settings({})
    assert defaults.seal_enabled
    assert (defaults.seal_every_records, defaults.seal_interval_s) == (
        SEAL_EVERY_RECORDS,
        SEAL_EVERY_S,
    )
    assert not load_settings({"FLOP_SEAL": "0"}).seal_enabled
    config = load_settings({"FLOP_SEAL_EVERY_RECORDS": "5", "FLOP_SEAL_INTERVAL_S": "0.5"})
    assert config.seal_every_records == 5 and config.seal_interval_s == 0.5


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("FLOP_SEAL_EVERY_RECORDS", str(SEAL_EVERY_RECORDS_MAX), str(SEAL_EVERY_RECORDS_MAX + 1)),
        ("FLOP_SEAL_EVERY_RECORDS", "1", "0"),
        ("FLOP_SEAL_INTERVAL_S", str(SEAL_INTERVAL_S_MIN), "0.01"),
        ("FLOP_SEAL_INTERVAL_S", "1", "often"),
        ("FLOP_SEAL", "1", "maybe"),
    ],
)
def test_seal_settings_bounds(name: str, good: str, bad: str) -> None:
    load_settings({name: good})
    with pytest.raises(SettingsError, match=name):
        load_settings({name: bad})
