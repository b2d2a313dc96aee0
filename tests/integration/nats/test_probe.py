"""Probes over a real nats-server: request-reply on flop.probe.<node>, silence as None."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from adapters.nats.probe import NatsProbeTransport, compute_probe_subject, serve_probes
from proofs.identity import Identity
from proofs.probe_wire import Ping, Pong, seal, unseal

NODE = Identity.from_seed(bytes(range(1, 33)))
VALIDATOR = Identity.from_seed(bytes(range(32)))


async def echo_pong(data: bytes) -> bytes:
    _, message = unseal(data, recipient=NODE.id)
    assert isinstance(message, Ping)
    return seal(NODE, Pong(nonce=message.nonce), to=VALIDATOR.id)


async def test_a_request_reaches_the_node_subject_and_its_answer_comes_back(nc: Client) -> None:
    subscription = await serve_probes(nc, NODE.id, echo_pong)
    transport = NatsProbeTransport(nc)
    reply = await transport.request(
        NODE.id, seal(VALIDATOR, Ping(nonce=b"abcdefgh"), to=NODE.id), 5
    )
    assert reply is not None
    assert unseal(reply, NODE.id, recipient=VALIDATOR.id)[1] == Pong(nonce=b"abcdefgh")
    assert compute_probe_subject(NODE.id) == f"flop.probe.{NODE.id}"
    assert transport.payload_bytes_max == 1024 * 1024
    await subscription.unsubscribe()


async def test_no_node_listening_and_a_silent_node_both_answer_none(nc: Client) -> None:
    transport = NatsProbeTransport(nc)
    assert await transport.request(NODE.id, b"x", 2) is None
    release = asyncio.Event()

    async def silent(data: bytes) -> bytes:
        await release.wait()
        return b""

    subscription = await serve_probes(nc, NODE.id, silent)
    assert await transport.request(NODE.id, b"x", 0.2) is None
    release.set()
    await subscription.unsubscribe()


async def test_a_ping_is_not_queued_behind_a_long_request(nc: Client) -> None:
    release = asyncio.Event()

    async def handle(data: bytes) -> bytes:
        if data == b"long":
            await release.wait()
            return b"long done"
        return b"pong"

    subscription = await serve_probes(nc, NODE.id, handle)
    transport = NatsProbeTransport(nc)
    long = asyncio.ensure_future(transport.request(NODE.id, b"long", 10))
    await asyncio.sleep(0.05)
    assert await transport.request(NODE.id, b"ping", 5) == b"pong"
    assert not long.done()
    release.set()
    assert await long == b"long done"
    await subscription.unsubscribe()
