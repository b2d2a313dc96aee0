"""``model.register`` (issue 18, item 2; rules v5): an operator records a model to serve."""

from __future__ import annotations

from domain import commands as c
from domain.errors import InvalidTransition, RejectionCode
from domain.models import RegisteredModel, compute_model_stream_id
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork


async def handle_register_model(uow: UnitOfWork, cmd: c.RegisterModel, ctx: CommandContext) -> str:
    """Record a model once: the operators decide what the network serves and at what price
    (consumers pay by it, validators recompute by it); a registered id never changes."""
    ctx.require_rules_v5("model.register")
    ctx.require_operator()
    stream_id = compute_model_stream_id(cmd.model_id)
    if await uow.get(RegisteredModel, stream_id) is not None:
        raise InvalidTransition(
            f"model {cmd.model_id} is registered already (another model takes another id)",
            code=RejectionCode.MODEL_ALREADY_REGISTERED,
        )
    model = RegisteredModel.register(
        model_id=cmd.model_id,
        content_digest=cmd.content_digest,
        architecture=cmd.architecture,
        dtype=cmd.dtype,
        context_tokens=cmd.context_tokens,
        price_per_1k_input_tokens=cmd.price_per_1k_input_tokens,
        price_per_1k_output_tokens=cmd.price_per_1k_output_tokens,
        registered_by=ctx.actor,
        now_ns=ctx.now_ns,
    )
    uow.add(model)
    return model.id
