"""The randomness beacon: validators' unique BLS signatures, mixed per epoch (RANDAO-style).

A validator draw seeded by anything known when a result is committed can be steered by the
committer (issue 14, attack 2: it moved the log head with cheap appends until its colluders
were drawn). So a round's randomness comes from an *epoch* of this beacon that closes only
after the subject asked for it, from contributions of parties other than the committer.

Epochs open on demand. An epoch freezes, when it opens, the active validators with their
owners and stakes (the *snapshot*) and a deadline. A subject that asks for randomness joins
the open epoch only while that epoch has no contribution yet; otherwise it waits for the next
epoch, so that nobody who asks knows any contribution of the epoch that seeds it. Each
snapshot validator may contribute once: its BLS signature over ``compute_beacon_message``.
BLS signatures are unique (one valid signature per key and message), so a contributor chooses
only whether to contribute, never what. The epoch closes when every snapshot validator has
contributed, or by anyone after the deadline (the missing ones are named in the event). Its
value is ``compute_epoch_value``; closing hands every waiting subject its draw randomness
(``compute_draw_randomness``) and opens the next epoch if subjects wait for it.

One stream, ``network:beacon``. Its state is small and loads from a snapshot
(``domain.snapshots``), so a command reads a bounded number of its records.
"""

from __future__ import annotations

import hashlib
import struct
from typing import ClassVar

import msgspec

from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.events import FlopAggregate, ns_to_datetime
from domain.invariants import invariant, present
from domain.selection import select_from_seed

BEACON_STREAM_ID = "network:beacon"
BEACON_STREAM_TYPE = "beacon"
BEACON_TAG = b"flopledger/beacon/v1"
DRAW_TAG = b"flopledger/beacon-draw/v1"
GENESIS_VALUE = hashlib.sha256(BEACON_TAG + b"/genesis").digest()
"""The value of epoch 0, before any epoch closed."""
BEACON_SIGNATURE_BYTES = 96
WAITING_PER_EPOCH_MAX = 4_096
"""Subjects one epoch may seed; more wait for the next (a bound on a closing command)."""

PURPOSE_ASSIGN = "assign"
PURPOSE_REPLACE = "replace"


class Participant(msgspec.Struct, frozen=True):
    """A validator of an epoch's snapshot, as it stood when the epoch opened."""

    validator_id: str
    owner: str
    stake: int


class Waiting(msgspec.Struct, frozen=True):
    """A subject waiting for randomness: the aggregate (``kind`` job | attestation, its id),
    the seed id its draw is named by, and whether it opens a round or replaces the absent
    (``replacement``: the number of the re-draw, 0 for the opening draw)."""

    kind: str
    aggregate_id: str
    seed_id: str
    purpose: str
    replacement: int
    count: int
    """How many validators to draw."""


class Epoch(msgspec.Struct):
    """The open epoch (mutated only by the beacon's events)."""

    number: int
    participants: tuple[Participant, ...]
    deadline_ns: int
    previous_value: bytes
    waiting: list[Waiting]
    contributions: dict[str, bytes]


