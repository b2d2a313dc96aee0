"""History rewrites by the log key holder (issue 16, item 4), on real SQLite stores.

The forger holds the operator's log key: it drops a user's signed withdrawal, re-chains every
record, re-signs every tree head over the forged records and drops the co-signatures and
anchors that no longer match. Every check of the replay passes on that store; a trusted head
the auditor saw before, or a minimum of co-signers per head, catches it at a named position.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from adapters.store.sqlite import SqliteEventStore
from domain.records import GENESIS_HASH, Record, make_record
from flopledger.cli import main
from proofs.encoding import encode_canonical
from proofs.envelope import sign_command
from proofs.identity import Identity
from proofs.merkle import root_from_hashes
from proofs.tree_head import sign_tree_head
from tests.integration.audit.test_tamper_sqlite import COLUMNS, rows
from tests.unit.audit.scenario import History, build_history, build_sqlite_history
from validator.audit import AuditOptions
from validator.audit_history import HistoryRequirements, TrustedHead
from validator.audit_run import AuditReport, open_source, run_audit
from validator.witness import make_cosign_envelopes

WITHDRAW_KIND = "account.withdraw"
DROPPED_BY_THE_FORGER = frozenset({"WitnessCosigned", "LogAnchored"})


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, History]]:
    path = tmp_path_factory.mktemp("history") / "clean.sqlite3"

    yield path, build_sqlite_history(path)


@pytest.fixture(scope="module")
def forged(clean: tuple[Path, History], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clean store as the log key holder rewrites it: the consumer's withdrawal gone."""
    target = tmp_path_factory.mktemp("forged") / "forged.sqlite3"
    shutil.copy(clean[0], target)
    withdrawal = next(r for r in rows(target) if is_withdrawal(r))
    forge(target, clean[1].net.operator, drop=lambda r: r.command_id == withdrawal.command_id)
    return target


def audit(
    path: Path,
    history: History,
    requirements: HistoryRequirements,
    *,
    with_chain: bool = True,
    verify_proofs: bool = False,
    reexecute: bool = False,
) -> AuditReport:
    """The audit without re-execution unless asked: these tests are about what the history
    options catch alone (``test_reexecution_catches_the_forgery_at_its_first_consequence``)."""

    async def go() -> AuditReport:
        source = await open_source(f"sqlite:///{path}")
        try:
            options = AuditOptions(
                trusted_operators=frozenset(history.net.policy.operators),
                history=requirements,
                verify_proofs=verify_proofs,
                reexecute=reexecute,
            )
            return await run_audit(source, options, chain=history.chain if with_chain else None)
        finally:
            await source.close()

    return asyncio.run(go())


def trusted(path: Path, size: int) -> TrustedHead:
    """The head an auditor would have been served at ``size`` (RFC 9162 root of the hashes)."""
    return TrustedHead(size, root_from_hashes([r.hash for r in rows(path)[:size]]))


def forge(path: Path, log_key: Identity, *, drop: Callable[[Record], bool]) -> None:
    """Drop the records ``drop`` selects and every co-signature and anchor, renumber positions
    and stream versions, re-chain, and re-sign each tree head over the forged records."""
    kept: list[Record] = []
    new_positions: dict[int, int] = {}
    versions: dict[str, int] = {}
    prev = GENESIS_HASH
    for record in rows(path):
        if drop(record) or record.event_type in DROPPED_BY_THE_FORGER:
            continue
        versions[record.stream_id] = versions.get(record.stream_id, 0) + 1
        new_positions[record.position] = len(kept) + 1
        if record.event_type == "TreeHeadSigned":
            old_size = json.loads(record.data)["size"]
            size = sum(1 for old in new_positions if old <= old_size)
            root = root_from_hashes([r.hash for r in kept[:size]])
            record = resign_head(record, log_key, size, root)
        moved = msgspec.structs.replace(
            record, position=len(kept) + 1, version=versions[record.stream_id]
        )
        kept.append(make_record(prev, moved.body()))
        prev = kept[-1].hash
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM events")
        conn.execute("DELETE FROM snapshots")
        conn.executemany(
            f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [tuple(msgspec.structs.astuple(r)) for r in kept],
        )
        conn.execute("UPDATE head SET position = ?, hash = ?", (kept[-1].position, prev))
        first = {}
        for record in kept:
            first.setdefault(record.command_id, record.position)
        conn.execute("DELETE FROM commands")
        conn.executemany(
            "INSERT INTO commands (command_id, first_position, outcome) VALUES (?, ?, ?)",
            [(command_id, position, b"{}") for command_id, position in first.items()],
        )


