"""Versioned, idempotent migrations of the PostgreSQL event store (``flopledger db migrate``).

Each migration runs once, in order, inside one transaction together with its row in
``flop_schema_migrations``; an advisory lock lets several processes migrate at once safely.
Nothing here runs on import: the store only checks the version when it connects.
"""

from __future__ import annotations

import asyncpg
import msgspec

from domain.errors import StoreUnavailable
from domain.records import GENESIS_HASH

MIGRATIONS_TABLE = "flop_schema_migrations"
# Every table of the store, prefixed so that they can share a schema with other tables.
EVENTS_TABLE = "flop_events"
COMMANDS_TABLE = "flop_commands"
HEAD_TABLE = "flop_head"
SNAPSHOTS_TABLE = "flop_snapshots"
IDEMPOTENCY_TABLE = "flop_idempotency_keys"


class Migration(msgspec.Struct, frozen=True):
    """One schema step; ``{schema}`` in ``sql`` is replaced by the quoted schema name."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="event log, commands, head, snapshots",
        sql=f"""
CREATE TABLE {{schema}}.{EVENTS_TABLE} (
    position    bigint PRIMARY KEY,
    stream_id   text   NOT NULL,
    stream_type text   NOT NULL,
    version     bigint NOT NULL,
    event_type  text   NOT NULL,
    data        bytea  NOT NULL,
    command_id  text   NOT NULL,
    metadata    bytea  NOT NULL,
    prev_hash   bytea  NOT NULL,
    hash        bytea  NOT NULL,
    CONSTRAINT {EVENTS_TABLE}_stream_version UNIQUE (stream_id, version)
);
CREATE TABLE {{schema}}.{COMMANDS_TABLE} (
    command_id     text   PRIMARY KEY,
    first_position bigint NOT NULL,
    outcome        bytea  NOT NULL
);
CREATE TABLE {{schema}}.{HEAD_TABLE} (
    id       smallint PRIMARY KEY CHECK (id = 1),
    position bigint   NOT NULL,
    hash     bytea    NOT NULL
);
INSERT INTO {{schema}}.{HEAD_TABLE} (id, position, hash)
    VALUES (1, 0, '\\x{GENESIS_HASH.hex()}'::bytea);
CREATE TABLE {{schema}}.{SNAPSHOTS_TABLE} (
    stream_id text   PRIMARY KEY,
    version   bigint NOT NULL,
    state     bytea  NOT NULL
);
""",
    ),
    Migration(
        version=2,
        name="Idempotency-Key bindings shared by API replicas",
        sql=f"""
CREATE TABLE {{schema}}.{IDEMPOTENCY_TABLE} (
    key        text        PRIMARY KEY,
    digest     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX {IDEMPOTENCY_TABLE}_created_at ON {{schema}}.{IDEMPOTENCY_TABLE} (created_at);
""",
    ),
)
LATEST_SCHEMA_VERSION = MIGRATIONS[-1].version


class SchemaNotMigrated(StoreUnavailable):
    """The database has no (or an older) event store schema: ``flopledger db migrate``."""

    code = "schema_not_migrated"


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted (schema names come from configuration)."""
    return '"' + name.replace('"', '""') + '"'


async def migrate(conn: asyncpg.Connection, schema: str = "public") -> list[int]:
    """Apply every missing migration to ``schema``; return the versions applied now."""
    q_schema = quote_ident(schema)
    applied_now: list[int] = []
    async with conn.transaction():
        # Concurrent migrators of one schema queue here instead of failing on DDL races.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"flopledger:{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {q_schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {q_schema}.{MIGRATIONS_TABLE} ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]
            for row in await conn.fetch(f"SELECT version FROM {q_schema}.{MIGRATIONS_TABLE}")
        }
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            await conn.execute(migration.sql.replace("{schema}", q_schema))
            await conn.execute(
                f"INSERT INTO {q_schema}.{MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
    return applied_now


async def get_schema_version(conn: asyncpg.Connection, schema: str = "public") -> int:
    """The highest applied migration in ``schema``; 0 when it was never migrated."""
    exists = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f"{quote_ident(schema)}.{MIGRATIONS_TABLE}"
    )
    if not exists:
        return 0
    version = await conn.fetchval(
        f"SELECT max(version) FROM {quote_ident(schema)}.{MIGRATIONS_TABLE}"
    )
    return int(version or 0)


async def check_schema(conn: asyncpg.Connection, schema: str = "public") -> None:
    """Raise SchemaNotMigrated unless ``schema`` is at LATEST_SCHEMA_VERSION."""
    version = await get_schema_version(conn, schema)
    if version < LATEST_SCHEMA_VERSION:
        raise SchemaNotMigrated(
            f"the event store schema {schema!r} is at version {version}, this flopledger needs "
            f"{LATEST_SCHEMA_VERSION}: run `flopledger db migrate` (with the same "
            "FLOP_DATABASE_URL) first"
        )
    if version > LATEST_SCHEMA_VERSION:
        raise SchemaNotMigrated(
            f"the event store schema {schema!r} is at version {version}, newer than this "
            f"flopledger knows ({LATEST_SCHEMA_VERSION}): upgrade flopledger"
        )
