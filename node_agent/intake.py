"""The agent's job intake: offers and polls become claim candidates; claims while a slot is free.

Two sources: offers on NATS (``flop.offer.<region>``; the own region at once, other regions
after one region stagger per tier, as the ledger's claim rule) and a poll of the API's open
jobs (offers are at-most-once and may not be published at all). A candidate is claimed only
while a device slot is free, so the agent never holds more jobs than it can run; a claimed
job goes to the ``Runner`` with the slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import structlog

from adapters.ledger_api.client import ApiProblem
from adapters.ledger_api.wire import JobView
from domain.commands import ClaimJob
from domain.errors import RejectionCode
from domain.job_states import CLAIMED, SUBMITTED
from domain.policy import gpu_class_rank
from domain.scheduling import compute_region_tier
from domain.workloads import PARAM_TYPES
from node_agent.config import (
    CANDIDATES_MAX,
    CLAIM_RETRY_S,
    IGNORED_JOBS_MAX,
    POLL_JOBS_LIMIT,
    AgentConfig,
)
from node_agent.ledger_link import Ledger, LedgerUnavailable
from node_agent.runner import Runner
from node_agent.sinks import ArtifactsUnavailable

_log = structlog.get_logger("flopledger.agent")

CLAIM_REFUSED_FOR_GOOD = frozenset(
    {
        RejectionCode.JOB_DEADLINE_PASSED,
        RejectionCode.GPU_CLASS_TOO_LOW,
        RejectionCode.PRICE_ABOVE_MAXIMUM,
        RejectionCode.NODE_EXCLUDED_FROM_JOB,
        # a finished job never returns to the market (its consumer cancelled it, rules v5)
        RejectionCode.JOB_CANCELLED,
        RejectionCode.JOB_REFUNDED,
        RejectionCode.JOB_SETTLED,
    }
)
SECOND_NS = 1_000_000_000
WAKE_WAIT_MIN_S = 0.01


class Offer(Protocol):
    """What the agent reads of an offer (``adapters.nats.signals.JobOffer``)."""

    @property
    def job_id(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def offered_at_ns(self) -> int: ...


class OfferSource(Protocol):
    def offers(self, region: str | None) -> AsyncIterator[Offer]: ...


class Intake:
    """Claim candidates (job id -> earliest claim attempt) and the loops that fill and claim."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        node_id: str,
        gpu_class: str,
        ledger: Ledger,
        runner: Runner,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.gpu_class = gpu_class
        self.ledger = ledger
        self.runner = runner
        self.clock_ns = clock_ns
        self._candidates: dict[str, int] = {}
        self._ignored: OrderedDict[str, None] = OrderedDict()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Let the claim loop look again now (a new candidate, or shutdown)."""
        self._wake.set()

    async def poll(self) -> None:
        """Consider the open jobs the API lists."""
        for job in await self.ledger.list_jobs(state=SUBMITTED, limit=POLL_JOBS_LIMIT):
            self._consider(job.id, job.region, self.clock_ns(), job)

    async def offer_loop(self, stop: asyncio.Event, source: OfferSource) -> None:
        """Consider every offer heard, until ``stop``."""
        while not stop.is_set():
            try:
                async for offer in source.offers(None):
                    self._consider(offer.job_id, offer.region, offer.offered_at_ns, None)
            except ArtifactsUnavailable as exc:
                _log.warning("offers_unavailable", error=str(exc))
                await asyncio.sleep(self.config.poll_interval_s)

    async def claim_loop(self, stop: asyncio.Event) -> None:
        """Take a free slot, claim the next ready candidate, hand the job to the runner."""
        while not stop.is_set():
            device = await self.runner.free.get()
            handed_over = False
            try:
                job_id = await self._next_candidate(stop)
                if job_id is not None and await self._claim(job_id):
                    self.runner.start(job_id, device)
                    handed_over = True
            finally:
                if not handed_over:
                    self.runner.free.put_nowait(device)

    def _consider(self, job_id: str, region: str, offered_at_ns: int, job: JobView | None) -> None:
        """Remember a job as a claim candidate, from when our region tier may claim it."""
        if job_id in self._candidates or self.runner.is_running(job_id) or job_id in self._ignored:
            return
        if self.runner.is_handed_back(job_id):
            return
        if job is not None and not self._is_for_us(job):
            self._ignore(job_id)
            return
        if len(self._candidates) >= CANDIDATES_MAX:
            return
        tier = compute_region_tier(region, self.config.region)
        self._candidates[job_id] = offered_at_ns + tier * self.config.region_stagger_ns
        self._wake.set()

    def _is_for_us(self, job: JobView) -> bool:
        workload = job.workload
        return (
            workload.kind in PARAM_TYPES
            and gpu_class_rank(workload.gpu_class_min) <= gpu_class_rank(self.gpu_class)
            and job.max_price >= self.config.price
            and job.deadline_ns > self.clock_ns()
        )

    def _ignore(self, job_id: str) -> None:
        self._candidates.pop(job_id, None)
        self._ignored[job_id] = None
        while len(self._ignored) > IGNORED_JOBS_MAX:
            self._ignored.popitem(last=False)

    async def _next_candidate(self, stop: asyncio.Event) -> str | None:
        while not stop.is_set():
            now = self.clock_ns()
            ready = [j for j, at in self._candidates.items() if at <= now]
            if ready:
                return min(ready, key=self._candidates.__getitem__)
            wait_s = self.config.poll_interval_s
            if self._candidates:
                wait_s = min(wait_s, (min(self._candidates.values()) - now) / SECOND_NS)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait_s, WAKE_WAIT_MIN_S))
        return None

    async def _claim(self, job_id: str) -> bool:
        try:
            await self.ledger.send(ClaimJob(job_id=job_id, node_id=self.node_id))
        except LedgerUnavailable as exc:
            _log.warning("claim_unavailable", job_id=job_id, error=str(exc))
            self._retry_later(job_id)
            return False
        except ApiProblem as problem:
            return await self._on_claim_refused(job_id, problem)
        self._candidates.pop(job_id, None)
        _log.info("job_claimed", job_id=job_id, node_id=self.node_id)
        return True

    async def _on_claim_refused(self, job_id: str, problem: ApiProblem) -> bool:
        if problem.code == RejectionCode.JOB_ALREADY_CLAIMED:
            job = await self.ledger.get_job(job_id)
            if job.node_id == self.node_id and job.state == CLAIMED:
                self._candidates.pop(job_id, None)
                return True  # our earlier claim went through; its answer was lost
            # Another node holds it; forget it (not for good: a rejected result or a missed
            # result window sends it back to the market, where the next poll finds it).
            self._candidates.pop(job_id, None)
        elif problem.code in CLAIM_REFUSED_FOR_GOOD or problem.status == 404:
            self._ignore(job_id)
        else:
            self._retry_later(job_id)
        _log.info("claim_refused", job_id=job_id, code=problem.code)
        return False

    def _retry_later(self, job_id: str) -> None:
        self._candidates[job_id] = self.clock_ns() + int(CLAIM_RETRY_S * SECOND_NS)
