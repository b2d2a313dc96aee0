"""A history written under rules v4 by the release before issue 17 (``tests/fixtures/
history_v4.sqlite3``, ``make_history_v4.py``) re-executes with today's code byte for byte:
its genesis policy lacks the fields issue 17 added, and today's rules, re-running it, write
them nowhere (``LedgerPolicy.LATE_FIELDS``); every other command decides as it did."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from domain.policy import LedgerPolicy
from flopledger.cli import main

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "history_v4.sqlite3"


def test_the_v4_history_reexecutes_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "history_v4.sqlite3"
    shutil.copyfile(FIXTURE, path)
    with sqlite3.connect(path) as conn:
        (data,) = conn.execute(
            "SELECT data FROM events WHERE event_type = 'GenesisDeclared'"
        ).fetchone()
    policy = json.loads(data)["policy"]
    assert policy["rules_version"] == 4
    assert not LedgerPolicy.LATE_FIELDS & set(policy)  # written before they existed
    capsys.readouterr()
    status = main(["audit", "--source", f"sqlite:///{path}", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0, report.get("failure")
    reexecution = report["checks"]["reexecution"]
    assert reexecution["status"] == "passed"
    assert reexecution["count"] == report["state"]["commands"] > 30
