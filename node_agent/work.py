"""One job's life in the agent: execute on a device, spool, upload, commit.

A data job's inputs are read first (``node_agent.payloads``: streamed by digest, opened with
the released inputs key when the job is private); inputs that are not what the job claims get
the job released (``job.release`` with the reason), never executed. A private job's proof
object is sealed under a fresh result key before it is spooled, and its keys are released
once the result is committed (``KeyCourier``). Execution runs in a worker thread on a device
slot; the result goes to the spool before anything leaves the machine; delivery (upload
both objects, then ``job.commit_result``) is retried with backoff through API and NATS
outages until the result window closes. A commit whose answer was lost is recognised on
retry (the job already holds our commitment).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

import structlog
import torch

from adapters.compute.results import ResultBundle, execute_workload
from adapters.ledger_api.client import ApiProblem
from adapters.ledger_api.wire import JobView
from domain.commands import CommitResult, RecordObjectStored, ReleaseJob
from domain.job_states import CLAIMED, SUBMITTED
from domain.policy import REASON_CHARS_MAX
from domain.workloads import (
    WorkloadParams,
    WorkloadParamsError,
    ZkProveParams,
    input_digests,
    is_private,
    parse_params,
)
from node_agent.config import RETRY_BACKOFF_INITIAL_S, RETRY_BACKOFF_MAX_S
from node_agent.ledger_link import Ledger, LedgerUnavailable
from node_agent.payloads import InputsUnusable, JobLeftUs, KeyCourier
from node_agent.sinks import ArtifactSink, ArtifactsUnavailable, NatsArtifactSink
from node_agent.spool import PendingResult, ResultSpool
from proofs.identity import Identity
from proofs.sealed_object import new_data_key, seal_bytes

_log = structlog.get_logger("flopledger.agent")

HANDED_BACK_MAX = 10_000
"""Jobs remembered as handed back for unusable inputs (oldest forgotten first)."""


class Worker:
    """Executes and delivers jobs for one node."""

    def __init__(
        self,
        *,
        identity: Identity,
        ledger: Ledger,
        artifacts: ArtifactSink,
        spool: ResultSpool,
        courier: KeyCourier,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.identity = identity
        self.ledger = ledger
        self.artifacts = artifacts
        self.spool = spool
        self.courier = courier
        self.clock_ns = clock_ns
        self.handed_back: OrderedDict[str, None] = OrderedDict()
        """Jobs released for inputs that are not what they claim: not claimed again."""

    async def execute(self, job: JobView, device: torch.device) -> PendingResult | None:
        """Run the job's workload on ``device`` and spool the result (None: not runnable;
        a data job whose inputs are unusable is released)."""
        job_id, workload = job.id, job.workload
        try:
            params = parse_params(workload.kind, dict(workload.params))
            zkey = None
            if isinstance(params, ZkProveParams) and params.zkey:
                zkey = await self.artifacts.get(params.zkey)
            inputs = None
            if input_digests(params):
                inputs = await self.courier.load_inputs(job, params)
            started = time.perf_counter_ns()
            bundle = await self.run_workload(job, params, device, zkey, inputs)
        except JobLeftUs as exc:
            _log.warning("job_left_before_inputs_key", job_id=job_id, error=str(exc))
            return None
        except InputsUnusable as exc:
            await self._release(job_id, f"inputs unusable: {exc}")
            return None
        except WorkloadParamsError as exc:
            _log.warning("job_params_invalid", job_id=job_id, error=str(exc))
            if input_digests_or_none(workload.kind, dict(workload.params)):
                await self._release(job_id, f"inputs do not fit the job: {exc}")
            return None
        except ValueError as exc:  # NpyError, ModelFileError: the consumer's files
            await self._release(job_id, f"inputs do not fit the job: {exc}")
            return None
        proof = bundle.proof
        if is_private(params):
            result_key = new_data_key()
            self.courier.keep_result_key(job_id, result_key)
            proof = await asyncio.to_thread(seal_bytes, result_key, bundle.proof)
        pending = PendingResult(
            job_id=job_id,
            commitment=bundle.commitment,
            artifact=bundle.artifact,
            proof=proof,
            result_due_ns=job.result_due_ns,
            sealed=is_private(params),
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

    async def run_workload(
        self,
        job: JobView,
        params: WorkloadParams,
        device: torch.device,
        zkey: bytes | None,
        inputs: dict[str, bytes] | None,
    ) -> ResultBundle:
        """Execute in a worker thread (the one step a test's dishonest node replaces)."""
        return await asyncio.to_thread(
            execute_workload,
            job.id,
            job.workload.kind,
            dict(job.workload.params),
            self.identity,
            device,
            zkey_bytes=zkey,
            inputs=inputs,
        )

    async def _release(self, job_id: str, reason: str) -> None:
        """Hand the job back without computing (its inputs are not what it claims), and
        remember not to claim it again."""
        _log.warning("job_inputs_unusable", job_id=job_id, reason=reason)
        self.handed_back[job_id] = None
        while len(self.handed_back) > HANDED_BACK_MAX:
            self.handed_back.popitem(last=False)
        try:
            await self.ledger.send(ReleaseJob(job_id=job_id, reason=reason[:REASON_CHARS_MAX]))
        except ApiProblem as problem:
            _log.warning("job_release_refused", job_id=job_id, code=problem.code)

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
        for data, sealed in ((pending.artifact, False), (pending.proof, pending.sealed)):
            digest = await (self.artifacts.put_sealed(data) if sealed else self.artifacts.put(data))
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
        if pending.sealed:
            self.courier.start(pending.job_id)
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
            if pending.sealed:
                self.courier.start(pending.job_id)
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


def input_digests_or_none(kind: str, params: dict[str, str | int | bool]) -> dict[str, str]:
    """The job's input digests, or none when its params do not parse."""
    try:
        return input_digests(parse_params(kind, params))
    except WorkloadParamsError:
        return {}
