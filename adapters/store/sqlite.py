"""SQLite event store: the embedded default, one file under the data directory.

The standard library's sqlite3 runs in one worker thread per store, so the event loop never
blocks on disk. The file is in WAL mode with ``synchronous=FULL`` (an acknowledged append
survives power loss); every append is one ``BEGIN IMMEDIATE`` transaction, which takes the
file's write lock before reading the head, so several processes may share the file.
Subscribers poll (``SUBSCRIBE_POLL_INTERVAL_S``) and are woken at once by appends made
through the same store object.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from adapters.store.chaining import chain_command, decode_outcome, encode_outcome
from domain.errors import StoreUnavailable
from domain.ports import READ_ALL_LIMIT_MAX
from domain.records import (
    GENESIS_HASH,
    AppendOutcome,
    Head,
    Record,
    Snapshot,
    StreamAppend,
    validate_appends,
)

# How long a writer waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# How often an idle subscriber looks for commits made by other processes.
SUBSCRIBE_POLL_INTERVAL_S = 0.05

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY,
    stream_id   TEXT    NOT NULL,
    stream_type TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    event_type  TEXT    NOT NULL,
    data        BLOB    NOT NULL,
    command_id  TEXT    NOT NULL,
    metadata    BLOB    NOT NULL,
    prev_hash   BLOB    NOT NULL,
    hash        BLOB    NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE TABLE IF NOT EXISTS commands (
    command_id     TEXT    PRIMARY KEY,
    first_position INTEGER NOT NULL,
    outcome        BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    hash     BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT    PRIMARY KEY,
    version   INTEGER NOT NULL,
    state     BLOB    NOT NULL
);
"""

_COLUMNS = (
    "position, stream_id, stream_type, version, event_type, data, command_id, metadata, "
    "prev_hash, hash"
)
_INSERT_EVENT = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT_ALL = f"SELECT {_COLUMNS} FROM events WHERE position >= ? ORDER BY position LIMIT ?"
_SELECT_STREAM = (
    f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version >= ? ORDER BY version"
)
_SELECT_STREAM_VERSION = "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = ?"
_UPSERT_SNAPSHOT = """
INSERT INTO snapshots (stream_id, version, state) VALUES (?, ?, ?)
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state
WHERE excluded.version > snapshots.version
"""


