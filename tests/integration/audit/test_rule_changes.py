"""Rule changes recorded with ``flopledger db rules``: each governs the records after its own,
the audit checks every command under the rules at its position (with no FLOP_* setting), and
an edited change record fails the audit at its position."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from adapters.store.sqlite import SqliteEventStore
from domain.errors import Rejection
from domain.policy import LedgerPolicy
from domain.records import GENESIS_HASH, Record, make_record
from flopledger.cli import main
from flopledger.network import LocalNetwork
from flopledger.settings import get_settings
from proofs.identity import Identity
from validator.audit import AuditOptions
from validator.audit_history import HISTORY_CHECKS
from validator.audit_run import AuditReport, open_source, run_audit

OPERATOR = Identity.from_seed(b"rules-operator".ljust(32, b"\0"))
SECOND = Identity.from_seed(b"rules-second".ljust(32, b"\0"))
CONSUMER = Identity.from_seed(b"rules-consumer".ljust(32, b"\0"))
COLUMNS = (
    "position, stream_id, stream_type, version, event_type, data, command_id, metadata, "
    "prev_hash, hash"
)


@pytest.fixture
def no_flop_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in [name for name in os.environ if name.startswith("FLOP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _key_file(tmp_path: Path, identity: Identity) -> str:
    path = tmp_path / f"{identity.id[:8]}.hex"
    path.write_text(identity.seed().hex() + "\n")
    return str(path)


async def _deposit(path: Path, by: Identity, *, clock_s: int) -> None:
    store = await SqliteEventStore.open(path)
    try:
        policy = LedgerPolicy(operators=(OPERATOR.id, SECOND.id))
        net = LocalNetwork.create(store, policy=policy, operator=by)
        # The CLI's rule changes are decided on the real clock: the deposits too, so that the
        # recorded clock never runs backwards (the audit's re-execution checks it).
        net.now_ns = time.time_ns() + clock_s * 10**9
        net._nonces = iter(range(clock_s * 1000, clock_s * 1000 + 1000))  # type: ignore[assignment]
        await net.deposit(CONSUMER, 10)
    finally:
        await store.close()


def _audit(path: Path) -> AuditReport:
    async def go() -> AuditReport:
        source = await open_source(f"sqlite:///{path}")
        try:
            return await run_audit(source, AuditOptions(verify_proofs=True))
        finally:
            await source.close()

    return asyncio.run(go())


def _rows(path: Path) -> list[Record]:
    with sqlite3.connect(path) as conn:
        found = conn.execute(f"SELECT {COLUMNS} FROM events ORDER BY position").fetchall()
    return [Record(*row) for row in found]


def _rewrite(path: Path, records: list[Record]) -> None:
    sealed, prev = [], GENESIS_HASH
    for record in records:
        new = make_record(prev, record.body())
        sealed.append(new)
        prev = new.hash
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM events")
        conn.executemany(
            f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [tuple(msgspec.structs.astuple(r)) for r in sealed],
        )
        conn.execute("UPDATE head SET position = ?, hash = ?", (sealed[-1].position, prev))


@pytest.fixture
def changed_store(tmp_path: Path, no_flop_env: None, capsys: pytest.CaptureFixture[str]) -> Path:
    """Genesis (OPERATOR, SECOND), a deposit by SECOND, SECOND removed, the slash rate raised."""
    path = tmp_path / "rules.sqlite3"
    url = f"sqlite:///{path}"
    asyncio.run(_deposit(path, SECOND, clock_s=0))
    change = ["db", "rules", "--url", url]
    second, operator = _key_file(tmp_path, SECOND), _key_file(tmp_path, OPERATOR)
    assert main([*change, "--key-file", second, "--operator", OPERATOR.id]) == 0
    assert main([*change, "--key-file", operator, "--policy-json", '{"slash_bps": 700}']) == 0
    capsys.readouterr()
    return path


def test_changes_govern_from_their_position_and_the_audit_checks_them(
    changed_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Rejection) as refused:
        asyncio.run(_deposit(changed_store, SECOND, clock_s=5))
    assert refused.value.code == "operator_only"
    asyncio.run(_deposit(changed_store, OPERATOR, clock_s=6))
    assert main(["db", "rules", "--url", f"sqlite:///{changed_store}"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["rule_changes"] == 2
    assert shown["policy"]["slash_bps"] == 700
    assert shown["policy"]["operators"] == [OPERATOR.id]
    report = _audit(changed_store)
    assert report.ok, report.failure
    assert report.checks["network_rules"].count == 3
    statuses = {name: check.status for name, check in report.checks.items()}
    expected = {
        **dict.fromkeys(statuses, "passed"),
        **dict.fromkeys(HISTORY_CHECKS, "skipped"),
        "work": "skipped",
        "chain_money": "skipped",  # no chain here
    }
    assert (
        statuses == expected
    )  # the history checks and --verify-work (issue 16) were not asked for


def test_a_non_operator_cannot_record_a_change(
    changed_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{changed_store}"
    key = _key_file(tmp_path, SECOND)  # no longer an operator
    assert main(["db", "rules", "--url", url, "--key-file", key, "--operator", SECOND.id]) == 1
    assert "operator_only" in capsys.readouterr().err


def test_an_edited_rule_change_fails_the_audit_at_its_position(changed_store: Path) -> None:
    records = _rows(changed_store)
    index = next(i for i, r in enumerate(records) if r.event_type == "PolicyChanged")
    data = json.loads(records[index].data)
    data["policy"]["slash_bps"] = 100
    edited = msgspec.structs.replace(records[index], data=json.dumps(data, sort_keys=True).encode())
    _rewrite(changed_store, [*records[:index], edited, *records[index + 1 :]])
    report = _audit(changed_store)
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (edited.position, "network_rules")