class Beacon(FlopAggregate):
    """Stream ``network:beacon``: the closed epochs' last value and the open epoch."""

    STREAM_TYPE: ClassVar[str] = BEACON_STREAM_TYPE

    class Started(FlopAggregate.Created):
        genesis_value: bytes

        def apply(self, beacon: Beacon) -> None:
            beacon.last_epoch, beacon.last_value = 0, self.genesis_value
            beacon.open_epoch, beacon.queued = None, []

    class EpochOpened(FlopAggregate.Event):
        epoch: int
        participants: tuple[Participant, ...]
        deadline_ns: int
        waiting: tuple[Waiting, ...]

        def apply(self, beacon: Beacon) -> None:
            beacon.open_epoch = Epoch(
                number=self.epoch,
                participants=self.participants,
                deadline_ns=self.deadline_ns,
                previous_value=beacon.last_value,
                waiting=list(self.waiting),
                contributions={},
            )
            beacon.queued = [w for w in beacon.queued if w not in self.waiting]

    class RandomnessRequested(FlopAggregate.Event):
        """A subject joined the open epoch (``epoch`` its number) or waits for the next one
        (``epoch`` the open one's number plus one)."""

        epoch: int
        waiting: Waiting

        def apply(self, beacon: Beacon) -> None:
            opened = beacon.open_epoch
            if opened is not None and self.epoch == opened.number:
                opened.waiting.append(self.waiting)
            else:
                beacon.queued.append(self.waiting)

    class Contributed(FlopAggregate.Event):
        epoch: int
        validator_id: str
        signature: bytes

        def apply(self, beacon: Beacon) -> None:
            present(beacon.open_epoch, "a contribution needs an open epoch").contributions[
                self.validator_id
            ] = self.signature

    class EpochClosed(FlopAggregate.Event):
        epoch: int
        value: bytes
        missing: tuple[str, ...]

        def apply(self, beacon: Beacon) -> None:
            beacon.last_epoch, beacon.last_value = self.epoch, self.value
            beacon.open_epoch = None

    last_epoch: int
    last_value: bytes
    open_epoch: Epoch | None
    queued: list[Waiting]

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def start(cls, *, now_ns: int) -> Beacon:
        return cls._create(
            cls.Started,
            id=BEACON_STREAM_ID,
            genesis_value=GENESIS_VALUE,
            timestamp=ns_to_datetime(now_ns),
        )

    def is_waiting(self, waiting: Waiting) -> bool:
        """Whether ``waiting`` already waits (in the open epoch or for the next)."""
        opened = self.open_epoch
        keys = [(w.kind, w.aggregate_id, w.seed_id) for w in self.queued]
        keys += [(w.kind, w.aggregate_id, w.seed_id) for w in (opened.waiting if opened else ())]
        return (waiting.kind, waiting.aggregate_id, waiting.seed_id) in keys

    def is_waiting_for(self, kind: str, aggregate_id: str) -> bool:
        """Whether any draw of that aggregate waits."""
        opened = self.open_epoch
        waiting = [*self.queued, *(opened.waiting if opened else ())]
        return any(w.kind == kind and w.aggregate_id == aggregate_id for w in waiting)

    def request(
        self,
        waiting: Waiting,
        *,
        participants: tuple[Participant, ...],
        window_ns: int,
        now_ns: int,
    ) -> int:
        """Ask for randomness for ``waiting``; returns the epoch that will seed it.

        With no open epoch one opens with ``participants`` (the active validators now);
        an open epoch without contributions (and room) takes the subject; else it waits
        for the next epoch, opened when this one closes."""
        invariant(not self.is_waiting(waiting), f"{waiting.seed_id} already waits")
        opened = self.open_epoch
        if opened is None:
            return self._open(participants, (waiting,), window_ns=window_ns, now_ns=now_ns)
        joins = not opened.contributions and len(opened.waiting) < WAITING_PER_EPOCH_MAX
        epoch = opened.number if joins else opened.number + 1
        self._trigger(self.RandomnessRequested, now_ns, epoch=epoch, waiting=waiting)
        return epoch

    def require_contributor(self, epoch: int, validator_id: str) -> Participant:
        """The snapshot entry of ``validator_id`` if it may contribute to ``epoch`` now."""
        opened = self._require_open(epoch)
        for participant in opened.participants:
            if participant.validator_id == validator_id:
                break
        else:
            raise Unauthorized(
                f"validator {validator_id} is not in epoch {epoch}'s snapshot",
                code=RejectionCode.BEACON_NOT_A_CONTRIBUTOR,
            )
        if validator_id in opened.contributions:
            raise InvalidTransition(
                f"validator {validator_id} already contributed to epoch {epoch}",
                code=RejectionCode.BEACON_ALREADY_CONTRIBUTED,
            )
        return participant

    def contribute(self, *, epoch: int, validator_id: str, signature: bytes, now_ns: int) -> bool:
        """Record a contribution (its signature checked by the caller); returns whether
        every snapshot validator has now contributed (the epoch may close)."""
        self.require_contributor(epoch, validator_id)
        self._trigger(
            self.Contributed, now_ns, epoch=epoch, validator_id=validator_id, signature=signature
        )
        opened = present(self.open_epoch, "the epoch was just checked open")
        return len(opened.contributions) == len(opened.participants)

    def close(self, *, epoch: int, now_ns: int) -> tuple[Epoch, bytes]:
        """Close ``epoch`` (complete, or past its deadline); returns the closed epoch and its
        value. The caller opens the rounds of its waiting subjects, then ``open_next``."""
        opened = self._require_open(epoch)
        complete = len(opened.contributions) == len(opened.participants)
        if not complete and now_ns <= opened.deadline_ns:
            raise Rejection(
                f"epoch {epoch} takes contributions until {opened.deadline_ns}",
                code=RejectionCode.BEACON_DEADLINE_NOT_REACHED,
            )
        value = compute_epoch_value(
            previous_value=opened.previous_value,
            epoch=epoch,
            participants=tuple(p.validator_id for p in opened.participants),
            contributions=opened.contributions,
        )
        missing = tuple(
            p.validator_id
            for p in opened.participants
            if p.validator_id not in opened.contributions
        )
        self._trigger(self.EpochClosed, now_ns, epoch=epoch, value=value, missing=missing)
        return opened, value

    def open_next(
        self, *, participants: tuple[Participant, ...], window_ns: int, now_ns: int
    ) -> None:
        """After a close: open the next epoch for the subjects that wait for it. With no
        participant left they keep waiting, and join the next epoch anything opens."""
        invariant(self.open_epoch is None, "the next epoch opens after a close")
        if self.queued and participants:
            self._open(participants, (), window_ns=window_ns, now_ns=now_ns)

    def view(self) -> dict[str, object]:
        opened = self.open_epoch
        return {
            "last_epoch": self.last_epoch,
            "last_value": self.last_value.hex(),
            "open_epoch": None
            if opened is None
            else {
                "epoch": opened.number,
                "deadline_ns": opened.deadline_ns,
                "participants": [p.validator_id for p in opened.participants],
                "contributed": sorted(opened.contributions),
                "waiting": [w.seed_id for w in opened.waiting],
            },
            "queued": [w.seed_id for w in self.queued],
            "version": self.version,
        }

    def _open(
        self,
        participants: tuple[Participant, ...],
        joining: tuple[Waiting, ...],
        *,
        window_ns: int,
        now_ns: int,
    ) -> int:
        """Open the next epoch for the queued subjects (oldest first) and ``joining``."""
        invariant(bool(participants), "an epoch opens with participants")
        epoch = self.last_epoch + 1
        waiting = (*self.queued[: WAITING_PER_EPOCH_MAX - len(joining)], *joining)
        self._trigger(
            self.EpochOpened,
            now_ns,
            epoch=epoch,
            participants=participants,
            deadline_ns=now_ns + window_ns,
            waiting=waiting,
        )
        return epoch

    def _require_open(self, epoch: int) -> Epoch:
        opened = self.open_epoch
        if opened is None or opened.number != epoch:
            raise InvalidTransition(
                f"epoch {epoch} is not the open epoch "
                f"({opened.number if opened else 'none is open'})",
                code=RejectionCode.BEACON_EPOCH_NOT_OPEN,
            )
        return opened


