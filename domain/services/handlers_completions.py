"""LLM completions (issue 18; rules v5): nodes advertise the models they hold warm; a
completion signer opens a completion under a consumer's delegation; the serving node commits
it and is paid at once; a signer (or anyone, once its window passed) aborts an uncommitted
one (``domain.completions``)."""

from __future__ import annotations

from domain import commands as c
from domain.api_keys import ApiKey, compute_api_key_stream_id
from domain.completions import (
    COMMITTED,
    OPENED,
    STATE_CODES,
    Completion,
    CompletionUsage,
    WarmModel,
    compute_completion_id,
    compute_completion_settlement,
    compute_completion_stream_id,
)
from domain.errors import Rejection, RejectionCode, Unauthorized
from domain.ledger import (
    TREASURY_ACCOUNT,
    escrow_account,
    place_hold,
    post_hold,
    user_account,
    void_hold,
)
from domain.models import RegisteredModel, compute_model_stream_id
from domain.node import ACTIVE, Node
from domain.policy import LedgerPolicy
from domain.services.completion_rounds import request_sampling
from domain.services.context import CommandContext
from domain.services.escrow import transfer_payouts
from domain.services.rounds import rotate_round
from domain.services.unit_of_work import UnitOfWork
from domain.settlement import Payout
from domain.validators import Validator

ABORTED_BY_SIGNER = "aborted by a completion signer"
ABORTED_PAST_WINDOW = "commit window passed"


def is_completion_signer(policy: LedgerPolicy, actor: str) -> bool:
    """Whether ``actor`` may open and abort completions: a named completion signer, or any
    operator while the policy names none."""
    return actor in (policy.completion_signers or policy.operators)


async def handle_advertise_models(
    uow: UnitOfWork, cmd: c.AdvertiseModels, ctx: CommandContext
) -> str:
    """A node (its own key, as its heartbeats) says which registered models it holds warm."""
    ctx.require_rules_v5("node.advertise_models")
    if ctx.actor != cmd.node_id:
        raise Unauthorized("a node advertises with its own key", code=RejectionCode.NOT_THE_NODE)
    node = await uow.require(Node, cmd.node_id)
    if cmd.models and not cmd.endpoint:
        raise Rejection(
            "a node serving models names the endpoint the API reaches it at",
            code=RejectionCode.LLM_ENDPOINT_REQUIRED,
        )
    seen: set[str] = set()
    for spec in cmd.models:
        if spec.model_id in seen:
            raise Rejection(
                f"model {spec.model_id} is listed twice", code=RejectionCode.MODEL_ADVERTISED_TWICE
            )
        seen.add(spec.model_id)
        await uow.require(RegisteredModel, compute_model_stream_id(spec.model_id))
    models = tuple(WarmModel(spec.model_id, spec.capacity) for spec in cmd.models)
    node.advertise_models(models=models, endpoint=cmd.endpoint, now_ns=ctx.now_ns)
    return node.id


async def handle_declare_check_models(
    uow: UnitOfWork, cmd: c.DeclareCheckModels, ctx: CommandContext
) -> str:
    """A validator (its own key) says which registered models it checks: the draw of a
    sampled completion picks only among its model's declarers (``completion_rounds``)."""
    ctx.require_rules_v5("validator.declare_models")
    if ctx.actor != cmd.validator_id:
        raise Unauthorized(
            "a validator declares its models with its own key",
            code=RejectionCode.NOT_THE_VALIDATOR,
        )
    validator = await uow.require(Validator, cmd.validator_id)
    if len(set(cmd.models)) != len(cmd.models):
        raise Rejection("a model is listed twice", code=RejectionCode.MODEL_DECLARED_TWICE)
    for model_id in cmd.models:
        await uow.require(RegisteredModel, compute_model_stream_id(model_id))
    validator.declare_check_models(models=tuple(cmd.models), now_ns=ctx.now_ns)
    return validator.id


