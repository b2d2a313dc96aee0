"""The global log: a paged read from a position and a live Server-Sent Events feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter, QueryParameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from adapters.ledger_api.wire import (
    EVENTS_LIMIT_DEFAULT,
    EVENTS_LIMIT_MAX,
    POSITION_MAX,
    EventPage,
    EventView,
)
from api.controllers.common import LIST_ERRORS
from api.state import Deps
from domain.records import Record

STREAM_EVENTS_MAX = 1_000_000
SSE_EVENT_NAME = "record"
SSE_RETRY_MS = 2_000

FromPosition = Annotated[
    int, QueryParameter(name="from", ge=1, le=POSITION_MAX, description="first position to read")
]
EventsLimit = Annotated[int, Parameter(ge=1, le=EVENTS_LIMIT_MAX, description="records per page")]
StreamLimit = Annotated[
    int | None,
    Parameter(ge=1, le=STREAM_EVENTS_MAX, required=False, description="close after this many"),
]


class EventController(Controller):
    """``/v1/events``."""

    path = "/v1/events"
    tags = ("events",)

    @get("/", operation_id="readEvents", responses=LIST_ERRORS)
    async def read_events(
        self, deps: Deps, from_position: FromPosition = 1, limit: EventsLimit = EVENTS_LIMIT_DEFAULT
    ) -> EventPage:
        """Records from position ``from`` on, at most ``limit``."""
        records = await deps.store.read_all(from_position, limit)
        head = await deps.store.head()
        next_position = records[-1].position + 1 if records else from_position
        return EventPage(
            items=[to_event_view(r) for r in records],
            next_position=next_position,
            head_position=head.position,
        )

    @get(
        "/stream",
        operation_id="streamEvents",
        responses=LIST_ERRORS,
        media_type="text/event-stream",
        description=(
            "Server-Sent Events: one ``record`` event per log record from ``from`` on (or from "
            "Last-Event-ID + 1), waiting for new commits; ``id`` is the position, ``data`` an "
            "EventView as JSON. Closes after ``limit`` records when given. Streams are capped "
            "per process and per client address: past a cap, 503 ``too_many_streams`` with "
            "Retry-After."
        ),
    )
    async def stream_events(
        self,
        deps: Deps,
        request: Request[Any, Any, Any],
        from_position: FromPosition = 1,
        limit: StreamLimit = None,
    ) -> ServerSentEvent:
        """Live feed of the log."""
        start = from_position
        last_id = request.headers.get("last-event-id", "")
        if last_id.isdigit() and 0 <= int(last_id) < POSITION_MAX:
            start = int(last_id) + 1
        client = request.client.host if request.client is not None else "unknown"
        deps.streams.acquire(client)  # 503 too_many_streams past a cap, before subscribing
        return ServerSentEvent(
            _feed(deps, client, start, limit or STREAM_EVENTS_MAX), retry_duration=SSE_RETRY_MS
        )


def to_event_view(record: Record) -> EventView:
    """A record as the API shows it (payload and metadata decoded, hashes hex)."""
    metadata = msgspec.json.decode(record.metadata) if record.metadata else None
    return EventView(
        position=record.position,
        stream_id=record.stream_id,
        stream_type=record.stream_type,
        version=record.version,
        event_type=record.event_type,
        data=msgspec.json.decode(record.data),
        command_id=record.command_id,
        metadata=metadata,
        prev_hash=record.prev_hash.hex(),
        hash=record.hash.hex(),
    )


async def _feed(
    deps: Deps, client: str, start: int, limit: int
) -> AsyncIterator[ServerSentEventMessage]:
    """The stream's records; gives back the client's slot (``api.limits``) when it ends."""
    sent = 0
    subscription = deps.store.subscribe(start)
    try:
        async for record in subscription:
            yield ServerSentEventMessage(
                data=msgspec.json.encode(to_event_view(record)).decode(),
                event=SSE_EVENT_NAME,
                id=str(record.position),
            )
            sent += 1
            if sent >= limit:
                return
    finally:
        deps.streams.release(client)
        aclose = getattr(subscription, "aclose", None)
        if aclose is not None:
            await aclose()
