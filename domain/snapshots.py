"""Aggregate snapshots: an account's whole state at a stream version, so that loading it reads
the snapshot and the records after it instead of the whole stream.

Hot accounts (the treasury, the boundary account, a busy consumer or provider) gain records
with every job, so replaying their streams made each command cost more as history grew. The
unit of work writes a snapshot every ``ACCOUNT_SNAPSHOT_EVERY_EVENTS`` events (as
``EventStore.save_snapshot`` under ``compute_snapshot_id``, apart from the sealer's balance
snapshots, which are keyed by the account id itself). A snapshot is a cache of what the events
say, never a source of truth: the audit replays the events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeVar

import msgspec

from domain.beacon import Beacon, Epoch, Waiting
from domain.events import FlopAggregate, datetime_to_ns, ns_to_datetime
from domain.ledger import Account, Hold

# An account is re-snapshotted once this many events were appended since its last snapshot:
# a load then reads at most this many records after the snapshot.
ACCOUNT_SNAPSHOT_EVERY_EVENTS = 64
SNAPSHOT_ID_PREFIX = "aggregate:"

AggregateT = TypeVar("AggregateT", bound=FlopAggregate)


class AccountState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every field of an Account (``domain.ledger``) and its eventsourcing envelope."""

    version: int
    created_on_ns: int
    modified_on_ns: int
    allows_negative: bool
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    holds: dict[str, Hold]
    closed_holds: list[str]


class BeaconState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every field of the Beacon (``domain.beacon``) and its eventsourcing envelope: it gains
    records with every draw, so it loads like a hot account."""

    version: int
    created_on_ns: int
    modified_on_ns: int
    last_epoch: int
    last_value: bytes
    open_epoch: Epoch | None
    queued: list[Waiting]


def compute_snapshot_id(stream_id: str) -> str:
    """Where an aggregate's snapshot is kept (never an account id: those are balance rows)."""
    return SNAPSHOT_ID_PREFIX + stream_id


def encode_account_state(account: Account) -> bytes:
    """The account as it stands (at ``account.version``), canonically encoded."""
    return msgspec.json.encode(
        AccountState(
            version=account.version,
            created_on_ns=datetime_to_ns(_as_datetime(account.created_on)),
            modified_on_ns=datetime_to_ns(_as_datetime(account.modified_on)),
            allows_negative=account.allows_negative,
            debits_posted=account.debits_posted,
            credits_posted=account.credits_posted,
            debits_pending=account.debits_pending,
            credits_pending=account.credits_pending,
            holds=dict(account.holds),
            closed_holds=sorted(account.closed_holds),
        ),
        order="sorted",
    )


class SnapshotEnvelope(Protocol):
    """What every snapshot state carries besides the aggregate's own fields."""

    @property
    def version(self) -> int: ...
    @property
    def created_on_ns(self) -> int: ...
    @property
    def modified_on_ns(self) -> int: ...


def restore_aggregate(
    cls: type[AggregateT], aggregate_id: str, decoded: SnapshotEnvelope, **fields: object
) -> AggregateT:
    """An aggregate of ``cls`` at the snapshot's version with ``fields`` as its state, ready
    to take the events after it (eventsourcing's own snapshots restore an aggregate the same
    way: its __dict__ is the state)."""
    aggregate = cls.__new__(cls)
    aggregate.__dict__.update(
        _id=aggregate_id,
        _version=decoded.version,
        _created_on=ns_to_datetime(decoded.created_on_ns),
        _modified_on=ns_to_datetime(decoded.modified_on_ns),
        _pending_events=[],
        **fields,
    )
    return aggregate


def decode_account_state(account_id: str, state: bytes) -> Account:
    """The account a snapshot holds, ready to take the events after it.

    Raises msgspec.ValidationError / DecodeError when the bytes are not an account snapshot.
    """
    decoded = msgspec.json.decode(state, type=AccountState)
    return restore_aggregate(
        Account,
        account_id,
        decoded,
        allows_negative=decoded.allows_negative,
        debits_posted=decoded.debits_posted,
        credits_posted=decoded.credits_posted,
        debits_pending=decoded.debits_pending,
        credits_pending=decoded.credits_pending,
        holds=dict(decoded.holds),
        closed_holds=set(decoded.closed_holds),
    )


def _as_datetime(moment: object) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"an aggregate time is a datetime, got {type(moment).__name__}")
    return moment


def encode_beacon_state(beacon: Beacon) -> bytes:
    """The beacon as it stands (at ``beacon.version``), canonically encoded."""
    return msgspec.json.encode(
        BeaconState(
            version=beacon.version,
            created_on_ns=datetime_to_ns(_as_datetime(beacon.created_on)),
            modified_on_ns=datetime_to_ns(_as_datetime(beacon.modified_on)),
            last_epoch=beacon.last_epoch,
            last_value=beacon.last_value,
            open_epoch=beacon.open_epoch,
            queued=list(beacon.queued),
        ),
        order="sorted",
    )


def decode_beacon_state(beacon_id: str, state: bytes) -> Beacon:
    """The beacon a snapshot holds (raises msgspec errors on other bytes)."""
    decoded = msgspec.json.decode(state, type=BeaconState)
    return restore_aggregate(
        Beacon,
        beacon_id,
        decoded,
        last_epoch=decoded.last_epoch,
        last_value=decoded.last_value,
        open_epoch=decoded.open_epoch,
        queued=list(decoded.queued),
    )
