"""Deterministic re-execution: every recorded command run again through the domain's rules.

State machine replication's check, against the operator: the audit keeps a shadow log of the
records it has replayed and runs each signed command through ``LedgerService.execute_verified``
(the one code path the API runs) on that shadow, at the clock the command was decided at
(``CommandMetadata.now_ns``). The records the rules produce must equal the recorded ones byte
for byte, hash included: a patched API that sent a payout elsewhere, minted, skipped a slash or
decided on another clock writes records no rule produces, and the audit names the first one.

The shadow store answers from memory and never waits, so a command's coroutine runs to its end
in one step (``run_to_end``) and the replay stays synchronous. Commands recorded without a clock
(written before issue 16) cannot be re-run exactly and are appended as recorded, counted in
``not_reexecuted``; under rules v4 a missing clock fails the audit.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import msgspec

from adapters.store.chaining import chain_command
from adapters.store.memory import MemoryEventStore
from domain.beacon import Beacon
from domain.errors import FlopError
from domain.events import FlopAggregate, decode_event
from domain.ledger import Account
from domain.node import Node
from domain.node_snapshots import encode_node_state
from domain.policy import RULES_V4, LedgerPolicy
from domain.records import AppendOutcome, Record, Snapshot, StreamAppend, validate_appends
from domain.services.ledger_service import CommandMetadata, LedgerService
from domain.snapshots import compute_snapshot_id, encode_account_state, encode_beacon_state
from proofs.envelope import FRESHNESS_WINDOW_NS

CLOCK_REORDER_MAX_NS = 2 * 1_000_000_000
"""How far a command's clock may lag the latest clock recorded before it. Commands decided
concurrently (two API replicas, or a retry after a version conflict) commit in another order than
their clocks; anything further back is a clock run backwards."""


_SNAPSHOT_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    Account.STREAM_TYPE: encode_account_state,
    Node.STREAM_TYPE: encode_node_state,
    Beacon.STREAM_TYPE: encode_beacon_state,
}
"""The aggregates the domain loads from snapshots, and how it encodes their state."""


class Divergence(Exception):
    """The recorded records are not what the rules produce; ``position`` is the first one."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


class ShadowStore(MemoryEventStore):
    """The records replayed so far, as an ``EventStore`` that compares instead of writing.

    Reads are the memory store's. ``expect`` names the records the next append must produce;
    ``append`` chains what the handler decided after the shadow's head and raises
    ``Divergence`` unless it equals them. Nothing here waits (no lock: one replay drives it).
    """

    def __init__(self) -> None:
        super().__init__()
        self._expected: list[Record] = []
        # Accounts, nodes and the beacon as of their last record, by snapshot id, each applied
        # once; the snapshot a load asks for is theirs, exact at the stream's head.
        self._heads: dict[str, FlopAggregate] = {}
        self._untracked: set[str] = set()
        self._fresh: dict[str, Snapshot] = {}

    def expect(self, records: list[Record]) -> None:
        self._expected = records

    def add_recorded(self, records: list[Record]) -> None:
        """Take records as recorded (a command that cannot be re-run)."""
        for record in records:
            self._log.append(record)
            self._streams.setdefault(record.stream_id, []).append(record)
            if record.stream_type in _SNAPSHOT_ENCODERS:
                self._advance_head(record)

    async def get_snapshot(self, stream_id: str) -> Snapshot | None:
        """A snapshot at the stream's head, so a load replays no tail.

        A stored snapshot (what ``save_snapshot`` kept, every 64 events) would make each load
        replay up to 63 records again; this one is the state the records give, encoded by the
        same function, so the rules see what they would see after replaying them all.
        """
        aggregate = self._heads.get(stream_id)
        if aggregate is None:
            return await super().get_snapshot(stream_id)
        snapshot = self._fresh.get(stream_id)
        if snapshot is None:
            encode = _SNAPSHOT_ENCODERS[aggregate.STREAM_TYPE]
            snapshot = Snapshot(
                stream_id=stream_id, version=aggregate.version, state=encode(aggregate)
            )
            self._fresh[stream_id] = snapshot
        return snapshot

    def _advance_head(self, record: Record) -> None:
        snapshot_id = compute_snapshot_id(record.stream_id)
        if snapshot_id in self._untracked:
            return
        self._fresh.pop(snapshot_id, None)
        try:
            head = decode_event(record).mutate(self._heads.get(snapshot_id))
        except (ValueError, TypeError, KeyError, AssertionError, msgspec.MsgspecError):
            # Not an aggregate the domain can replay: its loads take the stored path.
            self._heads.pop(snapshot_id, None)
            self._untracked.add(snapshot_id)
            return
        if head is not None:
            self._heads[snapshot_id] = head

    async def append(
        self, appends: Sequence[StreamAppend], *, command_id: str, metadata: bytes = b""
    ) -> AppendOutcome:
        items = validate_appends(appends)
        current = {item.stream_id: len(self._streams.get(item.stream_id, ())) for item in items}
        produced, outcome = chain_command(
            items, command_id=command_id, metadata=metadata, head=await self.head(), current=current
        )
        compare_records(produced, self._expected)
        self.add_recorded(produced)
        self._commands[command_id] = outcome
        return outcome


