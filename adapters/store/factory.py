"""Wiring: open the event store a URL names (the one module that knows every store adapter).

``postgresql://`` (or ``postgres://``) opens PostgreSQL, which must have been migrated with
``flopledger db migrate``; ``sqlite:///path`` opens (and creates) an SQLite file, making its
parent folders; ``memory:`` an empty in-memory store.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from adapters.store.memory import MemoryEventStore
from adapters.store.postgres import CONNECT_TIMEOUT_S, PostgresEventStore
from adapters.store.postgres_committer import DRIVER_ERRORS
from adapters.store.postgres_schema import migrate
from adapters.store.sqlite import SqliteEventStore
from domain.errors import StoreUnavailable
from domain.ports import EventStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_PREFIX = "sqlite:///"
MEMORY_URL = "memory:"


async def open_event_store(url: str, *, schema: str = "public") -> EventStore:
    """The store ``url`` names; ValueError for a URL of no known kind."""
    if url.startswith(POSTGRES_SCHEMES):
        return await PostgresEventStore.connect(url, schema=schema)
    if url.startswith(SQLITE_PREFIX):
        return await SqliteEventStore.open(get_sqlite_path(url))
    if url == MEMORY_URL:
        return MemoryEventStore()
    raise ValueError(f"unknown event store URL {url!r}: use postgresql://, sqlite:/// or memory:")


async def migrate_event_store(url: str, *, schema: str = "public") -> str:
    """Bring the store ``url`` names to the latest schema; a one-line report of what was done."""
    if url.startswith(POSTGRES_SCHEMES):
        try:
            conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
        except DRIVER_ERRORS as exc:
            raise StoreUnavailable(f"cannot connect to {_redact(url)}: {exc}") from exc
        try:
            applied = await migrate(conn, schema)
        except DRIVER_ERRORS as exc:
            raise StoreUnavailable(f"migration of {_redact(url)} failed: {exc}") from exc
        finally:
            await conn.close()
        if not applied:
            return f"schema {schema!r} of {_redact(url)} is up to date"
        return f"schema {schema!r} of {_redact(url)}: applied migrations {applied}"
    if url.startswith(SQLITE_PREFIX):
        # The embedded store creates its schema when it opens: opening is migrating.
        store = await SqliteEventStore.open(get_sqlite_path(url))
        await store.close()
        return f"SQLite store {get_sqlite_path(url)} is ready"
    if url == MEMORY_URL:
        return "the memory store has nothing to migrate"
    raise ValueError(f"unknown event store URL {url!r}: use postgresql://, sqlite:/// or memory:")


def get_sqlite_path(url: str) -> Path:
    """``sqlite:///rel/path`` is relative, ``sqlite:////abs/path`` absolute (as SQLAlchemy)."""
    return Path(url[len(SQLITE_PREFIX) :]).expanduser()


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"
