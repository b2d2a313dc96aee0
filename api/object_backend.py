"""The API's object store (issue 17), opened on first use: the API starts, and serves the
ledger, while NATS is down, and an object route answers 503 until it is up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from api.errors import ApiError
from domain.errors import RejectionCode
from domain.ports import ObjectStore

ObjectOpener = Callable[[], Awaitable[tuple[ObjectStore, Callable[[], Awaitable[None]]]]]
"""Opens the store; returns it and how to close it."""


@dataclass
class ObjectBackend:
    """The store behind the object routes; ``opener`` None: none configured (503)."""

    opener: ObjectOpener | None = None
    _store: ObjectStore | None = None
    _close: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @classmethod
    def of(cls, store: ObjectStore) -> ObjectBackend:
        """A backend over a store already open (tests)."""
        return cls(opener=None, _store=store)

    async def get(self) -> ObjectStore:
        if self._store is None:
            if self.opener is None:
                raise ApiError(
                    RejectionCode.OBJECT_STORE_UNAVAILABLE,
                    "this API has no object store configured (FLOP_NATS_URL)",
                    status=503,
                )
            async with self._lock:
                if self._store is None:
                    self._store, self._close = await self.opener()
        return self._store

    async def close(self) -> None:
        if self._close is not None:
            await self._close()
        self._store = self._close = None
