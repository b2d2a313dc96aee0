"""One job's life in the agent: execute on a device, spool, upload, commit.

Execution runs in a worker thread on a device slot; the result goes to the spool before
anything leaves the machine; delivery (upload both objects, then ``job.commit_result``) is
retried with backoff through API and NATS outages until the result window closes. A commit
whose answer was lost is recognised on retry (the job already holds our commitment).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
import torch

from adapters.compute.results import ResultBundle, execute_workload
from adapters.ledger_api.client import ApiProblem
from adapters.ledger_api.wire import JobView
from domain.commands import CommitResult, RecordObjectStored
from domain.job_states import CLAIMED, SUBMITTED
from domain.workloads import WorkloadParamsError, ZkProveParams, parse_params
from node_agent.config import RETRY_BACKOFF_INITIAL_S, RETRY_BACKOFF_MAX_S
from node_agent.ledger_link import Ledger, LedgerUnavailable
from node_agent.sinks import ArtifactSink, ArtifactsUnavailable, NatsArtifactSink
from node_agent.spool import PendingResult, ResultSpool
from proofs.identity import Identity

_log = structlog.get_logger("flopledger.agent")


class Worker:
    """Executes and delivers jobs for one node."""

    def __init__(
        self,
        *,
        identity: Identity,
        ledger: Ledger,
        artifacts: ArtifactSink,
        spool: ResultSpool,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.identity = identity
        self.ledger = ledger
        self.artifacts = artifacts
        self.spool = spool
        self.clock_ns = clock_ns

    async def execute(self, job: JobView, device: torch.device) -> PendingResult | None:
        """Run the job's workload on ``device`` and spool the result (None: not runnable)."""
        job_id, workload = job.id, job.workload
        try:
            params = parse_params(workload.kind, dict(workload.params))
            zkey = None
            if isinstance(params, ZkProveParams) and params.zkey:
                zkey = await self.artifacts.get(params.zkey)
            started = time.perf_counter_ns()
            bundle: ResultBundle = await asyncio.to_thread(
                execute_workload,
                job_id,
                workload.kind,
                dict(workload.params),
                self.identity,
                device,
                zkey_bytes=zkey,
            )
        except WorkloadParamsError as exc:
            _log.warning("job_params_invalid", job_id=job_id, error=str(exc))
            return None
        pending = PendingResult(
            job_id=job_id,
            commitment=bundle.commitment,
            artifact=bundle.artifact,
            proof=bundle.proof,
            result_due_ns=job.result_due_ns,
        )
        self.spool.save(pending)
        _log.info(
            "job_executed",
            job_id=job_id,
            kind=workload.kind,
            device=str(device),
            elapsed_ms=(time.perf_counter_ns() - started) // 1_000_000,
        )
        return pending

    async def deliver(self, pending: PendingResult, stop: asyncio.Event | None = None) -> bool:
        """Upload and commit, retrying outages until the result window closes (or ``stop``).
        True once the ledger holds the commitment; the spool entry is then removed."""
        attempt = 0
        while True:
            try:
                done = await self._deliver_once(pending)
            except (LedgerUnavailable, ArtifactsUnavailable) as exc:
                _log.warning("result_delivery_retry", job_id=pending.job_id, error=str(exc))
                done = None
            if done is not None:
                if done:
                    self.spool.remove(pending.job_id)
                return done
            if pending.result_due_ns and self.clock_ns() > pending.result_due_ns:
                _log.error("result_window_missed", job_id=pending.job_id)
                self.spool.remove(pending.job_id)
                return False
            delay = min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_INITIAL_S * 2**attempt)
            attempt += 1
            if stop is not None and stop.is_set():
                return False
            await asyncio.sleep(delay)

    async def _deliver_once(self, pending: PendingResult) -> bool | None:
        for data in (pending.artifact, pending.proof):
            digest = await self.artifacts.put(data)
            if isinstance(self.artifacts, NatsArtifactSink):
                await self._record_stored(digest, len(data))
        bundle = ResultBundle(
            job_id=pending.job_id,
            commitment=pending.commitment,
            artifact=pending.artifact,
            proof=pending.proof,
        )
        try:
            await self.ledger.send(
                CommitResult(
                    job_id=pending.job_id,
                    commitment=bundle.commitment,
                    artifact_digest=bundle.artifact_digest,
                    proof_digest=bundle.proof_digest,
                )
            )
        except ApiProblem as problem:
            return await self._is_already_committed(pending, problem)
        _log.info("result_committed", job_id=pending.job_id, commitment=pending.commitment.hex())
        return True

    async def _record_stored(self, digest: str, size_bytes: int) -> None:
        """Record the upload on the ledger (issue 16, item 6: from then on its loss from the
        store is not this node's fault). A refusal (recorded before, or rules before v4)
        does not hold the result back: the record protects the node, the commit pays it."""
        command = RecordObjectStored(
            digest=bytes.fromhex(digest), size_bytes=size_bytes, uploader=self.identity.id
        )
        try:
            await self.ledger.send(command)
        except ApiProblem as problem:
            _log.info("object_record_refused", digest=digest, code=problem.code)

    async def _is_already_committed(
        self, pending: PendingResult, problem: ApiProblem
    ) -> bool | None:
        """After a refused commit: True when the job already holds our result (a retry of a
        commit whose answer was lost), None when the job is still ours to commit (a refusal
        that may pass later, e.g. ``no_validators_available``), False when it is final."""
        job = await self.ledger.get_job(pending.job_id)
        ours = job.node_id == self.identity.id
        if ours and job.state not in (SUBMITTED, CLAIMED):
            _log.info("result_already_committed", job_id=pending.job_id)
            return True
        if ours and job.state == CLAIMED:
            _log.warning("result_commit_retry", job_id=pending.job_id, code=problem.code)
            return None
        _log.error(
            "result_refused",
            job_id=pending.job_id,
            code=problem.code,
            commitment=pending.commitment.hex(),
        )
        return False