def compare_records(produced: list[Record], recorded: list[Record]) -> None:
    """Raise Divergence at the first record where the rules and the log disagree."""
    for mine, theirs in zip(produced, recorded, strict=False):
        if mine == theirs:
            continue
        raise Divergence(theirs.position, describe_difference(mine, theirs))
    if len(produced) != len(recorded):
        if len(produced) < len(recorded):
            extra = recorded[len(produced)]
            raise Divergence(
                extra.position,
                f"the log has {extra.stream_id} {extra.event_type} that the rules do not produce",
            )
        missing = produced[len(recorded)]
        last = recorded[-1].position if recorded else 0
        raise Divergence(
            last,
            f"the rules also produce {missing.stream_id} {missing.event_type}, "
            "missing from the log",
        )


def describe_difference(mine: Record, theirs: Record) -> str:
    """One line naming what differs between the rules' record and the log's."""
    if (mine.stream_id, mine.event_type) != (theirs.stream_id, theirs.event_type):
        return (
            f"the rules produce {mine.stream_id} {mine.event_type} where the log has "
            f"{theirs.stream_id} {theirs.event_type}"
        )
    if mine.data != theirs.data:
        return (
            f"{theirs.stream_id} {theirs.event_type}: {_first_difference(mine.data, theirs.data)}"
        )
    if mine.metadata != theirs.metadata:
        return f"{theirs.stream_id} {theirs.event_type}: the command's metadata differs"
    return f"{theirs.stream_id} {theirs.event_type}: the record differs ({_fields(mine, theirs)})"


def _first_difference(mine: bytes, theirs: bytes) -> str:
    try:
        ours = msgspec.json.decode(mine)
        logged = msgspec.json.decode(theirs)
    except msgspec.DecodeError:
        return "the event's bytes differ"
    if isinstance(ours, dict) and isinstance(logged, dict):
        for key in sorted(set(ours) | set(logged)):
            if ours.get(key) != logged.get(key):
                return f"{key} is {logged.get(key)!r} in the log, the rules give {ours.get(key)!r}"
    return "the event's bytes differ"


def _fields(mine: Record, theirs: Record) -> str:
    names = [f for f in Record.__struct_fields__ if getattr(mine, f) != getattr(theirs, f)]
    return ", ".join(names)


def run_to_end(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (the shadow store's) to its result, synchronously."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("re-execution waited on IO: the shadow store must answer at once")


class Reexecution:
    """Runs each command again on the shadow of the records before it (module docstring)."""

    def __init__(self) -> None:
        self.store = ShadowStore()
        self.service = LedgerService(self.store, retries_max=1)
        self.reexecuted = 0
        self.not_reexecuted = 0
        self.latest_now_ns: int | None = None

    def check(
        self, records: list[Record], metadata: CommandMetadata, policy: LedgerPolicy | None
    ) -> None:
        """Re-run the command that wrote ``records`` (all of them, in order); raise Divergence.

        ``policy`` is the one in force at the command's position (None before a genesis)."""
        first = records[0].position
        now_ns = metadata.now_ns
        if now_ns is None:
            if policy is not None and policy.rules_version >= RULES_V4:
                raise Divergence(first, "the command records no clock (now_ns) under rules v4")
            self.skip(records)
            return
        self._check_clock(first, now_ns, metadata.envelope.issued_at_ns)
        self.store.expect(records)
        try:
            result = run_to_end(self.service.execute_verified(metadata.envelope, now_ns=now_ns))
        except Divergence:
            raise
        except FlopError as exc:
            raise Divergence(first, f"the rules refuse it: {exc.message}") from exc
        except (ValueError, TypeError, KeyError, AssertionError, msgspec.MsgspecError) as exc:
            raise Divergence(first, f"the rules fail on it: {exc!r}") from exc
        if result.replayed:
            raise Divergence(first, "the command ran before")
        self.reexecuted += 1

    def skip(self, records: list[Record]) -> None:
        """Take a command's records as recorded, counted as not re-executed."""
        self.store.add_recorded(records)
        self.not_reexecuted += 1

    def _check_clock(self, position: int, now_ns: int, issued_at_ns: int) -> None:
        if abs(now_ns - issued_at_ns) > FRESHNESS_WINDOW_NS:
            raise Divergence(
                position,
                f"decided at {now_ns} ns, outside the freshness window of its envelope's "
                f"issued_at {issued_at_ns} ns",
            )
        latest = self.latest_now_ns
        if latest is not None and now_ns < latest - CLOCK_REORDER_MAX_NS:
            raise Divergence(
                position,
                f"the ledger's clock runs backwards: decided at {now_ns} ns after a command "
                f"decided at {latest} ns",
            )
        self.latest_now_ns = now_ns if latest is None else max(latest, now_ns)
