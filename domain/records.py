"""Records of the global log and their hash chain.

Every adapter of the event store builds records with ``compute_record_hash`` so that the
same events give the same hashes in every store: ``hash = sha256(prev_hash || canonical
record)``, where the canonical record is the sorted-key JSON of every field but the hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from domain.errors import CorruptRecord

GENESIS_HASH = bytes(32)

_CANONICAL = msgspec.json.Encoder(order="sorted")


class NewEvent(msgspec.Struct, frozen=True):
    """An event not yet stored: its type name and its canonical payload."""

    event_type: str
    data: bytes


class StreamAppend(msgspec.Struct, frozen=True):
    """Events for one stream, with the version the stream must be at (None: don't check)."""

    stream_id: str
    stream_type: str
    expected_version: int | None
    events: tuple[NewEvent, ...]


class RecordBody(msgspec.Struct, frozen=True):
    """The hashed part of a record."""

    position: int
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    data: bytes
    command_id: str
    metadata: bytes


class Record(msgspec.Struct, frozen=True):
    """One stored event at a global position, chained to the record before it."""

    position: int
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    data: bytes
    command_id: str
    metadata: bytes
    prev_hash: bytes
    hash: bytes

    def body(self) -> RecordBody:
        return RecordBody(
            position=self.position,
            stream_id=self.stream_id,
            stream_type=self.stream_type,
            version=self.version,
            event_type=self.event_type,
            data=self.data,
            command_id=self.command_id,
            metadata=self.metadata,
        )


class Head(msgspec.Struct, frozen=True):
    """The last position of the log and its hash (position 0 and GENESIS_HASH when empty)."""

    position: int
    hash: bytes


class AppendOutcome(msgspec.Struct, frozen=True):
    """What one committed command wrote: its positions and each stream's new version."""

    command_id: str
    first_position: int
    last_position: int
    head_hash: bytes
    stream_versions: dict[str, int]


class Snapshot(msgspec.Struct, frozen=True):
    """An aggregate's state at a version, so that long histories need not be replayed."""

    stream_id: str
    version: int
    state: bytes


def compute_record_hash(prev_hash: bytes, body: RecordBody) -> bytes:
    """sha256(prev_hash || canonical body)."""
    return hashlib.sha256(prev_hash + _CANONICAL.encode(body)).digest()


def make_record(prev_hash: bytes, body: RecordBody) -> Record:
    """Seal ``body`` after ``prev_hash``."""
    return Record(
        position=body.position,
        stream_id=body.stream_id,
        stream_type=body.stream_type,
        version=body.version,
        event_type=body.event_type,
        data=body.data,
        command_id=body.command_id,
        metadata=body.metadata,
        prev_hash=prev_hash,
        hash=compute_record_hash(prev_hash, body),
    )


def verify_chain(records: Iterable[Record], prev: Head | None = None) -> Head:
    """Check positions are gapless and every hash chains; return the last head.

    Raises CorruptRecord naming the first position that does not fit.
    """
    head = prev or Head(position=0, hash=GENESIS_HASH)
    for record in records:
        if record.position != head.position + 1:
            raise CorruptRecord(record.position, f"expected position {head.position + 1}")
        if record.prev_hash != head.hash:
            raise CorruptRecord(record.position, "prev_hash does not match the record before")
        if compute_record_hash(record.prev_hash, record.body()) != record.hash:
            raise CorruptRecord(record.position, "hash does not match the record's content")
        head = Head(position=record.position, hash=record.hash)
    return head


LOG_HEAD_GUARD = "@log-head"
"""The stream id of a guard on the log's head itself: an append item with this id, no events and
``expected_version`` = the head position a command read (``UnitOfWork.head``) commits only if
no other command committed since (``adapters.store.chaining.chain_command``)."""


def validate_appends(appends: Iterable[StreamAppend]) -> list[StreamAppend]:
    """Reject malformed appends before any adapter touches storage (a bug, not a rejection)."""
    result = list(appends)
    if not result:
        raise ValueError("append needs at least one stream")
    seen: set[str] = set()
    for item in result:
        if item.stream_id in seen:
            raise ValueError(f"stream {item.stream_id!r} appears twice in one append")
        seen.add(item.stream_id)
        if not item.events and item.expected_version is None:
            raise ValueError(f"stream {item.stream_id!r} has no events and no version to check")
        if item.expected_version is not None and item.expected_version < 0:
            raise ValueError("expected_version must be >= 0 or None")
    if not any(item.events for item in result):
        raise ValueError("append needs at least one event (streams without any only guard reads)")
    return result
