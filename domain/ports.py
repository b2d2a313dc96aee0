"""Ports: the Protocols that adapters implement. The domain and the services see only these."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from domain.records import AppendOutcome, Head, Record, Snapshot, StreamAppend

READ_ALL_LIMIT_MAX = 10_000


@runtime_checkable
class EventStore(Protocol):
    """The append-only, hash-chained global log (DESIGN.md, "Event store").

    ``append`` commits every StreamAppend or none. A stale expected version raises
    ``VersionConflict``; a repeated ``command_id`` returns the first outcome and writes nothing.
    """

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        command_id: str,
        metadata: bytes = b"",
    ) -> AppendOutcome: ...

    async def find_command(self, command_id: str) -> AppendOutcome | None:
        """The outcome of an already committed command, or None."""
        ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[Record]: ...

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[Record]: ...

    def subscribe(self, from_position: int = 1) -> AsyncIterator[Record]:
        """Yield every record from ``from_position`` on, waiting for new commits forever."""
        ...

    async def head(self) -> Head: ...

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...

    async def get_snapshot(self, stream_id: str) -> Snapshot | None: ...

    async def close(self) -> None: ...