def resign_head(record: Record, log_key: Identity, size: int, root: bytes) -> Record:
    """A ``log.seal`` record over (size, root), signed again by the log key (same nonce)."""
    data = json.loads(record.data)
    metadata = json.loads(record.metadata)
    old = metadata["envelope"]
    head = sign_tree_head(log_key.private_key, size, root, data["tree_timestamp_ns"])
    envelope = sign_command(
        log_key,
        "log.seal",
        {
            "size": size,
            "root": root,
            "tree_timestamp_ns": data["tree_timestamp_ns"],
            "signature": head.signature,
        },
        nonce=old["nonce"],
        issued_at_ns=old["issued_at_ns"],
    )
    metadata.update(envelope=msgspec.to_builtins(envelope), digest=envelope.digest().hex())
    data.update(size=size, root=root, signature=head.signature)
    return msgspec.structs.replace(
        record, data=encode_canonical(data), metadata=encode_canonical(metadata)
    )


def is_withdrawal(record: Record) -> bool:
    return bool(json.loads(record.metadata)["envelope"]["kind"] == WITHDRAW_KIND)


def first_dropped(path: Path) -> int:
    """The first position of the clean log that the forger dropped."""
    return min(
        r.position for r in rows(path) if is_withdrawal(r) or r.event_type in DROPPED_BY_THE_FORGER
    )


def head_positions(path: Path) -> list[int]:
    return [r.position for r in rows(path) if r.event_type == "TreeHeadSigned"]


def test_the_forgery_passes_every_check_without_history_options(
    forged: Path, clean: tuple[Path, History]
) -> None:
    # The chain is left out: scanning the treasury's memos for anchors the log no longer
    # lists is another check (validator.audit_chain).
    report = audit(forged, clean[1], HistoryRequirements(), with_chain=False)
    assert report.ok, report.failure
    assert report.state["cosignatures"] == 0 and report.state["anchors"] == 0
    assert report.state["tree_heads"] == 2
    assert [r for r in rows(forged) if is_withdrawal(r)] == []
    assert report.checks["trusted_head"].status == "skipped"
    assert report.checks["cosigners"].status == "skipped"


def test_min_cosigners_names_the_first_head_without_them(
    forged: Path, clean: tuple[Path, History]
) -> None:
    report = audit(forged, clean[1], HistoryRequirements(min_cosigners=1))
    assert report.failure is not None
    first_head = head_positions(forged)[0]
    assert (report.failure.position, report.failure.check) == (first_head, "cosigners")
    assert "0 co-signatures" in report.failure.message


def test_a_trusted_head_of_the_clean_log_names_where_the_forgery_differs(
    forged: Path, clean: tuple[Path, History]
) -> None:
    size = first_dropped(clean[0])  # the forged log holds the next record there
    report = audit(forged, clean[1], HistoryRequirements(trusted_heads=(trusted(clean[0], size),)))
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (size, "trusted_head")
    assert "rewritten" in report.failure.message


