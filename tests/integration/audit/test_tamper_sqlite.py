"""The audit on SQLite stores: a clean history passes; each tampered copy (edited with
sqlite3 directly, as an attacker with file access would) fails at the right position with the
right check; the CLI's exit status and JSON report say so."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import validator.audit as audit_module
import validator.audit_run as audit_run
from domain.beacon import BEACON_TAG
from domain.records import GENESIS_HASH, Record, make_record
from domain.services.ledger_service import CommandMetadata
from flopledger.cli import main
from proofs import bls
from proofs.merkle import root_from_hashes
from proofs.quorum import verdict_message
from tests.unit.audit.scenario import CONSUMER, History, build_sqlite_history
from validator.audit import AuditOptions
from validator.audit_history import HistoryRequirements, TrustedHead
from validator.audit_run import AuditReport, open_source, run_audit

COLUMNS = (
    "position, stream_id, stream_type, version, event_type, data, command_id, metadata, "
    "prev_hash, hash"
)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, History]]:
    path = tmp_path_factory.mktemp("audit") / "clean.sqlite3"

    yield path, build_sqlite_history(path)


@pytest.fixture
def copy(clean: tuple[Path, History], tmp_path: Path) -> Path:
    target = tmp_path / "copy.sqlite3"
    shutil.copy(clean[0], target)
    return target


def audit(path: Path, history: History, *, reexecute: bool = True) -> AuditReport:
    async def go() -> AuditReport:
        source = await open_source(f"sqlite:///{path}")
        try:
            options = AuditOptions(
                trusted_operators=frozenset(history.net.policy.operators), reexecute=reexecute
            )
            return await run_audit(source, options, chain=history.chain)
        finally:
            await source.close()

    return asyncio.run(go())


def rows(path: Path) -> list[Record]:
    with sqlite3.connect(path) as conn:
        found = conn.execute(f"SELECT {COLUMNS} FROM events ORDER BY position").fetchall()
    return [Record(*row) for row in found]


def position_of(path: Path, predicate: Callable[[Record], bool]) -> int:
    return next(r.position for r in rows(path) if predicate(r))


def rewrite(path: Path, records: list[Record]) -> None:
    """Store ``records`` with a freshly computed hash chain (a careful forger)."""
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


def edit_data(record: Record, **changes: object) -> Record:
    data = json.loads(record.data)
    data.update(changes)
    return msgspec.structs.replace(record, data=json.dumps(data, sort_keys=True).encode())


def test_clean_history_passes(clean: tuple[Path, History]) -> None:
    report = audit(clean[0], clean[1])
    assert report.ok, report.failure
    assert report.state["total_balance"] == 0
    assert report.state["tree_heads"] == 2 and report.state["anchors"] == 2
    assert report.checks["anchor"].count == 4  # two offline, two on chain
    assert report.checks["read_model"].count > 0


def test_changed_byte_names_its_position(copy: Path, clean: tuple[Path, History]) -> None:
    with sqlite3.connect(copy) as conn:
        (data,) = conn.execute("SELECT data FROM events WHERE position = 17").fetchone()
        flipped = bytes([data[0] ^ 1]) + data[1:]
        conn.execute("UPDATE events SET data = ? WHERE position = 17", (flipped,))
    report = audit(copy, clean[1])
    assert (report.failure.position, report.failure.check) == (17, "hash_chain")  # type: ignore[union-attr]


def test_deleted_event(copy: Path, clean: tuple[Path, History]) -> None:
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM events WHERE position = 30")
    report = audit(copy, clean[1])
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (30, "hash_chain")
    assert "missing" in report.failure.message


def test_swapped_events(copy: Path, clean: tuple[Path, History]) -> None:
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE events SET position = -1 WHERE position = 40")
        conn.execute("UPDATE events SET position = 40 WHERE position = 41")
        conn.execute("UPDATE events SET position = 41 WHERE position = -1")
    report = audit(copy, clean[1])
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (40, "hash_chain")


def test_rewritten_history_with_a_new_chain_is_caught_by_the_tree_head(
    copy: Path, clean: tuple[Path, History]
) -> None:
    records = rows(copy)
    index = next(
        i for i, r in enumerate(records) if r.event_type == "Registered" and r.stream_type == "node"
    )
    records[index] = edit_data(records[index], region="us-east")
    rewrite(copy, records)
    # The signed registration names another region: running it again gives other bytes.
    report = audit(copy, clean[1])
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (
        records[index].position,
        "reexecution",
    )
    assert "region" in report.failure.message
    # Without re-execution (the fast path) the first tree head still catches it.
    report = audit(copy, clean[1], reexecute=False)
    assert report.failure is not None
    first_head = position_of(copy, lambda r: r.event_type == "TreeHeadSigned")
    assert (report.failure.position, report.failure.check) == (first_head, "tree_head")


def test_forged_verdict(copy: Path, clean: tuple[Path, History]) -> None:
    records = rows(copy)
    index = next(i for i, r in enumerate(records) if r.event_type == "VerdictRecorded")
    verdict = json.loads(records[index].data)["verdict"]
    records[index] = edit_data(records[index], verdict={**verdict, "passed": False})
    rewrite(copy, records)
    report = audit(copy, clean[1])
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (records[index].position, "verdict")


def test_replayed_command(copy: Path, clean: tuple[Path, History]) -> None:
    records = rows(copy)
    deposit = next(
        r for r in records if r.event_type == "Credited" and r.stream_id == f"user:{CONSUMER.id}"
    )
    replayed = [r for r in records if r.command_id == deposit.command_id]
    versions = {r.stream_id: r.version for r in records}
    position = records[-1].position
    for record in replayed:
        position += 1
        versions[record.stream_id] += 1
        records.append(
            msgspec.structs.replace(record, position=position, version=versions[record.stream_id])
        )
    rewrite(copy, records)
    report = audit(copy, clean[1])
    assert report.failure is not None
    first_copy = records[-len(replayed)].position
    assert (report.failure.position, report.failure.check) == (first_copy, "command_replay")


def test_balance_edited_in_the_read_table(copy: Path, clean: tuple[Path, History]) -> None:
    account = f"user:{CONSUMER.id}"
    with sqlite3.connect(copy) as conn:
        version, state = conn.execute(
            "SELECT version, state FROM snapshots WHERE stream_id = ?", (account,)
        ).fetchone()
        edited = {**json.loads(state), "balance": json.loads(state)["balance"] + 1_000}
        conn.execute(
            "UPDATE snapshots SET state = ? WHERE stream_id = ?",
            (json.dumps(edited).encode(), account),
        )
    report = audit(copy, clean[1])
    expected = position_of(copy, lambda r: r.stream_id == account and r.version == version)
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (expected, "read_model")


def test_anchor_that_does_not_match_the_chain(copy: Path, clean: tuple[Path, History]) -> None:
    # The last anchor: an edit under a later tree head would fail that head's root first.
    records = rows(copy)
    index = max(i for i, r in enumerate(records) if r.event_type == "LogAnchored")
    records[index] = edit_data(records[index], slot=json.loads(records[index].data)["slot"] + 7)
    rewrite(copy, records)
    # The signed anchor command names its slot: running it again gives another record.
    report = audit(copy, clean[1])
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (
        records[index].position,
        "reexecution",
    )
    # Without re-execution the chain check catches it.
    report = audit(copy, clean[1], reexecute=False)
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (records[index].position, "anchor")


def test_anchor_of_another_root(copy: Path, clean: tuple[Path, History]) -> None:
    records = rows(copy)
    index = next(i for i, r in enumerate(records) if r.event_type == "LogAnchored")
    records[index] = edit_data(records[index], root="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    rewrite(copy, records)
    report = audit(copy, clean[1])
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (records[index].position, "anchor")


def test_cli_exit_status_and_json(
    copy: Path, clean: tuple[Path, History], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    operator = ["--operator", clean[1].net.operator.id]
    assert main(["audit", "--source", f"sqlite:///{clean[0]}", "--json", *operator]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["failure"] is None
    assert main(["audit", "--source", f"sqlite:///{clean[0]}", "--at", "20", *operator]) == 0
    assert "balances at position 20" in capsys.readouterr().out
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM events WHERE position = 5")
    assert main(["audit", "--source", f"sqlite:///{copy}", "--json", *operator]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failure"]["position"] == 5 and report["failure"]["check"] == "hash_chain"
    missing = tmp_path / "missing.sqlite3"
    assert main(["audit", "--source", f"sqlite:///{missing}"]) == 2


def test_edited_policy_in_the_genesis_names_its_position(
    copy: Path, clean: tuple[Path, History]
) -> None:
    records = rows(copy)
    genesis = records[0]
    assert genesis.event_type == "GenesisDeclared"
    policy = json.loads(genesis.data)["policy"]
    records[0] = edit_data(genesis, policy={**policy, "slash_bps": policy["slash_bps"] + 1})
    rewrite(copy, records)
    report = audit(copy, clean[1])
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (1, "network_rules")
    assert "not the signed one" in report.failure.message


def test_an_operator_added_to_the_genesis_names_its_position(
    copy: Path, clean: tuple[Path, History]
) -> None:
    records = rows(copy)
    operators = json.loads(records[0].data)["operators"]
    records[0] = edit_data(records[0], operators=[*operators, CONSUMER.id])
    rewrite(copy, records)
    report = audit(copy, clean[1])
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (1, "network_rules")


def test_the_audit_needs_no_flop_setting_and_skips_nothing(
    clean: tuple[Path, History], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("FLOP_")]:
        monkeypatch.delenv(name)

    async def go() -> AuditReport:
        source = await open_source(f"sqlite:///{clean[0]}")
        try:
            # Every optional check asked for: proofs, a trusted head, co-signers (issue 16).
            hashes = [r.hash for r in rows(clean[0])]
            history = HistoryRequirements(
                trusted_heads=(TrustedHead(len(hashes), root_from_hashes(hashes)),),
                min_cosigners=2,
            )
            options = AuditOptions(verify_proofs=True, history=history)
            return await run_audit(source, options, chain=clean[1].chain)
        finally:
            await source.close()

    report = asyncio.run(go())
    assert report.ok, report.failure
    assert report.warnings == []
    # Every check but the work's, which needs an object store (--verify-work), and the
    # chain's, which needs a chain (its replay rules ran: tests/integration/solana).
    expected = {
        **dict.fromkeys(report.checks, "passed"),
        "work": "skipped",
        "chain_money": "skipped",
    }
    assert {name: check.status for name, check in report.checks.items()} == expected
    assert report.checks["network_rules"].count == 1
    operator = clean[1].net.operator.id
    assert report.state["network"]["genesis_signer"] == operator
    assert report.state["network"]["operators"] == [operator]


def test_an_untrusted_genesis_signer_fails_the_audit(clean: tuple[Path, History]) -> None:
    async def go() -> AuditReport:
        source = await open_source(f"sqlite:///{clean[0]}")
        try:
            options = AuditOptions(trusted_operators=frozenset({CONSUMER.id}))
            return await run_audit(source, options, chain=clean[1].chain)
        finally:
            await source.close()

    report = asyncio.run(go())
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (1, "network_rules")


def _forge_signature(path: Path) -> int:
    """Flip a bit of the node's job claim signature, keep the stored digest in step (a
    careful forger) and re-chain; returns the command's first position."""
    records = rows(path)
    target = next(r for r in records if r.event_type == "JobClaimed")
    metadata = msgspec.json.decode(target.metadata, type=CommandMetadata)
    signature = bytes([metadata.envelope.signature[0] ^ 1]) + metadata.envelope.signature[1:]
    envelope = msgspec.structs.replace(metadata.envelope, signature=signature)
    forged = msgspec.json.encode(
        msgspec.structs.replace(metadata, envelope=envelope, digest=envelope.digest().hex())
    )
    rewrite(
        path,
        [
            msgspec.structs.replace(r, metadata=forged) if r.command_id == target.command_id else r
            for r in records
        ],
    )
    return next(r.position for r in records if r.command_id == target.command_id)


