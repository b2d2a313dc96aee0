"""Benchmark: the relay vs raw JetStream publishing, and verified replay, on one nats-server.

Fills a MemoryEventStore with ``EVENTS`` events (large batched appends), starts an embedded
nats-server in a temporary directory, then measures, one run each:

- raw: the very payloads the relay sends, same subjects, same in-flight window, no headers,
  into scratch streams, once with nats-py's ``publish_async`` and once with our
  ``PipelinedPublisher``; the faster of the two is the baseline;
- relay: ``Relay.sync_once`` from an empty FLOP_EVENTS to the store's head (reads the store,
  encodes, adds the headers and the expected-last-sequence check, checks every ack);
- replay: ``replay()`` from sequence 1 with hash-chain verification of every record.

Last line: ``RESULT relay_vs_raw=<ratio> relay_events_per_s=<n> replay_events_per_s=<n>``.
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
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.nats.codec import compute_event_subject, encode_record_payload
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.consumer import replay
from adapters.nats.publisher import PipelinedPublisher
from adapters.nats.relay import RELAY_WINDOW_MAX, Relay, RelayConfig
from adapters.nats.server import EmbeddedNatsServer
from adapters.nats.stream import build_event_stream_config
from adapters.store.memory import MemoryEventStore
from domain.records import NewEvent, Record, StreamAppend

EVENTS = 100_000
EVENTS_PER_APPEND = 1000
EVENT_DATA_BYTES = 128
RAW_STREAM = "BENCH_RAW"
RAW_SUBJECT_PREFIX = "bench.raw"


async def fill_store(count: int) -> MemoryEventStore:
    store = MemoryEventStore()
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
    return store


async def read_all(store: MemoryEventStore) -> list[Record]:
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
    await pipelined.close()
    await close_nats(nc)
    return len(records) / elapsed


async def bench_relay(url: str, store: MemoryEventStore, count: int, window: int) -> float:
    nc = await connect_nats(url, name="bench-relay")
    relay = Relay(store, nc, RelayConfig(window=window))
    started = time.perf_counter()
    acked = await relay.sync_once()
    elapsed = time.perf_counter() - started
    assert acked == count, acked
    await close_nats(nc)
    return count / elapsed


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


async def main(events: int, window: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    started = time.perf_counter()
    store = await fill_store(events)
    records = await read_all(store)
    print(f"store filled: {events} events in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as data_dir:
        server = EmbeddedNatsServer(Path(data_dir))
        url = server.start()
        try:
            raw_natspy = await bench_raw(url, records, window, "natspy")
            print(f"raw nats-py publish_async (window {window}): {raw_natspy:,.0f} events/s")
            raw_pipelined = await bench_raw(url, records, window, "pipelined")
            print(f"raw PipelinedPublisher (window {window}):    {raw_pipelined:,.0f} events/s")
            raw = max(raw_natspy, raw_pipelined)
            relayed = await bench_relay(url, store, events, window)
            print(f"relay (window {window}):                     {relayed:,.0f} events/s")
            replayed = await bench_replay(url, events)
            print(f"replay from 1 with verification:             {replayed:,.0f} events/s")
        finally:
            server.stop()
    print(
        f"RESULT relay_vs_raw={relayed / raw:.2f} relay_events_per_s={relayed:.0f} "
        f"replay_events_per_s={replayed:.0f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--window", type=int, default=RELAY_WINDOW_MAX)
    options = parser.parse_args()
    asyncio.run(main(options.events, options.window))
