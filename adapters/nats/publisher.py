"""Pipelined JetStream publishing: many publishes in flight, each with its own ack future.

nats-py 2.16's ``publish_async`` never resolves the future of a publish the server refuses
(its reply handler raises the API error instead of setting it on the future, so a refused
expected-last-sequence check looks like a lost ack). This publisher owns one wildcard reply
subscription and resolves every future with the ack or the typed API error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header, PubAck

from adapters.nats.connection import nats_errors

NO_RESPONDERS_STATUS = "503"


class PipelinedPublisher:
    """Publish to JetStream without waiting; ``publish`` returns a future for the ack."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = ""
        self._pending: dict[str, asyncio.Future[PubAck]] = {}
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
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[PubAck]:
        """Send one message; the future resolves to its PubAck or raises the API error."""
        token = str(next(self._tokens))
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            await self._nc.publish(
                subject, payload, reply=f"{self._prefix}.{token}", headers=headers
            )
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

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[len(self._prefix) + 1 :], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS_STATUS:
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            answer = json.loads(msg.data)
        except ValueError as exc:
            future.set_exception(nats.js.errors.APIError(description=f"bad ack: {exc}"))
            return
        if "error" in answer:
            future.set_exception(_api_error(answer["error"]))
            return
        future.set_result(PubAck.from_response(answer))


def _api_error(error: dict[str, object]) -> nats.js.errors.APIError:
    """nats-py's ``APIError.from_error`` raises the typed error; catch it to return it."""
    try:
        nats.js.errors.APIError.from_error(error)
    except nats.js.errors.APIError as typed:
        return typed
    return nats.js.errors.APIError(description=str(error))
