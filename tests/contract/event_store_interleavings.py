"""Property: random interleavings of concurrent appends to overlapping streams.

Hypothesis draws a list of commands (streams, how each picks its expected version, how many
times it yields before appending, whether it repeats the previous command's id); they all
run at once against one store. Afterwards: positions are gapless, the chain is valid from
the head before the example, every stream's versions are 1..n, every acknowledged append is
present exactly as acknowledged, and nothing else was written. One store serves every
example; each example uses stream and command ids of its own.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import VersionConflict
from domain.ports import EventStore
from domain.records import AppendOutcome, NewEvent, Record, StreamAppend, verify_chain

INTERLEAVING_EXAMPLES = 30
STREAM_NAMES = ("s0", "s1", "s2", "s3")
EVENTS_PER_STREAM_MAX = 3
YIELDS_MAX = 4


class Command(msgspec.Struct, frozen=True):
    """One drawn command: ``mode`` is read (expect what was read), none (no check) or stale."""

    streams: tuple[str, ...]
    mode: str
    events: int
    yields: int
    repeat_previous_id: bool


commands_strategy = st.lists(
    st.builds(
        Command,
        streams=st.lists(st.sampled_from(STREAM_NAMES), min_size=1, max_size=3, unique=True).map(
            tuple
        ),
        mode=st.sampled_from(["read", "read", "none", "stale"]),
        events=st.integers(1, EVENTS_PER_STREAM_MAX),
        yields=st.integers(0, YIELDS_MAX),
        repeat_previous_id=st.sampled_from([False, False, False, True]),
    ),
    min_size=1,
    max_size=12,
)

_example_ids = itertools.count()


class InterleavingContract:
    """Mixed into each adapter's contract class; needs its ``store`` fixture."""

    @settings(
        max_examples=INTERLEAVING_EXAMPLES,
        deadline=None,
        # One method, inherited by every adapter class: each class is its own executor.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(commands=commands_strategy)
    async def test_random_interleavings_keep_the_log_sound(
        self, store: EventStore, commands: list[Command]
    ) -> None:
        prefix = f"x{next(_example_ids)}-"
        before = await store.head()
        ids = _command_ids(prefix, commands)
        runs = [_run_command(store, prefix, c, cmd) for c, cmd in zip(ids, commands, strict=True)]
        results = await asyncio.gather(*runs, return_exceptions=True)
        acknowledged: dict[str, AppendOutcome] = {}
        for cmd, result in zip(commands, results, strict=True):
            if isinstance(result, VersionConflict):
                assert cmd.mode != "none", "an unchecked append cannot conflict"
                continue
            assert isinstance(result, AppendOutcome), result
            first = acknowledged.setdefault(result.command_id, result)
            assert result == first, "a repeated command id must return the first outcome"

        records = await _read_from(store, before.position + 1)
        assert verify_chain(records, prev=before) == await store.head()
        _assert_acknowledged_present(records, acknowledged)
        for name in STREAM_NAMES:
            versions = [r.version for r in await store.read_stream(prefix + name)]
            assert versions == list(range(1, len(versions) + 1))


def _command_ids(prefix: str, commands: Sequence[Command]) -> list[str]:
    ids: list[str] = []
    for n, cmd in enumerate(commands):
        ids.append(ids[-1] if cmd.repeat_previous_id and ids else f"{prefix}c{n}")
    return ids


async def _run_command(
    store: EventStore, prefix: str, command_id: str, cmd: Command
) -> AppendOutcome:
    appends = []
    for name in cmd.streams:
        expected: int | None = None
        if cmd.mode == "read":
            expected = len(await store.read_stream(prefix + name))
        elif cmd.mode == "stale":
            expected = max(0, len(await store.read_stream(prefix + name)) - 1)
        appends.append(
            StreamAppend(
                stream_id=prefix + name,
                stream_type="prop",
                expected_version=expected,
                events=tuple(
                    NewEvent(event_type="Happened", data=f"{command_id}/{k}".encode())
                    for k in range(cmd.events)
                ),
            )
        )
    for _ in range(cmd.yields):
        await asyncio.sleep(0)
    return await store.append(appends, command_id=command_id)


async def _read_from(store: EventStore, position: int) -> list[Record]:
    records: list[Record] = []
    while batch := await store.read_all(position + len(records), 500):
        records.extend(batch)
    return records


def _assert_acknowledged_present(
    records: list[Record], acknowledged: dict[str, AppendOutcome]
) -> None:
    by_position = {r.position: r for r in records}
    expected_count = 0
    for outcome in acknowledged.values():
        span = range(outcome.first_position, outcome.last_position + 1)
        expected_count += len(span)
        written = [by_position[p] for p in span]
        assert {r.command_id for r in written} == {outcome.command_id}
        assert written[-1].hash == outcome.head_hash
        last_versions = {r.stream_id: r.version for r in written}
        assert last_versions == outcome.stream_versions
    assert len(records) == expected_count, "records were written for unacknowledged commands"
