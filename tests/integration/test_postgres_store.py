"""PostgreSQL event store beyond the contract: migrations, wiring, errors, several writers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from adapters.store.factory import get_sqlite_path, open_event_store
from adapters.store.memory import MemoryEventStore
from adapters.store.postgres import PostgresEventStore
from adapters.store.postgres_committer import BATCH_COMMANDS_MAX, BATCH_WAIT_S_MAX
from adapters.store.postgres_schema import LATEST_SCHEMA_VERSION, SchemaNotMigrated
from adapters.store.sqlite import SqliteEventStore
from domain.errors import StoreUnavailable, VersionConflict
from domain.records import AppendOutcome, verify_chain
from flopledger.cli import main
from flopledger.settings import load_settings
from tests import pg as pg_module
from tests.conftest_pg import pg_server_url, pg_url
from tests.contract.event_store_contract import read_everything, stream

__all__ = ["pg_server_url", "pg_url"]


async def test_db_migrate_is_idempotent_and_versioned(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    assert "applied migrations [1, 2]" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    assert "up to date" in capsys.readouterr().out
    conn = await asyncpg.connect(pg_url)
    try:
        versions = await conn.fetch("SELECT version FROM flop_schema_migrations")
    finally:
        await conn.close()
    assert sorted(row["version"] for row in versions) == list(range(1, LATEST_SCHEMA_VERSION + 1))


async def test_unmigrated_database_says_to_run_migrate(pg_url: str) -> None:
    with pytest.raises(SchemaNotMigrated, match="flopledger db migrate"):
        await open_event_store(pg_url)


async def test_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        await PostgresEventStore.connect("postgresql://postgres@127.0.0.1:1/none")


async def test_db_migrate_reports_failure_with_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await asyncio.to_thread(
        main, ["db", "migrate", "--url", "postgresql://postgres@127.0.0.1:1/none"]
    )
    assert code == 1
    assert "cannot connect" in capsys.readouterr().err


async def test_two_stores_on_one_database_interleave_soundly(pg_url: str) -> None:
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    # Two stores have two pools and two committers: to the server, two processes.
    stores = [await PostgresEventStore.connect(pg_url) for _ in range(2)]
    try:

        async def writer(store: PostgresEventStore, name: str) -> list[AppendOutcome]:
            acked = []
            for n in range(40):
                target = f"shared-{n % 3}"
                version = len(await store.read_stream(target))
                try:
                    acked.append(
                        await store.append(
                            [stream(target, version, b"s"), stream(f"{name}-{n}", 0, b"o")],
                            command_id=f"{name}-{n}",
                        )
                    )
                except VersionConflict:
                    continue
            return acked

        results = await asyncio.gather(*(writer(stores[k % 2], f"w{k}") for k in range(8)))
        records = await read_everything(stores[0])
        assert verify_chain(records) == await stores[1].head()
        by_position = {r.position: r for r in records}
        acked = [o for batch in results for o in batch]
        assert len(records) == 2 * len(acked)
        for outcome in acked:
            assert by_position[outcome.last_position].hash == outcome.head_hash
        for k in range(3):
            versions = [r.version for r in await stores[0].read_stream(f"shared-{k}")]
            assert versions == list(range(1, len(versions) + 1))
    finally:
        for store in stores:
            await store.close()


async def test_writes_of_another_process_are_never_overlooked(pg_url: str) -> None:
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    one, other = [await PostgresEventStore.connect(pg_url) for _ in range(2)]
    try:
        await one.append([stream("s", 0, b"1")], command_id="c1")
        await other.append([stream("s", 1, b"2")], command_id="c2")
        # ``one`` remembers version 1: its expectation of 2 must still be checked for real.
        assert (await one.append([stream("s", 2, b"3")], command_id="c3")).stream_versions == {
            "s": 3
        }
        await other.append([stream("s", None, b"4")], command_id="c4")
        # Unchecked, from memory ``one`` would pick version 4 again: the head moved, so no.
        assert (await one.append([stream("s", None, b"5")], command_id="c5")).stream_versions == {
            "s": 5
        }
        with pytest.raises(VersionConflict) as info:
            await other.append([stream("s", 4, b"x")], command_id="c6")
        assert info.value.actual == 5
        assert (await other.append([stream("t", None, b"6")], command_id="c5")).command_id == "c5"
        records = await read_everything(one)
        assert [r.version for r in records] == [1, 2, 3, 4, 5]
        verify_chain(records)
    finally:
        await one.close()
        await other.close()


async def test_lost_writer_connection_fails_cleanly_then_recovers(pg_url: str) -> None:
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    store = await PostgresEventStore.connect(pg_url)
    try:
        await store.append([stream("a", 0, b"1")], command_id="c1")
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        try:
            await store.append([stream("a", 1, b"2")], command_id="c2")
        except StoreUnavailable:
            await store.append([stream("a", 1, b"2")], command_id="c2")
        records = await read_everything(store)
        assert [r.version for r in records] == [1, 2]
        verify_chain(records)
    finally:
        await store.close()


async def test_factory_opens_sqlite_memory_and_default_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"FLOP_DATA_DIR": str(tmp_path / "deep" / "data")})
    store = await open_event_store(settings.event_store_url)
    assert isinstance(store, SqliteEventStore)
    await store.append([stream("a", 0, b"1")], command_id="c1")
    await store.close()
    assert get_sqlite_path(settings.event_store_url) == tmp_path / "deep" / "data" / (
        "events.sqlite3"
    )
    assert (tmp_path / "deep" / "data" / "events.sqlite3").exists()
    assert isinstance(await open_event_store("memory:"), MemoryEventStore)
    with pytest.raises(ValueError):
        await open_event_store("mysql://nope")


async def test_private_cluster_fallback_starts_a_server() -> None:
    # The fallback when neither FLOP_TEST_DATABASE_URL nor 127.0.0.1:5432 answers.
    url = await asyncio.to_thread(pg_module._start_private_cluster)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_database_refusing_connections_fails_appends_then_recovers(pg_url: str) -> None:
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    name = pg_url.rsplit("/", 1)[1]
    store = await PostgresEventStore.connect(pg_url)
    admin = await asyncpg.connect(await pg_module.get_server_url())
    try:
        await store.append([stream("a", 0, b"1")], command_id="c1")
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        for command_id in ("c2", "c3"):
            with pytest.raises(StoreUnavailable):
                await store.append([stream("a", 1, b"2")], command_id=command_id)
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        outcome = await store.append([stream("a", 1, b"2")], command_id="c2")
        assert outcome.stream_versions == {"a": 2}
        records = await read_everything(store)
        assert [r.command_id for r in records] == ["c1", "c2"]
        verify_chain(records)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await store.close()


async def test_batch_wait_is_bounded(pg_url: str) -> None:
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    store = await PostgresEventStore.connect(pg_url, batch_wait_s=BATCH_WAIT_S_MAX)
    try:
        outcomes = await asyncio.gather(
            *(store.append([stream(f"s{n}", 0, b"x")], command_id=f"c{n}") for n in range(8))
        )
        assert sorted(o.last_position for o in outcomes) == list(range(1, 9))
    finally:
        await store.close()
    with pytest.raises(ValueError):
        await PostgresEventStore.connect(pg_url, batch_wait_s=BATCH_WAIT_S_MAX * 1.01)


async def test_batches_beyond_the_command_bound_all_commit(pg_url: str) -> None:
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    store = await PostgresEventStore.connect(pg_url)
    try:
        count = BATCH_COMMANDS_MAX + 1
        outcomes = await asyncio.gather(
            *(store.append([stream(f"s{n}", 0, b"x")], command_id=f"c{n}") for n in range(count))
        )
        assert sorted(o.last_position for o in outcomes) == list(range(1, count + 1))
        verify_chain(await read_everything(store))
    finally:
        await store.close()


async def test_batch_decided_from_memory_is_redone_when_another_process_wrote(pg_url: str) -> None:
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    ours, theirs = [await PostgresEventStore.connect(pg_url) for _ in range(2)]
    try:
        await ours.append([stream("s", 0, b"1")], command_id="c1")
        # ``ours`` knows head and stream: it decides its next batch on that knowledge...
        await theirs.append([stream("s", 1, b"2")], command_id="c2")
        # ...and its conditional write must not happen, since the head moved.
        outcome = await ours.append([stream("s", None, b"3")], command_id="c3")
        assert outcome.stream_versions == {"s": 3}
        assert ours.commit_stats.redone == 1
        records = await read_everything(ours)
        assert [r.command_id for r in records] == ["c1", "c2", "c3"]
        verify_chain(records)
    finally:
        await ours.close()
        await theirs.close()


async def test_commits_keep_finding_command_ids_by_index_as_history_grows(pg_url: str) -> None:
    """A commit must not scan every stored command: its cost would grow with history."""
    assert await asyncio.to_thread(main, ["db", "migrate", "--url", pg_url]) == 0
    store = await PostgresEventStore.connect(pg_url)
    admin = await asyncpg.connect(pg_url)

    async def commit_batches(first: int, count: int, size: int) -> None:
        for n in range(first, first + count):
            await asyncio.gather(
                *(
                    store.append([stream(f"s{n}-{k}", 0, b"x")], command_id=f"c{n}-{k}")
                    for k in range(size)
                )
            )

    async def get_command_table_scans(flush_id: str) -> int:
        # A backend reports its table counters after a transaction at most once a second.
        await asyncio.sleep(1.1)
        await store.append([stream(flush_id, 0, b"x")], command_id=flush_id)
        return int(
            await admin.fetchval(
                "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'flop_commands'"
            )
        )

    try:
        # A few commits while the tables are young (where a sequential scan is the right
        # plan), then enough commands that only an index lookup is.
        await commit_batches(0, 8, 2)
        await commit_batches(8, 24, BATCH_COMMANDS_MAX)
        before = await get_command_table_scans("flush-1")
        await commit_batches(32, 10, 64)
        assert await get_command_table_scans("flush-2") == before
    finally:
        await admin.close()
        await store.close()
