"""The NATS mirror as an audit source: a verified replay of FLOP_EVENTS from sequence 1.

``adapters.nats.consumer.replay`` checks, message by message, that stream sequence N is the
record at position N and that the chain holds; the audit's replay checks everything else. The
mirror has no read tables, so the read-model check is skipped for this source.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.aio.client import Client

from adapters.nats.codec import EVENT_STREAM
from adapters.nats.connection import close_nats, connect_nats, nats_errors
from adapters.nats.consumer import replay
from adapters.nats.errors import ChainBroken
from domain.errors import OperatingError
from domain.ports import EventStore
from domain.records import Record
from validator.audit_sources import NATS_BATCH, SourceUnreadable


class NatsSource:
    """FLOP_EVENTS on a NATS server, replayed from sequence 1."""

    def __init__(self, nc: Client, name: str) -> None:
        self.nc = nc
        self.name = name
        self.store: EventStore | None = None

    async def head_position(self) -> int:
        try:
            async with nats_errors(self.nc, f"stream info {EVENT_STREAM}"):
                info = await self.nc.jetstream().stream_info(EVENT_STREAM)
        except OperatingError as exc:
            raise SourceUnreadable(str(exc)) from exc
        return int(info.state.last_seq)

    async def batches(self, until: int | None) -> AsyncIterator[list[Record]]:
        last = until if until is not None else await self.head_position()
        if last < 1:
            return
        batch: list[Record] = []
        try:
            async for record in replay(self.nc, until=last):
                batch.append(record)
                if len(batch) >= NATS_BATCH:
                    yield batch
                    batch = []
        except ChainBroken:
            if batch:
                yield batch
            raise
        except OperatingError as exc:
            raise SourceUnreadable(str(exc)) from exc
        if batch:
            yield batch

    async def close(self) -> None:
        await close_nats(self.nc)


async def open_nats_source(url: str) -> NatsSource:
    try:
        nc = await connect_nats(url, name="flopledger-audit", allow_reconnect=False)
    except OperatingError as exc:
        raise SourceUnreadable(str(exc)) from exc
    return NatsSource(nc, url)
