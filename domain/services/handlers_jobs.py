"""Handlers for accounts and jobs: deposits, escrow, claims, results, verdicts, settlement."""

from __future__ import annotations

import hashlib

from domain import commands as c
from domain.errors import Rejection, RejectionCode, Unauthorized
from domain.job import (
    CLAIMED,
    EXPIRED,
    RESULT_COMMITTED,
    SUBMITTED,
    Job,
    ResultCommitment,
    Verdict,
    WorkloadSpec,
)
from domain.job_states import STATE_CODES
from domain.ledger import (
    BOUNDARY_ACCOUNT,
    TREASURY_ACCOUNT,
    escrow_account,
    place_hold,
    post_hold,
    transfer,
    user_account,
    void_hold,
)
from domain.node import Node
from domain.services.context import CommandContext
from domain.services.handlers_verdicts import draw_replacements, draw_validators, slash_node
from domain.services.unit_of_work import UnitOfWork
from domain.settlement import compute_settlement
from domain.validators import Validator
from proofs import bls
from proofs.quorum import encode_qc, make_qc, verdict_message

JOB_ID_HEX_CHARS = 24


def compute_job_id(command_id: str) -> str:
    """Job ids derive from the submitting command, so a retried submit names the same job."""
    return "job-" + hashlib.sha256(command_id.encode()).hexdigest()[:JOB_ID_HEX_CHARS]


async def handle_deposit(uow: UnitOfWork, cmd: c.Deposit, ctx: CommandContext) -> str:
    ctx.require_operator()
    account_id = user_account(cmd.account_owner)
    transfer(
        await uow.account(BOUNDARY_ACCOUNT),
        await uow.account(account_id),
        transfer_id=f"{ctx.command_id}:deposit",
        amount=cmd.amount,
        reason=f"deposit {cmd.chain_reference}".strip(),
        now_ns=ctx.now_ns,
    )
    return account_id