async def handle_open_completion(
    uow: UnitOfWork, cmd: c.OpenCompletion, ctx: CommandContext
) -> str:
    """Open a completion, its refusals in this order: the signer, the key, the model, the
    context length, the delegation (revoked, expired, the escrow within the cap), the node
    (active, the model warm), the consumer's funds. The escrow is held from the key's
    consumer and reserved on the key in the same command."""
    ctx.require_rules_v5("completion.open")
    if not is_completion_signer(ctx.policy, ctx.actor):
        raise Unauthorized(
            f"{ctx.actor} is not a completion signer of this ledger",
            code=RejectionCode.COMPLETION_SIGNER_NOT_ALLOWED,
        )
    key = await uow.require(ApiKey, compute_api_key_stream_id(cmd.key_id))
    model = await uow.require(RegisteredModel, compute_model_stream_id(cmd.model_id))
    if cmd.prompt_tokens_max + cmd.max_tokens > model.context_tokens:
        raise Rejection(
            f"{cmd.prompt_tokens_max} prompt and {cmd.max_tokens} completion tokens exceed "
            f"{cmd.model_id}'s context of {model.context_tokens}",
            code=RejectionCode.COMPLETION_CONTEXT_EXCEEDED,
        )
    escrow = model.compute_price(input_tokens=cmd.prompt_tokens_max, output_tokens=cmd.max_tokens)
    completion_id = compute_completion_id(ctx.command_id)
    key.reserve_spend(completion_id=completion_id, amount=escrow, now_ns=ctx.now_ns)
    node = await uow.require(Node, cmd.node_id)
    if node.state != ACTIVE:
        raise Rejection(f"node {node.id} is {node.state}", code=RejectionCode.NODE_NOT_ACTIVE)
    if node.get_warm_model(cmd.model_id) is None:
        raise Rejection(
            f"node {node.id} does not hold {cmd.model_id} warm",
            code=RejectionCode.NODE_MODEL_NOT_WARM,
        )
    completion = Completion.open(
        completion_id,
        consumer=key.consumer,
        key_id=cmd.key_id,
        model_id=cmd.model_id,
        node_id=node.id,
        provider=node.owner,
        request_digest=cmd.request_digest,
        prompt_tokens_max=cmd.prompt_tokens_max,
        max_tokens=cmd.max_tokens,
        greedy=cmd.greedy,
        escrow=escrow,
        opened_by=ctx.actor,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
    )
    uow.add(completion)
    place_hold(
        await uow.account(user_account(key.consumer)),
        await uow.open_new_account(escrow_account(completion.id)),
        transfer_id=completion.escrow_hold_id,
        amount=escrow,
        reason=f"escrow for {completion_id}",
        now_ns=ctx.now_ns,
    )
    return completion.id


async def handle_commit_completion(
    uow: UnitOfWork, cmd: c.CommitCompletion, ctx: CommandContext
) -> str:
    """The serving node commits its usage: charged at the model's prices and settled at
    once (optimistically: a sampled check may still slash it), the unused escrow back to
    the consumer and off the key's spent amount, the charge added to the node's tally."""
    ctx.require_rules_v5("completion.commit")
    completion = await uow.require(Completion, compute_completion_stream_id(cmd.completion_id))
    completion.check_commit(
        node_id=ctx.actor, prompt_tokens=cmd.prompt_tokens, completion_tokens=cmd.completion_tokens
    )
    model = await uow.require(RegisteredModel, compute_model_stream_id(completion.model_id))
    charge = model.compute_price(
        input_tokens=cmd.prompt_tokens, output_tokens=cmd.completion_tokens
    )
    payouts = await _settle(uow, completion, charge, ctx)
    key = await uow.require(ApiKey, compute_api_key_stream_id(completion.key_id))
    key.release_spend(
        completion_id=completion.completion_id,
        amount=completion.escrow - charge,
        now_ns=ctx.now_ns,
    )
    completion.commit(
        node_id=ctx.actor,
        usage=CompletionUsage(
            cmd.prompt_tokens, cmd.completion_tokens, cmd.commitment, cmd.proof_digest
        ),
        charge=charge,
        payouts=payouts,
        now_ns=ctx.now_ns,
    )
    if charge:
        node = await uow.require(Node, completion.node_id)
        node.record_completion_charge(
            completion_id=completion.completion_id,
            charge=charge,
            window_ns=ctx.policy.completion_challenge_window_ns,
            now_ns=ctx.now_ns,
        )
    # Whether it is checked is decided by a beacon epoch that closes after this commit, so
    # the node cannot know it while it works (``completion_rounds``).
    await request_sampling(uow, completion, ctx)
    return completion.id


