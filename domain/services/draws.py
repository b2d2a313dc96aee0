"""Validator draws: who judges a subject, from a beacon epoch's snapshot and value.

A subject asks the beacon (``domain.beacon``) for randomness when its round should open or
its absent validators be replaced; the draw happens when the epoch that seeds it closes,
from that epoch's snapshot of active validators and stakes, with the randomness recorded in
the round's event, so anyone can recompute it from the beacon's records.
"""

from __future__ import annotations

from domain.beacon import BEACON_STREAM_ID, Beacon, Participant, Waiting
from domain.policy import LedgerPolicy
from domain.services.directories import list_members
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator


async def get_beacon(uow: UnitOfWork) -> Beacon:
    """The network's beacon, started on first use."""
    beacon = await uow.get(Beacon, BEACON_STREAM_ID)
    if beacon is None:
        beacon = Beacon.start(now_ns=uow.now_ns)
        uow.add(beacon)
    return beacon


async def get_participants(uow: UnitOfWork, policy: LedgerPolicy) -> tuple[Participant, ...]:
    """The active validators now, in order of registration: an epoch's snapshot."""
    participants = []
    for validator_id in await list_members(uow, "validators"):
        validator = await uow.require(Validator, validator_id)
        if validator.is_active(policy):
            participants.append(Participant(validator_id, validator.owner, validator.stake))
    return tuple(participants)


def has_eligible(participants: tuple[Participant, ...], excluded_owners: frozenset[str]) -> bool:
    """Whether any participant may judge a subject whose provider is ``excluded_owners``."""
    return any(
        p.owner not in excluded_owners and p.validator_id not in excluded_owners
        for p in participants
    )


async def request_draw(
    uow: UnitOfWork,
    waiting: Waiting,
    *,
    participants: tuple[Participant, ...],
    policy: LedgerPolicy,
    now_ns: int,
) -> int:
    """Have ``waiting`` wait for the beacon; returns the epoch that will seed its draw."""
    beacon = await get_beacon(uow)
    return beacon.request(
        waiting, participants=participants, window_ns=policy.beacon_window_ns, now_ns=now_ns
    )


def compute_replacement_seed(subject: str, replacement: int) -> str:
    """The selection seed id for the ``replacement``-th re-draw of ``subject``'s round."""
    return f"{subject}/replacement/{replacement}"
