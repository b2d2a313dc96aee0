"""Handlers for the network's rules: the genesis, policy changes, operator changes.

``network.genesis`` is signed by one of the operators it names and must be the store's next
record (the command bus runs no other command before it); ``network.change_policy`` and
``network.change_operators`` are signed by an operator in force before the change.
"""

from __future__ import annotations

from domain import commands as c
from domain.errors import InvalidTransition, Rejection, RejectionCode
from domain.network import NETWORK_STREAM_ID, Network
from domain.policy import RULES_V4, LedgerPolicy, find_policy_problem
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork


async def handle_declare_genesis(
    uow: UnitOfWork, cmd: c.DeclareGenesis, ctx: CommandContext
) -> str:
    if await uow.get(Network, NETWORK_STREAM_ID) is not None:
        raise InvalidTransition(
            "this ledger already has a genesis record", code=RejectionCode.GENESIS_ALREADY_RECORDED
        )
    _check_policy(cmd.policy)
    head = await uow.head()
    network = Network.declare_genesis(
        signer=ctx.actor,
        operators=tuple(cmd.operators),
        policy=cmd.policy,
        prior_records=cmd.prior_records,
        head_position=head.position,
        now_ns=ctx.now_ns,
    )
    uow.add(network)
    return network.id


async def handle_change_policy(uow: UnitOfWork, cmd: c.ChangePolicy, ctx: CommandContext) -> str:
    ctx.require_operator()
    _check_policy(cmd.policy)
    _check_network_id_kept(ctx.policy, cmd.policy)
    network = await uow.require(Network, NETWORK_STREAM_ID)
    network.change_policy(cmd.policy, now_ns=ctx.now_ns)
    return network.id


async def handle_change_operators(
    uow: UnitOfWork, cmd: c.ChangeOperators, ctx: CommandContext
) -> str:
    ctx.require_operator()
    network = await uow.require(Network, NETWORK_STREAM_ID)
    network.change_operators(tuple(cmd.operators), now_ns=ctx.now_ns)
    return network.id


def _check_network_id_kept(current: LedgerPolicy, changed: LedgerPolicy) -> None:
    """Issue 16, item 9 (rules v4): a network named once keeps its id, so envelopes signed
    for it cannot become valid elsewhere, nor others valid here."""
    if current.rules_version >= RULES_V4 and current.network_id not in ("", changed.network_id):
        raise Rejection(
            f"network_id is {current.network_id!r} and cannot change: start a new network "
            "for another id",
            code=RejectionCode.NETWORK_ID_IMMUTABLE,
        )


def _check_policy(policy: LedgerPolicy) -> None:
    if policy.operators:
        raise Rejection(
            "a policy record names no operators (they are declared apart)",
            code=RejectionCode.POLICY_INVALID,
        )
    problem = find_policy_problem(policy)
    if problem is not None:
        raise Rejection(problem, code=RejectionCode.POLICY_INVALID)
