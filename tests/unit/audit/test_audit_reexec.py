"""Deterministic re-execution (issue 16, item 1) against the tamper tests' forgeries.

The other audit tests replay their forgeries on the fast path, to show the one cheap check
that names each (``tests.forgery.replay``); a per-record cheap check still fires first with
re-execution on. Here the forgeries the cheap checks let through by design (a claim bond
under rules v1, a lone prober's rewritten report) fail check ``reexecution`` at the forged
record: no rule gives those bytes for the signed command.
"""

from __future__ import annotations

import json

import pytest

from adapters.store.memory import MemoryEventStore
from domain.beacon import Beacon
from domain.ledger import Account
from domain.node import Node
from domain.policy import RULES_V1, LedgerPolicy
from domain.records import Record
from domain.services.loading import load_aggregate
from tests.forgery import b64, forge_at, replay
from tests.unit.audit import test_audit_claims as claims
from tests.unit.audit import test_audit_reputation as reputation
from validator.audit import REEXECUTION, AuditFailed
from validator.audit_reexec import ShadowStore


def _index(records: list[Record], event_type: str, nth: int = 0) -> int:
    return [i for i, r in enumerate(records) if r.event_type == event_type][nth]


def _fails_at(records: list[Record], position: int) -> AuditFailed:
    with pytest.raises(AuditFailed) as info:
        replay(records, reexecute=True)
    assert (info.value.position, info.value.check) == (position, REEXECUTION)
    return info.value


async def test_the_clean_histories_reexecute() -> None:
    for records in (await claims._history(), await reputation._history()):
        replayer = replay(records, reexecute=True)
        assert replayer.reexecution is not None
        assert replayer.reexecution.not_reexecuted == 0
        assert replayer.counts[REEXECUTION] == replayer.commands


async def test_a_rules_v1_history_is_held_to_what_its_rules_give() -> None:
    # The cheap claim checks do not apply under rules v1; the v1 rules still gave this bond.
    policy = LedgerPolicy(validator_stake_min=500, rules_version=RULES_V1)
    records = await claims._history(policy)
    index = _index(records, "ClaimReserved")
    original = json.loads(records[index].data)["claim_bond"]
    failure = _fails_at(forge_at(records, index, claim_bond=1), records[index].position)
    assert f"claim_bond is 1 in the log, the rules give {original}" in failure.message


async def test_a_lone_rewritten_report_is_not_what_its_prober_signed() -> None:
    records = await reputation._history()
    index = _index(records, "ReportRecorded")
    nodes = json.loads(records[index].data)["nodes"]
    forged = forge_at(records, index, up=b64(bytes([(1 << len(nodes)) - 1])))
    replay(forged)  # the fast path lets one prober's word through: it decides nothing
    _fails_at(forged, records[index].position)


async def test_the_shadow_loads_what_a_full_replay_gives() -> None:
    """Accounts, nodes and the beacon load from the shadow's head snapshots exactly as from
    their whole streams (a store without snapshots), version and state."""
    records = await claims._history()
    shadow, plain = ShadowStore(), MemoryEventStore()
    shadow.add_recorded(records)
    for record in records:
        plain._log.append(record)
        plain._streams.setdefault(record.stream_id, []).append(record)
    kinds = {Account.STREAM_TYPE: Account, Node.STREAM_TYPE: Node, Beacon.STREAM_TYPE: Beacon}
    streams = {r.stream_id: kinds[r.stream_type] for r in records if r.stream_type in kinds}
    assert set(streams.values()) == set(kinds.values())
    for stream_id, cls in streams.items():
        mine = await load_aggregate(shadow, cls, stream_id)
        full = await load_aggregate(plain, cls, stream_id)
        assert mine.aggregate is not None and full.aggregate is not None
        assert mine.snapshot_version == mine.aggregate.version  # served from the head
        assert full.snapshot_version == 0
        assert mine.aggregate.version == full.aggregate.version
        assert vars(mine.aggregate) == vars(full.aggregate)
