"""Hardware probes over core NATS request-reply (issue 15): ``flop.probe.<node id>``.

A validator's ``NatsProbeTransport.request`` answers None when no reply came in time or
nobody listens (the prober records the node as unanswered); every other NATS failure is a
``NatsError``. A node serves its subject with ``serve_probes``: each request is handled in
its own task (a liveness ping is not queued behind a running compute probe; the responder
serializes work per device), at most ``SERVE_IN_FLIGHT_MAX`` at once, the rest waiting in
the subscription's bounded queue. Payloads are the sealed bytes of ``proofs.probe_wire``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from adapters.nats.codec import compute_subject_token
from adapters.nats.connection import nats_errors
from proofs.probe_wire import PROBE_MESSAGE_BYTES_MAX, PROBE_SUBJECT_PREFIX

SERVE_IN_FLIGHT_MAX = 16
"""Requests a node handles at once (the responder queues device work per device)."""
SERVE_PENDING_MSGS_MAX = 256
"""Requests waiting to be handled; beyond that NATS drops them (the prober times out)."""

_log = structlog.get_logger("flopledger.nats.probe")

ProbeHandler = Callable[[bytes], Awaitable[bytes]]


def compute_probe_subject(node_id: str) -> str:
    """``flop.probe.<node id token>``."""
    return f"{PROBE_SUBJECT_PREFIX}.{compute_subject_token(node_id)}"


class NatsProbeTransport:
    """The prober's transport (``validator.prober.ProbeTransport``) on a NATS connection."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc

    @property
    def payload_bytes_max(self) -> int:
        """The largest message both the server and the protocol take."""
        return min(self._nc.max_payload or PROBE_MESSAGE_BYTES_MAX, PROBE_MESSAGE_BYTES_MAX)

    async def request(self, node_id: str, data: bytes, timeout_s: float) -> bytes | None:
        subject = compute_probe_subject(node_id)
        async with nats_errors(self._nc, f"request {subject}"):
            try:
                reply = await self._nc.request(subject, data, timeout=timeout_s)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                return None
        return reply.data


async def serve_probes(nc: Client, node_id: str, handle: ProbeHandler) -> Subscription:
    """Answer requests on the node's probe subject with ``handle`` until unsubscribed."""
    subject = compute_probe_subject(node_id)
    slots = asyncio.Semaphore(SERVE_IN_FLIGHT_MAX)
    running: set[asyncio.Task[None]] = set()

    async def answer(msg: Msg) -> None:
        try:
            reply = await handle(msg.data)
            if msg.reply:
                async with nats_errors(nc, f"respond {subject}"):
                    await msg.respond(reply)
        finally:
            slots.release()

    def finished(task: asyncio.Task[None]) -> None:
        running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("probe_answer_failed", subject=subject, error=repr(task.exception()))

    async def on_request(msg: Msg) -> None:
        await slots.acquire()
        task = asyncio.create_task(answer(msg))
        running.add(task)
        task.add_done_callback(finished)

    async with nats_errors(nc, f"subscribe {subject}"):
        subscription = await nc.subscribe(
            subject, cb=on_request, pending_msgs_limit=SERVE_PENDING_MSGS_MAX
        )
        await nc.flush()
    return subscription
