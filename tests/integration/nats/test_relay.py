"""The relay against a real nats-server: sequence N is position N, whatever happens."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js.api import StorageType

from adapters.nats.codec import (
    EVENT_STREAM,
    HEADER_EXPECTED_LAST_SEQUENCE,
    compute_event_subject,
    encode_record_headers,
    encode_record_payload,
)
from adapters.nats.errors import MirrorDiverged
from adapters.nats.relay import Relay, RelayConfig
from adapters.nats.server import EmbeddedNatsServer
from adapters.store.memory import MemoryEventStore
from tests.integration.nats.helpers import (
    assert_mirror_exact,
    build_store,
    fill_store,
    read_everything,
)

WAIT_TIMEOUT_S = 30.0
TEST_LOCK_TTL_S = 2.0


@asynccontextmanager
async def running(relay: Relay) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), WAIT_TIMEOUT_S)


async def wait_for_position(
    relay: Relay, position: int, task: asyncio.Task[None] | None = None
) -> None:
    async def poll() -> None:
        while relay.acked_position < position:
            if task is not None and task.done():
                task.result()
                raise AssertionError("relay stopped early")
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT_TIMEOUT_S)


def make_relay(store: MemoryEventStore, nc: Client, holder: str = "test-relay") -> Relay:
    return Relay(store, nc, RelayConfig(holder=holder, lock_ttl_s=TEST_LOCK_TTL_S))


async def test_relay_mirrors_backlog_and_live_commits(nc: Client) -> None:
    store = await build_store(1500)
    relay = make_relay(store, nc)
    async with running(relay) as task:
        await wait_for_position(relay, 1500, task)
        await fill_store(store, 1800)
        await wait_for_position(relay, 1800, task)
    js = nc.jetstream()
    await assert_mirror_exact(js, await read_everything(store))
    message = await js.get_msg(EVENT_STREAM, 1)
    record = (await store.read_all(1, 1))[0]
    assert message.subject == compute_event_subject(record)
    assert message.subject.startswith("flop.ev.node.")


async def test_stream_config_is_append_only_file_storage_without_limits(nc: Client) -> None:
    store = await build_store(10)
    await make_relay(store, nc).sync_once()
    js = nc.jetstream()
    info = await js.stream_info(EVENT_STREAM)
    assert info.config.storage == StorageType.FILE
    assert info.config.deny_delete and info.config.deny_purge
    assert info.config.num_replicas == 1
    assert not info.config.max_age
    assert info.config.max_bytes == -1 and info.config.max_msgs == -1
    with pytest.raises(nats.js.errors.APIError):
        await js.delete_msg(EVENT_STREAM, 3)
    with pytest.raises(nats.js.errors.APIError):
        await js.purge_stream(EVENT_STREAM)


async def test_wrong_expected_sequence_is_refused_and_relay_resyncs(nc: Client) -> None:
    store = await build_store(100)
    relay = make_relay(store, nc)
    js = nc.jetstream()
    async with running(relay) as task:
        await wait_for_position(relay, 100, task)
        await fill_store(store, 101)
        await wait_for_position(relay, 101, task)
        record = (await store.read_all(101, 1))[0]
        headers = encode_record_headers(record)
        headers[HEADER_EXPECTED_LAST_SEQUENCE] = "7"
        with pytest.raises(nats.js.errors.BadRequestError) as refused:
            await js.publish(compute_event_subject(record), b"rogue", headers=headers)
        assert refused.value.err_code == 10071
        # An outside publisher appends the store's next record behind the relay's back
        # (without a msg id), so the relay's own publish of it meets a wrong last sequence.
        await fill_store(store, 102)
        sneaky = (await store.read_all(102, 1))[0]
        sneaky_headers = encode_record_headers(sneaky)
        del sneaky_headers["Nats-Msg-Id"]
        relay_was_idle = relay.acked_position == 101
        await js.publish(
            compute_event_subject(sneaky), encode_record_payload(sneaky), headers=sneaky_headers
        )
        await fill_store(store, 200)
        await wait_for_position(relay, 200, task)
    await assert_mirror_exact(js, await read_everything(store))
    assert relay_was_idle
    assert relay.stats.resyncs >= 1
    assert relay.stats.wrong_last_sequence >= 1


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_restart_of_nats_server_mid_relay_leaves_no_gap_or_duplicate(
    nats_server: EmbeddedNatsServer, nc: Client, how: str
) -> None:
    store = await build_store(10_000)
    config = RelayConfig(holder="r", lock_ttl_s=TEST_LOCK_TTL_S, window=64, ack_timeout_s=1.0)
    relay = Relay(store, nc, config)

    async def keep_writing() -> None:
        while True:
            head = await store.head()
            await fill_store(store, head.position + 50)
            await asyncio.sleep(0.005)

    def crash_and_start() -> None:
        if how == "sigkill":
            nats_server.kill()
            nats_server.start()
        else:
            nats_server.restart()

    async with running(relay) as task:
        await wait_for_position(relay, 1000, task)
        writer = asyncio.create_task(keep_writing())
        await asyncio.to_thread(crash_and_start)
        await asyncio.sleep(0.3)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await wait_for_position(relay, (await store.head()).position, task)
    assert nc.stats["reconnects"] >= 1
    await assert_mirror_exact(nc.jetstream(), await read_everything(store))


async def test_relay_heals_stream_that_lost_acknowledged_writes(
    nats_server: EmbeddedNatsServer, nc: Client, tmp_path
) -> None:
    store = await build_store(3000)
    relay = make_relay(store, nc)
    backup = tmp_path / "store-backup"
    async with running(relay) as task:
        await wait_for_position(relay, 3000, task)
        await asyncio.to_thread(nats_server.stop)
        await asyncio.to_thread(shutil.copytree, nats_server.store_dir, backup)
        await asyncio.to_thread(nats_server.start)
        await fill_store(store, 8000)
        await wait_for_position(relay, 8000, task)
        await asyncio.to_thread(nats_server.stop)
        shutil.rmtree(nats_server.store_dir)
        await asyncio.to_thread(shutil.copytree, backup, nats_server.store_dir)
        await asyncio.to_thread(nats_server.start)
        js = nc.jetstream()

        async def healed() -> None:
            while relay.stats.healed == 0 or relay.acked_position < 8000:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(healed(), WAIT_TIMEOUT_S)
    assert relay.stats.healed == 5000
    await assert_mirror_exact(js, await read_everything(store))


async def test_stream_hash_differing_from_store_is_an_alarm_naming_the_sequence(nc: Client) -> None:
    await make_relay(await build_store(50, seed="a"), nc).sync_once()
    other = make_relay(await build_store(60, seed="b"), nc)
    with pytest.raises(MirrorDiverged) as alarm:
        await other.sync_once()
    assert alarm.value.sequence == 50
    assert "sequence 50" in str(alarm.value)


async def test_stream_longer_than_store_is_an_alarm(nc: Client) -> None:
    await make_relay(await build_store(50), nc).sync_once()
    with pytest.raises(MirrorDiverged) as alarm:
        await make_relay(await build_store(40), nc).sync_once()
    assert alarm.value.sequence == 50


async def test_second_relay_waits_for_the_leader_lock(nc: Client) -> None:
    store = await build_store(200)
    first = make_relay(store, nc, holder="first")
    second = make_relay(store, nc, holder="second")
    async with running(first) as first_task:
        await wait_for_position(first, 200, first_task)
        async with running(second) as second_task:
            await fill_store(store, 300)
            await wait_for_position(first, 300, first_task)
            await asyncio.sleep(0.3)
            assert second.stats.published == 0
            first_task.cancel()
            await asyncio.gather(first_task, return_exceptions=True)
            await fill_store(store, 400)
            await wait_for_position(second, 400, second_task)
    await assert_mirror_exact(nc.jetstream(), await read_everything(store))
