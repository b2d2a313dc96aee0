"""Jobs: submit (with escrow), claim, commit a result, record verdicts, expire, cancel; reads."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted, Escrow, JobAccepted, JobList, JobView
from api.commands import run_command
from api.controllers.common import (
    COMMAND_ERRORS,
    DEFAULT_LIMIT,
    LIST_ERRORS,
    READ_ERRORS,
    ActorFilter,
    Filter,
    JobIdPath,
    Limit,
    Offset,
    SignedEnvelope,
    StateFilter,
    make_page,
    to_accepted,
)
from api.errors import ApiError
from api.state import Deps
from domain.errors import RejectionCode
from domain.job import Job
from domain.ledger import escrow_account
from domain.services.queries import get_aggregate

PATH = "/v1/jobs"
SUBMIT_ROUTE = COMMAND_ROUTES["job.submit"]
CLAIM_ROUTE = COMMAND_ROUTES["job.claim"]
COMMIT_RESULT_ROUTE = COMMAND_ROUTES["job.commit_result"]
COMMIT_VERDICT_ROUTE = COMMAND_ROUTES["job.commit_verdict"]
RECORD_VERDICT_ROUTE = COMMAND_ROUTES["job.record_verdict"]
RELEASE_ROUTE = COMMAND_ROUTES["job.release"]
EXPIRE_ROUTE = COMMAND_ROUTES["job.expire"]
CANCEL_ROUTE = COMMAND_ROUTES["job.cancel"]
PROVE_FRAUD_ROUTE = COMMAND_ROUTES["job.prove_fraud"]
RELEASE_KEY_ROUTE = COMMAND_ROUTES["job.release_key"]


class JobController(Controller):
    """``/v1/jobs``: job commands and reads."""

    path = PATH
    tags = ("jobs",)

    @post(
        SUBMIT_ROUTE.compute_handler_path(PATH),
        operation_id="submitJob",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def submit(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> JobAccepted:
        """Submit a job (``job.submit``); its maximum price is held in escrow."""
        result = await run_command(deps, request, data, SUBMIT_ROUTE)
        accepted = to_accepted(result)
        escrow = Escrow(
            account=escrow_account(result.subject),
            hold_id=escrow_account(result.subject),
            amount=int(data.body["max_price"]),
        )
        return JobAccepted(**msgspec.structs.asdict(accepted), job_id=result.subject, escrow=escrow)

    @get("/", operation_id="listJobs", responses=LIST_ERRORS)
    async def list_jobs(
        self,
        deps: Deps,
        state_filter: StateFilter = None,
        region: Filter = None,
        consumer: ActorFilter = None,
        node: ActorFilter = None,
        offset: Offset = 0,
        limit: Limit = DEFAULT_LIMIT,
    ) -> JobList:
        """Jobs in order of submission, filtered by state, region, consumer and node."""
        views, total = await deps.read_model.list(
            Job.STREAM_TYPE,
            {"state": state_filter, "region": region, "consumer": consumer, "node_id": node},
            offset=offset,
            limit=limit,
        )
        deps.metrics.set_jobs(deps.read_model.count_by(Job.STREAM_TYPE, "state"))
        items = [msgspec.convert(v, JobView) for v in views]
        return JobList(items=items, page=make_page(offset, limit, len(items), total))

    @get("/{job_id:str}", operation_id="getJob", responses=READ_ERRORS)
    async def get_job(self, deps: Deps, job_id: JobIdPath) -> JobView:
        """One job."""
        job = await get_aggregate(deps.store, Job, job_id)
        if job is None:
            raise ApiError(RejectionCode.JOB_NOT_FOUND, f"no job {job_id}", status=404)
        return msgspec.convert(job.view(), JobView)

    @post(
        CLAIM_ROUTE.compute_handler_path(PATH),
        operation_id="claimJob",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def claim(
        self, deps: Deps, request: Request[Any, Any, Any], job_id: JobIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Claim the job for a node (``job.claim``, signed by the node)."""
        result = await run_command(deps, request, data, CLAIM_ROUTE)
        return to_accepted(result)

    @post(
        COMMIT_RESULT_ROUTE.compute_handler_path(PATH),
        operation_id="commitResult",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def commit_result(
        self, deps: Deps, request: Request[Any, Any, Any], job_id: JobIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Commit the result's digests (``job.commit_result``); validators get assigned."""
        result = await run_command(deps, request, data, COMMIT_RESULT_ROUTE)
        return to_accepted(result)

    @post(
        COMMIT_VERDICT_ROUTE.compute_handler_path(PATH),
        operation_id="commitVerdict",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def commit_verdict(
        self, deps: Deps, request: Request[Any, Any, Any], job_id: JobIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Commit a validator's salted verdict hash (``job.commit_verdict``)."""
        result = await run_command(deps, request, data, COMMIT_VERDICT_ROUTE)
        return to_accepted(result)

    @post(
        RECORD_VERDICT_ROUTE.compute_handler_path(PATH),
        operation_id="recordVerdict",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def record_verdict(
        self, deps: Deps, request: Request[Any, Any, Any], job_id: JobIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Reveal a validator's committed, BLS-signed verdict (``job.record_verdict``)."""
        result = await run_command(deps, request, data, RECORD_VERDICT_ROUTE)
        return to_accepted(result)

    @post(
        RELEASE_ROUTE.compute_handler_path(PATH),
        operation_id="releaseJob",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def release(
        self, deps: Deps, request: Request[Any, Any, Any], job_id: JobIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Hand a claimed job back to the market (``job.release``, signed by the claiming node)."""
        result = await run_command(deps, request, data, RELEASE_ROUTE)
        return to_accepted(result)

    @post(
        EXPIRE_ROUTE.compute_handler_path(PATH),
        operation_id="expireJob",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def expire(
        self, deps: Deps, request: Request[Any, Any, Any], job_id: JobIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Expire an unclaimed job past its deadline and refund its escrow (``job.expire``)."""
        result = await run_command(deps, request, data, EXPIRE_ROUTE)
        return to_accepted(result)

    @post(
        CANCEL_ROUTE.compute_handler_path(PATH),
        operation_id="cancelJob",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def cancel(
        self, deps: Deps, request: Request[Any, Any, Any], job_id: JobIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Cancel a job no node has claimed and void its escrow back to its consumer
        (``job.cancel``, signed by the consumer; rules v5)."""
        return to_accepted(await run_command(deps, request, data, CANCEL_ROUTE))

    @post(
        PROVE_FRAUD_ROUTE.compute_handler_path(PATH),
        operation_id="proveFraud",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def prove_fraud(
        self, deps: Deps, request: Request[Any, Any, Any], job_id: JobIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Prove a decided result wrong: its pass voters are slashed (``job.prove_fraud``)."""
        return to_accepted(await run_command(deps, request, data, PROVE_FRAUD_ROUTE))

    @post(
        RELEASE_KEY_ROUTE.compute_handler_path(PATH),
        operation_id="releaseJobKey",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def release_key(
        self, deps: Deps, request: Request[Any, Any, Any], job_id: JobIdPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Record a private job's data key wrapped to a recipient (``job.release_key``)."""
        return to_accepted(await run_command(deps, request, data, RELEASE_KEY_ROUTE))
