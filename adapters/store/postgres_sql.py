"""The statements of the PostgreSQL group committer, built once per schema."""

from __future__ import annotations

from adapters.store.postgres_schema import COMMANDS_TABLE, EVENTS_TABLE, HEAD_TABLE, quote_ident

_EVENT_COLUMNS = (
    "position, stream_id, stream_type, version, event_type, data, command_id, metadata, "
    "prev_hash, hash"
)
_EVENT_ROWS = (
    "unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bytea[], "
    "$7::text[], $8::bytea[], $9::bytea[], $10::bytea[])"
)
_COMMAND_ROWS = "unnest($11::text[], $12::bigint[], $13::bytea[])"


class CommitSql:
    """SQL text for one schema; the writes take ``postgres_plan.get_write_args`` ($1..$19)."""

    def __init__(self, schema: str) -> None:
        s = quote_ident(schema)
        events, commands, head = f"{s}.{EVENTS_TABLE}", f"{s}.{COMMANDS_TABLE}", f"{s}.{HEAD_TABLE}"
        # Simple-protocol text (no parameters), so BEGIN and the lock cost one round trip.
        self.lock = f"BEGIN; SELECT 1 FROM {head} WHERE id = 1 FOR UPDATE"
        # The head, the stored outcomes of $1 and the versions of the streams $2, all from one
        # snapshot. After the lock, as a statement of its own, it sees every earlier commit.
        self.read = f"""
SELECT h.position, h.hash,
  ARRAY(SELECT c.outcome FROM {commands} c WHERE c.command_id = ANY($1::text[])),
  ARRAY(SELECT coalesce((SELECT max(e.version) FROM {events} e WHERE e.stream_id = u.id), 0)
        FROM unnest($2::text[]) WITH ORDINALITY AS u(id, n) ORDER BY u.n)
FROM {head} h WHERE h.id = 1"""
        self.head_position = f"SELECT position FROM {head} WHERE id = 1"
        # Inside the locked transaction: the batch's decisions are already certain.
        self.write = f"""
WITH ev AS (INSERT INTO {events} ({_EVENT_COLUMNS}) SELECT * FROM {_EVENT_ROWS}),
     cmd AS (INSERT INTO {commands} (command_id, first_position, outcome)
             SELECT * FROM {_COMMAND_ROWS})
UPDATE {head} SET position = $14::bigint, hash = $15::bytea WHERE id = 1
RETURNING pg_notify($16::text, $14::bigint::text)"""
        # One autocommit statement: writes only if the head is still ($17, $18) (the hash
        # names the whole chain, so nobody appended since the batch was decided; a concurrent
        # writer makes the UPDATE wait, re-check the row and skip it) and none of the command
        # ids decided in the batch ($19) is stored yet. Returns the head rows updated: 1 or 0.
        self.write_if_head = f"""
WITH upd AS (
  UPDATE {head} SET position = $14::bigint, hash = $15::bytea
  WHERE id = 1 AND position = $17::bigint AND hash = $18::bytea
    AND NOT EXISTS (SELECT 1 FROM {commands} WHERE command_id = ANY($19::text[]))
  RETURNING pg_notify($16::text, $14::bigint::text)
), ev AS (
  INSERT INTO {events} ({_EVENT_COLUMNS})
  SELECT * FROM {_EVENT_ROWS} WHERE EXISTS (SELECT 1 FROM upd)
), cmd AS (
  INSERT INTO {commands} (command_id, first_position, outcome)
  SELECT * FROM {_COMMAND_ROWS} WHERE EXISTS (SELECT 1 FROM upd)
)
SELECT count(*) FROM upd"""