def compute_beacon_message(epoch: int, previous_value: bytes) -> bytes:
    """What a contributor to ``epoch`` signs with its BLS key: the tag, the epoch (u64) and
    the previous epoch's value (so a contribution cannot be made before that value exists)."""
    return BEACON_TAG + struct.pack(">Q", epoch) + previous_value


def compute_epoch_value(
    *,
    previous_value: bytes,
    epoch: int,
    participants: tuple[str, ...],
    contributions: dict[str, bytes],
) -> bytes:
    """SHA-256(tag || previous value || u64 epoch || per snapshot validator in snapshot order:
    0x01 and its signature, or 0x00 when it did not contribute)."""
    digest = hashlib.sha256(BEACON_TAG + previous_value + struct.pack(">Q", epoch))
    for validator_id in participants:
        signature = contributions.get(validator_id)
        digest.update(b"\x00" if signature is None else b"\x01" + signature)
    return digest.digest()


def compute_draw_randomness(value: bytes, seed_id: str) -> bytes:
    """The randomness of one draw: SHA-256(tag || epoch value || seed id)."""
    return hashlib.sha256(DRAW_TAG + value + seed_id.encode()).digest()


def compute_draw(
    participants: tuple[Participant, ...],
    *,
    randomness: bytes,
    count: int,
    excluded_owners: frozenset[str],
    excluded: frozenset[str] = frozenset(),
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The validators drawn with ``randomness`` from an epoch's snapshot, with their frozen
    stakes: stake-weighted, without those in ``excluded`` (a round's sitting validators) and
    without those owned by (or being) an id in ``excluded_owners`` (the provider's own:
    issue 14, attack 9)."""
    stakes = {
        p.validator_id: p.stake
        for p in participants
        if p.validator_id not in excluded
        and p.owner not in excluded_owners
        and p.validator_id not in excluded_owners
    }
    chosen = select_from_seed(seed=randomness, stakes=stakes, count=count)
    return chosen, tuple(stakes[v] for v in chosen)
