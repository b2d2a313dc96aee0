"""Handlers for accounts and jobs: deposits, withdrawals, submission with escrow, claims,
results (which open the verdict round, ``domain.services.rounds``), release and expiry."""

from __future__ import annotations

import hashlib

from domain import commands as c
from domain import reputation
from domain.chain_credits import ChainCredit, compute_chain_credit_id
from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.job import (
    CLAIMED,
    EXPIRED,
    RESULT_COMMITTED,
    SUBMITTED,
    Job,
    ResultCommitment,
    WorkloadSpec,
)
from domain.job_states import STATE_CODES
from domain.ledger import (
    BOUNDARY_ACCOUNT,
    escrow_account,
    place_hold,
    transfer,
    user_account,
)
from domain.node import Node
from domain.operator_powers import check_deposit_authority
from domain.policy import RULES_V4
from domain.services.claims import (
    commit_claim,
    forfeit_claim_bond,
    release_claim_if_left,
    reserve_claim,
)
from domain.services.context import CommandContext
from domain.services.door import check_submission_inputs
from domain.services.escrow import refund_job
from domain.services.handlers_keys import lapse_claim_if_due
from domain.services.rounds import JOB_ROUND, open_round, rotate_round
from domain.services.unit_of_work import UnitOfWork

JOB_ID_HEX_CHARS = 24


def compute_job_id(command_id: str) -> str:
    """Job ids derive from the submitting command, so a retried submit names the same job."""
    return "job-" + hashlib.sha256(command_id.encode()).hexdigest()[:JOB_ID_HEX_CHARS]


async def handle_deposit(uow: UnitOfWork, cmd: c.Deposit, ctx: CommandContext) -> str:
    ctx.require_operator()
    check_deposit_authority(ctx.policy, ctx.actor)  # issue 16, item 5
    if ctx.policy.rules_version >= RULES_V4 and not cmd.chain_reference:
        raise Rejection(
            "a deposit names the Solana transaction that paid it (chain_reference): money "
            "enters the ledger only against the chain",
            code=RejectionCode.DEPOSIT_CHAIN_REFERENCE_REQUIRED,
        )
    account_id = user_account(cmd.account_owner)
    transfer(
        await uow.account(BOUNDARY_ACCOUNT),
        await uow.account(account_id),
        transfer_id=f"{ctx.command_id}:deposit",
        amount=cmd.amount,
        reason=f"deposit {cmd.chain_reference}".strip(),
        now_ns=ctx.now_ns,
    )
    if ctx.policy.rules_version >= RULES_V4:  # after the transfer: its records come first
        credit_id = compute_chain_credit_id(cmd.chain_reference)
        if await uow.get(ChainCredit, credit_id) is not None:
            raise InvalidTransition(
                f"chain transaction {cmd.chain_reference!r} was credited already: each "
                "transaction enters the ledger once",
                code=RejectionCode.DEPOSIT_CHAIN_REFERENCE_REUSED,
            )
        uow.add(
            ChainCredit.record(
                credit_id,
                chain_reference=cmd.chain_reference,
                account=account_id,
                amount=cmd.amount,
                now_ns=ctx.now_ns,
            )
        )
    return account_id


async def handle_withdraw(uow: UnitOfWork, cmd: c.Withdraw, ctx: CommandContext) -> str:
    if ctx.policy.rules_version >= RULES_V4 and cmd.amount < ctx.policy.withdrawal_min:
        raise Rejection(
            f"a withdrawal of {cmd.amount} is below the minimum {ctx.policy.withdrawal_min} "
            "(Solana's rent-exempt minimum: a smaller payout to a new address fails on chain)",
            code=RejectionCode.WITHDRAWAL_BELOW_MINIMUM,
        )
    account_id = user_account(ctx.actor)
    transfer(
        await uow.account(account_id),
        await uow.account(BOUNDARY_ACCOUNT),
        transfer_id=f"{ctx.command_id}:withdraw",
        amount=cmd.amount,
        reason=f"withdraw to {cmd.destination or ctx.actor}",
        now_ns=ctx.now_ns,
    )
    return account_id


