"""Loading an aggregate from the store at a cost bounded by what a command needs.

An account, a node or the beacon is restored from its latest snapshot (``domain.snapshots``,
``domain.node_snapshots``) and the records after it; every other aggregate has a short stream
(a job, a validator) and is replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from domain.beacon import Beacon
from domain.events import FlopAggregate, decode_event, rebuild
from domain.ledger import Account
from domain.node import Node
from domain.node_snapshots import NODE_SNAPSHOT_EVERY_EVENTS, decode_node_state, encode_node_state
from domain.ports import EventStore
from domain.records import Snapshot
from domain.snapshots import (
    ACCOUNT_SNAPSHOT_EVERY_EVENTS,
    compute_snapshot_id,
    decode_account_state,
    decode_beacon_state,
    encode_account_state,
    encode_beacon_state,
)

A = TypeVar("A", bound=FlopAggregate)


@dataclass(frozen=True)
class Loaded(Generic[A]):
    """An aggregate as loaded (None: no such stream), its first record's stream type (None
    when no record was read), and the version of the snapshot it started from (0: none)."""

    aggregate: A | None
    stream_type: str | None
    snapshot_version: int


async def load_aggregate(store: EventStore, cls: type[A], aggregate_id: str) -> Loaded[A]:
    """The aggregate ``aggregate_id`` as the store holds it now."""
    if cls is Account or cls is Node or cls is Beacon:
        snapshot = await store.get_snapshot(compute_snapshot_id(aggregate_id))
        if snapshot is not None:
            restored = _restore(cls, aggregate_id, snapshot)
            if restored is not None:
                tail = await store.read_stream(aggregate_id, snapshot.version + 1)
                aggregate: FlopAggregate | None = restored
                for record in tail:
                    aggregate = decode_event(record).mutate(aggregate)
                if not isinstance(aggregate, cls):
                    raise TypeError(f"the snapshot of {aggregate_id} did not restore a {cls}")
                return Loaded(aggregate, cls.STREAM_TYPE, snapshot.version)
    records = await store.read_stream(aggregate_id)
    stream_type = records[0].stream_type if records else None
    if stream_type is not None and stream_type != cls.STREAM_TYPE:
        return Loaded(None, stream_type, 0)
    return Loaded(rebuild(records, cls), stream_type, 0)


def is_snapshot_due(aggregate: FlopAggregate, snapshot_version: int) -> bool:
    """Whether ``aggregate`` (exact at its version) should be snapshotted now: accounts, and
    nodes (their claims add records with every job, ``domain.node_snapshots``), and the
    beacon (every draw adds records to it)."""
    if isinstance(aggregate, Account | Beacon):
        return aggregate.version - snapshot_version >= ACCOUNT_SNAPSHOT_EVERY_EVENTS
    if isinstance(aggregate, Node):
        return aggregate.version - snapshot_version >= NODE_SNAPSHOT_EVERY_EVENTS
    return False


async def save_snapshot(store: EventStore, aggregate: Account | Node | Beacon) -> None:
    """Keep ``aggregate``'s state at its version (it must be exactly what the store holds)."""
    if isinstance(aggregate, Account):
        await save_account_snapshot(store, aggregate)
        return
    state = (
        encode_beacon_state(aggregate)
        if isinstance(aggregate, Beacon)
        else encode_node_state(aggregate)
    )
    await store.save_snapshot(
        Snapshot(
            stream_id=compute_snapshot_id(aggregate.id), version=aggregate.version, state=state
        )
    )


async def save_account_snapshot(store: EventStore, account: Account) -> None:
    """Keep ``account``'s state at its version (it must be exactly what the store holds)."""
    await store.save_snapshot(
        Snapshot(
            stream_id=compute_snapshot_id(account.id),
            version=account.version,
            state=encode_account_state(account),
        )
    )


def _restore(
    cls: type[FlopAggregate], aggregate_id: str, snapshot: Snapshot
) -> FlopAggregate | None:
    try:
        if cls is Node:
            restored: FlopAggregate = decode_node_state(aggregate_id, snapshot.state)
        elif cls is Beacon:
            restored = decode_beacon_state(aggregate_id, snapshot.state)
        else:
            restored = decode_account_state(aggregate_id, snapshot.state)
    except msgspec.MsgspecError:
        return None  # unreadable (e.g. written by a newer release): replay the stream instead
    return restored if restored.version == snapshot.version else None
