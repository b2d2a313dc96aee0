"""Benchmark: the relay from each event store vs raw JetStream publishing, and verified replay.

Fills three event stores with the same ``EVENTS`` events (large batched appends): in memory,
an SQLite file in a temporary directory, and a fresh PostgreSQL database (found as the tests
find a server, ``tests/pg.py``; dropped afterwards). The hash chain makes their records the
same, byte for byte. Then, on one embedded nats-server, ``ROUNDS`` rounds that interleave:

- raw: the very payloads the relay sends, same subjects, same in-flight window, no headers,
  into a scratch stream with our ``PipelinedPublisher`` (and, in the first round, with
  nats-py's ``publish_async``); the fastest of all is the baseline;
- relay, from each store in turn: ``Relay.sync_once`` from an empty FLOP_EVENTS to the
  store's head (reads the store page by page, encodes, adds the headers and the
  expected-last-sequence check, checks every ack); the stream is deleted after each;
- replay (first round, after the relay from memory): ``replay()`` from sequence 1 with
  hash-chain verification of every record.

Each figure is its best round, so that a burst of load from elsewhere does not decide a
ratio. Last line: ``RESULT relay_vs_raw=<ratio> relay_events_per_s=<n>
replay_events_per_s=<n> relay_vs_raw_sqlite=<ratio> relay_vs_raw_postgresql=<ratio>``
(``relay_vs_raw`` and ``relay_events_per_s``: from memory).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.nats.codec import EVENT_STREAM, compute_event_subject, encode_record_payload
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.consumer import replay
from adapters.nats.publisher import PipelinedPublisher
from adapters.nats.relay import RELAY_WINDOW_MAX, Relay, RelayConfig
from adapters.nats.server import EmbeddedNatsServer
from adapters.nats.stream import build_event_stream_config
from adapters.store.memory import MemoryEventStore
from adapters.store.postgres import PostgresEventStore
from adapters.store.postgres_schema import migrate
from adapters.store.sqlite import SqliteEventStore
from domain.ports import EventStore
from domain.records import NewEvent, Record, StreamAppend
from tests.pg import create_test_database, drop_test_database

EVENTS = 100_000
ROUNDS = 2
EVENTS_PER_APPEND = 1000
EVENT_DATA_BYTES = 128
RAW_STREAM = "BENCH_RAW"
RAW_SUBJECT_PREFIX = "bench.raw"


async def fill_store(store: EventStore, count: int) -> None:
    for first in range(0, count, EVENTS_PER_APPEND):
        events = tuple(
            NewEvent(
                event_type="JobSubmitted",
                data=hashlib.sha256(str(first + i).encode()).digest() * (EVENT_DATA_BYTES // 32),
            )
            for i in range(min(EVENTS_PER_APPEND, count - first))
        )
        await store.append(
            [StreamAppend(f"job-{first}", "job", None, events)], command_id=f"c{first}"
        )


async def read_all(store: EventStore) -> list[Record]:
    records: list[Record] = []
    while batch := await store.read_all(len(records) + 1, 10_000):
        records.extend(batch)
    return records


async def bench_raw(url: str, records: list[Record], window: int, client: str) -> float:
    """Publish the relay's payloads with no headers; ``client``: nats-py's publish_async or
    our PipelinedPublisher (the relay's transport without the relay)."""
    nc = await connect_nats(url, name=f"bench-raw-{client}")
    js = nc.jetstream(publish_async_max_pending=window * 2)
    stream = f"{RAW_STREAM}_{client.upper()}"
    prefix = f"{RAW_SUBJECT_PREFIX}.{client}"
    await js.add_stream(build_event_stream_config(name=stream, subjects=(f"{prefix}.>",)))
    messages = [
        (compute_event_subject(r).replace("flop.ev", prefix, 1), encode_record_payload(r))
        for r in records
    ]
    pipelined = PipelinedPublisher(nc)
    await pipelined.start()
    started = time.perf_counter()
    pending: deque[asyncio.Future[Any]] = deque()
    for subject, payload in messages:
        while len(pending) >= window or (pending and pending[0].done()):
            await pending.popleft()
        if client == "natspy":
            pending.append(await js.publish_async(subject, payload))
        else:
            pending.append(await pipelined.publish(subject, payload))
    for future in pending:
        await future
    elapsed = time.perf_counter() - started
    assert (await js.stream_info(stream)).state.last_seq == len(records)
    await js.delete_stream(stream)
    await pipelined.close()
    await close_nats(nc)
    return len(records) / elapsed


async def bench_relay(url: str, store: EventStore, count: int, window: int) -> float:
    nc = await connect_nats(url, name="bench-relay")
    relay = Relay(store, nc, RelayConfig(window=window))
    started = time.perf_counter()
    acked = await relay.sync_once()
    elapsed = time.perf_counter() - started
    assert acked == count, acked
    await close_nats(nc)
    return count / elapsed


async def delete_event_stream(url: str) -> None:
    """Drop FLOP_EVENTS so that the next relay starts from an empty stream."""
    nc = await connect_nats(url, name="bench-reset")
    await nc.jetstream().delete_stream(EVENT_STREAM)
    await close_nats(nc)


async def bench_replay(url: str, count: int) -> float:
    nc = await connect_nats(url, name="bench-replay")
    started = time.perf_counter()
    seen = 0
    async for _ in replay(nc):
        seen += 1
    elapsed = time.perf_counter() - started
    assert seen == count, seen
    await close_nats(nc)
    return count / elapsed


@asynccontextmanager
async def open_stores(root: Path) -> AsyncIterator[dict[str, EventStore]]:
    """The three stores, empty; the PostgreSQL database is dropped on the way out."""
    pg_url = await create_test_database(prefix="flop_bench_")
    stores: dict[str, EventStore] = {}
    try:
        conn = await asyncpg.connect(pg_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        stores["memory"] = MemoryEventStore()
        stores["sqlite"] = await SqliteEventStore.open(root / "events.sqlite3")
        stores["postgresql"] = await PostgresEventStore.connect(pg_url)
        yield stores
    finally:
        for store in stores.values():
            await store.close()
        await drop_test_database(pg_url)


async def run_rounds(
    url: str, stores: dict[str, EventStore], records: list[Record], window: int
) -> dict[str, float]:
    """Best events/s of each subject over ROUNDS interleaved rounds."""
    best: dict[str, float] = {}

    def keep(subject: str, rate: float, label: str) -> None:
        best[subject] = max(rate, best.get(subject, 0.0))
        print(f"round {round_no} {label:<44} {rate:>9,.0f} events/s")

    for round_no in range(1, ROUNDS + 1):
        if round_no == 1:
            rate = await bench_raw(url, records, window, "natspy")
            keep("raw", rate, f"raw nats-py publish_async (window {window})")
        rate = await bench_raw(url, records, window, "pipelined")
        keep("raw", rate, f"raw PipelinedPublisher (window {window})")
        for name, store in stores.items():
            rate = await bench_relay(url, store, len(records), window)
            keep(name, rate, f"relay from {name} (window {window})")
            if name == "memory" and round_no == 1:
                rate = await bench_replay(url, len(records))
                keep("replay", rate, "replay from 1 with verification")
            await delete_event_stream(url)
    return best


async def main(events: int, window: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with open_stores(root) as stores:
            records: list[Record] = []
            for name, store in stores.items():
                started = time.perf_counter()
                await fill_store(store, events)
                print(f"{name} store filled: {events} events in "
                      f"{time.perf_counter() - started:.1f} s")  # fmt: skip
                if records:
                    assert await read_all(store) == records, name
                else:
                    records = await read_all(store)
            server = EmbeddedNatsServer(root / "nats")
            url = server.start()
            try:
                best = await run_rounds(url, stores, records, window)
            finally:
                server.stop()
    raw = best["raw"]
    print(
        f"RESULT relay_vs_raw={best['memory'] / raw:.2f} relay_events_per_s={best['memory']:.0f} "
        f"replay_events_per_s={best['replay']:.0f} "
        f"relay_vs_raw_sqlite={best['sqlite'] / raw:.2f} "
        f"relay_vs_raw_postgresql={best['postgresql'] / raw:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--window", type=int, default=RELAY_WINDOW_MAX)
    options = parser.parse_args()
    asyncio.run(main(options.events, options.window))
