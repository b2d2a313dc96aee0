"""The hash chain of the global log."""

from __future__ import annotations

import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import CorruptRecord, VersionConflict
from domain.records import GENESIS_HASH, NewEvent, StreamAppend, verify_chain


def _append(stream: str, expected: int | None, *payloads: bytes) -> StreamAppend:
    return StreamAppend(
        stream_id=stream,
        stream_type="test",
        expected_version=expected,
        events=tuple(NewEvent(event_type="Happened", data=p) for p in payloads),
    )


async def test_chain_links_every_record_and_detects_tampering() -> None:
    store = MemoryEventStore()
    await store.append([_append("a", 0, b"1", b"2")], command_id="c1")
    await store.append([_append("b", 0, b"3"), _append("a", 2, b"4")], command_id="c2")
    records = await store.read_all()
    assert [r.position for r in records] == [1, 2, 3, 4]
    assert records[0].prev_hash == GENESIS_HASH
    head = verify_chain(records)
    assert head == await store.head()

    import msgspec

    forged = msgspec.structs.replace(records[2], data=b"forged")
    with pytest.raises(CorruptRecord) as info:
        verify_chain([records[0], records[1], forged, records[3]])
    assert info.value.position == 3


async def test_stale_version_refuses_the_whole_command() -> None:
    store = MemoryEventStore()
    await store.append([_append("a", 0, b"1")], command_id="c1")
    with pytest.raises(VersionConflict) as info:
        await store.append([_append("b", 0, b"2"), _append("a", 0, b"3")], command_id="c2")
    assert (info.value.stream_id, info.value.expected, info.value.actual) == ("a", 0, 1)
    assert (await store.head()).position == 1
    assert await store.read_stream("b") == []


async def test_repeated_command_returns_first_outcome_and_writes_nothing() -> None:
    store = MemoryEventStore()
    first = await store.append([_append("a", 0, b"1")], command_id="same")
    again = await store.append([_append("a", None, b"other")], command_id="same")
    assert again == first
    assert (await store.head()).position == 1