class SqliteEventStore:
    """The EventStore port on one SQLite file."""

    def __init__(self, path: Path, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._path = path
        self._conn = conn
        self._executor = executor
        self._closed = False
        # Bumped after every local commit so that subscribers wake without waiting a poll.
        self._generation = 0
        self._committed = asyncio.Condition()

    @classmethod
    async def open(cls, path: Path) -> SqliteEventStore:
        """Open (and create if needed) the store file at ``path``, creating parent folders."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flop-sqlite")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, _connect, path)
        except (sqlite3.Error, OSError) as exc:
            executor.shutdown(wait=False)
            raise StoreUnavailable(f"cannot open SQLite event store at {path}: {exc}") from exc
        return cls(path, conn, executor)

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        command_id: str,
        metadata: bytes = b"",
    ) -> AppendOutcome:
        items = validate_appends(appends)
        outcome = await self._run(lambda: _append(self._conn, items, command_id, metadata))
        async with self._committed:
            self._generation += 1
            self._committed.notify_all()
        return outcome

    async def find_command(self, command_id: str) -> AppendOutcome | None:
        row = await self._run(
            lambda: self._conn.execute(
                "SELECT outcome FROM commands WHERE command_id = ?", (command_id,)
            ).fetchone()
        )
        return None if row is None else decode_outcome(row[0])

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[Record]:
        rows = await self._run(
            lambda: self._conn.execute(_SELECT_STREAM, (stream_id, from_version)).fetchall()
        )
        return [Record(*row) for row in rows]

    async def get_stream_version(self, stream_id: str) -> int:
        row = await self._run(
            lambda: self._conn.execute(_SELECT_STREAM_VERSION, (stream_id,)).fetchone()
        )
        return int(row[0])

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[Record]:
        limit = max(1, min(limit, READ_ALL_LIMIT_MAX))
        rows = await self._run(
            lambda: self._conn.execute(_SELECT_ALL, (max(from_position, 1), limit)).fetchall()
        )
        return [Record(*row) for row in rows]

    async def subscribe(self, from_position: int = 1) -> AsyncIterator[Record]:
        next_position = max(from_position, 1)
        while True:
            seen = self._generation
            batch = await self.read_all(next_position, READ_ALL_LIMIT_MAX)
            for record in batch:
                yield record
            if batch:
                next_position = batch[-1].position + 1
                continue
            await self._wait_for_commit(seen)

    async def head(self) -> Head:
        row = await self._run(
            lambda: self._conn.execute("SELECT position, hash FROM head WHERE id = 1").fetchone()
        )
        return Head(position=row[0], hash=bytes(row[1]))

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        def save() -> None:
            with self._conn:
                self._conn.execute(
                    _UPSERT_SNAPSHOT, (snapshot.stream_id, snapshot.version, snapshot.state)
                )

        await self._run(save)

    async def get_snapshot(self, stream_id: str) -> Snapshot | None:
        row = await self._run(
            lambda: self._conn.execute(
                "SELECT stream_id, version, state FROM snapshots WHERE stream_id = ?", (stream_id,)
            ).fetchone()
        )
        return None if row is None else Snapshot(stream_id=row[0], version=row[1], state=row[2])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    async def _wait_for_commit(self, seen: int) -> None:
        """Return after a local commit newer than ``seen``, or after one poll interval."""
        async with self._committed:
            # A timeout is the poll: another process may have committed meanwhile.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._committed.wait_for(lambda: self._generation != seen),
                    SUBSCRIBE_POLL_INTERVAL_S,
                )

    async def _run(self, work: Callable[[], _T]) -> _T:
        """Run ``work`` on the store's thread, translating driver errors."""
        if self._closed:
            raise StoreUnavailable(f"SQLite event store at {self._path} is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite event store at {self._path} failed: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves; the worker thread is the only
    # user of the connection, but it is created on the loop's side of run_in_executor.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
    )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO head (id, position, hash) VALUES (1, 0, ?)", (GENESIS_HASH,)
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        conn.close()
        raise
    return conn


def _append(
    conn: sqlite3.Connection, items: list[StreamAppend], command_id: str, metadata: bytes
) -> AppendOutcome:
    """One command in one write transaction; any error rolls everything back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT outcome FROM commands WHERE command_id = ?", (command_id,)
        ).fetchone()
        if row is not None:
            conn.execute("ROLLBACK")
            return decode_outcome(row[0])
        position, head_hash = conn.execute(
            "SELECT position, hash FROM head WHERE id = 1"
        ).fetchone()
        current = {
            item.stream_id: conn.execute(_SELECT_STREAM_VERSION, (item.stream_id,)).fetchone()[0]
            for item in items
        }
        records, outcome = chain_command(
            items,
            command_id=command_id,
            metadata=metadata,
            head=Head(position=position, hash=bytes(head_hash)),
            current=current,
        )
        conn.executemany(
            _INSERT_EVENT,
            [
                (
                    r.position,
                    r.stream_id,
                    r.stream_type,
                    r.version,
                    r.event_type,
                    r.data,
                    r.command_id,
                    r.metadata,
                    r.prev_hash,
                    r.hash,
                )
                for r in records
            ],
        )
        conn.execute(
            "INSERT INTO commands (command_id, first_position, outcome) VALUES (?, ?, ?)",
            (command_id, outcome.first_position, encode_outcome(outcome)),
        )
        conn.execute(
            "UPDATE head SET position = ?, hash = ? WHERE id = 1",
            (outcome.last_position, outcome.head_hash),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcome
