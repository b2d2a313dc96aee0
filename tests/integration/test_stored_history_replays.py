"""A store written by the release before the verdict-round renovation (issue 13) replays
with today's code to the state that release recorded, and passes the audit.

The fixture (``tests/fixtures/history_v0.sqlite3``) and its expected state
(``history_v0.json``) were made once by ``tests/fixtures/make_history_v0.py`` and are never
regenerated: a failure here means today's code reads old history differently. That release
recorded no rules in the log, so the store has no genesis: its audit fails until the operator
declares the rules that governed it (``flopledger db genesis``), and passes under them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.store.sqlite import SqliteEventStore
from domain.policy import RULES_V1, LedgerPolicy
from domain.ports import ChainMemo
from domain.services.ledger_service import LedgerService
from flopledger.genesis import ensure_genesis
from proofs.identity import Identity
from tests.fixtures.history_state import dump_state
from tests.integration.audit.test_tamper_sqlite import rewrite, rows
from validator.audit import AuditOptions
from validator.audit_history import HISTORY_CHECKS
from validator.audit_run import AuditReport, open_source, run_audit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STORE_FILE = FIXTURES / "history_v0.sqlite3"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "history_v0.json").read_text())
OPERATOR = Identity.from_seed(b"history-v0-operator".ljust(32, b"\0"))  # make_history_v0's
RECORDED_NOW_NS = 1_900_000_000 * 10**9
STATE_KEYS = ("head", "event_types", "aggregates", "balances", "directories")
FIELDS_ADDED_SINCE: dict[str, dict[str, Any]] = {
    # issue 14, attacks 4/6: a node's open claims (a history written before has none)
    "Node": {
        "claims": {},
        # issue 15: reputation and uptime (a history written before has no observations)
        "reputation": {"buckets": [], "totals": {}},
        "uptime": {
            "epochs_up": 0,
            "epochs_down": 0,
            "last_epoch": -1,
            "last_up": False,
            "rtt_us": 0,
            "rtt_by_region": {},
        },
    },
    # issue 15: where a validator measures liveness from (none before)
    "Validator": {"region": ""},
    # issue 14, attack 3: the randomness a job's openings are drawn from (none before)
    "Job": {"openings_seed": ""},
}
"""Aggregate fields today's code has and the fixture's release had not, with the value old
history must replay them to; any other value (or any other new field) fails the test."""
FIELDS_ADDED_SINCE["Node"].update(
    {
        # issue 15: hardware attestation under rules v3 (report attestations bind none)
        "challenged_gpus": [],
        "attested_gpus": [],
        "attestation_tier": "",
        "attested_at_ns": 0,
        "attestation_expires_ns": 0,
        "failed_challenges": 0,
        "failed_certificates": [],
        "last_challenged_ns": 0,
        "round_assigned_ns": 0,
    }
)
NESTED_FIELDS_ADDED_SINCE: dict[str, dict[str, dict[str, Any]]] = {
    # issue 15: a GPU's model and UUID, a challenge's probes and group (rules v3)
    "Node": {"gpus": {"model": "", "uuid": ""}, "challenge": {"probes": [], "group": ""}},
}
"""Fields added since to the structs an aggregate field holds (one struct, or a list of
them), with the value old history must replay them to."""


class RecordedChain:
    """The anchors' memos as the fixture's fake chain held them."""

    def __init__(self, memos: dict[str, dict[str, Any]]) -> None:
        self.memos = {sig: ChainMemo(memo=m["memo"], slot=m["slot"]) for sig, m in memos.items()}

    async def get_memo(self, signature: str) -> ChainMemo | None:
        return self.memos.get(signature)


@pytest.fixture
def store_copy(tmp_path: Path) -> Path:
    """The committed store is never opened in place (opening may write to it)."""
    target = tmp_path / STORE_FILE.name
    shutil.copy(STORE_FILE, target)
    return target


async def test_the_stored_history_replays_to_the_recorded_state(store_copy: Path) -> None:
    store = await SqliteEventStore.open(store_copy)
    try:
        state = await dump_state(store)
    finally:
        await store.close()
    state["aggregates"] = {
        stream_id: _without_added_fields(aggregate)
        for stream_id, aggregate in state["aggregates"].items()
    }
    for key in STATE_KEYS:
        assert state[key] == EXPECTED[key], key


def _without_added_fields(aggregate: dict[str, Any]) -> dict[str, Any]:
    added = FIELDS_ADDED_SINCE.get(aggregate.get("class", ""), {})
    nested = NESTED_FIELDS_ADDED_SINCE.get(aggregate.get("class", ""), {})
    return {
        name: _without_nested(value, nested[name]) if name in nested else value
        for name, value in aggregate.items()
        if name not in added or value != added[name]
    }


def _without_nested(value: Any, added: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_without_nested(item, added) for item in value]
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if k not in added or v != added[k]}


async def _declare_rules(path: Path) -> int:
    """What the operator of a store written before rules were recorded does once
    (``flopledger db genesis``): sign and append the genesis declaring the operators and
    policy that governed positions 1..N. Returns its position."""
    store = await SqliteEventStore.open(path)
    try:
        # That release wrote its records under the first rules (``RULES_V1``).
        seed = LedgerPolicy(
            **{
                **EXPECTED["policy"],
                "operators": tuple(EXPECTED["operators"]),
                "rules_version": RULES_V1,
            }
        )
        outcome = await ensure_genesis(
            LedgerService(store),
            OPERATOR,
            seed,
            now_ns=RECORDED_NOW_NS,
            prior_records_allowed=True,
        )
    finally:
        await store.close()
    assert outcome.created
    return outcome.rules.genesis_position


async def _audit(path: Path) -> AuditReport:
    source = await open_source(f"sqlite:///{path}")
    try:
        options = AuditOptions(verify_proofs=True)
        return await run_audit(source, options, chain=RecordedChain(EXPECTED["chain_memos"]))
    finally:
        await source.close()


async def test_the_stored_history_without_declared_rules_fails_the_audit(
    store_copy: Path,
) -> None:
    report = await _audit(store_copy)
    assert report.failure is not None
    assert (report.failure.position, report.failure.check) == (1, "network_rules")


async def test_the_stored_history_passes_the_audit_under_its_declared_rules(
    store_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    genesis_position = await _declare_rules(store_copy)
    assert genesis_position == EXPECTED["head"]["position"] + 1
    for name in [name for name in os.environ if name.startswith("FLOP_")]:
        monkeypatch.delenv(name)
    report = await _audit(store_copy)
    assert report.ok, report.failure
    assert report.events == genesis_position
    # The commands before the late genesis ran under settings, not the log's rules: checked,
    # not re-executed; the genesis itself is run again.
    assert len(report.warnings) == 1 and "not re-executed" in report.warnings[0]
    assert report.checks["reexecution"].count == 1
    statuses = {name: check.status for name, check in report.checks.items()}
    # The history checks (issue 16) need the auditor's trusted heads or co-signer minimum,
    # the work check an object store (--verify-work), the chain check a chain.
    expected = {
        **dict.fromkeys(statuses, "passed"),
        **dict.fromkeys(HISTORY_CHECKS, "skipped"),
        "work": "skipped",
        "chain_money": "skipped",
    }
    assert statuses == expected, statuses
    assert report.state["network"]["operators"] == EXPECTED["operators"]
    # Every verdict and every quorum certificate was checked, attestations' as well as jobs'.
    records = rows(store_copy)
    verdicts = [
        r for r in records if r.event_type in ("VerdictRecorded", "AttestationVerdictRecorded")
    ]
    assert {r.stream_type for r in verdicts} == {"job", "node"}
    assert report.checks["verdict"].count == len(verdicts)
    decided = [r for r in records if r.event_type in ("JobVerified", "JobRejected")] + [
        r
        for r in records
        if r.event_type in ("AttestationVerified", "AttestationRejected")
        and json.loads(r.metadata)["envelope"]["kind"] == "node.attestation.record_verdict"
    ]
    assert report.checks["quorum_certificate"].count == len(decided) > 4


async def test_a_forged_attestation_verdict_fails_the_audit(store_copy: Path) -> None:
    """An attestation verdict the validator did not sign is caught (re-chained carefully)."""
    await _declare_rules(store_copy)
    records = rows(store_copy)
    index = next(i for i, r in enumerate(records) if r.event_type == "AttestationVerdictRecorded")
    data = json.loads(records[index].data)
    data["verdict"]["reason"] = "forged"
    forged = msgspec.structs.replace(records[index], data=json.dumps(data, sort_keys=True).encode())
    rewrite(store_copy, [*records[:index], forged, *records[index + 1 :]])
    report = await _audit(store_copy)
    assert report.failure is not None
    assert (report.failure.check, report.failure.position) == ("verdict", forged.position)
