"""Handlers of the randomness beacon (``domain.beacon``): contributions and closings.

A contribution is a snapshot validator's BLS signature over the epoch's message, checked
with its registered key; the last missing one closes the epoch in the same command. Anyone
may close an epoch past its deadline. Closing draws the validators of every subject that
waited for the epoch (``rounds.complete_draw``) and opens the next epoch if subjects wait.
"""

from __future__ import annotations

from domain import commands as c
from domain.beacon import Beacon, compute_beacon_message
from domain.errors import Rejection, RejectionCode
from domain.invariants import present
from domain.services.context import CommandContext
from domain.services.draws import get_beacon, get_participants
from domain.services.rounds import complete_draw
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator
from proofs import bls


async def handle_contribute_beacon(
    uow: UnitOfWork, cmd: c.ContributeBeacon, ctx: CommandContext
) -> str:
    """A snapshot validator contributes its unique signature to the open epoch."""
    beacon = await get_beacon(uow)
    beacon.require_contributor(cmd.epoch, ctx.actor)
    validator = await uow.require(Validator, ctx.actor)
    opened = present(beacon.open_epoch, "the contributor check found the epoch open")
    message = compute_beacon_message(cmd.epoch, opened.previous_value)
    if not bls.verify(validator.bls_public_key, message, cmd.signature):
        raise Rejection(
            "the beacon contribution's BLS signature does not verify",
            code=RejectionCode.BEACON_SIGNATURE_INVALID,
        )
    complete = beacon.contribute(
        epoch=cmd.epoch, validator_id=ctx.actor, signature=cmd.signature, now_ns=ctx.now_ns
    )
    if complete:
        await close_epoch(uow, beacon, cmd.epoch, ctx)
    return beacon.id


async def handle_close_beacon(uow: UnitOfWork, cmd: c.CloseBeacon, ctx: CommandContext) -> str:
    """Anyone closes an epoch whose deadline passed."""
    beacon = await get_beacon(uow)
    await close_epoch(uow, beacon, cmd.epoch, ctx)
    return beacon.id


async def close_epoch(uow: UnitOfWork, beacon: Beacon, epoch: int, ctx: CommandContext) -> None:
    """Close ``epoch``, draw for its waiting subjects, open the next epoch if any wait."""
    closed, value = beacon.close(epoch=epoch, now_ns=ctx.now_ns)
    for waiting in closed.waiting:
        await complete_draw(uow, waiting, closed, value, ctx)
    if beacon.queued:
        beacon.open_next(
            participants=await get_participants(uow, ctx.policy),
            window_ns=ctx.policy.beacon_window_ns,
            now_ns=ctx.now_ns,
        )
