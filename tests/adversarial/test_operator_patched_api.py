"""The operator patches its own API: every command is still signed by its actor, but the API
writes other records than the rules give (issue 16, item 1: deterministic re-execution).

Demonstrated before issue 16: a patched API sent a provider's payout to the operator's account
and the audit passed every record, because it checked who may write to which stream, not what
the command's rules produce. The audit now runs each command again on the state before it and
requires the recorded records byte for byte: the attack fails at the diverted credit, with exit
status 1 from ``flopledger audit``. A clock the API runs backwards fails the same way.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import domain.services.escrow as escrow
from adapters.store.sqlite import SqliteEventStore
from domain.ledger import user_account
from domain.settlement import compute_settlement
from flopledger.cli import main
from proofs.identity import Identity
from tests.integration.audit.test_tamper_sqlite import audit
from tests.unit.audit.scenario import NODE, build_sqlite_history

OPERATOR = Identity.from_seed(b"operator".ljust(32, b"\0"))  # LocalNetwork's default


def _cli_audit(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    status = main(["audit", "--source", f"sqlite:///{path}", "--json"])
    return status, json.loads(capsys.readouterr().out)


def _credits_to(path: Path, account: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT position FROM events WHERE stream_id = ? AND event_type = 'Credited' "
            "ORDER BY position",
            (account,),
        ).fetchall()
    return [row[0] for row in rows]


def _divert_provider_payouts(monkeypatch: pytest.MonkeyPatch, account: str) -> None:
    """The operator's patched settlement: the provider's leg is credited to ``account``."""

    def divert(*args: Any, **kwargs: Any) -> Any:
        payouts = compute_settlement(*args, **kwargs)
        return [type(p)(account, p.amount, p.role) if p.role == "provider" else p for p in payouts]

    monkeypatch.setattr(escrow, "compute_settlement", divert)


def test_a_diverted_payout_fails_the_audit_at_the_credit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    operator_account = user_account(OPERATOR.id)
    path = tmp_path / "patched.sqlite3"
    with monkeypatch.context() as patched:  # the operator's API, not the auditor's code
        _divert_provider_payouts(patched, operator_account)
        history = build_sqlite_history(path)
    # The attack worked on the ledger: the operator got the provider's payout, the node none.
    assert _credits_to(path, operator_account)
    assert not _credits_to(path, user_account(NODE.id))[1:]  # only its deposit

    report = audit(path, history)
    assert report.failure is not None
    assert report.failure.check == "reexecution"
    # The first record the rules give otherwise: the settlement naming the payouts.
    with sqlite3.connect(path) as conn:
        (settled,) = conn.execute(
            "SELECT position FROM events WHERE event_type = 'JobSettled'"
        ).fetchone()
    assert report.failure.position == settled < _credits_to(path, operator_account)[0]
    assert operator_account in report.failure.message
    status, printed = _cli_audit(path, capsys)
    assert status == 1
    assert printed["failure"]["check"] == "reexecution"
    assert printed["failure"]["position"] == report.failure.position


def test_the_same_history_without_the_patch_passes(tmp_path: Path) -> None:
    path = tmp_path / "honest.sqlite3"
    history = build_sqlite_history(path)
    report = audit(path, history)
    assert report.ok, report.failure
    assert not [w for w in report.warnings if "not re-executed" in w]
    # Every command was run again (none is from before issue 16).
    assert report.checks["reexecution"].status == "passed"
    assert report.checks["reexecution"].count == report.state["commands"]


def test_a_clock_run_backwards_fails_the_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clock.sqlite3"
    history = build_sqlite_history(path)

    async def late_deposit() -> int:
        store = await SqliteEventStore.open(path)
        try:
            net = history.net
            net.store = store
            net.now_ns -= 60 * 1_000_000_000  # the API decides a minute in the past
            result = await net.deposit(NODE, 7)
            return int(result.first_position)
        finally:
            await store.close()

    position = asyncio.run(late_deposit())
    report = audit(path, history)
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (position, "reexecution")
    assert "backwards" in report.failure.message
    status, printed = _cli_audit(path, capsys)
    assert status == 1 and printed["failure"]["position"] == position
