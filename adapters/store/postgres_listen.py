"""One LISTEN connection per store, shared by every subscriber (issue 16, item 8).

Each commit NOTIFYs the store's channel. A subscriber used to open a connection of its own to
LISTEN, so a few hundred open event streams exhausted the server's ``max_connections``. Now a
``SharedListener`` holds a single connection while anyone listens: each subscriber registers
an ``asyncio.Event`` that every notification sets, and the connection is closed when the last
one leaves. A lost connection is replaced on the next ``ensure`` (the subscribers re-read the
log on a timer meanwhile: a notification is a hint, the log is the truth).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class SharedListener:
    """The store's one listening connection and the events of those waiting on it."""

    def __init__(self, connect: Connect, channel: str, errors: tuple[type[BaseException], ...]):
        self._connect = connect
        self._channel = channel
        self._errors = errors
        self._conn: asyncpg.Connection | None = None
        self._waiters: set[asyncio.Event] = set()
        self._lock = asyncio.Lock()
        self.connections_opened = 0

    @property
    def subscribers(self) -> int:
        return len(self._waiters)

    def add(self) -> asyncio.Event:
        """A new subscriber's event, set by every notification from now on."""
        woken = asyncio.Event()
        self._waiters.add(woken)
        return woken

    async def ensure(self) -> bool:
        """Make sure the connection listens (open it, or replace a lost one); False when the
        database cannot be reached (the subscribers poll meanwhile)."""
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return True
            if not self._waiters:
                return False
            try:
                conn = await self._connect()
                await conn.add_listener(self._channel, self._notify)
            except self._errors:
                return False
            self._conn = conn
            self.connections_opened += 1
            return True

    async def remove(self, woken: asyncio.Event) -> None:
        """A subscriber leaves; the last one closes the connection."""
        self._waiters.discard(woken)
        if self._waiters:
            return
        async with self._lock:
            if self._waiters or self._conn is None:
                return
            conn, self._conn = self._conn, None
            if not conn.is_closed():
                with contextlib.suppress(*self._errors):
                    await conn.close()

    async def close(self) -> None:
        """Close the connection whoever waits (the store is closing)."""
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()
        for woken in self._waiters:
            woken.set()

    def _notify(self, *_args: Any) -> None:
        for woken in self._waiters:
            woken.set()
