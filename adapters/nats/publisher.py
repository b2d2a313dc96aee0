"""Pipelined JetStream publishing: many publishes in flight, each with its own ack future.

nats-py 2.16's ``publish_async`` never resolves the future of a publish the server refuses
(its reply handler raises the API error instead of setting it on the future, so a refused
expected-last-sequence check looks like a lost ack). This publisher owns one wildcard reply
subscription and resolves every future with the ack or the typed API error.

For throughput, ``publish`` takes the header block already encoded (``codec``) and writes
the HPUB command itself into nats-py's pending buffer, with the same checks as
``Client.publish`` (closed, draining, buffer full while reconnecting, max payload); nats-py
would otherwise validate and re-encode every header of every message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header
from nats.protocol.command import hpub_cmd

from adapters.nats.connection import nats_errors

NO_RESPONDERS_STATUS = "503"


class PublishAck(msgspec.Struct, frozen=True):
    """JetStream's answer to a publish: the stream and the sequence the message got."""

    stream: str
    seq: int
    duplicate: bool = False


class _Answer(msgspec.Struct, frozen=True):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, object] | None = None


_ANSWER = msgspec.json.Decoder(_Answer)


class PipelinedPublisher:
    """Publish to JetStream without waiting; ``publish`` returns a future for the ack."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = ""
        self._pending: dict[str, asyncio.Future[PublishAck]] = {}
        self._tokens = itertools.count(1)
        self._subscription: Subscription | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """Subscribe to the reply inbox; call once before publishing."""
        if self._subscription is not None:
            return
        self._prefix = self._nc.new_inbox()
        async with nats_errors(self._nc, "subscribe to publish acks"):
            self._subscription = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def publish(
        self, subject: str, payload: bytes, header_block: bytes = b""
    ) -> asyncio.Future[PublishAck]:
        """Send one message; the future resolves to its PublishAck or raises the API error.

        ``header_block`` is a complete NATS header block (``codec``), or empty for none.
        """
        token = str(next(self._tokens))
        future: asyncio.Future[PublishAck] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            reply = f"{self._prefix}.{token}"
            if header_block:
                await self._send_hpub(subject, reply, header_block, payload)
            else:
                await self._nc.publish(subject, payload, reply=reply)
        except BaseException:
            self._pending.pop(token, None)
            raise
        return future

    def cancel_all(self) -> None:
        """Forget every publish still waiting for its ack (after an error, before a re-sync)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    async def close(self) -> None:
        self.cancel_all()
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _send_hpub(
        self, subject: str, reply: str, header_block: bytes, payload: bytes
    ) -> None:
        nc = self._nc
        if nc.is_closed:
            raise nats.errors.ConnectionClosedError
        if nc.is_draining_pubs:
            raise nats.errors.ConnectionDrainingError
        size = len(payload) + len(header_block)
        if not nc.is_connected and size + nc.pending_data_size > nc._max_pending_size:
            raise nats.errors.OutboundBufferLimitError
        if size > nc.max_payload:
            raise nats.errors.MaxPayloadError
        await nc._send_command(hpub_cmd(subject, reply, header_block, payload))
        if nc._flush_queue is not None and nc._flush_queue.empty():
            await nc._flush_pending()

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[len(self._prefix) + 1 :], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS_STATUS:
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            answer = _ANSWER.decode(msg.data)
        except msgspec.DecodeError as exc:
            future.set_exception(nats.js.errors.APIError(description=f"bad ack: {exc}"))
            return
        if answer.error is not None:
            future.set_exception(_api_error(answer.error))
            return
        future.set_result(PublishAck(answer.stream, answer.seq, answer.duplicate))


def _api_error(error: dict[str, object]) -> nats.js.errors.APIError:
    """nats-py's ``APIError.from_error`` raises the typed error; catch it to return it."""
    try:
        nats.js.errors.APIError.from_error(error)
    except nats.js.errors.APIError as typed:
        return typed
    return nats.js.errors.APIError(description=str(error))
