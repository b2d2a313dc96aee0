"""What a careful forger does to a history, for the audit's tamper tests: edit a record's
data, re-chain every hash after it (so only the audit's rules, not the hash chain, can
catch the forgery), and replay the result through the audit."""

from __future__ import annotations

import json

import msgspec

from domain.records import GENESIS_HASH, Record, make_record
from validator.audit import AuditOptions, Replayer


def replay(records: list[Record], *, reexecute: bool = False) -> Replayer:
    """Feed ``records`` to a fresh audit replayer (raises ``AuditFailed`` at a broken rule).

    Without re-execution by default: each tamper test shows the one cheap check that names
    its forgery; ``tests/unit/audit/test_audit_reexec.py`` shows that re-execution catches
    the same forgeries, at the forged record."""
    replayer = Replayer(AuditOptions(reexecute=reexecute))
    for record in records:
        replayer.feed(record)
    replayer.end_command()
    return replayer


def rechain(records: list[Record]) -> list[Record]:
    """``records`` with every hash recomputed from the genesis hash on."""
    sealed, prev = [], GENESIS_HASH
    for record in records:
        new = make_record(prev, record.body())
        sealed.append(new)
        prev = new.hash
    return sealed


def edit_data(record: Record, **changes: object) -> Record:
    """``record`` with fields of its event data replaced (its hash left stale)."""
    data = {**json.loads(record.data), **changes}
    return msgspec.structs.replace(record, data=json.dumps(data, sort_keys=True).encode())


def forge(
    records: list[Record],
    event_type: str,
    *,
    index: int | None = None,
    every: bool = False,
    **changes: object,
) -> list[Record]:
    """``records`` with an ``event_type`` record's data changed (the only one, the
    ``index``-th, or ``every`` one), hashes re-chained."""
    matching = [i for i, r in enumerate(records) if r.event_type == event_type]
    if every:
        targets = set(matching)
    else:
        assert index is not None or len(matching) == 1, f"{len(matching)} {event_type} records"
        targets = {matching[index or 0]}
    return rechain([edit_data(r, **changes) if i in targets else r for i, r in enumerate(records)])


def forge_at(records: list[Record], position_index: int, **changes: object) -> list[Record]:
    """``records`` with the record at list index ``position_index`` changed, re-chained."""
    edited = list(records)
    edited[position_index] = edit_data(records[position_index], **changes)
    return rechain(edited)


def b64(data: bytes) -> str:
    """Bytes as the event JSON writes them (base64)."""
    return msgspec.json.decode(msgspec.json.encode(data), type=str)
