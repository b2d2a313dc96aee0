"""The offer publisher: follows the store's global log and announces open jobs on NATS.

For every ``JobSubmitted``, ``JobReassigned`` and ``ClaimLapsed`` record it loads the job
and, if it is still open (``submitted``), publishes a ``JobOffer`` on ``flop.offer.<region>``
(core NATS, at-most-once: an agent that misses an offer still finds the job by polling the
API). It starts at the head of the log when it starts: offers are nudges, not history.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from nats.aio.client import Client

from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.errors import NatsError
from adapters.nats.signals import JobOffer, publish_offer
from domain.job import SUBMITTED, Job
from domain.ports import EventStore
from domain.records import Record
from domain.services.queries import get_aggregate

OFFER_EVENT_TYPES = frozenset({"JobSubmitted", "JobReassigned", "ClaimLapsed"})
"""Records that put a job (back) on the market; ``ClaimLapsed``: a private job whose inputs
key never reached its node (issue 17)."""

_log = structlog.get_logger("flopledger.offers")


async def run_offer_publisher(store: EventStore, nats_url: str, stop: asyncio.Event) -> None:
    """Connect to NATS and publish job offers until ``stop`` is set."""
    nc = await connect_nats(nats_url, name="flopledger-offers")
    try:
        await OfferPublisher(store, nc).run(stop)
    finally:
        await close_nats(nc)


class OfferPublisher:
    """Publishes one offer per job opened (submitted or reassigned) after it started."""

    def __init__(
        self, store: EventStore, nc: Client, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.store = store
        self.nc = nc
        self.clock_ns = clock_ns
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the log from its current head until ``stop`` is set."""
        head = await self.store.head()
        follower = asyncio.create_task(self._follow(head.position + 1))
        try:
            await stop.wait()
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def _follow(self, from_position: int) -> None:
        async for record in self.store.subscribe(from_position):
            if record.event_type in OFFER_EVENT_TYPES:
                await self.offer(record)

    async def offer(self, record: Record) -> None:
        """Publish the offer for the job ``record`` opened, if the job is still open."""
        job = await get_aggregate(self.store, Job, record.stream_id)
        if job is None or job.state != SUBMITTED:
            return
        offer = JobOffer(
            job_id=job.id,
            region=job.region,
            workload_kind=job.workload.kind,
            max_price_base_units=job.max_price,
            redundancy=job.redundancy,
            deadline_ns=job.deadline_ns,
            offered_at_ns=self.clock_ns(),
        )
        try:
            await publish_offer(self.nc, offer)
        except NatsError as exc:
            _log.warning("offer_not_published", job_id=job.id, error=str(exc))
            return
        self.published += 1
        _log.info("offer_published", job_id=job.id, region=job.region, position=record.position)
