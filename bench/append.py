"""Append throughput: our PostgreSQL event store against eventsourcing and against raw COPY.

For 1, 16 and 64 concurrent writers, each command appends one event of ``PAYLOAD_BYTES`` to
the writer's own stream, for ``RUN_S`` seconds:

- ``flopledger``: PostgresEventStore (group commit, hash chain, idempotency, versions);
- ``eventsourcing``: the eventsourcing library's POSTGRES persistence doing the same work
  through an Application (one aggregate per writer, ``save`` in threads);
- ``COPY x1``: raw asyncpg COPY of one equivalent row per transaction (the same unit of
  acknowledged work, with nothing checked);
- ``COPY x1000``: raw asyncpg COPY of ``COPY_ROWS_MAX`` rows per call, into a table of the
  same shape: the physical limit of the server for such rows.

One run, one database server (a fresh database, dropped afterwards; the server is found as
the tests find it, see ``tests/pg.py``). ``ROUNDS`` rounds interleave the subjects and each
figure is the best round. Prints a table, then the RESULT line.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find tests/

from adapters.store.postgres import PostgresEventStore
from adapters.store.postgres_schema import EVENTS_TABLE, migrate
from domain.records import NewEvent, StreamAppend
from tests.pg import create_test_database, drop_test_database

WRITER_COUNTS = (1, 16, 64)
RUN_S = 2.0
ROUNDS = 3
PAYLOAD_BYTES = 200
COPY_ROWS_MAX = 1000
PAYLOAD = b"p" * PAYLOAD_BYTES
COPY_TABLE = "bench_copy"
COPY_COLUMNS = (
    "position", "stream_id", "stream_type", "version", "event_type", "data", "command_id",
    "metadata", "prev_hash", "hash",
)  # fmt: skip

Measure = Callable[[str, int], Awaitable[tuple[int, float]]]


class Meter(Aggregate):
    """eventsourcing's side of the comparison: one aggregate (stream) per writer."""

    @event("Measured")
    def measure(self, payload: str) -> None:
        """One event of PAYLOAD_BYTES."""


async def measure_flopledger(url: str, writers: int) -> tuple[int, float]:
    """Events appended by ``writers`` concurrent writers through PostgresEventStore."""
    store = await PostgresEventStore.connect(url, pool_size_max=2)
    run = uuid.uuid4().hex[:8]
    deadline = time.monotonic() + RUN_S
    # Every writer's first append creates its stream: warm nothing up, count everything.

    async def writer(k: int) -> int:
        version = 0
        while time.monotonic() < deadline:
            append = StreamAppend(
                stream_id=f"{run}-{k}",
                stream_type="bench",
                expected_version=version,
                events=(NewEvent(event_type="Measured", data=PAYLOAD),),
            )
            await store.append([append], command_id=f"{run}-{k}-{version}")
            version += 1
        return version

    try:
        started = time.monotonic()
        events = sum(await asyncio.gather(*(writer(k) for k in range(writers))))
        return events, time.monotonic() - started
    finally:
        await store.close()


async def measure_eventsourcing(url: str, writers: int) -> tuple[int, float]:
    """The same work through eventsourcing's Application on its POSTGRES persistence."""
    parts = urlsplit(url)
    app: Application[UUID] = Application(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/"),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": parts.username or "postgres",
            "POSTGRES_PASSWORD": parts.password or "",
            "POSTGRES_POOL_SIZE": str(writers),
            "POSTGRES_MAX_OVERFLOW": "0",
            "CREATE_TABLE": "y",
        }
    )
    payload = PAYLOAD.decode()
    deadline = time.monotonic() + RUN_S

    def writer() -> int:
        meter = Meter()
        app.save(meter)
        count = 1
        while time.monotonic() < deadline:
            meter.measure(payload)
            app.save(meter)
            count += 1
        return count

    loop = asyncio.get_running_loop()
    try:
        with ThreadPoolExecutor(max_workers=writers) as pool:
            started = time.monotonic()
            counts = await asyncio.gather(
                *(loop.run_in_executor(pool, writer) for _ in range(writers))
            )
            elapsed = time.monotonic() - started
    finally:
        app.close()
    return sum(counts), elapsed


