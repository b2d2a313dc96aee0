"""The EventStore contract: one abstract suite, subclassed once per adapter.

A subclass provides the ``open_store`` fixture: an async callable that opens a handle on
the subclass's storage (the same storage on every call within one test, so that reopening
is observable). Handles are closed by the fixture. A second handle always
sees the first one's data; the memory adapter's "reopen" returns the same object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import VersionConflict
from domain.ports import READ_ALL_LIMIT_MAX, EventStore
from domain.records import (
    GENESIS_HASH,
    LOG_HEAD_GUARD,
    AppendOutcome,
    Head,
    NewEvent,
    Record,
    Snapshot,
    StreamAppend,
    verify_chain,
)

OpenStore = Callable[[], Awaitable[EventStore]]
SUBSCRIBE_WAIT_S = 5.0


def stream(stream_id: str, expected: int | None, *payloads: bytes) -> StreamAppend:
    """A StreamAppend of ``Happened`` events with the given payloads."""
    return StreamAppend(
        stream_id=stream_id,
        stream_type="test",
        expected_version=expected,
        events=tuple(NewEvent(event_type="Happened", data=p) for p in payloads),
    )


async def read_everything(store: EventStore, page: int = 1000) -> list[Record]:
    """Every record of the log, read in pages."""
    records: list[Record] = []
    while True:
        batch = await store.read_all(len(records) + 1, page)
        if not batch:
            return records
        records.extend(batch)


async def scripted_history(store: EventStore) -> Head:
    """A fixed history whose head hash must be the same in every adapter."""
    await store.append([stream("job-1", 0, b'{"a":1}', b'{"b":2}')], command_id="c1")
    await store.append(
        [stream("node-1", 0, b"{}"), stream("job-1", 2, b'{"c":3}')],
        command_id="c2",
        metadata=b'{"actor":"x"}',
    )
    await store.append([stream("node-1", None, b"\x00\xff")], command_id="c3")
    return await store.head()


class EventStoreContract:
    """Behaviour every EventStore adapter must show (DESIGN.md, "Event store")."""

    @pytest.fixture
    async def store(self, open_store: OpenStore) -> EventStore:
        return await open_store()

    async def test_empty_store_has_genesis_head(self, store: EventStore) -> None:
        assert await store.head() == Head(position=0, hash=GENESIS_HASH)
        assert await store.read_all() == []
        assert await store.read_stream("nothing") == []
        assert await store.find_command("nothing") is None

    async def test_append_assigns_positions_versions_and_chain(self, store: EventStore) -> None:
        outcome = await store.append([stream("a", 0, b"1", b"2")], command_id="c1")
        assert outcome == AppendOutcome(
            command_id="c1",
            first_position=1,
            last_position=2,
            head_hash=outcome.head_hash,
            stream_versions={"a": 2},
        )
        second = await store.append(
            [stream("b", 0, b"3"), stream("a", 2, b"4")], command_id="c2", metadata=b"m"
        )
        assert (second.first_position, second.last_position) == (3, 4)
        assert second.stream_versions == {"b": 1, "a": 3}
        records = await store.read_all()
        assert [(r.position, r.stream_id, r.version) for r in records] == [
            (1, "a", 1),
            (2, "a", 2),
            (3, "b", 1),
            (4, "a", 3),
        ]
        assert records[2].metadata == b"m" and records[2].command_id == "c2"
        assert verify_chain(records) == await store.head()
        assert (await store.head()).hash == second.head_hash

    async def test_same_events_give_same_hashes_in_every_adapter(self, store: EventStore) -> None:
        reference = await scripted_history(MemoryEventStore())
        assert await scripted_history(store) == reference

    async def test_stale_version_refuses_whole_command_and_names_versions(
        self, store: EventStore
    ) -> None:
        await store.append([stream("a", 0, b"1")], command_id="c1")
        before = await store.head()
        with pytest.raises(VersionConflict) as info:
            await store.append([stream("b", 0, b"2"), stream("a", 0, b"3")], command_id="c2")
        assert (info.value.stream_id, info.value.expected, info.value.actual) == ("a", 0, 1)
        assert await store.head() == before
        assert await store.read_stream("b") == []
        assert await store.find_command("c2") is None

    async def test_expected_version_of_new_stream_must_be_zero(self, store: EventStore) -> None:
        with pytest.raises(VersionConflict) as info:
            await store.append([stream("new", 3, b"1")], command_id="c1")
        assert (info.value.expected, info.value.actual) == (3, 0)

    async def test_none_expected_version_appends_unchecked(self, store: EventStore) -> None:
        await store.append([stream("a", None, b"1")], command_id="c1")
        outcome = await store.append([stream("a", None, b"2")], command_id="c2")
        assert outcome.stream_versions == {"a": 2}

    async def test_repeated_command_returns_first_outcome_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        first = await store.append([stream("a", 0, b"1")], command_id="same")
        again = await store.append([stream("a", 0, b"other")], command_id="same")
        assert again == first
        assert await store.find_command("same") == first
        assert (await store.head()).position == 1

    async def test_repeated_unchecked_command_writes_nothing(self, store: EventStore) -> None:
        first = await store.append([stream("a", None, b"1")], command_id="same")
        await store.append([stream("b", None, b"2")], command_id="other")
        again = await store.append([stream("a", None, b"1")], command_id="same")
        assert again == first
        assert (await store.head()).position == 2

    async def test_refused_command_can_be_retried_under_its_id(self, store: EventStore) -> None:
        await store.append([stream("a", 0, b"1")], command_id="c1")
        with pytest.raises(VersionConflict):
            await store.append([stream("a", 0, b"2")], command_id="retry")
        outcome = await store.append([stream("a", 1, b"2")], command_id="retry")
        assert outcome.stream_versions == {"a": 2}

    async def test_malformed_append_is_a_bug_and_writes_nothing(self, store: EventStore) -> None:
        with pytest.raises(ValueError):
            await store.append([], command_id="c1")
        with pytest.raises(ValueError):
            await store.append([stream("a", 0, b"1"), stream("a", 1, b"2")], command_id="c2")
        with pytest.raises(ValueError):
            await store.append([stream("a", 0)], command_id="c3")
        assert await store.head() == Head(position=0, hash=GENESIS_HASH)

    async def test_a_read_guard_conflicts_when_its_stream_moved(self, store: EventStore) -> None:
        # A stream the command read but does not write, at the version it read (issue 16: a
        # command is decided on exactly the state before it in the log).
        await store.append([stream("a", 0, b"1")], command_id="c1")
        guard = StreamAppend(stream_id="a", stream_type="", expected_version=0, events=())
        with pytest.raises(VersionConflict):
            await store.append([stream("b", 0, b"x"), guard], command_id="c2")
        assert await store.get_stream_version("b") == 0
        fresh = StreamAppend(stream_id="a", stream_type="", expected_version=1, events=())
        outcome = await store.append([stream("b", 0, b"x"), fresh], command_id="c3")
        assert (outcome.first_position, outcome.last_position) == (2, 2)
        assert await store.get_stream_version("a") == 1
        assert [r.stream_id for r in await store.read_all(1)] == ["a", "b"]

    async def test_a_head_guard_conflicts_when_the_log_moved(self, store: EventStore) -> None:
        await store.append([stream("a", 0, b"1")], command_id="c1")
        guard = StreamAppend(
            stream_id=LOG_HEAD_GUARD, stream_type="", expected_version=1, events=()
        )
        await store.append([stream("b", 0, b"x")], command_id="c2")  # the head moved on
        with pytest.raises(VersionConflict):
            await store.append([stream("c", 0, b"y"), guard], command_id="c3")
        assert await store.get_stream_version("c") == 0
        fresh = StreamAppend(
            stream_id=LOG_HEAD_GUARD, stream_type="", expected_version=2, events=()
        )
        outcome = await store.append([stream("c", 0, b"y"), fresh], command_id="c4")
        assert (outcome.first_position, outcome.last_position) == (3, 3)
        assert await store.get_stream_version(LOG_HEAD_GUARD) == 0

    async def test_read_stream_from_version(self, store: EventStore) -> None:
        await store.append([stream("a", 0, b"1", b"2", b"3")], command_id="c1")
        await store.append([stream("b", 0, b"x")], command_id="c2")
        assert [r.data for r in await store.read_stream("a", 2)] == [b"2", b"3"]
        assert [r.version for r in await store.read_stream("a")] == [1, 2, 3]
        assert await store.read_stream("a", 4) == []

    async def test_stream_version_is_the_last_version_or_zero(self, store: EventStore) -> None:
        assert await store.get_stream_version("job-1") == 0
        await scripted_history(store)
        assert await store.get_stream_version("job-1") == 3
        assert await store.get_stream_version("node-1") == 2
        assert await store.get_stream_version("job") == 0  # no prefix match
        with pytest.raises(VersionConflict):
            await store.append([stream("job-1", 1, b"{}")], command_id="stale")
        assert await store.get_stream_version("job-1") == 3

    async def test_stream_version_sees_another_handles_appends(self, open_store: OpenStore) -> None:
        first, second = await open_store(), await open_store()
        await first.append([stream("s", 0, b"{}", b"{}")], command_id="c1")
        assert await second.get_stream_version("s") == 2

    async def test_read_all_pages_and_clamps_its_limit(self, store: EventStore) -> None:
        for n in range(7):
            await store.append([stream(f"s{n}", 0, b"x")], command_id=f"c{n}")
        assert [r.position for r in await store.read_all(3, 2)] == [3, 4]
        assert [r.position for r in await store.read_all(6, 100)] == [6, 7]
        assert [r.position for r in await store.read_all(0, 0)] == [1]
        assert await store.read_all(8) == []
        assert len(await store.read_all(1, READ_ALL_LIMIT_MAX + 1)) == 7
        assert [r.position for r in await read_everything(store, page=3)] == list(range(1, 8))

    async def test_subscribe_replays_then_wakes_on_new_commits(self, store: EventStore) -> None:
        await store.append([stream("a", 0, b"1", b"2")], command_id="c1")
        seen: list[int] = []

        async def follow() -> None:
            async for record in store.subscribe(2):
                seen.append(record.position)
                if record.position == 4:
                    return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.1)
        await store.append([stream("b", 0, b"3")], command_id="c2")
        await asyncio.sleep(0.05)
        await store.append([stream("b", 1, b"4")], command_id="c3")
        await asyncio.wait_for(follower, SUBSCRIBE_WAIT_S)
        assert seen == [2, 3, 4]

    async def test_snapshots_keep_the_newest(self, store: EventStore) -> None:
        assert await store.get_snapshot("a") is None
        await store.save_snapshot(Snapshot(stream_id="a", version=5, state=b"five"))
        await store.save_snapshot(Snapshot(stream_id="a", version=3, state=b"three"))
        assert await store.get_snapshot("a") == Snapshot(stream_id="a", version=5, state=b"five")
        await store.save_snapshot(Snapshot(stream_id="a", version=9, state=b"nine"))
        assert (await store.get_snapshot("a")) == Snapshot(stream_id="a", version=9, state=b"nine")

    async def test_concurrent_writers_of_one_version_exactly_one_wins(
        self, store: EventStore
    ) -> None:
        await store.append([stream("a", 0, b"0")], command_id="seed")
        results = await asyncio.gather(
            *(store.append([stream("a", 1, b"x")], command_id=f"w{n}") for n in range(10)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, AppendOutcome)]
        losers = [r for r in results if isinstance(r, VersionConflict)]
        assert len(winners) == 1 and len(losers) == 9
        assert {(c.expected, c.actual) for c in losers} == {(1, 2)}
        assert [r.version for r in await store.read_stream("a")] == [1, 2]

    async def test_conflicts_fail_only_their_own_command(self, store: EventStore) -> None:
        await store.append([stream("hot", 0, b"0")], command_id="seed")
        calls = []
        for n in range(20):
            appends = [stream(f"own-{n}", 0, b"x")]
            if n % 3 == 0:
                appends.append(stream("hot", 0, b"stale"))
            calls.append(store.append(appends, command_id=f"c{n}"))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for n, result in enumerate(results):
            if n % 3 == 0:
                assert isinstance(result, VersionConflict)
                assert await store.read_stream(f"own-{n}") == []
            else:
                assert isinstance(result, AppendOutcome), result
        records = await read_everything(store)
        assert len(records) == 1 + 13
        verify_chain(records)

    async def test_concurrent_duplicates_of_one_command_write_once(self, store: EventStore) -> None:
        results = await asyncio.gather(
            *(store.append([stream("a", None, b"x")], command_id="dup") for _ in range(5))
        )
        assert all(r == results[0] for r in results)
        assert (await store.head()).position == 1

    async def test_reopened_store_sees_everything(self, open_store: OpenStore) -> None:
        first = await open_store()
        outcome = await first.append([stream("a", 0, b"1")], command_id="c1")
        second = await open_store()
        assert await second.find_command("c1") == outcome
        assert await second.head() == await first.head()
        again = await second.append([stream("a", 1, b"2")], command_id="c2")
        assert again.first_position == 2
        verify_chain(await second.read_all())

    async def test_two_handles_appending_at_once_stay_sound(self, open_store: OpenStore) -> None:
        handles = [await open_store(), await open_store()]

        async def writer(n: int) -> int:
            store, acked = handles[n % 2], 0
            for k in range(15):
                target = f"shared-{k % 2}"
                version = len(await store.read_stream(target))
                try:
                    await store.append(
                        [stream(target, version, b"s"), stream(f"own-{n}", None, b"o")],
                        command_id=f"w{n}-{k}",
                    )
                except VersionConflict:
                    continue
                acked += 1
            return acked

        acked = sum(await asyncio.gather(*(writer(n) for n in range(4))))
        records = await read_everything(handles[0])
        assert len(records) == 2 * acked
        assert verify_chain(records) == await handles[1].head()
        for name in ("shared-0", "shared-1"):
            versions = [r.version for r in await handles[1].read_stream(name)]
            assert versions == list(range(1, len(versions) + 1))

    async def test_record_round_trips_every_field(self, store: EventStore) -> None:
        payload = bytes(range(256))
        await store.append([stream("bytes", 0, payload)], command_id="c1", metadata=payload)
        (record,) = await store.read_all()
        assert record.data == payload and record.metadata == payload
        assert msgspec.structs.astuple(record)[:8] == (
            1,
            "bytes",
            "test",
            1,
            "Happened",
            payload,
            "c1",
            payload,
        )