def test_a_trusted_head_of_the_whole_clean_log_says_the_forgery_is_shorter(
    forged: Path, clean: tuple[Path, History]
) -> None:
    end = rows(clean[0])[-1].position
    report = audit(forged, clean[1], HistoryRequirements(trusted_heads=(trusted(clean[0], end),)))
    assert report.failure is not None
    forged_end = rows(forged)[-1].position
    assert (report.failure.position, report.failure.check) == (forged_end + 1, "trusted_head")
    assert "truncated" in report.failure.message


def test_a_trusted_head_before_the_forged_part_still_holds(
    forged: Path, clean: tuple[Path, History]
) -> None:
    size = first_dropped(clean[0]) - 1
    report = audit(forged, clean[1], HistoryRequirements(trusted_heads=(trusted(clean[0], size),)))
    assert report.ok, report.failure
    assert report.checks["trusted_head"].count == 1


def test_the_clean_store_passes_with_trusted_heads_taken_mid_run(
    clean: tuple[Path, History],
) -> None:
    records = rows(clean[0])
    sealed = json.loads(next(r for r in records if r.event_type == "TreeHeadSigned").data)
    sealer_head = TrustedHead(sealed["size"], base64.b64decode(sealed["root"]))
    heads = (trusted(clean[0], 1), sealer_head, trusted(clean[0], 37), trusted(clean[0], 60))
    report = audit(clean[0], clean[1], HistoryRequirements(trusted_heads=heads, min_cosigners=2))
    assert report.ok, report.failure
    assert (report.checks["trusted_head"].status, report.checks["trusted_head"].count) == (
        "passed",
        4,
    )
    assert report.checks["cosigners"].status == "passed"
    assert report.checks["cosigners"].count == 1  # two heads, the newest exempt
    newest = report.state["history"]["newest_head"]
    assert newest.split(":")[0] == str(report.state["last_tree_size"])
    # --verify-proofs: a consistency proof from each trusted head to the newest head too.
    requirements = HistoryRequirements(trusted_heads=heads)
    plain = audit(clean[0], clean[1], requirements, verify_proofs=True)
    without = audit(clean[0], clean[1], HistoryRequirements(), verify_proofs=True)
    assert plain.ok, plain.failure
    below_newest = [h for h in heads if h.size < report.state["last_tree_size"]]
    assert below_newest
    extra = plain.checks["stored_proofs"].count - without.checks["stored_proofs"].count
    assert extra == len(below_newest)


def test_a_wrong_trusted_head_fails_at_its_size(clean: tuple[Path, History]) -> None:
    right = trusted(clean[0], 25)
    wrong = TrustedHead(25, bytes([right.root[0] ^ 1]) + right.root[1:])
    report = audit(clean[0], clean[1], HistoryRequirements(trusted_heads=(wrong,)))
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (25, "trusted_head")


