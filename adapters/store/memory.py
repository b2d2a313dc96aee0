"""In-memory event store: the reference behaviour of the port, for unit tests and demos."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from domain.errors import VersionConflict
from domain.ports import READ_ALL_LIMIT_MAX
from domain.records import (
    GENESIS_HASH,
    AppendOutcome,
    Head,
    Record,
    RecordBody,
    Snapshot,
    StreamAppend,
    make_record,
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
            for item in items:
                actual = len(self._streams.get(item.stream_id, ()))
                if item.expected_version is not None and item.expected_version != actual:
                    raise VersionConflict(item.stream_id, item.expected_version, actual)
            new_records: list[Record] = []
            prev_hash = self._log[-1].hash if self._log else GENESIS_HASH
            position = len(self._log)
            versions: dict[str, int] = {}
            for item in items:
                version = len(self._streams.get(item.stream_id, ()))
                for event in item.events:
                    position += 1
                    version += 1
                    record = make_record(
                        prev_hash,
                        RecordBody(
                            position=position,
                            stream_id=item.stream_id,
                            stream_type=item.stream_type,
                            version=version,
                            event_type=event.event_type,
                            data=event.data,
                            command_id=command_id,
                            metadata=metadata,
                        ),
                    )
                    new_records.append(record)
                    prev_hash = record.hash
                versions[item.stream_id] = version
            for record in new_records:
                self._log.append(record)
                self._streams.setdefault(record.stream_id, []).append(record)
            outcome = AppendOutcome(
                command_id=command_id,
                first_position=new_records[0].position,
                last_position=new_records[-1].position,
                head_hash=prev_hash,
                stream_versions=versions,
            )
            self._commands[command_id] = outcome
        async with self._committed:
            self._committed.notify_all()
        return outcome

    async def find_command(self, command_id: str) -> AppendOutcome | None:
        return self._commands.get(command_id)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[Record]:
        return list(self._streams.get(stream_id, ())[max(from_version, 1) - 1 :])

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