def test_signature_pool_passes_the_clean_history(
    clean: tuple[Path, History], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the pool forced on, every verdict comes from its workers (none inline)."""
    monkeypatch.setattr(audit_run, "SIGNATURE_POOL_MIN_RECORDS", 0)
    monkeypatch.setattr(audit_module, "find_envelope_problem", _no_inline_check)
    report = audit(clean[0], clean[1])
    assert report.ok, report.failure
    assert report.checks["command_signature"].count > 0


@pytest.mark.parametrize("pool", [True, False], ids=["pool", "inline"])
def test_forged_signature_is_caught_with_and_without_the_pool(
    copy: Path, clean: tuple[Path, History], monkeypatch: pytest.MonkeyPatch, pool: bool
) -> None:
    position = _forge_signature(copy)
    if pool:
        monkeypatch.setattr(audit_run, "SIGNATURE_POOL_MIN_RECORDS", 0)
        monkeypatch.setattr(audit_module, "find_envelope_problem", _no_inline_check)
    report = audit(copy, clean[1])
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (position, "command_signature")
    assert "signature is invalid" in report.failure.message


def _forge_contribution(path: Path) -> None:
    """A beacon contribution whose recorded signature is another validator's (re-chained)."""
    records = rows(path)
    contributions = [i for i, r in enumerate(records) if r.event_type == "Contributed"]
    first, second = (json.loads(records[i].data) for i in contributions[:2])
    records[contributions[0]] = edit_data(records[contributions[0]], signature=second["signature"])
    assert first["signature"] != second["signature"]
    rewrite(path, records)


def _forge_verdict(path: Path) -> None:
    """A job verdict whose recorded BLS signature is another validator's (re-chained)."""
    records = rows(path)
    reveals = [
        i
        for i, r in enumerate(records)
        if r.event_type == "VerdictRecorded" and r.stream_type == "job"
    ]
    first, second = (json.loads(records[i].data)["verdict"] for i in reveals[:2])
    assert first["signature"] != second["signature"]
    records[reveals[0]] = edit_data(
        records[reveals[0]], verdict={**first, "signature": second["signature"]}
    )
    rewrite(path, records)


@pytest.mark.parametrize("forge", [_forge_signature, _forge_contribution, _forge_verdict])
def test_the_signature_pool_catches_what_the_inline_checks_catch(
    copy: Path, clean: tuple[Path, History], monkeypatch: pytest.MonkeyPatch, forge: Any
) -> None:
    """Forged records give the same failure (position, check, message) with the pool's
    envelope and beacon answers as with every signature verified inline."""
    forge(copy)
    inline = audit(copy, clean[1])
    monkeypatch.setattr(audit_run, "SIGNATURE_POOL_MIN_RECORDS", 0)
    bls.forget_verified()
    pooled = audit(copy, clean[1])
    assert inline.failure is not None and pooled.failure is not None
    assert pooled.failure == inline.failure


def test_the_pool_answers_the_beacon_signatures_of_a_clean_history(
    clean: tuple[Path, History], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the pool on, no beacon contribution and no job verdict is BLS-verified in this
    process: their signatures were answered ahead."""
    monkeypatch.setattr(audit_run, "SIGNATURE_POOL_MIN_RECORDS", 0)
    bls.forget_verified()
    contributions = sum(1 for r in rows(clean[0]) if r.event_type == "Contributed")
    verified: list[bytes] = []
    plain = bls.BACKEND.verify

    def counting(pk: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
        verified.append(message)
        return plain(pk, message, signature, dst)

    monkeypatch.setattr(bls.BACKEND, "verify", counting)
    report = audit(clean[0], clean[1])
    assert report.ok, report.failure
    assert contributions > 0
    assert not [m for m in verified if m.startswith(BEACON_TAG)]
    verdicts = _job_verdict_messages(rows(clean[0]))
    assert verdicts and not verdicts & set(verified)


def _job_verdict_messages(records: list[Record]) -> set[bytes]:
    commitments: dict[str, bytes] = {}
    messages = set()
    for record in records:
        data = json.loads(record.data)
        if record.stream_type == "job" and record.event_type == "ResultCommitted":
            commitments[record.stream_id] = base64.b64decode(data["result"]["commitment"])
        if record.stream_type == "job" and record.event_type == "VerdictRecorded":
            passed = data["verdict"]["passed"]
            messages.add(verdict_message(record.stream_id, commitments[record.stream_id], passed))
    return messages


def _no_inline_check(metadata: CommandMetadata) -> str:
    raise AssertionError(f"{metadata.envelope.kind} was checked inline, not by the pool")