def copy_measure(rows_per_copy: int) -> Measure:
    """Raw COPY of ``rows_per_copy`` equivalent rows per call, one connection per writer."""

    async def measure(url: str, writers: int) -> tuple[int, float]:
        conns = [await asyncpg.connect(url) for _ in range(writers)]
        run = uuid.uuid4().int % 1_000_000 * 1_000_000_000
        digest = os.urandom(32)
        deadline = time.monotonic() + RUN_S

        async def writer(k: int, conn: asyncpg.Connection) -> int:
            written = 0
            base = run + k * 10_000_000
            while time.monotonic() < deadline:
                rows = [
                    (base + n, f"{base}-{k}", "bench", n, "Measured", PAYLOAD, f"{base}-{n}",
                     b"", digest, digest)
                    for n in range(written, written + rows_per_copy)
                ]  # fmt: skip
                await conn.copy_records_to_table(COPY_TABLE, records=rows, columns=COPY_COLUMNS)
                written += rows_per_copy
            return written

        try:
            started = time.monotonic()
            events = sum(await asyncio.gather(*(writer(k, c) for k, c in enumerate(conns))))
            return events, time.monotonic() - started
        finally:
            for conn in conns:
                await conn.close()

    return measure


async def run_all(url: str) -> dict[tuple[str, int], float]:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute(f"CREATE TABLE {COPY_TABLE} (LIKE {EVENTS_TABLE} INCLUDING ALL)")
    finally:
        await conn.close()
    subjects: dict[str, Measure] = {
        "flopledger": measure_flopledger,
        "eventsourcing": measure_eventsourcing,
        "COPY x1": copy_measure(1),
        f"COPY x{COPY_ROWS_MAX}": copy_measure(COPY_ROWS_MAX),
    }
    # Rounds interleave the subjects, and each cell keeps its best round, so that a burst of
    # load from elsewhere on the machine does not decide a ratio.
    rates: dict[tuple[str, int], float] = {}
    for round_no in range(1, ROUNDS + 1):
        for writers in WRITER_COUNTS:
            for name, measure in subjects.items():
                events, seconds = await measure(url, writers)
                rate = events / seconds
                rates[name, writers] = max(rate, rates.get((name, writers), 0.0))
                print(f"round {round_no} {name:>14} {writers:>3} writers: {rate:>9,.0f} events/s",
                      file=sys.stderr)  # fmt: skip
    return rates


def print_report(rates: dict[tuple[str, int], float]) -> None:
    table = Table(
        title=f"append throughput, events/s ({PAYLOAD_BYTES}-byte events, "
        f"best of {ROUNDS} rounds of {RUN_S} s)"
    )
    table.add_column("subject")
    for writers in WRITER_COUNTS:
        table.add_column(f"{writers} writers", justify="right")
    for name in dict.fromkeys(name for name, _ in rates):
        table.add_row(name, *(f"{rates[name, w]:,.0f}" for w in WRITER_COUNTS))
    Console().print(table)
    ours = rates["flopledger", 64]
    print(
        f"RESULT append_vs_eventsourcing_64={ours / rates['eventsourcing', 64]:.2f} "
        f"append_vs_copy_64={ours / rates[f'COPY x{COPY_ROWS_MAX}', 64]:.3f} "
        f"events_per_s_64={ours:.0f}"
    )


async def main() -> None:
    url = await create_test_database(prefix="flop_bench_")
    try:
        rates = await run_all(url)
    finally:
        await drop_test_database(url)
    print_report(rates)


if __name__ == "__main__":
    asyncio.run(main())