async def handle_withdraw(uow: UnitOfWork, cmd: c.Withdraw, ctx: CommandContext) -> str:
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
        now_ns=ctx.now_ns,
    )
    uow.add(job)
    place_hold(
        await uow.account(user_account(ctx.actor)),
        await uow.account(escrow_account(job.id)),
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
    return job.id


async def handle_commit_result(uow: UnitOfWork, cmd: c.CommitResult, ctx: CommandContext) -> str:
    job = await uow.require(Job, cmd.job_id)
    job.commit_result(
        node_id=ctx.actor,
        result=ResultCommitment(cmd.commitment, cmd.artifact_digest, cmd.proof_digest),
        now_ns=ctx.now_ns,
    )
    # Validators are drawn from the log hash as it stands when the result is committed.
    draw = await draw_validators(uow, seed_id=job.id, count=job.redundancy, policy=ctx.policy)
    job.assign_validators(
        validators=draw.validators,
        weights=draw.weights,
        log_position=draw.head.position,
        log_hash=draw.head.hash,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
    )
    return job.id


async def handle_commit_verdict(uow: UnitOfWork, cmd: c.CommitVerdict, ctx: CommandContext) -> str:
    """An assigned validator commits a salted hash of its verdict (commit phase)."""
    job = await uow.require(Job, cmd.job_id)
    await uow.require(Validator, ctx.actor)
    job.commit_verdict(validator_id=ctx.actor, verdict_hash=cmd.verdict_hash, now_ns=ctx.now_ns)
    return job.id


async def handle_record_verdict(uow: UnitOfWork, cmd: c.RecordVerdict, ctx: CommandContext) -> str:
    """Reveal a committed verdict; on quorum, finalise: settle, or slash and reassign."""
    job = await uow.require(Job, cmd.job_id)
    validator = await uow.require(Validator, ctx.actor)
    if job.result is None:
        raise Rejection(
            f"job {job.id} has no committed result", code=RejectionCode.NO_RESULT_COMMITTED
        )
    message = verdict_message(job.id, job.result.commitment, cmd.passed)
    if not bls.verify(validator.bls_public_key, message, cmd.signature):
        raise Rejection(
            "the verdict's BLS signature does not verify",
            code=RejectionCode.VERDICT_SIGNATURE_INVALID,
        )
    job.reveal_verdict(
        validator_id=validator.id,
        verdict=Verdict(cmd.passed, cmd.reason, cmd.signature),
        salt=cmd.salt,
        now_ns=ctx.now_ns,
    )
    await _finalize_if_quorum(uow, job, ctx)
    return job.id


async def _finalize_if_quorum(uow: UnitOfWork, job: Job, ctx: CommandContext) -> None:
    outcome = job.compute_quorum_outcome(ctx.policy)
    if outcome is None:
        return
    signers = job.majority_validators(outcome)
    certificate = await _quorum_certificate(uow, job, signers, outcome)
    if job.finalize(certificate=certificate, policy=ctx.policy, now_ns=ctx.now_ns):
        await _settle(uow, job, signers, ctx)
        return
    await slash_node(
        uow,
        await uow.require(Node, job.node_id),
        reason=f"result of {job.id} rejected",
        evidence=certificate,
        harmed_account=user_account(job.consumer),
        ctx=ctx,
    )
    if not job.reassign_or_expire(reason="result rejected", policy=ctx.policy, now_ns=ctx.now_ns):
        await _refund(uow, job, ctx)


async def handle_release_job(uow: UnitOfWork, cmd: c.ReleaseJob, ctx: CommandContext) -> str:
    """The claiming node hands the job back; its escrow stays held for the next claim."""
    job = await uow.require(Job, cmd.job_id)
    job.release(node_id=ctx.actor, reason=cmd.reason or "released by the node", now_ns=ctx.now_ns)
    return job.id


async def handle_expire_job(uow: UnitOfWork, cmd: c.ExpireJob, ctx: CommandContext) -> str:
    """Anyone may crank an overdue job: unclaimed past its deadline, a missed result window,
    or a verdict round whose reveal window closed (absent validators replaced, else the job
    goes back to the market)."""
    job = await uow.require(Job, cmd.job_id)
    if job.state == SUBMITTED:
        job.expire(now_ns=ctx.now_ns)
    elif job.state == CLAIMED:
        job.reassign_or_expire(reason="result window missed", policy=ctx.policy, now_ns=ctx.now_ns)
    elif job.state == RESULT_COMMITTED:
        await _rotate_verdict_round(uow, job, ctx)
    elif job.state != EXPIRED:
        raise Rejection(
            f"job {job.id} is {job.state}: nothing to expire", code=STATE_CODES[job.state]
        )
    if job.state == EXPIRED:
        await _refund(uow, job, ctx)
    return job.id


async def _rotate_verdict_round(uow: UnitOfWork, job: Job, ctx: CommandContext) -> None:
    verdict_round = job.round
    if verdict_round is None:
        raise Rejection(
            f"job {job.id} has no validators", code=RejectionCode.VALIDATORS_NOT_ASSIGNED
        )
    draw = await draw_replacements(uow, verdict_round, subject=job.id, ctx=ctx)
    if draw is not None:
        job.replace_absent_validators(
            replacements=draw.validators,
            weights=draw.weights,
            log_position=draw.head.position,
            log_hash=draw.head.hash,
            policy=ctx.policy,
            now_ns=ctx.now_ns,
        )
        return
    job.abandon_verdict_round(policy=ctx.policy, now_ns=ctx.now_ns)


async def _quorum_certificate(
    uow: UnitOfWork, job: Job, signers: tuple[str, ...], outcome: bool
) -> bytes:
    """One aggregate BLS signature of the majority, over the job's ordered validator set."""
    assert job.result is not None
    keys = [(await uow.require(Validator, vid)).bls_public_key for vid in job.validators]
    signatures = {job.validators.index(v): job.verdicts[v].signature for v in signers}
    message = verdict_message(job.id, job.result.commitment, outcome)
    return encode_qc(make_qc(keys, signatures, message, check_signatures=False))


async def _settle(uow: UnitOfWork, job: Job, signers: tuple[str, ...], ctx: CommandContext) -> None:
    consumer = await uow.account(user_account(job.consumer))
    escrow = await uow.account(escrow_account(job.id))
    post_hold(consumer, escrow, transfer_id=job.escrow_hold_id, now_ns=ctx.now_ns)
    validator_owners = []
    for validator_id in signers:
        validator_owners.append(user_account((await uow.require(Validator, validator_id)).owner))
    payouts = compute_settlement(
        price=job.price,
        max_price=job.max_price,
        provider_account=user_account(job.provider),
        validator_accounts=tuple(validator_owners),
        consumer_account=user_account(job.consumer),
        treasury_account=TREASURY_ACCOUNT,
        policy=ctx.policy,
    )
    for index, payout in enumerate(payouts):
        transfer(
            escrow,
            await uow.account(payout.account),
            transfer_id=f"{job.id}:settle:{index}",
            amount=payout.amount,
            reason=f"{payout.role} for {job.id}",
            now_ns=ctx.now_ns,
        )
    job.settle(payouts=payouts, now_ns=ctx.now_ns)


async def _refund(uow: UnitOfWork, job: Job, ctx: CommandContext) -> None:
    amount = void_hold(
        await uow.account(user_account(job.consumer)),
        await uow.account(escrow_account(job.id)),
        transfer_id=job.escrow_hold_id,
        now_ns=ctx.now_ns,
    )
    job.refund(amount=amount, now_ns=ctx.now_ns)
