"""Fraud proofs and canaries: a pass vote on a wrong result costs its validator (issue 14,
attack 5).

``job.prove_fraud``: within ``fraud_window_ns`` of a round's decision (``domain.fraud``),
anyone (public jobs; ``require_challenger_allowed`` is the hook for private jobs) presents
a small proof that the judged result is wrong (``domain.services.fraud_checks``). The ledger
checks it deterministically; if it holds, every validator that voted pass on that result is
slashed ``fraud_slash_bps`` of its stake, once per (validator, job, result) (the evidence key
of ``compute_fraud_evidence_key``): ``fraud_challenger_reward_bps`` of each slash to the
challenger, the rest to the consumer when the wrong result was paid for (a passed round; its
node is then slashed too, as for a rejection), else burned. A false proof is refused and
writes nothing: it earns nothing and costs nobody anything.

``canary.seal`` / ``canary.reveal`` (operators; ``domain.canary``): a canary sealed before
its job was submitted is revealed after the decision; its pass voters are slashed as by a
fraud proof (the reveal carries one: the operators are trusted with nothing), the
challenger's share going to the treasury that funds the canaries, and the canary's own node
(the planters') not slashed again. A canary the round failed is recorded as caught.
"""

from __future__ import annotations

import msgspec

from domain import commands as c
from domain.canary import CanarySeal, compute_canary_digest, compute_seal_id
from domain.errors import InvalidTransition, Rejection, RejectionCode
from domain.fraud import JobDecision, compute_decision_id
from domain.job import Job
from domain.ledger import BURN_ACCOUNT, TREASURY_ACCOUNT, user_account
from domain.node import DEREGISTERED, Node
from domain.policy import BPS, RULES_V5
from domain.services.context import CommandContext
from domain.services.fraud_checks import check_fraud_evidence
from domain.services.slashing import slash_node, take_stake
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator


def require_challenger_allowed(job: Job, actor: str) -> None:
    """Who may prove a job's result wrong: for public jobs (all jobs today) anyone. The
    real-jobs issue makes private jobs, whose data only the parties holding its key can
    read: this is where it names them, refusing others with ``challenger_not_allowed``."""


def encode_evidence(evidence: c.FraudEvidence) -> bytes:
    """The evidence as the ``FraudProven`` event keeps it (JSON with its ``type`` tag)."""
    return msgspec.json.encode(evidence)


def decode_evidence(data: bytes) -> c.FraudEvidence:
    return msgspec.json.decode(data, type=c.FraudEvidence)


async def handle_prove_fraud(uow: UnitOfWork, cmd: c.ProveFraud, ctx: CommandContext) -> str:
    """Check a fraud proof against a decided round; slash its pass voters and reward."""
    job = await uow.require(Job, cmd.job_id)
    require_challenger_allowed(job, ctx.actor)
    decision = await uow.require(JobDecision, compute_decision_id(cmd.job_id, cmd.attempt))
    decision.require_challengeable(policy=ctx.policy, now_ns=ctx.now_ns)
    _require_fraud(job, decision, cmd.evidence, ctx)
    await _slash_pass_voters(
        uow, decision, cmd.evidence, rewarded=user_account(ctx.actor), canary=False, ctx=ctx
    )
    if decision.passed:
        node = await uow.require(Node, decision.node_id)
        if node.state != DEREGISTERED:
            await slash_node(
                uow,
                node,
                reason=f"result of {job.id} proven wrong",
                evidence=encode_evidence(cmd.evidence),
                harmed_account=user_account(decision.consumer),
                ctx=ctx,
            )
    return decision.id


async def handle_seal_canary(uow: UnitOfWork, cmd: c.SealCanary, ctx: CommandContext) -> str:
    """An operator seals a canary's digest before the canary job is submitted."""
    ctx.require_operator()
    if await uow.get(CanarySeal, compute_seal_id(cmd.digest)) is not None:
        raise InvalidTransition(
            "this canary digest is already sealed", code=RejectionCode.CANARY_ALREADY_SEALED
        )
    seal = CanarySeal.seal(operator=ctx.actor, digest=cmd.digest, now_ns=ctx.now_ns)
    uow.add(seal)
    return seal.id


