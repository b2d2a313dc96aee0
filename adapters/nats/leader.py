"""Leader lock: one relay publishes at a time; a second one waits.

A key in a KV bucket whose entries expire after ``ttl_s`` (the bucket's max age). The holder
creates the key (CAS on "absent") and refreshes it every ``heartbeat_s`` with a CAS on the
revision it last wrote; a failed CAS means someone else took over. A holder restarted with
the same ``holder`` id (a supervisor restarting the relay) takes the lock back at once
instead of waiting for the TTL. Safety does not rest on the lock: every publish carries an
expected-last-sequence check, so two relays at once can slow each other but never make a
gap or a duplicate.
"""

from __future__ import annotations

import asyncio
import time

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType
from nats.js.kv import KeyValue

from adapters.nats.connection import describe_server, nats_errors
from adapters.nats.errors import LeadershipLost

LOCK_BUCKET = "FLOP_LEADERS"
RELAY_LOCK_KEY = "relay"
LOCK_TTL_S = 10.0
LOCK_HEARTBEAT_FRACTION = 0.3
LOCK_POLL_FRACTION = 0.25

_log = structlog.get_logger("flopledger.nats.leader")


class LeaderLock:
    """A CAS + TTL lock on ``LOCK_BUCKET/<key>``; ``holder`` names this process."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        *,
        holder: str,
        key: str = RELAY_LOCK_KEY,
        ttl_s: float = LOCK_TTL_S,
        replicas: int = 1,
    ) -> None:
        self._nc = nc
        self._js = js
        self._holder = holder.encode()
        self._key = key
        self._ttl_s = ttl_s
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._revision: int | None = None

    @property
    def heartbeat_s(self) -> float:
        return self._ttl_s * LOCK_HEARTBEAT_FRACTION

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process holds the lock (True) or ``stop`` is set (False)."""
        kv = await self._bucket()
        waiting_logged = False
        while not stop.is_set():
            async with nats_errors(self._nc, f"leader lock {LOCK_BUCKET}/{self._key}"):
                revision = await self._try_take(kv)
            if revision is not None:
                self._revision = revision
                _log.info("leader_lock_acquired", key=self._key, holder=self._holder.decode())
                return True
            if not waiting_logged:
                _log.info("leader_lock_waiting", key=self._key, holder=self._holder.decode())
                waiting_logged = True
            try:
                await asyncio.wait_for(stop.wait(), self._ttl_s * LOCK_POLL_FRACTION)
            except TimeoutError:
                continue
        return False

    async def hold(self) -> None:
        """Refresh the lock forever; raise LeadershipLost when it is taken or cannot be renewed."""
        kv = await self._bucket()
        renewed_at = time.monotonic()
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                self._revision = await kv.update(self._key, self._holder, last=self._revision)
                renewed_at = time.monotonic()
            except nats.js.errors.KeyWrongLastSequenceError as exc:
                raise LeadershipLost(f"leader lock {self._key} was taken by another relay") from exc
            except (TimeoutError, nats.errors.Error) as exc:
                _log.warning(
                    "leader_lock_renew_failed", server=describe_server(self._nc), error=str(exc)
                )
                if time.monotonic() - renewed_at > self._ttl_s:
                    raise LeadershipLost(
                        f"leader lock {self._key} not renewed for {self._ttl_s} s"
                    ) from exc

    async def release(self) -> None:
        """Give the lock up (delete with CAS) so that a waiting relay takes over at once."""
        if self._kv is None or self._revision is None:
            return
        try:
            await self._kv.delete(self._key, last=self._revision)
        except (TimeoutError, nats.errors.Error) as exc:
            _log.warning("leader_lock_release_failed", key=self._key, error=str(exc))
        self._revision = None

    async def _bucket(self) -> KeyValue:
        if self._kv is not None:
            return self._kv
        async with nats_errors(self._nc, f"open KV bucket {LOCK_BUCKET}"):
            try:
                self._kv = await self._js.key_value(LOCK_BUCKET)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await self._js.create_key_value(
                    bucket=LOCK_BUCKET,
                    history=1,
                    ttl=self._ttl_s,
                    storage=StorageType.FILE,
                    replicas=self._replicas,
                )
        return self._kv

    async def _try_take(self, kv: KeyValue) -> int | None:
        try:
            return await kv.create(self._key, self._holder)
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        try:
            entry = await kv.get(self._key)
        except nats.js.errors.KeyNotFoundError:
            return None
        if entry.value != self._holder:
            return None
        try:
            return await kv.update(self._key, self._holder, last=entry.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None
