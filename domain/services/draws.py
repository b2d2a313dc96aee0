"""Validator draws: who judges a subject, from the active validators' stakes and the log hash.

Validators are drawn by ``domain.selection`` from the active validators' stakes and the log
hash as it stands when the round opens (or is re-drawn), and the position and hash are
recorded in the event, so anyone can recompute the draw.
"""

from __future__ import annotations

from domain.policy import LedgerPolicy
from domain.records import Head
from domain.selection import select_validators
from domain.services.context import CommandContext
from domain.services.directories import list_members
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator
from domain.verdicts import VerdictRound


class Draw:
    """The outcome of a validator draw: who, their frozen stakes, and the log head used."""

    def __init__(self, validators: tuple[str, ...], weights: tuple[int, ...], head: Head) -> None:
        self.validators, self.weights, self.head = validators, weights, head


async def draw_validators(
    uow: UnitOfWork,
    *,
    seed_id: str,
    count: int,
    policy: LedgerPolicy,
    exclude: frozenset[str] = frozenset(),
) -> Draw:
    """Draw ``count`` active validators (not in ``exclude``) from the current log head."""
    head = await uow.store.head()
    stakes = {}
    for validator_id in await list_members(uow, "validators"):
        if validator_id in exclude:
            continue
        validator = await uow.require(Validator, validator_id)
        if validator.is_active(policy):
            stakes[validator_id] = validator.stake
    chosen = select_validators(job_id=seed_id, log_hash=head.hash, stakes=stakes, count=count)
    return Draw(chosen, tuple(stakes[v] for v in chosen), head)


def compute_replacement_seed(subject: str, replacement: int) -> str:
    """The selection seed id for the ``replacement``-th re-draw of ``subject``'s round."""
    return f"{subject}/replacement/{replacement}"


async def draw_replacements(
    uow: UnitOfWork, verdict_round: VerdictRound, *, subject: str, ctx: CommandContext
) -> Draw | None:
    """Replacements for a closed round's absent validators, or None when the round must be
    given up instead (nobody absent, replacements exhausted, or nobody left to draw)."""
    absent = verdict_round.absent()
    if not (
        verdict_round.is_over(ctx.now_ns)
        and absent
        and verdict_round.replacements < ctx.policy.validator_replacements_max
    ):
        return None
    draw = await draw_validators(
        uow,
        seed_id=compute_replacement_seed(subject, verdict_round.replacements + 1),
        count=len(absent),
        policy=ctx.policy,
        exclude=frozenset(verdict_round.validators),
    )
    return draw if draw.validators else None
