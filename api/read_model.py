"""A read model for lists: nodes, jobs, validators and models, caught up from the log.

Every list request first catches up: it reads the global log from the last position it saw
(in batches of ``CATCH_UP_BATCH``), marks the streams that changed, and rebuilds only those
aggregates' views. The views live in a ``ViewTable`` (a private temporary SQLite file), not in
the process's memory, so memory does not grow with the number of jobs and a page is an indexed
query. Several API processes each keep their own copy; all read the same store, so each is
exact as of the head it caught up to. The transparency tree is folded from the record hashes
as they go by: its running root (``tree``, O(log n) hashes in memory) and every node of the
tree in a tree table (``nodes``, ``adapters.store.tree_table``: a private SQLite file, about
64 bytes a record on disk), from which ``api.transparency`` answers a proof in O(log n)
lookups on a worker thread; and so is the transparency log aggregate (sealed heads,
co-signatures, anchors).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from adapters.store.tree_table import TreeTable
from adapters.store.view_table import View, ViewTable
from domain.completions import Completion
from domain.events import FlopAggregate, decode_event
from domain.job import Job
from domain.log import Log
from domain.models import RegisteredModel
from domain.node import Node
from domain.ports import EventStore
from domain.records import Record
from domain.services.queries import get_aggregate
from domain.validators import Validator
from proofs.merkle_incremental import IncrementalMerkleTree

CATCH_UP_BATCH = 1000
TRACKED: dict[str, type[FlopAggregate]] = {
    Node.STREAM_TYPE: Node,
    Job.STREAM_TYPE: Job,
    Validator.STREAM_TYPE: Validator,
    RegisteredModel.STREAM_TYPE: RegisteredModel,
    Completion.STREAM_TYPE: Completion,  # issue 18
}

# The fields each kind of view can be listed by, and those counted (for metrics).
FILTER_FIELDS: dict[str, tuple[str, ...]] = {
    Node.STREAM_TYPE: ("region", "state", "gpu_class"),
    Job.STREAM_TYPE: ("state", "region", "consumer", "node_id"),
    Validator.STREAM_TYPE: (),
    RegisteredModel.STREAM_TYPE: ("architecture", "dtype"),
    Completion.STREAM_TYPE: ("state", "node_id", "consumer", "model_id"),
}
COUNT_FIELDS: dict[str, tuple[str, ...]] = {Job.STREAM_TYPE: ("state", "workload.kind")}


class ReadModel:
    """Views of every node, job and validator in order of creation, and the log's tree."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.position = 0
        self.tree = IncrementalMerkleTree()
        self.nodes = TreeTable()
        self.log: Log | None = None
        self._views = ViewTable(FILTER_FIELDS, COUNT_FIELDS)
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
                    self.tree.append_leaf_hash(record.hash)
                    self.position = record.position
                    if record.stream_type in TRACKED:
                        dirty[record.stream_id] = record.stream_type
                    elif record.stream_type == Log.STREAM_TYPE:
                        self._apply_log(record)
                # On the loop, in order: a cancelled worker thread could append out of order.
                self.nodes.extend([r.hash for r in batch])
                if len(batch) < CATCH_UP_BATCH:
                    break
            for stream_id, stream_type in dirty.items():
                aggregate = await get_aggregate(self.store, TRACKED[stream_type], stream_id)
                if aggregate is not None:
                    self._views.put(stream_type, stream_id, aggregate.view())  # type: ignore[attr-defined]
            return self.position

    async def list(
        self, stream_type: str, filters: Mapping[str, str | None], *, offset: int, limit: int
    ) -> tuple[list[View], int]:
        """One page of the views whose fields equal every non-None filter, and how many match
        in all."""
        await self.catch_up()
        return self._views.page(stream_type, filters, offset=offset, limit=limit)

    def close(self) -> None:
        self._views.close()
        self.nodes.close()

    def _apply_log(self, record: Record) -> None:
        log = decode_event(record).mutate(self.log)
        if not isinstance(log, Log):
            raise AssertionError(f"record {record.position} did not rebuild the log aggregate")
        self.log = log

    def count_by(self, stream_type: str, field: str) -> dict[str, int]:
        """How many views have each value of ``field`` (for metrics), as of the last catch-up."""
        return self._views.count_by(stream_type, field)
