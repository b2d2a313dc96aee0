"""Every node of the log's Merkle tree, stored in a private SQLite file (issue 16, item 8).

The API's read model appends each record hash as it folds the log; the table keeps the root
of every aligned perfect subtree (level 0: the leaf hashes; level j: the root of each aligned
run of 2^j leaves), about two 32-byte hashes per record, on disk. An inclusion or consistency
proof then costs O(log n) lookups and hashes (``proofs.merkle_chunked.ChunkedTree`` with runs
of one leaf), never a read of the records, and can run on a worker thread: reads and appends
share one connection under a lock, and nodes, once stored, never change.

Like the view table it is rebuilt from the log when a process starts (SQLite's empty file
name: on disk, deleted on close); only the counts and the last node of each level (O(log n))
are held in memory.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

from proofs.merkle import HASH_SIZE, node_hash

_SCHEMA = """
CREATE TABLE nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
"""


class TreeTable:
    """Aligned perfect subtree roots by (level, index); ``proofs.merkle_chunked.RunRoots``."""

    def __init__(self, *, path: str = "") -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._counts: list[int] = []
        self._last: list[bytes] = []

    def __len__(self) -> int:
        """Leaves stored."""
        with self._lock:
            return self._counts[0] if self._counts else 0

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        """Append leaves (record hashes) and every subtree root they complete, in one
        transaction."""
        with self._lock:
            self._extend(leaf_hashes)

    def _extend(self, leaf_hashes: Sequence[bytes]) -> None:
        counts, last = list(self._counts), list(self._last)
        rows: list[tuple[int, int, bytes]] = []
        for leaf in leaf_hashes:
            if len(leaf) != HASH_SIZE:
                raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
            node, level = leaf, 0
            while True:
                if level == len(counts):
                    counts.append(0)
                    last.append(b"")
                index = counts[level]
                rows.append((level, index, node))
                counts[level] += 1
                left, last[level] = last[level], node
                if index % 2 == 0:
                    break
                node, level = node_hash(left, node), level + 1
        with self._conn:
            self._conn.executemany("INSERT INTO nodes VALUES (?, ?, ?)", rows)
        self._counts, self._last = counts, last

    def get_run_root(self, first: int, count: int) -> bytes:
        """The root of leaves ``first .. first + count - 1`` (``count`` a power of two dividing
        ``first``); LookupError when not stored (a caller's bug)."""
        level = count.bit_length() - 1
        with self._lock:
            row = self._conn.execute(
                "SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, first >> level)
            ).fetchone()
        if row is None:
            raise LookupError(f"no stored subtree of {count} leaves at {first}")
        stored: bytes = row[0]
        return stored

    def close(self) -> None:
        with self._lock:
            self._conn.close()
