"""An in-process read model for lists: nodes, jobs and validators, caught up from the log.

Every list request first catches up: it reads the global log from the last position it saw
(in batches of ``CATCH_UP_BATCH``), marks the streams that changed, and rebuilds only those
aggregates' views. Several API processes each keep their own copy; all read the same store,
so each is exact as of the head it caught up to. The log's record hashes are kept too, as the
leaves of the transparency tree (``api.transparency``), and the transparency log aggregate
(sealed heads, co-signatures, anchors) is folded record by record as it goes by.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from domain.events import FlopAggregate, decode_event
from domain.job import Job
from domain.log import Log
from domain.node import Node
from domain.ports import EventStore
from domain.records import Record
from domain.services.queries import get_aggregate
from domain.validators import Validator

CATCH_UP_BATCH = 1000
TRACKED: dict[str, type[FlopAggregate]] = {
    Node.STREAM_TYPE: Node,
    Job.STREAM_TYPE: Job,
    Validator.STREAM_TYPE: Validator,
}

View = dict[str, Any]


class ReadModel:
    """Views of every node, job and validator in order of creation, plus all record hashes."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.position = 0
        self.record_hashes: list[bytes] = []
        self.log: Log | None = None
        self._views: dict[str, dict[str, View]] = {name: {} for name in TRACKED}
        self._lock = asyncio.Lock()

    async def catch_up(self) -> int:
        """Read every new record and refresh the views it touched; returns the position."""
        async with self._lock:
            dirty: dict[str, str] = {}
            while True:
                batch = await self.store.read_all(self.position + 1, CATCH_UP_BATCH)
                if not batch:
                    break
                for record in batch:
                    if record.position != self.position + 1:
                        raise AssertionError(
                            f"log gap: expected {self.position + 1}, got {record.position}"
                        )
                    self.record_hashes.append(record.hash)
                    self.position = record.position
                    if record.stream_type in TRACKED:
                        dirty[record.stream_id] = record.stream_type
                    elif record.stream_type == Log.STREAM_TYPE:
                        self._apply_log(record)
                if len(batch) < CATCH_UP_BATCH:
                    break
            for stream_id, stream_type in dirty.items():
                aggregate = await get_aggregate(self.store, TRACKED[stream_type], stream_id)
                if aggregate is not None:
                    self._views[stream_type][stream_id] = aggregate.view()  # type: ignore[attr-defined]
            return self.position

    async def list(
        self, stream_type: str, predicate: Callable[[View], bool], *, offset: int, limit: int
    ) -> tuple[list[View], int]:
        """One page of the views that match, and how many match in all."""
        await self.catch_up()
        matching = [view for view in self._views[stream_type].values() if predicate(view)]
        return matching[offset : offset + limit], len(matching)

    def _apply_log(self, record: Record) -> None:
        log = decode_event(record).mutate(self.log)
        if not isinstance(log, Log):
            raise AssertionError(f"record {record.position} did not rebuild the log aggregate")
        self.log = log

    def count_by(self, stream_type: str, field: str) -> dict[str, int]:
        """How many views have each value of ``field`` (for metrics), as of the last catch-up."""
        counts: dict[str, int] = {}
        for view in self._views[stream_type].values():
            key = str(view.get(field))
            counts[key] = counts.get(key, 0) + 1
        return counts
