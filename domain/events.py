"""Base classes for aggregates and events with string ids, and their canonical encoding.

Built on eventsourcing's ``BaseAggregate`` (its ``Aggregate`` insists on UUIDs; our ids are
base58 keys and account names). Events are explicit classes with an ``apply`` method. Time is
always passed in: every event gets ``timestamp`` from the command's ``now_ns``; nothing here
reads a clock. Event payloads are encoded canonically (msgspec, sorted keys) so that hashes
are stable across stores and versions.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import msgspec
from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    MetaDomainEvent,
)
from eventsourcing.utils import get_topic

from domain.records import NewEvent, Record

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "originator_topic", "timestamp"}
)
_CANONICAL = msgspec.json.Encoder(order="sorted")

# (stream type, event type) -> event class; filled by FlopAggregate.__init_subclass__.
_EVENT_CLASSES: dict[tuple[str, str], type[FlopEvent]] = {}

A = TypeVar("A", bound="FlopAggregate")


def ns_to_datetime(now_ns: int) -> datetime:
    """UTC datetime with microsecond precision (what eventsourcing keeps)."""
    return EPOCH + timedelta(microseconds=now_ns // 1000)


def datetime_to_ns(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


class FlopEvent(CanMutateAggregate[str], metaclass=MetaDomainEvent):
    """An event that changes an aggregate with a string id."""

    originator_id: str
    originator_version: int
    timestamp: datetime


class FlopCreated(FlopEvent, CanInitAggregate[str]):
    """The first event of an aggregate."""

    originator_topic: str


class FlopAggregate(BaseAggregate[str]):
    """Aggregate with a string id; subclasses set STREAM_TYPE and nest their events."""

    STREAM_TYPE: ClassVar[str] = ""

    class Event(FlopEvent):
        """Base of this aggregate's events (eventsourcing looks it up by this name)."""

    class Created(Event, FlopCreated):
        """Base of this aggregate's creation events."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.STREAM_TYPE:
            return
        for value in vars(cls).values():
            if (
                isinstance(value, type)
                and issubclass(value, FlopEvent)
                and value.__name__
                not in (
                    "Event",
                    "Created",
                )
            ):
                _EVENT_CLASSES[(cls.STREAM_TYPE, value.__name__)] = value

    def _trigger(self, event_class: type[FlopEvent], now_ns: int, **fields: Any) -> None:
        """Trigger an event stamped with the command's time (never the clock)."""
        self.trigger_event(event_class, timestamp=ns_to_datetime(now_ns), **fields)

    def collect_new_events(self) -> list[FlopEvent]:
        return list(self.collect_events())  # type: ignore[arg-type]


def encode_event(event: FlopEvent) -> NewEvent:
    """The stored form of an event: its class name and canonical payload."""
    payload = {
        f.name: _stored_value(getattr(event, f.name))
        for f in fields(event)  # type: ignore[arg-type]
        if f.name not in _ENVELOPE_FIELDS
    }
    payload["at_us"] = datetime_to_ns(event.timestamp) // 1000
    return NewEvent(event_type=type(event).__name__, data=_CANONICAL.encode(payload))


def _stored_value(value: Any) -> Any:
    """A Struct that names ``LATE_FIELDS`` (``domain.policy.LedgerPolicy``) without those
    of them at their default: records written before a field existed stay what re-running
    their command writes now. Anything else as it is."""
    late: frozenset[str] | None = getattr(type(value), "LATE_FIELDS", None)
    if late is None or not isinstance(value, msgspec.Struct):
        return value
    stored: dict[str, Any] = msgspec.to_builtins(value)
    for field in msgspec.structs.fields(value):
        if field.name in late and getattr(value, field.name) == field.default:
            stored.pop(field.encode_name)
    return stored


def decode_event(record: Record, payload: dict[str, Any] | None = None) -> FlopEvent:
    """Rebuild the event of a stored record (the inverse of encode_event). ``payload``: the
    record's data already parsed as JSON, when the caller has it (it is changed here)."""
    try:
        cls = _EVENT_CLASSES[(record.stream_type, record.event_type)]
    except KeyError as exc:
        raise ValueError(
            f"unknown event {record.stream_type}.{record.event_type} at {record.position}"
        ) from exc
    if payload is None:
        payload = msgspec.json.decode(record.data)
    at_us = payload.pop("at_us")
    payload["originator_id"] = record.stream_id
    payload["originator_version"] = record.version
    payload["timestamp"] = ns_to_datetime(at_us * 1000)
    if issubclass(cls, FlopCreated):
        payload["originator_topic"] = get_topic(_aggregate_class_of(cls))
    return msgspec.convert(payload, type=cls, strict=False)


def rebuild(records: list[Record], aggregate_class: type[A]) -> A | None:
    """Replay an aggregate from its stream's records; None when the stream is empty."""
    aggregate: A | None = None
    for record in records:
        event = decode_event(record)
        aggregate = event.mutate(aggregate)
    if aggregate is not None and not isinstance(aggregate, aggregate_class):
        raise TypeError(f"stream holds a {type(aggregate).__name__}, not {aggregate_class}")
    return aggregate


def _aggregate_class_of(event_class: type[FlopEvent]) -> type[FlopAggregate]:
    owner_name = event_class.__qualname__.rsplit(".", 1)[0]
    module = __import__(event_class.__module__, fromlist=[owner_name])
    owner = getattr(module, owner_name)
    if not (isinstance(owner, type) and issubclass(owner, FlopAggregate)):
        raise TypeError(f"{event_class.__qualname__} is not nested in an aggregate")
    return owner
