"""The audit's liveness and reputation rules (``validator.audit_reputation``) on a replayed
history: a clean one passes; a careful forger who edits a released claim's outcome, a node's
uptime, a report, an epoch's close or a claim's recorded earliest time, and re-chains the
hashes, fails with the rule named (rules v3)."""

from __future__ import annotations

import json

import pytest

from adapters.store.memory import MemoryEventStore
from domain.policy import LedgerPolicy
from domain.records import Record
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from tests.forgery import b64, forge_at, replay
from tests.liveness_helpers import register_prober, run_epoch
from validator.audit import REPUTATION, AuditFailed

RELIABLE, FLAKY, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (151, 152, 153))
VALIDATORS = [make_validator_keys(150 + i) for i in range(3)]
KEYS = {k.identity.id: k for k in VALIDATORS}
RESULT = b"\x07" * 32
REGION = "eu-west"


async def _history() -> list[Record]:
    """The reliable node's result is verified; the flaky node misses its window; probers
    see the reliable node up and the flaky one down; the flaky node claims again later,
    after the offset its reputation gives."""
    net = LocalNetwork.create(MemoryEventStore(), policy=LedgerPolicy(validator_stake_min=500))
    for keys in VALIDATORS:
        await register_prober(net, keys, stake=2_000, region=REGION)
    for node in (RELIABLE, FLAKY):
        await net.deposit(node, 10_000)
        await net.register_active_node(node, region=REGION, price=400, stake=5_000)
    await net.deposit(CONSUMER, 100_000)
    job = await net.submit_job(CONSUMER, region=REGION, max_price=1_000)
    await net.run(RELIABLE, "job.claim", {"job_id": job, "node_id": RELIABLE.id})
    await net.commit_result(RELIABLE, job, RESULT)
    await net.vote_round(job, [(keys, True) for keys in VALIDATORS])
    missed = await net.submit_job(CONSUMER, region=REGION, max_price=1_000)
    await net.run(FLAKY, "job.claim", {"job_id": missed, "node_id": FLAKY.id})
    net.advance(net.policy.result_window_ns / 1e9 + 1)
    await net.run(CONSUMER, "job.expire", {"job_id": missed})
    seen = {v: {RELIABLE.id: (True, 1_500), FLAKY.id: (False, 0)} for v in KEYS}
    await run_epoch(net, KEYS, seen)
    late = await net.submit_job(CONSUMER, region=REGION, max_price=1_000)
    net.advance(net.policy.region_stagger_ns / 1e9)
    await net.run(FLAKY, "job.claim", {"job_id": late, "node_id": FLAKY.id})
    return await net.store.read_all(1, 10_000)


def _index(records: list[Record], event_type: str, stream_id: str = "", nth: int = 0) -> int:
    found = [
        i
        for i, r in enumerate(records)
        if r.event_type == event_type and (not stream_id or r.stream_id == stream_id)
    ]
    return found[nth]


def _fails_reputation(records: list[Record], words: str) -> AuditFailed:
    with pytest.raises(AuditFailed) as info:
        replay(records)
    assert info.value.check == REPUTATION
    assert words in info.value.message
    return info.value


async def test_the_clean_history_passes_with_its_outcomes_uptimes_and_claim_offsets() -> None:
    records = await _history()
    replayer = replay(records)
    outcomes = [json.loads(r.data)["outcome"] for r in records if r.event_type == "ClaimReleased"]
    assert outcomes == ["verified", "no_show"]
    assert {r.event_type for r in records} >= {"NodeUptimeRecorded", "LivenessEpochClosed"}
    last_claim = json.loads(records[_index(records, "ClaimReserved", FLAKY.id, nth=1)].data)
    assert last_claim["earliest_ns"] > 0
    assert replayer.reputation.compute_reputation_bps(
        FLAKY.id, last_claim["at_us"] * 1000, LedgerPolicy()
    ) < replayer.reputation.compute_reputation_bps(
        RELIABLE.id, last_claim["at_us"] * 1000, LedgerPolicy()
    )


async def test_a_missed_window_rewritten_as_no_outcome_fails() -> None:
    records = await _history()
    index = _index(records, "ClaimReleased", FLAKY.id)
    _fails_reputation(forge_at(records, index, outcome=""), "its command makes it 'no_show'")


async def test_a_verified_result_rewritten_as_rejected_fails() -> None:
    records = await _history()
    index = _index(records, "ClaimReleased", RELIABLE.id)
    _fails_reputation(forge_at(records, index, outcome="rejected"), "makes it 'verified'")


async def test_a_down_epoch_rewritten_as_up_fails_at_the_uptime() -> None:
    records = await _history()
    index = _index(records, "NodeUptimeRecorded", FLAKY.id)
    failure = _fails_reputation(forge_at(records, index, up=True), "its probers' reports decide")
    assert failure.position == records[index].position


async def test_reports_rewritten_before_the_close_fail_at_the_close() -> None:
    """Two of the three reports now see the flaky node up: the close no longer follows."""
    records = await _history()
    forged = records
    for nth in (0, 1):
        index = _index(forged, "ReportRecorded", nth=nth)
        nodes = json.loads(forged[index].data)["nodes"]
        forged = forge_at(forged, index, up=b64(bytes([(1 << len(nodes)) - 1])))  # all up
    failure = _fails_reputation(forged, "close bitmaps")
    assert failure.position == records[_index(records, "LivenessEpochClosed")].position


async def test_one_report_rewritten_changes_no_decision_and_passes() -> None:
    """A lone prober's word decides nothing (what the false-report attack relies on)."""
    records = await _history()
    index = _index(records, "ReportRecorded")
    nodes = json.loads(records[index].data)["nodes"]
    replay(forge_at(records, index, up=b64(bytes([(1 << len(nodes)) - 1]))))


async def test_close_bitmaps_rewritten_fail() -> None:
    records = await _history()
    index = _index(records, "LivenessEpochClosed")
    _fails_reputation(forge_at(records, index, up=b64(b"\x00")), "close bitmaps")


async def test_a_claim_recording_an_earlier_start_fails() -> None:
    records = await _history()
    index = _index(records, "ClaimReserved", FLAKY.id, nth=1)
    data = json.loads(records[index].data)
    forged = forge_at(records, index, earliest_ns=data["earliest_ns"] - 1)
    _fails_reputation(forged, "records earliest")
