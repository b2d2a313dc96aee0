"""In-memory event store: the reference behaviour of the port, for unit tests and demos."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from adapters.store.chaining import chain_command
from domain.ports import READ_ALL_LIMIT_MAX
from domain.records import (
    GENESIS_HASH,
    AppendOutcome,
    Head,
    Record,
    Snapshot,
    StreamAppend,
    validate_appends,
)


class MemoryEventStore:
    """Keeps the log in a list; one asyncio lock makes appends atomic."""

    def __init__(self) -> None:
        self._log: list[Record] = []
        self._streams: dict[str, list[Record]] = {}
        self._commands: dict[str, AppendOutcome] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._lock = asyncio.Lock()
        self._committed = asyncio.Condition()

    def copy(self) -> MemoryEventStore:
        """An independent store holding the same records (tests fork a prepared history)."""
        clone = MemoryEventStore()
        clone._log = list(self._log)
        clone._streams = {k: list(v) for k, v in self._streams.items()}
        clone._commands = dict(self._commands)
        clone._snapshots = dict(self._snapshots)
        return clone

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        command_id: str,
        metadata: bytes = b"",
    ) -> AppendOutcome:
        items = validate_appends(appends)
        async with self._lock:
            if command_id in self._commands:
                return self._commands[command_id]
            head = await self.head()
            current = {item.stream_id: len(self._streams.get(item.stream_id, ())) for item in items}
            new_records, outcome = chain_command(
                items, command_id=command_id, metadata=metadata, head=head, current=current
            )
            for record in new_records:
                self._log.append(record)
                self._streams.setdefault(record.stream_id, []).append(record)
            self._commands[command_id] = outcome
        async with self._committed:
            self._committed.notify_all()
        return outcome

    async def find_command(self, command_id: str) -> AppendOutcome | None:
        return self._commands.get(command_id)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[Record]:
        return list(self._streams.get(stream_id, ())[max(from_version, 1) - 1 :])

    async def get_stream_version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[Record]:
        limit = max(1, min(limit, READ_ALL_LIMIT_MAX))
        start = max(from_position, 1) - 1
        return list(self._log[start : start + limit])

    async def subscribe(self, from_position: int = 1) -> AsyncIterator[Record]:
        next_position = max(from_position, 1)
        while True:
            batch = await self.read_all(next_position, READ_ALL_LIMIT_MAX)
            if not batch:
                await self._wait_for_position(next_position)
                continue
            for record in batch:
                yield record
            next_position = batch[-1].position + 1

    async def _wait_for_position(self, wanted: int) -> None:
        async with self._committed:
            await self._committed.wait_for(lambda: len(self._log) >= wanted)

    async def head(self) -> Head:
        if not self._log:
            return Head(position=0, hash=GENESIS_HASH)
        return Head(position=self._log[-1].position, hash=self._log[-1].hash)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        current = self._snapshots.get(snapshot.stream_id)
        if current is None or current.version < snapshot.version:
            self._snapshots[snapshot.stream_id] = snapshot

    async def get_snapshot(self, stream_id: str) -> Snapshot | None:
        return self._snapshots.get(stream_id)

    async def close(self) -> None:
        return None
