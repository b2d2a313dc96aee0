"""Slashing protection and checkpoints: a local SQLite file of everything this validator signed.

``decide`` is the only way to a verdict the daemon may sign: the first decision for a
(subject, result commitment) is recorded with a fresh salt and every later call returns that
same decision, so a restart, a replay or a re-verification that comes out differently can
never make the validator commit or sign the opposite verdict (which would be equivocation,
slashable by anyone). The checkpoint (position and hash of the last processed record) and the
records of the streams still being followed are written in the same transaction, so a restart
resumes from the checkpoint without re-verifying history.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import msgspec

from domain.records import GENESIS_HASH, Head, Record

SALT_BYTES = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    subject TEXT NOT NULL,
    commitment BLOB NOT NULL,
    passed INTEGER NOT NULL,
    reason TEXT NOT NULL,
    salt BLOB NOT NULL,
    PRIMARY KEY (subject, commitment)
);
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS followed (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS followed_stream ON followed (stream_id);
"""


class Decision(msgspec.Struct, frozen=True):
    """A verdict this validator committed to, and the salt of its commit."""

    passed: bool
    reason: str
    salt: bytes


class SigningDatabase:
    """The validator's local database (one file; one process at a time)."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def get_decision(self, subject: str, commitment: bytes) -> Decision | None:
        row = self._db.execute(
            "SELECT passed, reason, salt FROM decisions WHERE subject = ? AND commitment = ?",
            (subject, commitment),
        ).fetchone()
        return Decision(bool(row[0]), row[1], row[2]) if row else None

    def decide(self, subject: str, commitment: bytes, passed: bool, reason: str) -> Decision:
        """Record ``passed`` for (subject, commitment) unless a decision exists; return the
        decision that stands (the first one, always)."""
        self._db.execute(
            "INSERT OR IGNORE INTO decisions (subject, commitment, passed, reason, salt) "
            "VALUES (?, ?, ?, ?, ?)",
            (subject, commitment, int(passed), reason, secrets.token_bytes(SALT_BYTES)),
        )
        decision = self.get_decision(subject, commitment)
        assert decision is not None
        return decision

    def get_checkpoint(self) -> Head:
        row = self._db.execute("SELECT position, hash FROM checkpoint WHERE id = 1").fetchone()
        return Head(position=row[0], hash=row[1]) if row else Head(position=0, hash=GENESIS_HASH)

    def save(self, head: Head, followed: list[Record], finished: set[str]) -> None:
        """Advance the checkpoint, keep ``followed`` records, forget ``finished`` streams,
        all in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO followed (position, stream_id, record) VALUES (?, ?, ?)",
                [(r.position, r.stream_id, msgspec.msgpack.encode(r)) for r in followed],
            )
            self._db.executemany(
                "DELETE FROM followed WHERE stream_id = ?", [(s,) for s in sorted(finished)]
            )
            self._db.execute(
                "INSERT INTO checkpoint (id, position, hash) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET position = excluded.position, hash = excluded.hash",
                (head.position, head.hash),
            )

    def load_followed(self) -> list[Record]:
        rows = self._db.execute("SELECT record FROM followed ORDER BY position").fetchall()
        return [msgspec.msgpack.decode(row[0], type=Record) for row in rows]
