"""Deciding one batch of the PostgreSQL group committer: pure, no IO.

Each queued command is decided in queue order against a head and the versions of the
streams it touches: its stored outcome (a repeated command id), its sealed records, or its
VersionConflict. The winners' records and outcomes become the parameters of one write.
"""

from __future__ import annotations

import asyncio

from adapters.store.chaining import chain_command, encode_outcome
from domain.errors import VersionConflict
from domain.records import AppendOutcome, Head, Record, StreamAppend

Decision = AppendOutcome | VersionConflict


class Pending:
    """One queued command and the future its caller awaits."""

    __slots__ = ("command_id", "event_count", "future", "items", "metadata")

    def __init__(self, items: list[StreamAppend], command_id: str, metadata: bytes) -> None:
        self.items = items
        self.command_id = command_id
        self.metadata = metadata
        self.event_count = sum(len(item.events) for item in items)
        self.future: asyncio.Future[AppendOutcome] = asyncio.get_running_loop().create_future()


class CommitStats:
    """How the committer wrote its batches (for tests, logs and metrics)."""

    __slots__ = ("from_memory", "locked", "read", "redone")

    def __init__(self) -> None:
        self.from_memory = 0  # decided on what the committer knew, written without a read
        self.read = 0  # decided after one unlocked read
        self.locked = 0  # decided under the head-row lock
        self.redone = 0  # decided from memory, not written (the head had moved), redone


class Plan:
    """The decisions for one batch; ``head`` and ``current`` are the state after it."""

    __slots__ = ("current", "decided", "head", "new_ids", "outcomes", "records", "start")

    def __init__(self, head: Head, current: dict[str, int]) -> None:
        self.start = head
        self.head = head
        self.current = current
        self.decided: list[Decision] = []
        self.records: list[Record] = []
        self.outcomes: list[AppendOutcome] = []
        # Ids decided here (written or refused), not answered from a stored outcome: the
        # conditional write checks that none of them is stored, so that a refusal decided
        # on what the committer knew cannot hide a repeated, already committed command.
        self.new_ids: list[str] = []


def get_streams(batch: list[Pending]) -> list[str]:
    """Every stream the batch touches, sorted."""
    return sorted({item.stream_id for p in batch for item in p.items})


def decide(
    batch: list[Pending],
    head: Head,
    current: dict[str, int],
    stored: dict[str, AppendOutcome],
) -> Plan:
    """Each command in queue order: its stored outcome, its records, or its VersionConflict."""
    plan = Plan(head, dict(current))
    for pending in batch:
        if pending.command_id in stored:
            plan.decided.append(stored[pending.command_id])
            continue
        plan.new_ids.append(pending.command_id)
        try:
            sealed, outcome = chain_command(
                pending.items,
                command_id=pending.command_id,
                metadata=pending.metadata,
                head=plan.head,
                current=plan.current,
            )
        except VersionConflict as conflict:
            plan.decided.append(conflict)
            continue
        plan.records.extend(sealed)
        plan.outcomes.append(outcome)
        plan.current.update(outcome.stream_versions)
        plan.head = Head(position=outcome.last_position, hash=outcome.head_hash)
        plan.decided.append(outcome)
    return plan


def get_write_args(plan: Plan, channel: str) -> tuple[object, ...]:
    """Parameters $1..$19 of the write statements (the locked write uses $1..$16)."""
    records, outcomes = plan.records, plan.outcomes
    return (
        [r.position for r in records],
        [r.stream_id for r in records],
        [r.stream_type for r in records],
        [r.version for r in records],
        [r.event_type for r in records],
        [r.data for r in records],
        [r.command_id for r in records],
        [r.metadata for r in records],
        [r.prev_hash for r in records],
        [r.hash for r in records],
        [o.command_id for o in outcomes],
        [o.first_position for o in outcomes],
        [encode_outcome(o) for o in outcomes],
        plan.head.position,
        plan.head.hash,
        channel,
        plan.start.position,
        plan.start.hash,
        plan.new_ids,
    )


def resolve(batch: list[Pending], decided: list[Decision]) -> None:
    """Give each caller its outcome or its VersionConflict (cancelled callers are skipped)."""
    for pending, result in zip(batch, decided, strict=True):
        if pending.future.done():
            continue
        if isinstance(result, AppendOutcome):
            pending.future.set_result(result)
        else:
            pending.future.set_exception(result)


def settle_error(pending: Pending, error: BaseException, cause: BaseException | None) -> None:
    """Fail one caller with ``error`` (chained to ``cause``) unless it is settled already."""
    if pending.future.done():
        return
    if cause is not None:
        error.__cause__ = cause
    pending.future.set_exception(error)
