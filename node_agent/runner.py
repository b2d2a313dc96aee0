"""The agent's jobs in hand: device slots, one task per job (execute, spool, commit), shutdown.

A job runs on a device slot (``concurrency_per_device`` per device); the ``Worker`` executes
it, spools the result and delivers it. At shutdown the jobs in hand may finish under the
deadline; a job still running then is cancelled and, unless its result is spooled for the
next start, released (``job.release``) so it goes back to the market at once instead of when
its result window closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
import torch

from adapters.ledger_api.client import ApiProblem
from domain.commands import ReleaseJob
from domain.job_states import CLAIMED
from node_agent.config import CLAIM_RETRY_S
from node_agent.ledger_link import Ledger, LedgerUnavailable
from node_agent.sinks import ArtifactsUnavailable
from node_agent.spool import ResultSpool
from node_agent.work import Worker

_log = structlog.get_logger("flopledger.agent")

T = TypeVar("T")


class Runner:
    """Runs the node's claimed jobs on its device slots and delivers their results."""

    def __init__(
        self,
        *,
        node_id: str,
        ledger: Ledger,
        worker: Worker,
        spool: ResultSpool,
        devices: list[torch.device],
        concurrency_per_device: int,
    ) -> None:
        self.node_id = node_id
        self.ledger = ledger
        self.worker = worker
        self.spool = spool
        self.slots_total = len(devices) * concurrency_per_device
        self.free: asyncio.Queue[torch.device] = asyncio.Queue()
        for device in devices * concurrency_per_device:
            self.free.put_nowait(device)
        self.jobs: dict[str, asyncio.Task[None]] = {}
        self.completed: list[str] = []
        self.abandoned = 0
        self.released: list[str] = []

    @property
    def busy(self) -> int:
        """Slots in use (a claim holds one before its job starts)."""
        return self.slots_total - self.free.qsize()

    def is_running(self, job_id: str) -> bool:
        return job_id in self.jobs

    def is_handed_back(self, job_id: str) -> bool:
        """A job released for inputs that are not what it claims: not to be claimed again."""
        return job_id in self.worker.handed_back

    def start(self, job_id: str, device: torch.device) -> None:
        """Run ``job_id`` on ``device`` (a slot taken from ``free``, given back when done)."""
        task = asyncio.create_task(self._run_job(job_id, device), name=f"job:{job_id}")
        task.add_done_callback(_log_crash)
        self.jobs[job_id] = task

    async def resume_claimed(self) -> None:
        """Jobs the ledger says we hold but this process is not running (after a restart)."""
        for job in await self.ledger.list_jobs(state=CLAIMED, node=self.node_id):
            if job.id in self.jobs or self.spool.load(job.id) is not None:
                continue
            if self.free.empty():
                return
            self.start(job.id, self.free.get_nowait())

    async def deliver_spooled(self, stop: asyncio.Event) -> None:
        """Deliver the results a previous run spooled but did not commit."""
        for job_id in self.spool.list_job_ids():
            pending = self.spool.load(job_id)
            if pending is not None and await self.worker.deliver(pending, stop):
                self.completed.append(job_id)

    async def finish(self, others: list[asyncio.Task[None]], timeout_s: float) -> None:
        """Let the jobs in hand (and ``others``) finish within ``timeout_s``; cancel the late
        ones and release the late jobs whose result is not spooled."""
        pending = [*self.jobs.values(), *others]
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=max(0.0, timeout_s))
        late_jobs = [job_id for job_id, task in self.jobs.items() if task in late]
        for task in late:
            _log.warning("job_abandoned_at_shutdown", task=task.get_name())
            task.cancel()
        self.abandoned += len(late)
        await asyncio.gather(*late, return_exceptions=True)
        for job_id in late_jobs:
            await self._release_unfinished(job_id)

    async def _run_job(self, job_id: str, device: torch.device) -> None:
        slot: torch.device | None = device
        try:
            job = await _retry_read(lambda: self.ledger.get_job(job_id))
            pending = await self.worker.execute(job, device)
            self.free.put_nowait(device)
            slot = None
            if pending is not None and await self.worker.deliver(pending):
                self.completed.append(job_id)
        except (LedgerUnavailable, ArtifactsUnavailable) as exc:
            _log.error("job_failed", job_id=job_id, error=str(exc))
        finally:
            if slot is not None:
                self.free.put_nowait(slot)
            self.jobs.pop(job_id, None)

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


async def _retry_read(read: Callable[[], Awaitable[T]]) -> T:
    """Read until the ledger answers (outages are waited out; the job is ours meanwhile)."""
    while True:
        try:
            return await read()
        except LedgerUnavailable as exc:
            _log.warning("ledger_unavailable", error=str(exc))
            await asyncio.sleep(CLAIM_RETRY_S)


def _log_crash(task: asyncio.Task[None]) -> None:
    """A job task that died of a bug: say so loudly (its exception is otherwise unseen)."""
    if not task.cancelled() and task.exception() is not None:
        _log.error("job_task_crashed", task=task.get_name(), error=repr(task.exception()))
