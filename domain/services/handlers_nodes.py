"""Handlers for node, validator and stake commands."""

from __future__ import annotations

import hashlib

from domain import commands as c
from domain.attestation import TIER_OPERATOR
from domain.devices import load_device_table
from domain.errors import InvalidTransition, NotFound, Rejection, RejectionCode, Unauthorized
from domain.inventory import resolve_gpus
from domain.ledger import (
    stake_account,
    transfer,
    unbonding_account,
    user_account,
)
from domain.node import GpuClaim, Node
from domain.operator_powers import check_override_reason
from domain.policy import RULES_V3, RULES_V4
from domain.services.attestation import add_to_uuid_directories, challenge_timed
from domain.services.attestation_misses import slash_if_misses_due
from domain.services.context import CommandContext
from domain.services.directories import add_member
from domain.services.draws import get_participants, has_eligible
from domain.services.fees import charge_log_fee
from domain.services.rounds import ATTESTATION_ROUND, open_round
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator
from proofs import bls


async def handle_register_node(uow: UnitOfWork, cmd: c.RegisterNode, ctx: CommandContext) -> str:
    if await uow.get(Node, ctx.actor) is not None:
        raise Rejection(
            f"node {ctx.actor} is already registered", code=RejectionCode.NODE_ALREADY_REGISTERED
        )
    is_v3 = ctx.policy.rules_version >= RULES_V3
    if is_v3:  # each GPU a model of the device table, the class within theirs
        gpus = resolve_gpus(cmd.gpus, gpu_class=cmd.gpu_class, table=load_device_table())
    else:
        gpus = tuple(GpuClaim(g.name, g.memory_mib) for g in cmd.gpus)
    node = Node.register(
        ctx.actor,
        owner=cmd.owner or ctx.actor,
        region=cmd.region,
        gpus=gpus,
        gpu_class=cmd.gpu_class,
        price=cmd.price,
        now_ns=ctx.now_ns,
    )
    uow.add(node)
    await add_member(uow, "nodes", node.id)
    if is_v3:
        await add_to_uuid_directories(uow, node.id, gpus)
    return node.id


async def handle_update_inventory(
    uow: UnitOfWork, cmd: c.UpdateInventory, ctx: CommandContext
) -> str:
    """The node's new GPU list (rules v3), resolved as at registration; it claims again once
    a challenge of the new list passes."""
    _require_rules_v3(ctx, "node.inventory.update")
    node = await uow.require(Node, cmd.node_id)
    node.require_owner(ctx.actor)
    gpu_class = cmd.gpu_class or node.gpu_class
    gpus = resolve_gpus(cmd.gpus, gpu_class=gpu_class, table=load_device_table())
    known = node.gpus
    node.update_inventory(gpus=gpus, gpu_class=gpu_class, now_ns=ctx.now_ns)
    await add_to_uuid_directories(uow, node.id, gpus, known)
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
    await charge_log_fee(uow, ctx)
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
    await charge_log_fee(uow, ctx)
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
    if ctx.policy.rules_version >= RULES_V3:  # timed by the validators; the size is theirs
        await challenge_timed(uow, node, ctx)
        return node.id
    # The seed mixes the log head with this command, so the node cannot precompute the answer.
    head = await uow.head()
    seed = hashlib.sha256(b"flopledger/attestation/v1" + head.hash + ctx.command_id.encode())
    node.challenge_attestation(
        nonce=ctx.command_id[:32],
        seed=seed.hexdigest(),
        size=cmd.size,
        deadline_ns=ctx.now_ns + ctx.policy.attestation_window_ns,
        now_ns=ctx.now_ns,
    )
    return node.id


async def handle_rechallenge(uow: UnitOfWork, cmd: c.RechallengeNode, ctx: CommandContext) -> str:
    """An active validator or the node's owner challenges the node again (rules v3), at
    most once per ``rechallenge_interval_min_ns``."""
    _require_rules_v3(ctx, "node.attestation.rechallenge")
    node = await uow.require(Node, cmd.node_id)
    if ctx.actor not in (node.owner, node.id):
        validator = await uow.get(Validator, ctx.actor)
        if validator is None or not validator.is_active(ctx.policy):
            raise Unauthorized(
                f"{ctx.actor} is neither an active validator nor the owner of {node.id}",
                code=RejectionCode.RECHALLENGER_NOT_ALLOWED,
            )
    node.require_rechallenge_allowed(policy=ctx.policy, now_ns=ctx.now_ns)
    await challenge_timed(uow, node, ctx)
    return node.id


