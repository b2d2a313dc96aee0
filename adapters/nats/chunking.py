"""Streaming helpers of the object store: a bounded window of NATS requests, re-chunking.

A streamed put or get keeps a few chunk requests in flight (throughput: one round trip per
128 KiB chunk otherwise) and never more (memory: the window bounds what is held).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Coroutine
from typing import Any


class RequestWindow:
    """At most ``size`` NATS requests in flight, results taken in submission order; on
    leaving with an error the ones still in flight are cancelled, else awaited."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._tasks: deque[asyncio.Task[Any]] = deque()

    async def __aenter__(self) -> RequestWindow:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            while self._tasks:
                await self.next_result()
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def is_full(self) -> bool:
        return len(self._tasks) >= self._size

    def pending(self) -> bool:
        return bool(self._tasks)

    def add(self, request: Coroutine[Any, Any, Any]) -> None:
        self._tasks.append(asyncio.ensure_future(request))

    async def submit(self, request: Coroutine[Any, Any, Any]) -> None:
        """Add ``request``, first waiting for the oldest while the window is full."""
        while self.is_full():
            await self.next_result()
        self.add(request)

    async def next_result(self) -> Any:
        return await self._tasks.popleft()


async def rechunk(chunks: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """The bytes of ``chunks`` cut into pieces of ``size`` (the last one shorter)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
