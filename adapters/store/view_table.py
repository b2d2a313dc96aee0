"""A table of read views (JSON objects by kind and id), kept out of the process's memory.

The API's read model (``api.read_model``) folds the log into one view per node, job and
validator. Jobs grow with history, so the views live in a private temporary SQLite file
(SQLite's empty file name: on disk, deleted when the table is closed) instead of a dict: the
process's memory stays flat and a page is an indexed query. Every view has a sequence number
in order of first sight (the order of creation when fed from the log); lists come in that
order. Each kind names its filterable fields, each indexed; per kind, the number of views and
the number per value of each counted field (dotted for a nested one) are kept as counters, so
totals cost nothing. Counted fields must have few values (a state, a kind).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

View = dict[str, Any]

_SCHEMA = """
CREATE TABLE views (
    kind TEXT    NOT NULL,
    id   TEXT    NOT NULL,
    seq  INTEGER NOT NULL,
    body TEXT    NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX views_in_order ON views (kind, seq);
"""
_ENCODER = msgspec.json.Encoder()
_FIELD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")


class ViewTable:
    """Views by (kind, id) with indexed filters; one connection, used by one thread at a time
    (the API's event loop; it may be built on another thread before the loop starts)."""

    def __init__(
        self,
        filter_fields: Mapping[str, Sequence[str]],
        count_fields: Mapping[str, Sequence[str]],
        *,
        path: str = "",
    ) -> None:
        self._filters = {kind: tuple(fields) for kind, fields in filter_fields.items()}
        self._counted = {kind: tuple(fields) for kind, fields in count_fields.items()}
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.executescript(_SCHEMA)
        for kind, fields in self._filters.items():
            for field in fields:
                _check_field(field)
                self._conn.execute(
                    f"CREATE INDEX views_{_check_field(kind)}_{field} ON views "
                    f"(kind, json_extract(body, '$.{field}'), seq)"
                )
        self._next_seq = 0
        self._totals: dict[str, int] = {}
        self._counts: dict[tuple[str, str], dict[str, int]] = {}

    def put(self, kind: str, view_id: str, view: View) -> None:
        """Insert or replace the view of ``view_id`` (its place in the order is kept)."""
        row = self._conn.execute(
            "SELECT body FROM views WHERE kind = ? AND id = ?", (kind, view_id)
        ).fetchone()
        body = _ENCODER.encode(view).decode()
        if row is None:
            self._next_seq += 1
            self._conn.execute(
                "INSERT INTO views (kind, id, seq, body) VALUES (?, ?, ?, ?)",
                (kind, view_id, self._next_seq, body),
            )
            self._totals[kind] = self._totals.get(kind, 0) + 1
        else:
            self._conn.execute(
                "UPDATE views SET body = ? WHERE kind = ? AND id = ?", (body, kind, view_id)
            )
            self._count(kind, msgspec.json.decode(row[0]), -1)
        self._count(kind, view, +1)

    def page(
        self, kind: str, filters: Mapping[str, str | None], *, offset: int, limit: int
    ) -> tuple[list[View], int]:
        """Views of ``kind`` whose fields equal every non-None filter, in order: one page of
        them and how many match in all."""
        wanted = {field: value for field, value in filters.items() if value is not None}
        for field in wanted:
            if field not in self._filters.get(kind, ()):
                raise ValueError(f"{kind} views are not filtered by {field!r}")
        where = "".join(f" AND json_extract(body, '$.{field}') = ?" for field in wanted)
        params = (kind, *wanted.values())
        rows = self._conn.execute(
            f"SELECT body FROM views WHERE kind = ?{where} ORDER BY seq LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        if wanted:
            total = self._conn.execute(
                f"SELECT count(*) FROM views WHERE kind = ?{where}", params
            ).fetchone()[0]
        else:
            total = self._totals.get(kind, 0)
        return [msgspec.json.decode(row[0]) for row in rows], int(total)

    def count_by(self, kind: str, field: str) -> dict[str, int]:
        """How many views of ``kind`` have each value of a counted ``field``."""
        if field not in self._counted.get(kind, ()):
            raise ValueError(f"{kind} views do not count {field!r}")
        counts = self._counts.get((kind, field), {})
        return {value: count for value, count in counts.items() if count}

    def close(self) -> None:
        self._conn.close()

    def _count(self, kind: str, view: View, step: int) -> None:
        for field in self._counted.get(kind, ()):
            counts = self._counts.setdefault((kind, field), {})
            value = str(_get_path(view, field))
            counts[value] = counts.get(value, 0) + step


def _get_path(view: View, field: str) -> object:
    """``view[field]``; a dotted field reads nested objects (``workload.kind``)."""
    value: object = view
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _check_field(name: str) -> str:
    """Field and kind names go into SQL text: only lower-case letters and underscores."""
    if not name or not set(name) <= _FIELD_CHARS:
        raise ValueError(f"{name!r} is not a plain field name")
    return name