async def handle_submit_job(uow: UnitOfWork, cmd: c.SubmitJob, ctx: CommandContext) -> str:
    job = Job.submit(
        compute_job_id(ctx.command_id),
        consumer=ctx.actor,
        workload=WorkloadSpec(
            cmd.workload.kind, cmd.workload.gpu_class_min, dict(cmd.workload.params)
        ),
        max_price=cmd.max_price,
        region=cmd.region,
        redundancy=cmd.redundancy,
        deadline_ns=cmd.deadline_ns,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
    )
    await check_submission_inputs(uow, cmd, ctx)  # rules v5: the door (domain.services.door)
    uow.add(job)
    place_hold(
        await uow.account(user_account(ctx.actor)),
        await uow.open_new_account(escrow_account(job.id)),
        transfer_id=job.escrow_hold_id,
        amount=cmd.max_price,
        reason=f"escrow for {job.id}",
        now_ns=ctx.now_ns,
    )
    return job.id


async def handle_claim_job(uow: UnitOfWork, cmd: c.ClaimJob, ctx: CommandContext) -> str:
    if ctx.actor != cmd.node_id:
        raise Unauthorized("a node claims jobs with its own key", code=RejectionCode.NOT_THE_NODE)
    job = await uow.require(Job, cmd.job_id)
    node = await uow.require(Node, cmd.node_id)
    job.claim(node, policy=ctx.policy, now_ns=ctx.now_ns)
    reserve_claim(job, node, ctx)
    return job.id


async def handle_commit_result(uow: UnitOfWork, cmd: c.CommitResult, ctx: CommandContext) -> str:
    job = await uow.require(Job, cmd.job_id)
    job.commit_result(
        node_id=ctx.actor,
        result=ResultCommitment(cmd.commitment, cmd.artifact_digest, cmd.proof_digest),
        now_ns=ctx.now_ns,
    )
    await commit_claim(uow, job, ctx)
    # The validators are drawn when the next beacon epoch closes (``domain.beacon``): no
    # randomness known now, the committer's included, decides who judges this result.
    await open_round(uow, JOB_ROUND, job, count=job.redundancy, ctx=ctx)
    return job.id


async def handle_release_job(uow: UnitOfWork, cmd: c.ReleaseJob, ctx: CommandContext) -> str:
    """The claiming node hands the job back; its escrow stays held for the next claim. The
    node pays the consumer the share of its claim bond for the time it held the job."""
    job = await uow.require(Job, cmd.job_id)
    job.release(node_id=ctx.actor, reason=cmd.reason or "released by the node", now_ns=ctx.now_ns)
    fee = await forfeit_claim_bond(uow, job, ctx.actor, release_fee=True, ctx=ctx)
    # A job handed back at once costs nobody anything; one held a while counts (rules v3).
    outcome = reputation.RELEASED if fee else ""
    await release_claim_if_left(uow, job, ctx.actor, reason="released", ctx=ctx, outcome=outcome)
    return job.id


async def handle_expire_job(uow: UnitOfWork, cmd: c.ExpireJob, ctx: CommandContext) -> str:
    """Anyone may crank an overdue job: unclaimed past its deadline, a missed result window
    (the claim bond goes to the consumer), or a verdict round whose reveal window closed
    (absent validators replaced, else the job goes back to the market). A node whose job
    left its hands has its claim released. Under rules v5 a private job's claim whose inputs
    key never came lapses instead: no bond forfeited, no blame (``handlers_keys``)."""
    job = await uow.require(Job, cmd.job_id)
    holder = job.node_id
    outcome = reputation.NO_SHOW if job.state == CLAIMED else ""
    if job.state == SUBMITTED:
        job.expire(now_ns=ctx.now_ns)
    elif job.state == CLAIMED and await lapse_claim_if_due(uow, job, ctx):
        outcome = ""
    elif job.state == CLAIMED:
        job.reassign_or_expire(reason="result window missed", policy=ctx.policy, now_ns=ctx.now_ns)
        await forfeit_claim_bond(uow, job, holder, release_fee=False, ctx=ctx)
    elif job.state == RESULT_COMMITTED:
        await rotate_round(uow, job, ctx)
    elif job.state != EXPIRED:
        raise Rejection(
            f"job {job.id} is {job.state}: nothing to expire", code=STATE_CODES[job.state]
        )
    await release_claim_if_left(
        uow, job, holder, reason="job expired or reassigned", ctx=ctx, outcome=outcome
    )
    if job.state == EXPIRED:
        await refund_job(uow, job, ctx)
    return job.id
