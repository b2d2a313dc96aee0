"""Helpers for the NATS tests: deterministic stores and stream reads."""

from __future__ import annotations

import hashlib

from nats.js import JetStreamContext

from adapters.nats.codec import EVENT_STREAM, decode_header_hash
from adapters.store.memory import MemoryEventStore
from domain.ports import READ_ALL_LIMIT_MAX
from domain.records import NewEvent, Record, StreamAppend

EVENTS_PER_COMMAND = 100
STREAM_TYPES = ("node", "job", "account.x", "validator")
EVENT_TYPES = ("NodeRegistered", "JobSubmitted", "Transfer Posted", "VerdictRecorded")


async def fill_store(store: MemoryEventStore, count: int, *, seed: str = "flop") -> None:
    """Append ``count`` deterministic events, ``EVENTS_PER_COMMAND`` per command."""
    head = await store.head()
    appended = head.position
    while appended < count:
        size = min(EVENTS_PER_COMMAND, count - appended)
        kind = (appended // EVENTS_PER_COMMAND) % len(STREAM_TYPES)
        events = tuple(
            NewEvent(
                event_type=EVENT_TYPES[(appended + i) % len(EVENT_TYPES)],
                data=hashlib.sha256(f"{seed}:{appended + i}".encode()).digest() * 4,
            )
            for i in range(size)
        )
        await store.append(
            [StreamAppend(f"s-{seed}-{appended}", STREAM_TYPES[kind], None, events)],
            command_id=f"{seed}-{appended}",
        )
        appended += size


async def build_store(count: int, *, seed: str = "flop") -> MemoryEventStore:
    store = MemoryEventStore()
    await fill_store(store, count, seed=seed)
    return store


async def read_everything(store: MemoryEventStore) -> list[Record]:
    """Every record of the store, in position order."""
    records: list[Record] = []
    while batch := await store.read_all(len(records) + 1, READ_ALL_LIMIT_MAX):
        records.extend(batch)
    return records


async def read_stream_hashes(
    js: JetStreamContext, stream: str = EVENT_STREAM
) -> list[bytes | None]:
    """The hash header of every message 1..last, in order (None where a header is missing)."""
    info = await js.stream_info(stream)
    hashes: list[bytes | None] = []
    for sequence in range(1, info.state.last_seq + 1):
        message = await js.get_msg(stream, sequence, direct=True)
        hashes.append(decode_header_hash(message.headers))
    return hashes


async def assert_mirror_exact(js: JetStreamContext, records: list[Record]) -> None:
    """The stream holds exactly positions 1..N, each carrying the store's hash."""
    info = await js.stream_info(EVENT_STREAM)
    assert info.state.first_seq == 1
    assert info.state.last_seq == len(records)
    assert info.state.messages == len(records)
    hashes = await read_stream_hashes(js)
    mismatched = [r.position for r, h in zip(records, hashes, strict=True) if h != r.hash]
    assert not mismatched, f"sequences whose hash differs from the store: {mismatched[:10]}"