async def handle_reveal_canary(uow: UnitOfWork, cmd: c.RevealCanary, ctx: CommandContext) -> str:
    """Reveal a sealed canary after its decision: slash its pass voters (with a fraud
    proof), or record it as caught."""
    ctx.require_operator()
    seal = await uow.get(CanarySeal, compute_seal_id(compute_canary_digest(cmd.job_id, cmd.salt)))
    if seal is None:
        raise Rejection(
            f"no canary seal matches {cmd.job_id} and this salt",
            code=RejectionCode.CANARY_NOT_SEALED,
        )
    job = await uow.require(Job, cmd.job_id)
    decision = await uow.require(JobDecision, compute_decision_id(cmd.job_id, cmd.attempt))
    if await _first_position(uow, seal.id) > await _first_position(uow, job.id):
        raise Rejection(
            f"the seal was recorded after {job.id} was submitted: it is no canary",
            code=RejectionCode.CANARY_SEALED_AFTER_JOB,
        )
    seal.reveal(job_id=job.id, attempt=cmd.attempt, now_ns=ctx.now_ns)
    if not decision.pass_votes:
        decision.reveal_caught_canary(seal_id=seal.id, now_ns=ctx.now_ns)
        return decision.id
    if cmd.evidence is None:
        raise Rejection(
            "validators voted pass on this canary: prove its result wrong",
            code=RejectionCode.CANARY_EVIDENCE_REQUIRED,
        )
    decision.require_challengeable(policy=ctx.policy, now_ns=ctx.now_ns)
    _require_fraud(job, decision, cmd.evidence, ctx)
    await _slash_pass_voters(
        uow, decision, cmd.evidence, rewarded=TREASURY_ACCOUNT, canary=True, ctx=ctx
    )
    return decision.id


def _require_fraud(
    job: Job, decision: JobDecision, evidence: c.FraudEvidence, ctx: CommandContext
) -> None:
    if isinstance(evidence, c.MatmulEntryEvidence) and ctx.policy.rules_version < RULES_V5:
        raise Rejection(
            "matmul entry evidence is a rules v5 fraud proof",
            code=RejectionCode.FRAUD_EVIDENCE_KIND_MISMATCH,
        )
    finding = check_fraud_evidence(
        job_id=job.id,
        node_id=decision.node_id,
        workload=job.workload,
        commitment=decision.commitment,
        evidence=evidence,
    )
    if finding is not None:
        code, message = finding
        raise Rejection(f"no fraud proven: {message}", code=code)


async def _slash_pass_voters(
    uow: UnitOfWork,
    decision: JobDecision,
    evidence: c.FraudEvidence,
    *,
    rewarded: str,
    canary: bool,
    ctx: CommandContext,
) -> None:
    """Record the proof, then slash each pass voter once for this result: the reward share
    to ``rewarded``, the rest to the consumer (a paid wrong result) or burned."""
    decision.prove_fraud(
        challenger=ctx.actor, evidence=encode_evidence(evidence), canary=canary, now_ns=ctx.now_ns
    )
    harmed = user_account(decision.consumer) if decision.passed else BURN_ACCOUNT
    for index, vote in enumerate(decision.pass_votes):
        validator = await uow.require(Validator, vote.validator_id)
        if decision.evidence_key in validator.slashed_for:
            continue
        # Bonded and unbonding stake alike: stake stays slashable until it is withdrawn, so
        # unbonding before a fraud proof lands saves nothing (issue 14, attack 4).
        amount = (validator.stake + validator.unbonding) * ctx.policy.fraud_slash_bps // BPS
        from_unbonding = validator.slash(
            amount=amount,
            reason=f"voted pass on {decision.job_id}, proven wrong",
            evidence_key=decision.evidence_key,
            evidence=vote.signature,
            now_ns=ctx.now_ns,
        )
        reward = amount * ctx.policy.fraud_challenger_reward_bps // BPS
        await take_stake(
            uow,
            validator.id,
            amount=amount,
            from_unbonding=from_unbonding,
            legs=(
                (rewarded, reward, f"fraud proof reward: {validator.id} on {decision.job_id}"),
                (harmed, amount - reward, f"fraud slash: {validator.id} on {decision.job_id}"),
            ),
            transfer_prefix=f"{ctx.command_id}:fraud:{index}",
            ctx=ctx,
        )


async def _first_position(uow: UnitOfWork, stream_id: str) -> int:
    """The log position of a stream's first record."""
    records = await uow.store.read_stream(stream_id)
    if not records:
        raise AssertionError(f"{stream_id} was loaded but has no records")
    return records[0].position
