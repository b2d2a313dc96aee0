"""Stores written before rules were recorded: no genesis, so the audit fails (it trusts no
setting); ``flopledger db genesis`` appends one, signed by an operator key, declaring the
operators that governed the records so far; the audit then checks that history against it,
and a declaration the history breaks fails at the first record that breaks it."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from adapters.store.sqlite import SqliteEventStore
from domain.network import NETWORK_STREAM_ID
from domain.policy import RULES_V3, LedgerPolicy
from domain.records import GENESIS_HASH, make_record
from flopledger.cli import main
from flopledger.network import LocalNetwork
from flopledger.settings import Settings, SettingsError, get_settings
from proofs.identity import Identity
from validator.audit import AuditOptions
from validator.audit_run import AuditReport, open_source, run_audit

CONSUMER = Identity.from_seed(b"late-consumer".ljust(32, b"\0"))
NODE = Identity.from_seed(b"late-node".ljust(32, b"\0"))
STRANGER = Identity.from_seed(b"late-stranger".ljust(32, b"\0"))
COLUMNS = (
    "position, stream_id, stream_type, version, event_type, data, command_id, metadata, "
    "prev_hash, hash"
)


async def _write_legacy_store(path: Path) -> tuple[LocalNetwork, int]:
    """A store as a release before recorded rules wrote it: the same history without the
    genesis record (positions from 1, a fresh hash chain)."""
    net = LocalNetwork.create(MemoryEventStore(), policy=LedgerPolicy(rules_version=RULES_V3))
    await net.deposit(CONSUMER, 5_000)
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(CONSUMER, "account.withdraw", {"amount": 100})
    records = [r for r in await net.store.read_all(1, 10_000) if r.stream_id != NETWORK_STREAM_ID]
    store = await SqliteEventStore.open(path)
    await store.close()
    sealed, prev = [], GENESIS_HASH
    for position, record in enumerate(records, start=1):
        new = make_record(prev, msgspec.structs.replace(record, position=position).body())
        sealed.append(new)
        prev = new.hash
    with sqlite3.connect(path) as conn:
        conn.executemany(
            f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [tuple(msgspec.structs.astuple(r)) for r in sealed],
        )
        conn.execute("UPDATE head SET position = ?, hash = ?", (sealed[-1].position, prev))
    return net, len(sealed)


def _audit(path: Path) -> AuditReport:
    async def go() -> AuditReport:
        source = await open_source(f"sqlite:///{path}")
        try:
            return await run_audit(source, AuditOptions())
        finally:
            await source.close()

    return asyncio.run(go())


@pytest.fixture
def no_flop_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No FLOP_* variable, and the CLI's settings built afresh from that environment."""
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


def test_a_store_without_genesis_fails_the_audit(tmp_path: Path, no_flop_env: None) -> None:
    path = tmp_path / "legacy.sqlite3"
    asyncio.run(_write_legacy_store(path))
    report = _audit(path)
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (1, "network_rules")
    assert "flopledger db genesis" in report.failure.message


def test_a_declared_genesis_makes_the_old_history_auditable(
    tmp_path: Path, no_flop_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "legacy.sqlite3"
    net, records = asyncio.run(_write_legacy_store(path))
    url = f"sqlite:///{path}"
    key = _key_file(tmp_path, net.operator)
    assert main(["db", "genesis", "--url", url, "--key-file", key]) == 0
    assert f"genesis recorded at position {records + 1}" in capsys.readouterr().out
    assert main(["db", "genesis", "--url", url, "--key-file", key]) == 0
    assert "already recorded" in capsys.readouterr().out

    report = _audit(path)
    assert report.ok, report.failure
    # The commands before the late genesis ran under settings, not the log's rules: checked,
    # not re-executed; the genesis itself is run again.
    assert len(report.warnings) == 1 and "not re-executed" in report.warnings[0]
    assert report.checks["reexecution"].count == 1
    assert report.state["network"]["genesis_position"] == records + 1
    assert report.checks["network_rules"].count == 1
    assert main(["audit", "--source", url, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["ok"] and printed["checks"]["authorization"]["status"] == "passed"


def test_a_declaration_the_history_breaks_fails_at_the_first_break(
    tmp_path: Path, no_flop_env: None
) -> None:
    path = tmp_path / "legacy.sqlite3"
    asyncio.run(_write_legacy_store(path))
    url = f"sqlite:///{path}"
    # The stranger declares itself the only operator: the deposits were signed by another.
    assert main(["db", "genesis", "--url", url, "--key-file", _key_file(tmp_path, STRANGER)]) == 0
    report = _audit(path)
    assert report.failure is not None
    first_deposit = 1  # the first record of the old history is the first deposit's
    assert (report.failure.position, report.failure.check) == (first_deposit, "authorization")
    assert "not an operator declared by the genesis" in report.failure.message


def test_serve_refuses_a_store_without_genesis(tmp_path: Path, no_flop_env: None) -> None:
    from flopledger.commands.serve import prepare_store

    path = tmp_path / "legacy.sqlite3"
    asyncio.run(_write_legacy_store(path))
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{path}")
    with pytest.raises(SettingsError, match="flopledger db genesis"):
        asyncio.run(prepare_store(settings))


def test_db_genesis_of_a_new_store_names_the_log_key_and_the_deposit_authority(
    tmp_path: Path, no_flop_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 16, item 5: the signer is named the log key, --deposit-authority the key that
    # alone credits deposits; one key for both is refused and nothing is written.
    log_key = Identity.from_seed(b"db-genesis-log-key".ljust(32, b"\0"))
    authority = Identity.from_seed(b"db-genesis-authority".ljust(32, b"\0"))
    key = _key_file(tmp_path, log_key)
    operators = ["--operator", log_key.id, "--operator", authority.id]
    same = f"sqlite:///{tmp_path / 'same.sqlite3'}"
    argv = ["db", "genesis", "--url", same, "--key-file", key, *operators]
    assert main([*argv, "--deposit-authority", log_key.id]) == 1
    assert "deposit authority is the log key" in capsys.readouterr().err
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    argv = ["db", "genesis", "--url", url, "--key-file", key, *operators]
    assert main([*argv, "--deposit-authority", authority.id]) == 0
    assert f"log key {log_key.id}, deposit authority {authority.id}" in capsys.readouterr().out
