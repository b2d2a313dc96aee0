"""Sealing one command into records: the version check and hash chaining every store shares.

Not an adapter: the SQL stores call it with the head and stream versions they read under
their write lock, so that the same events get the same positions, versions and hashes
(``domain.records.compute_record_hash``) whichever store holds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from domain.errors import VersionConflict
from domain.records import (
    LOG_HEAD_GUARD,
    AppendOutcome,
    Head,
    Record,
    RecordBody,
    StreamAppend,
    make_record,
)

_OUTCOME_ENCODER = msgspec.json.Encoder(order="sorted")
_OUTCOME_DECODER = msgspec.json.Decoder(AppendOutcome)


def check_expected_versions(
    items: Sequence[StreamAppend], current: Mapping[str, int], head: Head
) -> None:
    """Raise VersionConflict for the first stream whose expected version is stale (for the
    log head guard, ``LOG_HEAD_GUARD``: the head position)."""
    for item in items:
        actual = (
            head.position if item.stream_id == LOG_HEAD_GUARD else current.get(item.stream_id, 0)
        )
        if item.expected_version is not None and item.expected_version != actual:
            raise VersionConflict(item.stream_id, item.expected_version, actual)


def chain_command(
    items: Sequence[StreamAppend],
    *,
    command_id: str,
    metadata: bytes,
    head: Head,
    current: Mapping[str, int],
) -> tuple[list[Record], AppendOutcome]:
    """Records for one command after ``head``, and its outcome; VersionConflict if stale.

    ``current`` maps each stream of ``items`` to its version now (absent means 0).
    """
    check_expected_versions(items, current, head)
    records: list[Record] = []
    prev_hash = head.hash
    position = head.position
    versions: dict[str, int] = {}
    for item in items:
        version = current.get(item.stream_id, 0)
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
            records.append(record)
            prev_hash = record.hash
        if item.events:  # an item without events only guards a stream the command read
            versions[item.stream_id] = version
    outcome = AppendOutcome(
        command_id=command_id,
        first_position=records[0].position,
        last_position=records[-1].position,
        head_hash=prev_hash,
        stream_versions=versions,
    )
    return records, outcome


def encode_outcome(outcome: AppendOutcome) -> bytes:
    """The stored form of a command's outcome (for idempotent repeats)."""
    return _OUTCOME_ENCODER.encode(outcome)


def decode_outcome(raw: bytes) -> AppendOutcome:
    """Inverse of ``encode_outcome``."""
    return _OUTCOME_DECODER.decode(raw)
