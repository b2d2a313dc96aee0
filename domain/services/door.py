"""The door (issue 17, rules v5): ``job.submit`` refuses what cannot run before any money is
escrowed, and ``job.cancel`` gives a consumer its escrow back while no node holds the job.

At submission, in this order: the workload params parse with the executors' own parser
(``domain.workloads.parse_params``; ``workload_params_invalid`` names the field and its
bound), then each input object named by digest has an object-stored record by the job's
consumer (``job_input_not_stored``: a record by anyone else does not count, so nobody's
upload can be made to stand for the consumer's), whose recorded size is one the params
accept (``job_input_size_invalid``). Before rules v5 none of this applies: old histories
re-execute as they were decided.
"""

from __future__ import annotations

from domain import commands as c
from domain.errors import Rejection, RejectionCode
from domain.job import Job
from domain.ledger import escrow_account, user_account, void_hold
from domain.objects import StoredObject, compute_object_id
from domain.policy import RULES_V5
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork
from domain.workloads import (
    WorkloadParamsError,
    accepted_input_size,
    input_digests,
    parse_params,
)


async def check_submission_inputs(uow: UnitOfWork, cmd: c.SubmitJob, ctx: CommandContext) -> None:
    """The door's checks of a submission by ``ctx.actor`` (module docstring); rules v5 on."""
    if ctx.policy.rules_version < RULES_V5:
        return
    kind = cmd.workload.kind
    try:
        params = parse_params(kind, dict(cmd.workload.params))
    except WorkloadParamsError as exc:
        raise Rejection(str(exc), code=RejectionCode.WORKLOAD_PARAMS_INVALID) from exc
    for name, digest in input_digests(params).items():
        object_id = compute_object_id(bytes.fromhex(digest), ctx.actor)
        stored = await uow.get(StoredObject, object_id)
        if stored is None:
            raise Rejection(
                f"{kind} input {name} ({digest}) has no object-stored record by the consumer "
                f"{ctx.actor}: upload it and record it (object.record_stored) first",
                code=RejectionCode.JOB_INPUT_NOT_STORED,
            )
        low, high = accepted_input_size(kind, params, name)
        if not low <= stored.size_bytes <= high:
            raise Rejection(
                f"{kind} input {name} is recorded at {stored.size_bytes} bytes; these params "
                f"accept {low}..{high}",
                code=RejectionCode.JOB_INPUT_SIZE_INVALID,
            )


async def handle_cancel_job(uow: UnitOfWork, cmd: c.CancelJob, ctx: CommandContext) -> str:
    """``job.cancel``: checked in this order: rules v5, the job exists, the signer is its
    consumer, the job is submitted (``job_claimed``, ``job_cancelled``, ... otherwise); then
    the escrow hold is voided whole back to the consumer's account."""
    ctx.require_rules_v5("job.cancel")
    job = await uow.require(Job, cmd.job_id)
    job.check_cancellable(consumer=ctx.actor)
    amount = void_hold(
        await uow.account(user_account(job.consumer)),
        await uow.account(escrow_account(job.id)),
        transfer_id=job.escrow_hold_id,
        now_ns=ctx.now_ns,
    )
    job.cancel(consumer=ctx.actor, amount=amount, now_ns=ctx.now_ns)
    return job.id
