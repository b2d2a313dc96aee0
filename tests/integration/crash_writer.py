"""Writer process for the crash test: appends forever, logging each acknowledgement first.

``python -m tests.integration.crash_writer URL LOG RUN_ID``. Several tasks append at once
(so the group committer batches), to streams they share (so some appends conflict) and to
streams of their own. Each acknowledged append is written to LOG as one line
``command_id first_position last_position head_hash_hex`` and flushed before the task goes
on, so whatever the parent finds in LOG was acknowledged before the kill. Half the tasks
write only to streams of their own (never refused: the committer pipelines those batches),
half also to shared streams (refusals, reads, and the head-row lock when two processes race).
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import TextIO

from adapters.store.postgres import PostgresEventStore
from domain.errors import VersionConflict
from domain.records import NewEvent, StreamAppend

WRITER_TASKS = 8
SHARED_STREAMS = 4
PAYLOAD = b"x" * 200


async def main(url: str, log_path: str, run_id: str) -> None:
    store = await PostgresEventStore.connect(url)
    versions: dict[str, int] = {}
    with open(log_path, "a", encoding="ascii") as log:
        await asyncio.gather(
            *(_write(store, log, versions, f"{run_id}-{k}") for k in range(WRITER_TASKS))
        )


async def _write(
    store: PostgresEventStore, log: TextIO, versions: dict[str, int], name: str
) -> None:
    rng = random.Random(name)
    shares = int(name.rsplit("-", 1)[1]) % 2 == 1
    for n in range(1, sys.maxsize):
        target = f"shared-{rng.randrange(SHARED_STREAMS)}" if shares else f"solo-{name}"
        if target not in versions:
            versions[target] = len(await store.read_stream(target))
        appends = [_events(target, versions[target], rng.randint(1, 3))]
        if rng.random() < 0.5:
            appends.append(_events(f"own-{name}", None, 1))
        command_id = f"{name}-{n}"
        try:
            outcome = await store.append(appends, command_id=command_id)
        except VersionConflict as conflict:
            versions[target] = conflict.actual
            continue
        versions[target] = outcome.stream_versions[target]
        log.write(
            f"{command_id} {outcome.first_position} {outcome.last_position} "
            f"{outcome.head_hash.hex()}\n"
        )
        log.flush()


def _events(stream_id: str, expected: int | None, count: int) -> StreamAppend:
    return StreamAppend(
        stream_id=stream_id,
        stream_type="crash",
        expected_version=expected,
        events=tuple(NewEvent(event_type="Written", data=PAYLOAD) for _ in range(count)),
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