async def handle_submit_attestation(
    uow: UnitOfWork, cmd: c.SubmitAttestation, ctx: CommandContext
) -> str:
    if ctx.policy.rules_version >= RULES_V3:
        raise Rejection(
            "under rules v3 validators time the node themselves; a node's own report is "
            "not evidence (request a challenge: the drawn validators probe the node)",
            code=RejectionCode.ATTESTATION_BY_REPORT_RETIRED,
        )
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
    """An operator decides; under rules v3 only while no validator is assigned (bootstrap),
    recorded as tier ``operator``, and a rejection counts as a failed challenge; under
    rules v4 it names its reason (an override the audit lists)."""
    ctx.require_operator()
    check_override_reason(ctx.policy, cmd.reason)  # issue 16, item 5
    node = await uow.require(Node, cmd.node_id)
    if ctx.policy.rules_version < RULES_V3:
        if cmd.accepted:
            node.accept_attestation(
                certificate=cmd.certificate, policy=ctx.policy, now_ns=ctx.now_ns
            )
        else:
            node.reject_attestation(
                certificate=cmd.certificate, reason=cmd.reason, now_ns=ctx.now_ns
            )
        return node.id
    participants = await get_participants(uow, ctx.policy)
    eligible = has_eligible(participants, ATTESTATION_ROUND.excluded_owners(node))
    if node.attestation_round is not None or eligible:
        raise InvalidTransition(
            f"validators with stake can judge {node.id}'s attestation; they decide it (an "
            "operator decides only while the network has none: bootstrap)",
            code=RejectionCode.ATTESTATION_DECIDED_BY_VALIDATORS,
        )
    if cmd.accepted:
        node.accept_attestation(
            certificate=cmd.certificate, policy=ctx.policy, now_ns=ctx.now_ns, tier=TIER_OPERATOR
        )
        return node.id
    node.reject_attestation(
        certificate=cmd.certificate, reason=cmd.reason, now_ns=ctx.now_ns, policy=ctx.policy
    )
    await slash_if_misses_due(uow, node, ctx)
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
    if ctx.policy.rules_version >= RULES_V4:
        _check_registration_stake(cmd, ctx)
    validator = Validator.register(
        ctx.actor,
        owner=cmd.owner or ctx.actor,
        bls_public_key=cmd.bls_public_key,
        proof_of_possession=cmd.proof_of_possession,
        now_ns=ctx.now_ns,
        region=cmd.region or "",
    )
    uow.add(validator)
    if cmd.stake is not None:  # from the registering key's own account, whoever owns it
        validator.bond_registration_stake(amount=cmd.stake, now_ns=ctx.now_ns)
        transfer(
            await uow.account(user_account(ctx.actor)),
            await uow.account(stake_account(validator.id)),
            transfer_id=f"{ctx.command_id}:bond",
            amount=cmd.stake,
            reason="stake bonded",
            now_ns=ctx.now_ns,
        )
    await add_member(uow, "validators", validator.id)
    return validator.id


def _check_registration_stake(cmd: c.RegisterValidator, ctx: CommandContext) -> None:
    """Rules v4 (issue 16, item 8): a validator registers with at least the minimum stake, so
    that registering is never free."""
    minimum = ctx.policy.validator_stake_min
    if cmd.stake is None or cmd.stake < minimum:
        raise Rejection(
            f"a validator registers with at least {minimum} of stake (validator_stake_min), "
            f"not {cmd.stake or 0}: put it in the registration's stake field",
            code=RejectionCode.REGISTRATION_STAKE_BELOW_MINIMUM,
        )


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


def _require_rules_v3(ctx: CommandContext, kind: str) -> None:
    if ctx.policy.rules_version < RULES_V3:
        raise Rejection(
            f"{kind} needs rules v3 (this ledger's policy is rules v{ctx.policy.rules_version})",
            code=RejectionCode.RULES_V3_REQUIRED,
        )