def test_a_trusted_head_past_the_log_says_it_was_truncated(
    clean: tuple[Path, History], tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.sqlite3"
    shutil.copy(clean[0], truncated)
    end = rows(clean[0])[-1]
    kept = rows(clean[0])[-6]
    with sqlite3.connect(truncated) as conn:
        conn.execute("DELETE FROM events WHERE position > ?", (kept.position,))
        conn.execute("UPDATE head SET position = ?, hash = ?", (kept.position, kept.hash))
    head = trusted(clean[0], end.position)
    report = audit(truncated, clean[1], HistoryRequirements(trusted_heads=(head,)))
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (kept.position + 1, "trusted_head")
    assert "truncated" in report.failure.message


def test_more_cosigners_than_the_clean_store_has_fail_at_the_first_head(
    clean: tuple[Path, History],
) -> None:
    report = audit(clean[0], clean[1], HistoryRequirements(min_cosigners=3))
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (
        head_positions(clean[0])[0],
        "cosigners",
    )


def test_cli_history_options(
    forged: Path, clean: tuple[Path, History], capsys: pytest.CaptureFixture[str]
) -> None:
    operator = ["--operator", clean[1].net.operator.id]
    end = rows(clean[0])[-1].position
    head = trusted(clean[0], end)
    ok = ["audit", "--json", "--no-reexecute", *operator, "--trusted-head", str(head)]
    ok += ["--min-cosigners", "2"]
    assert main([*ok, "--source", f"sqlite:///{clean[0]}"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["checks"]["trusted_head"]["count"] == 1
    newest = report["state"]["history"]["newest_head"]
    human = ["audit", *operator, "--min-cosigners", "2", "--trusted-head", newest]
    assert main([*human, "--source", f"sqlite:///{clean[0]}"]) == 0
    shown = capsys.readouterr().out
    assert newest in shown and "AUDIT PASSED" in shown
    assert main([*ok, "--source", f"sqlite:///{forged}"]) == 1
    failure = json.loads(capsys.readouterr().out)["failure"]
    assert failure["check"] == "trusted_head"
    forged_cosigners = ["audit", "--json", "--no-reexecute", *operator, "--min-cosigners", "1"]
    assert main([*forged_cosigners, "--source", f"sqlite:///{forged}"]) == 1
    failure = json.loads(capsys.readouterr().out)["failure"]
    assert (failure["position"], failure["check"]) == (head_positions(forged)[0], "cosigners")
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "--source", f"sqlite:///{clean[0]}", "--trusted-head", "12:beef"])
    assert exit_info.value.code == 2
    assert "SIZE:ROOT_HEX" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "--source", f"sqlite:///{clean[0]}", "--witness-key", "00" * 48])
    assert exit_info.value.code == 2


@pytest.fixture(scope="module")
def unstaked_cosigner(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, History, bytes]:
    """The clean history, then the third validator unbonds all its stake and co-signs every
    head: its co-signatures are valid but come from no staked validator."""
    path = tmp_path_factory.mktemp("witness") / "witness.sqlite3"

    async def build() -> tuple[History, bytes]:
        store = await SqliteEventStore.open(path)
        try:
            history = await build_history(store)
            net, keys = history.net, history.validators[2]
            await net.run(
                keys.identity, "stake.unbond", {"target": keys.identity.id, "amount": 1_000}
            )
            for envelope in make_cosign_envelopes(
                keys.identity,
                keys.bls_secret,
                await store.read_all(1, 10_000),
                issued_at_ns=net.now_ns,
                nonce_prefix="cosign-unstaked",
            ):
                await net.service.execute(envelope, now_ns=net.now_ns)
            return history, keys.bls_public
        finally:
            await store.close()

    history, key = asyncio.run(build())
    return path, history, key


def test_an_unstaked_cosigner_counts_only_as_a_named_witness(
    unstaked_cosigner: tuple[Path, History, bytes],
) -> None:
    path, history, key = unstaked_cosigner
    assert audit(path, history, HistoryRequirements()).state["cosignatures"] == 6
    report = audit(path, history, HistoryRequirements(min_cosigners=3))
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (head_positions(path)[0], "cosigners")
    assert report.state["history"]["cosignatures_not_counted"] == 2
    named = HistoryRequirements(min_cosigners=3, witness_keys=frozenset({key}))
    report = audit(path, history, named)
    assert report.ok, report.failure
    assert report.state["history"]["cosignatures_not_counted"] == 0


def test_reexecution_catches_the_forgery_at_its_first_consequence(
    forged: Path, clean: tuple[Path, History]
) -> None:
    # Without any history option: a command after the first dropped record (a co-signature,
    # then the withdrawal), run again on the forged state, gives other records than the
    # forged log holds (here a draw: its seed follows the log).
    report = audit(forged, clean[1], HistoryRequirements(), reexecute=True)
    assert report.failure is not None and report.failure.check == "reexecution"
    first_dropped = next(
        r.position
        for r in rows(clean[0])
        if r.event_type in DROPPED_BY_THE_FORGER or is_withdrawal(r)
    )
    assert report.failure.position > first_dropped
    assert "ValidatorsAssigned" in report.failure.message
