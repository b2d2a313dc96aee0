"""Handlers for node, validator and stake commands."""

from __future__ import annotations

import hashlib

from domain import commands as c
from domain.errors import NotFound, Rejection, RejectionCode, Unauthorized
from domain.ledger import (
    stake_account,
    transfer,
    unbonding_account,
    user_account,
)
from domain.node import GpuClaim, Node
from domain.services.context import CommandContext
from domain.services.directories import add_member
from domain.services.rounds import ATTESTATION_ROUND, open_round
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator
from proofs import bls


async def handle_register_node(uow: UnitOfWork, cmd: c.RegisterNode, ctx: CommandContext) -> str:
    if await uow.get(Node, ctx.actor) is not None:
        raise Rejection(
            f"node {ctx.actor} is already registered", code=RejectionCode.NODE_ALREADY_REGISTERED
        )
    node = Node.register(
        ctx.actor,
        owner=cmd.owner or ctx.actor,
        region=cmd.region,
        gpus=tuple(GpuClaim(g.name, g.memory_mib) for g in cmd.gpus),
        gpu_class=cmd.gpu_class,
        price=cmd.price,
        now_ns=ctx.now_ns,
    )
    uow.add(node)
    await add_member(uow, "nodes", node.id)
    return node.id


async def handle_bond_stake(uow: UnitOfWork, cmd: c.BondStake, ctx: CommandContext) -> str:
    """Only the owner bonds, from its own account (``bond_must_be_signed_by_owner``)."""
    target = await _load_staker(uow, cmd.target)
    if isinstance(target, Node):
        target.bond(signer=ctx.actor, amount=cmd.amount, policy=ctx.policy, now_ns=ctx.now_ns)
    else:
        target.bond(signer=ctx.actor, amount=cmd.amount, now_ns=ctx.now_ns)
    transfer(
        await uow.account(user_account(ctx.actor)),
        await uow.account(stake_account(target.id)),
        transfer_id=f"{ctx.command_id}:bond",
        amount=cmd.amount,
        reason="stake bonded",
        now_ns=ctx.now_ns,
    )
    return target.id


async def handle_request_unbond(uow: UnitOfWork, cmd: c.RequestUnbond, ctx: CommandContext) -> str:
    target = await _load_staker(uow, cmd.target)
    target.require_owner(ctx.actor)
    target.request_unbond(amount=cmd.amount, policy=ctx.policy, now_ns=ctx.now_ns)
    transfer(
        await uow.account(stake_account(target.id)),
        await uow.account(unbonding_account(target.id)),
        transfer_id=f"{ctx.command_id}:unbond",
        amount=cmd.amount,
        reason="unbonding",
        now_ns=ctx.now_ns,
    )
    return target.id


async def handle_withdraw_stake(uow: UnitOfWork, cmd: c.WithdrawStake, ctx: CommandContext) -> str:
    target = await _load_staker(uow, cmd.target)
    target.require_owner(ctx.actor)
    amount = target.withdraw_unbonded(now_ns=ctx.now_ns)
    transfer(
        await uow.account(unbonding_account(target.id)),
        await uow.account(user_account(target.owner)),
        transfer_id=f"{ctx.command_id}:withdraw",
        amount=amount,
        reason="stake withdrawn",
        now_ns=ctx.now_ns,
    )
    return target.id


async def handle_request_challenge(
    uow: UnitOfWork, cmd: c.RequestAttestationChallenge, ctx: CommandContext
) -> str:
    node = await uow.require(Node, cmd.node_id)
    node.require_owner(ctx.actor)
    # The seed mixes the log head with this command, so the node cannot precompute the answer.
    head = await uow.store.head()
    seed = hashlib.sha256(b"flopledger/attestation/v1" + head.hash + ctx.command_id.encode())
    node.challenge_attestation(
        nonce=ctx.command_id[:32],
        seed=seed.hexdigest(),
        size=cmd.size,
        deadline_ns=ctx.now_ns + ctx.policy.attestation_window_ns,
        now_ns=ctx.now_ns,
    )
    return node.id


async def handle_submit_attestation(
    uow: UnitOfWork, cmd: c.SubmitAttestation, ctx: CommandContext
) -> str:
    node = await uow.require(Node, cmd.node_id)
    if ctx.actor != node.id:
        raise Unauthorized(
            "only the node's own key answers its attestation challenge",
            code=RejectionCode.NOT_THE_NODE,
        )
    node.submit_attestation(
        nonce=cmd.nonce,
        inventory_digest=cmd.inventory_digest,
        commitment=cmd.commitment,
        timings_ns=tuple(cmd.timings_ns),
        signature=b"",
        now_ns=ctx.now_ns,
    )
    # Without any validator to draw, the round stays closed and an operator decides.
    await open_round(uow, ATTESTATION_ROUND, node, count=ctx.policy.attestation_validators, ctx=ctx)
    return node.id


async def handle_decide_attestation(
    uow: UnitOfWork, cmd: c.DecideAttestation, ctx: CommandContext
) -> str:
    ctx.require_operator()
    node = await uow.require(Node, cmd.node_id)
    if cmd.accepted:
        node.accept_attestation(certificate=cmd.certificate, policy=ctx.policy, now_ns=ctx.now_ns)
    else:
        node.reject_attestation(certificate=cmd.certificate, reason=cmd.reason, now_ns=ctx.now_ns)
    return node.id


async def handle_unjail(uow: UnitOfWork, cmd: c.UnjailNode, ctx: CommandContext) -> str:
    node = await uow.require(Node, cmd.node_id)
    node.require_owner(ctx.actor)
    node.unjail(policy=ctx.policy, now_ns=ctx.now_ns)
    return node.id


async def handle_deregister(uow: UnitOfWork, cmd: c.DeregisterNode, ctx: CommandContext) -> str:
    node = await uow.require(Node, cmd.node_id)
    node.require_owner(ctx.actor)
    node.deregister(now_ns=ctx.now_ns)
    return node.id


async def handle_register_validator(
    uow: UnitOfWork, cmd: c.RegisterValidator, ctx: CommandContext
) -> str:
    if await uow.get(Validator, ctx.actor) is not None:
        raise Rejection(
            f"validator {ctx.actor} is already registered",
            code=RejectionCode.VALIDATOR_ALREADY_REGISTERED,
        )
    if not bls.pop_verify(cmd.bls_public_key, cmd.proof_of_possession):
        raise Rejection(
            "the BLS proof of possession does not verify for this key",
            code=RejectionCode.PROOF_OF_POSSESSION_INVALID,
        )
    validator = Validator.register(
        ctx.actor,
        owner=cmd.owner or ctx.actor,
        bls_public_key=cmd.bls_public_key,
        proof_of_possession=cmd.proof_of_possession,
        now_ns=ctx.now_ns,
        region=cmd.region or "",
    )
    uow.add(validator)
    await add_member(uow, "validators", validator.id)
    return validator.id


async def _load_staker(uow: UnitOfWork, target_id: str) -> Node | Validator:
    try:
        node = await uow.get(Node, target_id)
    except NotFound:
        node = None
    if node is not None:
        return node
    try:
        validator = await uow.get(Validator, target_id)
    except NotFound:
        validator = None
    if validator is None:
        raise NotFound(
            f"no node or validator {target_id}", code=RejectionCode.STAKE_TARGET_NOT_FOUND
        )
    return validator
