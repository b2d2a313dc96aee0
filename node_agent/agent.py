"""The node agent: its three parts run side by side, and an ordered shutdown.

``Upkeep`` keeps the node registered, staked and attested and sends heartbeats; ``Intake``
turns offers and polls into claims while a device slot is free; ``Runner`` executes the
claimed jobs, spools and commits their results. ``NodeAgent.run(stop)`` registers (waiting
out outages), runs a maintenance tick every ``poll_interval_s`` (the ledger's view of the
node for upkeep; while active, a poll for open jobs and a look for jobs we hold but do not
run), the claim and offer loops, the heartbeats and the delivery of spooled results.

When ``stop`` is set it shuts down in order under ``shutdown_deadline_s``: stop intake
(offers, polling, claims), let jobs in hand finish and deliver, flush spooled results, stop
heartbeats. A job still running at the deadline is cancelled: kept if its result is spooled
(the next start delivers it while the window is open), otherwise released (``job.release``).
A release that fails (API gone) is logged, and the window's expiry returns the job instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import structlog
import torch

from adapters.compute.nvml import Inventory, compute_gpu_class
from adapters.ledger_api.client import ApiProblem
from domain.job_states import RESULT_COMMITTED
from domain.node import ACTIVE
from node_agent.config import AgentConfig
from node_agent.intake import Intake, Offer
from node_agent.ledger_link import Ledger, LedgerUnavailable
from node_agent.payloads import KeyCourier
from node_agent.runner import Runner
from node_agent.sinks import ArtifactSink, ArtifactsUnavailable
from node_agent.spool import ResultSpool
from node_agent.upkeep import Upkeep
from node_agent.work import Worker
from proofs.identity import Identity

_log = structlog.get_logger("flopledger.agent")


class Signals(Protocol):
    """Live signals (NATS core): offers in, heartbeats out."""

    def offers(self, region: str | None) -> AsyncIterator[Offer]: ...
    async def heartbeat(self, node_id: str, region: str, gpus_total: int, busy: int) -> None: ...


class NodeAgent:
    """One node: its identity, the ledger, artifact store, devices, and the three parts."""

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
        worker_type: type[Worker] = Worker,
    ) -> None:
        self.config = config
        self.node_id = identity.id
        self.ledger = ledger
        self.signals = signals
        gpu_class = config.gpu_class or compute_gpu_class(inventory)
        self.spool = ResultSpool(config.state_dir / "spool")
        self.courier = KeyCourier(
            identity=identity, ledger=ledger, artifacts=artifacts, state_dir=config.state_dir
        )
        worker = worker_type(
            identity=identity,
            ledger=ledger,
            artifacts=artifacts,
            spool=self.spool,
            courier=self.courier,
            clock_ns=clock_ns,
        )
        self.upkeep = Upkeep(
            config,
            identity=identity,
            gpu_class=gpu_class,
            ledger=ledger,
            artifacts=artifacts,
            inventory=inventory,
            devices=devices,
            clock_ns=clock_ns,
        )
        self.runner = Runner(
            node_id=self.node_id,
            ledger=ledger,
            worker=worker,
            spool=self.spool,
            devices=devices,
            concurrency_per_device=config.concurrency_per_device,
        )
        self.intake = Intake(
            config,
            node_id=self.node_id,
            gpu_class=gpu_class,
            ledger=ledger,
            runner=self.runner,
            clock_ns=clock_ns,
        )

    @property
    def completed(self) -> list[str]:
        return self.runner.completed

    @property
    def abandoned(self) -> int:
        return self.runner.abandoned

    @property
    def released(self) -> list[str]:
        return self.runner.released

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop``; then shut down in order under the deadline (module docstring)."""
        await self._retry_until(stop, self.upkeep.ensure_registered)
        await self._retry_until(stop, self.courier.ensure_registered)
        if stop.is_set():
            return
        intake_stop = asyncio.Event()
        intake = [
            asyncio.create_task(self._maintenance_loop(intake_stop), name="maintenance"),
            asyncio.create_task(self.intake.claim_loop(intake_stop), name="claims"),
        ]
        heartbeat = None
        if self.signals is not None:
            offers = self.intake.offer_loop(intake_stop, self.signals)
            intake.append(asyncio.create_task(offers, name="offers"))
            beats = self.upkeep.heartbeat_loop(
                stop, self.signals, self.runner.slots_total, lambda: self.runner.busy
            )
            heartbeat = asyncio.create_task(beats, name="heartbeat")
        spooled = asyncio.create_task(self.runner.deliver_spooled(stop), name="spooled")
        await stop.wait()
        _log.info("agent_stopping", node_id=self.node_id, jobs_in_hand=len(self.runner.jobs))
        intake_stop.set()
        self.intake.wake()
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
        await self.runner.finish(others, deadline - time.monotonic())
        await self.courier.stop()
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        _log.info("agent_stopped", node_id=self.node_id, completed=len(self.completed))

    async def _maintenance_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                node = await self.ledger.get_node(self.node_id)
                if node is not None:
                    await self.upkeep.tend(node)
                    if node.state == ACTIVE:
                        await self.intake.poll()
                        await self.runner.resume_claimed()
                        committed = await self.ledger.list_jobs(
                            state=RESULT_COMMITTED, node=self.node_id
                        )
                        await self.courier.resume(committed)
            except (LedgerUnavailable, ArtifactsUnavailable) as exc:
                _log.warning("ledger_unavailable", error=str(exc))
            except ApiProblem as problem:
                _log.warning("maintenance_refused", code=problem.code, detail=problem.detail)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.poll_interval_s)

    async def _retry_until(
        self, stop: asyncio.Event, action: Callable[[], Awaitable[None]]
    ) -> None:
        while not stop.is_set():
            try:
                await action()
                return
            except LedgerUnavailable as exc:
                _log.warning("ledger_unavailable", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_interval_s)