async def handle_abort_completion(
    uow: UnitOfWork, cmd: c.AbortCompletion, ctx: CommandContext
) -> str:
    """Void an uncommitted completion: the escrow goes back whole and off the key's spent
    amount; the node is paid nothing (a node failing mid-stream delivered nothing billable)."""
    ctx.require_rules_v5("completion.abort")
    completion = await uow.require(Completion, compute_completion_stream_id(cmd.completion_id))
    return await _abort(uow, completion, cmd.reason, ctx)


async def handle_expire_completion(
    uow: UnitOfWork, cmd: c.ExpireCompletion, ctx: CommandContext
) -> str:
    """Anyone cranks an overdue completion: an uncommitted one past its commit window is
    aborted (as ``completion.abort`` by anyone); a sampled one whose reveal window closed has
    its absent validators replaced, or its round given up (``rounds.rotate_round``)."""
    ctx.require_rules_v5("completion.expire")
    completion = await uow.require(Completion, compute_completion_stream_id(cmd.completion_id))
    if completion.state == OPENED:
        return await _abort(uow, completion, "", ctx)
    if completion.state != COMMITTED:
        raise Rejection(
            f"completion {cmd.completion_id} is {completion.state}: nothing to expire",
            code=STATE_CODES[completion.state],
        )
    await rotate_round(uow, completion, ctx)
    return completion.id


async def _abort(uow: UnitOfWork, completion: Completion, reason: str, ctx: CommandContext) -> str:
    is_signer = is_completion_signer(ctx.policy, ctx.actor)
    completion.check_abort(actor=ctx.actor, is_signer=is_signer, now_ns=ctx.now_ns)
    amount = void_hold(
        await uow.account(user_account(completion.consumer)),
        await uow.account(escrow_account(completion.id)),
        transfer_id=completion.escrow_hold_id,
        now_ns=ctx.now_ns,
    )
    key = await uow.require(ApiKey, compute_api_key_stream_id(completion.key_id))
    key.release_spend(completion_id=completion.completion_id, amount=amount, now_ns=ctx.now_ns)
    reason = reason or (ABORTED_BY_SIGNER if is_signer else ABORTED_PAST_WINDOW)
    completion.abort(
        actor=ctx.actor, is_signer=is_signer, reason=reason, amount=amount, now_ns=ctx.now_ns
    )
    return completion.id


async def _settle(
    uow: UnitOfWork, completion: Completion, charge: int, ctx: CommandContext
) -> tuple[Payout, ...]:
    """Post the escrow and pay it out (``compute_completion_settlement``); a charge of 0
    voids it instead."""
    consumer = await uow.account(user_account(completion.consumer))
    escrow = await uow.account(escrow_account(completion.id))
    if charge == 0:
        void_hold(consumer, escrow, transfer_id=completion.escrow_hold_id, now_ns=ctx.now_ns)
        return ()
    post_hold(consumer, escrow, transfer_id=completion.escrow_hold_id, now_ns=ctx.now_ns)
    payouts = compute_completion_settlement(
        charge=charge,
        escrow=completion.escrow,
        provider_account=user_account(completion.provider),
        consumer_account=user_account(completion.consumer),
        treasury_account=TREASURY_ACCOUNT,
        policy=ctx.policy,
    )
    await transfer_payouts(
        uow,
        escrow,
        payouts,
        transfer_prefix=f"{completion.id}:settle",
        describe=lambda payout: f"{payout.role} for {completion.completion_id}",
        now_ns=ctx.now_ns,
    )
    return payouts
