"""Probes over a real nats-server: request-reply on flop.probe.<node>, silence as None."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from adapters.compute.probe_device import FakeClock
from adapters.nats.probe import NatsProbeTransport, compute_probe_subject, serve_probes
from proofs.identity import Identity
from proofs.probe_wire import Ping, Pong, seal, unseal
from tests import probing
from tests.probing import responder, toy_device, toy_spec
from validator.prober import Prober

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


async def test_a_validator_times_a_node_over_nats(nc: Client) -> None:
    """The whole protocol through a real server: an honest simulated device passes, a device
    half as fast as the least honest one misses (both on the fake clock, RTT margin 0)."""
    clock = FakeClock()
    node = responder(clock, toy_device(clock), toy_device(clock, speed=0.25))
    subscription = await serve_probes(nc, probing.NODE.id, node.handle)
    transport = NatsProbeTransport(nc)
    prober = Prober(
        probing.VALIDATOR,
        transport,
        clock_ns=clock.now_ns,
        rtt_max_ns=probing.RTT_MAX_NS,
        payload_bytes_max=transport.payload_bytes_max,
    )
    seed, nonce = probing.CHALLENGE_SEED, probing.NONCE
    honest = await prober.attest(
        probing.NODE.id, nonce=nonce, challenge_seed=seed, specs=[toy_spec(0)]
    )
    assert (honest.passed, honest.reason) == (True, "ok")
    both = await prober.attest(
        probing.NODE.id, nonce=nonce, challenge_seed=seed, specs=[toy_spec(0), toy_spec(1)]
    )
    assert (both.passed, both.reason, both.device_index) == (False, "compute_deadline_missed", 1)
    assert node.held_probes() == 0
    await subscription.unsubscribe()
