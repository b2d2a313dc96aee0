"""The node agent's loops: register, bond, attest, heartbeat, take offers, claim, execute.

``NodeAgent.run(stop)`` runs until ``stop`` is set, then shuts down in order under
``shutdown_deadline_s``: stop intake (offers, polling, claims), let jobs in hand finish and
deliver, flush spooled results, stop heartbeats. A job still running at the deadline is
cancelled: if its result is already spooled it is kept (the next start delivers it while the
window is open); otherwise the agent releases it (``job.release``) so it goes back to the
market at once instead of when its result window closes. A release that fails (API gone) is
logged, and the window's expiry returns the job to the market instead.

Job intake has two sources: offers on NATS (``flop.offer.<region>``; the own region at once,
other regions after one region stagger per tier, as the ledger's claim rule) and a poll of
the API's open jobs every ``poll_interval_s`` (offers are at-most-once and may not be
published at all). Claims are attempted only while a device slot is free, so the agent
never holds more jobs than it can run (``concurrency_per_device`` per device).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import msgspec
import structlog
import torch

from adapters.compute.attestation import answer_challenge
from adapters.compute.nvml import Inventory, compute_gpu_class, compute_gpu_specs
from adapters.compute.workloads import PARAM_TYPES
from adapters.ledger_api.client import ApiProblem
from adapters.ledger_api.wire import ChallengeView, JobView, NodeView
from domain.commands import (
    BondStake,
    ClaimJob,
    RegisterNode,
    ReleaseJob,
    RequestAttestationChallenge,
    SubmitAttestation,
)
from domain.errors import RejectionCode
from domain.job_states import CLAIMED, SUBMITTED
from domain.node import ACTIVE, DEREGISTERED, JAILED, REGISTERED
from domain.policy import gpu_class_rank
from domain.scheduling import compute_region_tier
from node_agent.config import (
    CANDIDATES_MAX,
    CLAIM_RETRY_S,
    IGNORED_JOBS_MAX,
    POLL_JOBS_LIMIT,
    AgentConfig,
)
from node_agent.ledger_link import Ledger, LedgerUnavailable
from node_agent.sinks import ArtifactSink, ArtifactsUnavailable
from node_agent.spool import ResultSpool
from node_agent.work import Worker
from proofs.identity import Identity

_log = structlog.get_logger("flopledger.agent")

CLAIM_REFUSED_FOR_GOOD = frozenset(
    {
        RejectionCode.JOB_DEADLINE_PASSED,
        RejectionCode.GPU_CLASS_TOO_LOW,
        RejectionCode.PRICE_ABOVE_MAXIMUM,
        RejectionCode.NODE_EXCLUDED_FROM_JOB,
    }
)
SECOND_NS = 1_000_000_000


class Offer(Protocol):
    """What the agent reads of an offer (``adapters.nats.signals.JobOffer``)."""

    @property
    def job_id(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def offered_at_ns(self) -> int: ...


class Signals(Protocol):
    """Live signals (NATS core): offers in, heartbeats out."""

    def offers(self, region: str | None) -> AsyncIterator[Offer]: ...
    async def heartbeat(self, node_id: str, region: str, gpus_total: int, busy: int) -> None: ...


class NodeAgent:
    """One node: its identity, the ledger, artifact store, devices and loops."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        identity: Identity,
        ledger: Ledger,
        artifacts: ArtifactSink,
        inventory: Inventory,
        devices: list[torch.device],
        signals: Signals | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.identity = identity
        self.ledger = ledger
        self.artifacts = artifacts
        self.inventory = inventory
        self.signals = signals
        self.clock_ns = clock_ns
        self.node_id = identity.id
        self.gpu_class = config.gpu_class or compute_gpu_class(inventory)
        self.spool = ResultSpool(config.state_dir / "spool")
        self.worker = Worker(
            identity=identity,
            ledger=ledger,
            artifacts=artifacts,
            spool=self.spool,
            clock_ns=clock_ns,
        )
        self.devices = devices
        self._free: asyncio.Queue[torch.device] = asyncio.Queue()
        for device in devices * config.concurrency_per_device:
            self._free.put_nowait(device)
        self._candidates: dict[str, int] = {}  # job id -> earliest claim attempt (ns)
        self._ignored: OrderedDict[str, None] = OrderedDict()
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._answered_nonces: set[str] = set()
        self._wake = asyncio.Event()
        self.completed: list[str] = []
        self.abandoned = 0
        self.released: list[str] = []

    @property
    def slots_total(self) -> int:
        return len(self.devices) * self.config.concurrency_per_device

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop``; then shut down in order under the deadline (module docstring)."""
        await self._retry_until(stop, self._ensure_registered)
        if stop.is_set():
            return
        intake_stop = asyncio.Event()
        intake = [
            asyncio.create_task(self._maintenance_loop(intake_stop), name="maintenance"),
            asyncio.create_task(self._claim_loop(intake_stop), name="claims"),
        ]
        if self.signals is not None:
            intake.append(asyncio.create_task(self._offer_loop(intake_stop), name="offers"))
        heartbeat = None
        if self.signals is not None:
            heartbeat = asyncio.create_task(self._heartbeat_loop(stop), name="heartbeat")
        spooled = asyncio.create_task(self._deliver_spooled(stop), name="spooled")
        await stop.wait()
        _log.info("agent_stopping", node_id=self.node_id, jobs_in_hand=len(self._jobs))
        intake_stop.set()
        self._wake.set()
        await self._shutdown(intake, [spooled], heartbeat)

    async def _shutdown(
        self,
        intake: list[asyncio.Task[None]],
        others: list[asyncio.Task[None]],
        heartbeat: asyncio.Task[None] | None,
    ) -> None:
        deadline = time.monotonic() + self.config.shutdown_deadline_s
        for task in intake:
            task.cancel()
        await asyncio.gather(*intake, return_exceptions=True)
        pending = [*self._jobs.values(), *others]
        if pending:
            _, late = await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
            late_jobs = [job_id for job_id, task in self._jobs.items() if task in late]
            for task in late:
                _log.warning("job_abandoned_at_shutdown", task=task.get_name())
                task.cancel()
            self.abandoned += len(late)
            await asyncio.gather(*late, return_exceptions=True)
            for job_id in late_jobs:
                await self._release_unfinished(job_id)
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        _log.info("agent_stopped", node_id=self.node_id, completed=len(self.completed))

    async def _release_unfinished(self, job_id: str) -> None:
        """Give back a job cut off by shutdown, unless its result is saved for the next start."""
        if self.spool.load(job_id) is not None:
            _log.info("job_kept_for_next_start", job_id=job_id)
            return
        try:
            await self.ledger.send(ReleaseJob(job_id=job_id, reason="node shutting down"))
        except LedgerUnavailable as exc:
            _log.warning("job_release_failed", job_id=job_id, error=str(exc))
            return
        except ApiProblem as problem:
            _log.warning("job_release_refused", job_id=job_id, code=problem.code)
            return
        self.released.append(job_id)
        _log.info("job_released_at_shutdown", job_id=job_id)

    # -- registration, stake, attestation ----------------------------------------------------

    async def _ensure_registered(self) -> None:
        node = await self.ledger.get_node(self.node_id)
        if node is not None:
            return
        gpus = compute_gpu_specs(self.inventory)
        fields = {
            "region": self.config.region,
            "gpus": gpus,
            "gpu_class": self.gpu_class,
            "price": self.config.price,
        }
        await self.ledger.send(msgspec.convert(fields, RegisterNode))
        _log.info(
            "node_registered",
            node_id=self.node_id,
            region=self.config.region,
            gpu_class=self.gpu_class,
            gpus=len(gpus),
        )

    async def _maintenance_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                node = await self.ledger.get_node(self.node_id)
                if node is not None:
                    await self._ensure_stake(node)
                    await self._handle_attestation(node)
                    if node.state == ACTIVE:
                        await self._poll_jobs()
                        await self._resume_claimed()
            except (LedgerUnavailable, ArtifactsUnavailable) as exc:
                _log.warning("ledger_unavailable", error=str(exc))
            except ApiProblem as problem:
                _log.warning("maintenance_refused", code=problem.code, detail=problem.detail)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.poll_interval_s)

    async def _ensure_stake(self, node: NodeView) -> None:
        missing = self.config.stake - node.stake
        if missing <= 0 or node.state in (JAILED, DEREGISTERED):
            return
        try:
            await self.ledger.send(BondStake(target=self.node_id, amount=missing))
        except ApiProblem as problem:
            _log.warning("stake_bond_refused", code=problem.code, amount=missing)
            return
        _log.info("stake_bonded", node_id=self.node_id, amount=missing)

    async def _handle_attestation(self, node: NodeView) -> None:
        challenge = node.challenge
        now = self.clock_ns()
        if challenge is None or challenge.deadline_ns < now:
            if node.state == REGISTERED:
                await self.ledger.send(RequestAttestationChallenge(node_id=self.node_id))
                _log.info("attestation_challenge_requested", node_id=self.node_id)
            return
        if challenge.nonce in self._answered_nonces:
            return
        await self._answer(challenge)

    async def _answer(self, challenge: ChallengeView) -> None:
        answer = await asyncio.to_thread(
            answer_challenge,
            self.identity,
            nonce=challenge.nonce,
            seed=challenge.seed,
            size=challenge.size,
            inventory=self.inventory,
            devices=self.devices,
            now_ns=self.clock_ns(),
        )
        await self.artifacts.put(answer.report)
        submission = SubmitAttestation(
            node_id=self.node_id,
            nonce=challenge.nonce,
            inventory_digest=answer.inventory_digest,
            commitment=answer.commitment,
            timings_ns=answer.timings_ns,
        )
        try:
            await self.ledger.send(submission)
        except ApiProblem as problem:
            if problem.code != RejectionCode.ATTESTATION_ALREADY_SUBMITTED:
                raise
        self._answered_nonces.add(challenge.nonce)
        _log.info(
            "attestation_submitted",
            node_id=self.node_id,
            size=challenge.size,
            report=answer.inventory_digest.hex(),
            timings_ns=answer.timings_ns,
        )

    # -- intake -------------------------------------------------------------------------------

    async def _poll_jobs(self) -> None:
        for job in await self.ledger.list_jobs(state=SUBMITTED, limit=POLL_JOBS_LIMIT):
            self._consider(job.id, job.region, self.clock_ns(), job)

    async def _offer_loop(self, stop: asyncio.Event) -> None:
        assert self.signals is not None
        while not stop.is_set():
            try:
                async for offer in self.signals.offers(None):
                    self._consider(offer.job_id, offer.region, offer.offered_at_ns, None)
            except ArtifactsUnavailable as exc:
                _log.warning("offers_unavailable", error=str(exc))
                await asyncio.sleep(self.config.poll_interval_s)

    def _consider(self, job_id: str, region: str, offered_at_ns: int, job: JobView | None) -> None:
        """Remember a job as a claim candidate, from when our region tier may claim it."""
        if job_id in self._candidates or job_id in self._jobs or job_id in self._ignored:
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

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            device = await self._free.get()
            try:
                job_id = await self._next_candidate(stop)
                if job_id is None:
                    continue
                if await self._claim(job_id):
                    self._start_job(job_id, device)
                    device = None  # type: ignore[assignment]
            finally:
                if device is not None:
                    self._free.put_nowait(device)

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
                await asyncio.wait_for(self._wake.wait(), max(wait_s, 0.01))
        return None

    async def _claim(self, job_id: str) -> bool:
        try:
            await self.ledger.send(ClaimJob(job_id=job_id, node_id=self.node_id))
        except LedgerUnavailable as exc:
            _log.warning("claim_unavailable", job_id=job_id, error=str(exc))
            self._candidates[job_id] = self.clock_ns() + int(CLAIM_RETRY_S * SECOND_NS)
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
            self._candidates[job_id] = self.clock_ns() + int(CLAIM_RETRY_S * SECOND_NS)
        _log.info("claim_refused", job_id=job_id, code=problem.code)
        return False

    async def _resume_claimed(self) -> None:
        """Jobs the ledger says we hold but this process is not running (after a restart)."""
        for job in await self.ledger.list_jobs(state=CLAIMED, node=self.node_id):
            job_id = job.id
            if job_id in self._jobs or self.spool.load(job_id) is not None:
                continue
            if self._free.empty():
                return
            self._start_job(job_id, self._free.get_nowait())

    def _start_job(self, job_id: str, device: torch.device) -> None:
        task = asyncio.create_task(self._run_job(job_id, device), name=f"job:{job_id}")
        task.add_done_callback(_log_crash)
        self._jobs[job_id] = task

    async def _run_job(self, job_id: str, device: torch.device) -> None:
        try:
            job = await self._retry_read(lambda: self.ledger.get_job(job_id))
            pending = await self.worker.execute(job, device)
            self._free.put_nowait(device)
            device = None  # type: ignore[assignment]
            if pending is not None and await self.worker.deliver(pending):
                self.completed.append(job_id)
        except (LedgerUnavailable, ArtifactsUnavailable) as exc:
            _log.error("job_failed", job_id=job_id, error=str(exc))
        finally:
            if device is not None:
                self._free.put_nowait(device)
            self._jobs.pop(job_id, None)

    async def _deliver_spooled(self, stop: asyncio.Event) -> None:
        for job_id in self.spool.list_job_ids():
            pending = self.spool.load(job_id)
            if pending is not None and await self.worker.deliver(pending, stop):
                self.completed.append(job_id)

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        assert self.signals is not None
        while not stop.is_set():
            busy = self.slots_total - self._free.qsize()
            try:
                await self.signals.heartbeat(
                    self.node_id, self.config.region, self.slots_total, busy
                )
            except ArtifactsUnavailable as exc:
                _log.warning("heartbeat_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.heartbeat_interval_s)

    async def _retry_read(self, read: Callable[[], Any]) -> Any:
        delay = CLAIM_RETRY_S
        while True:
            try:
                return await read()
            except LedgerUnavailable as exc:
                _log.warning("ledger_unavailable", error=str(exc))
                await asyncio.sleep(delay)

    async def _retry_until(self, stop: asyncio.Event, action: Callable[[], Any]) -> None:
        while not stop.is_set():
            try:
                await action()
                return
            except LedgerUnavailable as exc:
                _log.warning("ledger_unavailable", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_interval_s)


def _log_crash(task: asyncio.Task[None]) -> None:
    """A job task that died of a bug: say so loudly (its exception is otherwise unseen)."""
    if not task.cancelled() and task.exception() is not None:
        _log.error("job_task_crashed", task=task.get_name(), error=repr(task.exception()))
