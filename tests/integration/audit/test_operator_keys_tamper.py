"""Issue 16, item 5: the audit checks on its own that the genesis's named keys did their jobs.

A real SQLite store whose genesis names the log key and the deposit authority apart (rules
v4). An honest history (deposits by the deposit authority, tree heads by the log key)
audits clean. A history written by a patched ledger that skips the rule (the operator's own
API, changed): a deposit credited by the log key, or a tree head sealed by the deposit
authority, is a valid signed record with a sound hash chain, and the audit fails it at its
position under ``authorization``; the CLI exits 1. Under rules v3 the same deposit passes
(the rule applies only from v4).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from adapters.store.sqlite import SqliteEventStore
from domain.policy import RULES_V3, LedgerPolicy
from domain.records import Record
from domain.services import handlers_jobs, handlers_log
from flopledger.cli import main
from flopledger.network import LocalNetwork
from operations.sealer import Sealer
from proofs.identity import Identity
from validator.audit import AuditOptions
from validator.audit_run import AuditReport, open_source, run_audit

LOG_KEY = Identity.from_seed(b"tamper-keys-log-key".ljust(32, b"\0"))
MINT = Identity.from_seed(b"tamper-keys-deposit-authority".ljust(32, b"\0"))
USER = Identity.from_seed(b"tamper-keys-user".ljust(32, b"\0"))
SPLIT = LedgerPolicy(operators=(LOG_KEY.id, MINT.id), log_key=LOG_KEY.id, deposit_authority=MINT.id)
DEPOSIT = 7_000


async def _open(path: Path, policy: LedgerPolicy = SPLIT) -> tuple[SqliteEventStore, LocalNetwork]:
    store = await SqliteEventStore.open(path)
    return store, await LocalNetwork.start(store, policy=policy, operator=LOG_KEY)


async def _seal(store: SqliteEventStore, net: LocalNetwork, signer: Identity) -> int:
    sealed = await Sealer(store, signer, clock_ns=lambda: net.now_ns).seal_once(force=True)
    assert sealed is not None
    return sealed.position


async def _audit(path: Path) -> AuditReport:
    source = await open_source(f"sqlite:///{path}")
    try:
        return await run_audit(source, AuditOptions(trusted_operators=frozenset({LOG_KEY.id})))
    finally:
        await source.close()


def _failure(report: AuditReport) -> tuple[int, str, str]:
    assert not report.ok and report.failure is not None
    return report.failure.position, report.failure.check, report.failure.message


async def _records(store: SqliteEventStore) -> list[Record]:
    return list(await store.read_all(1, 10_000))


async def test_an_honest_split_history_audits_clean(tmp_path: Path) -> None:
    path = tmp_path / "honest.sqlite3"
    store, net = await _open(path)
    try:
        await net.deposit(USER, DEPOSIT, by=MINT)
        await _seal(store, net, LOG_KEY)
    finally:
        await store.close()
    report = await _audit(path)
    assert report.ok, report.failure
    assert report.checks["authorization"].count > 0


async def test_a_deposit_credited_by_the_log_key_fails_the_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "minted.sqlite3"
    store, net = await _open(path)
    try:
        await net.deposit(USER, DEPOSIT, by=MINT)
        monkeypatch.setattr(handlers_jobs, "check_deposit_authority", lambda *_: None)
        forged = (await net.deposit(USER, DEPOSIT, by=LOG_KEY)).first_position
        forged_records = [r for r in await _records(store) if r.position >= forged]
    finally:
        await store.close()
    assert any(r.stream_id == "external:solana" for r in forged_records)  # it was written
    position, check, message = _failure(await _audit(path))
    assert (position, check) == (forged, "authorization")
    assert MINT.id in message and "deposit_authority_only" in message
    assert await asyncio.to_thread(main, ["audit", "--source", f"sqlite:///{path}"]) == 1


async def test_a_tree_head_sealed_by_the_deposit_authority_fails_the_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sealed.sqlite3"
    store, net = await _open(path)
    try:
        await net.deposit(USER, DEPOSIT, by=MINT)
        await _seal(store, net, LOG_KEY)
        await net.deposit(USER, DEPOSIT, by=MINT)
        monkeypatch.setattr(handlers_log, "check_log_key", lambda *_: None)
        forged = await _seal(store, net, MINT)
    finally:
        await store.close()
    position, check, message = _failure(await _audit(path))
    assert (position, check) == (forged, "authorization")
    assert LOG_KEY.id in message and "log_key_only" in message
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["audit", "--source", f"sqlite:///{path}", "--json"]) == 1
    failure = json.loads(capsys.readouterr().out)["failure"]
    assert (failure["position"], failure["check"]) == (forged, "authorization")


async def test_under_rules_v3_any_operator_credits_and_the_audit_agrees(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    older = LedgerPolicy(**{**_fields(SPLIT), "rules_version": RULES_V3})
    store, net = await _open(path, older)
    try:
        await net.deposit(USER, DEPOSIT, by=LOG_KEY)
        await _seal(store, net, MINT)
    finally:
        await store.close()
    report = await _audit(path)
    assert report.ok, report.failure


def _fields(policy: LedgerPolicy) -> dict[str, object]:
    return {name: getattr(policy, name) for name in policy.__struct_fields__}
