"""Leader locks next to the event store: one holder at a time across processes.

``try_acquire_leader_lock(url, name)`` returns a held lock or None when another process
holds it. PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection of
its own, released when the holder unlocks, closes or dies (locks are per database, so two
stores on one server never share one). SQLite: ``flock`` on ``<database>.<name>.lock``
beside the file, released by the kernel when the holder's process dies. Memory: the store
lives in one process, so the lock always succeeds. A holder calls ``is_held`` before each
piece of leader work: a PostgreSQL lock whose connection broke is lost. Correctness must
not rest on the lock alone (the sealer's log stream refuses a head that does not grow).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from typing import Protocol

import asyncpg
import structlog

from adapters.store.factory import MEMORY_URL, POSTGRES_SCHEMES, SQLITE_PREFIX, get_sqlite_path
from adapters.store.postgres import CONNECT_TIMEOUT_S
from adapters.store.postgres_committer import DRIVER_ERRORS
from domain.errors import StoreUnavailable

LOCK_KEY_PREFIX = b"flopledger/leader/"

_log = structlog.get_logger("flopledger.leader")


class LeaderLock(Protocol):
    """A held lock."""

    async def is_held(self) -> bool:
        """False once the lock may have passed to someone else."""
        ...

    async def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...


async def try_acquire_leader_lock(url: str, name: str) -> LeaderLock | None:
    """The lock ``name`` beside the store ``url`` if free now, else None (never waits)."""
    if url.startswith(POSTGRES_SCHEMES):
        return await _PostgresLock.try_acquire(url, name)
    if url.startswith(SQLITE_PREFIX):
        return _FileLock.try_acquire(get_sqlite_path(url), name)
    if url == MEMORY_URL:
        return _ProcessLock()
    raise ValueError(f"unknown event store URL {url!r}: use postgresql://, sqlite:/// or memory:")


def compute_advisory_key(name: str) -> int:
    """The signed 64-bit advisory lock key of ``name`` (stable across processes)."""
    digest = hashlib.sha256(LOCK_KEY_PREFIX + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _PostgresLock:
    def __init__(self, conn: asyncpg.Connection, key: int) -> None:
        self._conn: asyncpg.Connection | None = conn
        self._key = key

    @classmethod
    async def try_acquire(cls, url: str, name: str) -> _PostgresLock | None:
        key = compute_advisory_key(name)
        try:
            conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
        except DRIVER_ERRORS as exc:
            raise StoreUnavailable(f"cannot connect for the {name} lock: {exc}") from exc
        try:
            acquired = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
        except DRIVER_ERRORS as exc:
            await conn.close()
            raise StoreUnavailable(f"advisory lock {name}: {exc}") from exc
        if not acquired:
            await conn.close()
            return None
        return cls(conn, key)

    async def is_held(self) -> bool:
        if self._conn is None or self._conn.is_closed():
            return False
        try:
            await self._conn.fetchval("SELECT 1")
        except DRIVER_ERRORS as exc:
            _log.warning("leader_lock_lost", error=str(exc))
            return False
        return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", self._key)
        except DRIVER_ERRORS as exc:
            _log.warning("leader_unlock_failed", error=str(exc))
        finally:
            await conn.close()


class _FileLock:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, database: os.PathLike[str], name: str) -> _FileLock | None:
        path = f"{os.fspath(database)}.{name}.lock"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(fd)

    async def is_held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


class _ProcessLock:
    def __init__(self) -> None:
        self._held = True

    async def is_held(self) -> bool:
        return self._held

    async def release(self) -> None:
        self._held = False
