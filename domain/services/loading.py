"""Loading an aggregate from the store at a cost bounded by what a command needs.

An account is restored from its latest snapshot (``domain.snapshots``) and the records after
it; every other aggregate has a short stream (a job, a node, a validator) and is replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from domain.events import FlopAggregate, decode_event, rebuild
from domain.ledger import Account
from domain.ports import EventStore
from domain.records import Snapshot
from domain.snapshots import (
    ACCOUNT_SNAPSHOT_EVERY_EVENTS,
    compute_snapshot_id,
    decode_account_state,
    encode_account_state,
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
    if cls is Account:
        snapshot = await store.get_snapshot(compute_snapshot_id(aggregate_id))
        if snapshot is not None:
            restored = _restore_account(aggregate_id, snapshot)
            if restored is not None:
                tail = await store.read_stream(aggregate_id, snapshot.version + 1)
                account: FlopAggregate | None = restored
                for record in tail:
                    account = decode_event(record).mutate(account)
                if not isinstance(account, cls):
                    raise TypeError(f"the snapshot of {aggregate_id} did not restore a {cls}")
                return Loaded(account, Account.STREAM_TYPE, snapshot.version)
    records = await store.read_stream(aggregate_id)
    stream_type = records[0].stream_type if records else None
    if stream_type is not None and stream_type != cls.STREAM_TYPE:
        return Loaded(None, stream_type, 0)
    return Loaded(rebuild(records, cls), stream_type, 0)


def is_snapshot_due(aggregate: FlopAggregate, snapshot_version: int) -> bool:
    """Whether ``aggregate`` (exact at its version) should be snapshotted now."""
    return (
        isinstance(aggregate, Account)
        and aggregate.version - snapshot_version >= ACCOUNT_SNAPSHOT_EVERY_EVENTS
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


def _restore_account(account_id: str, snapshot: Snapshot) -> Account | None:
    try:
        account = decode_account_state(account_id, snapshot.state)
    except msgspec.MsgspecError:
        return None  # unreadable (e.g. written by a newer release): replay the stream instead
    return account if account.version == snapshot.version else None
