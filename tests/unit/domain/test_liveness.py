"""Liveness epochs (``domain.liveness``): prober assignment, the probers' quorum, medians,
bitmaps and the epochs' timing."""

from __future__ import annotations

import hashlib
import struct

import pytest

from domain.commands import decode_command
from domain.errors import Rejection
from domain.liveness import (
    LIVENESS_EPOCH_NODES_MAX,
    LIVENESS_REPORT_NODES_MAX,
    LIVENESS_RTT_US_MAX,
    PROBER_TAG,
    LivenessEpoch,
    Prober,
    ProbeReport,
    check_epoch_timing,
    check_report_shape,
    compute_liveness_quorum,
    compute_median,
    compute_node_uptime,
    compute_probe_duties,
    compute_probers,
    encode_bitmap,
    is_bit_set,
)
from domain.policy import LedgerPolicy

POLICY = LedgerPolicy()
PROBERS = tuple(Prober(f"v{i}", f"owner{i}", "eu-west" if i % 2 else "us-east") for i in range(6))


def test_probers_are_the_lowest_sha256_ranks_and_never_the_nodes_own() -> None:
    def rank(validator_id: str) -> bytes:
        message = PROBER_TAG + struct.pack(">Q", 7) + b"node-a\0" + validator_id.encode()
        return hashlib.sha256(message).digest()

    expected = sorted((p.validator_id for p in PROBERS if p.owner != "owner2"), key=rank)[:3]
    assert compute_probers(7, "node-a", PROBERS, count=3, node_owner="owner2") == tuple(expected)
    assert "v2" not in compute_probers(7, "node-a", PROBERS, count=6, node_owner="owner2")


def test_a_validators_duties_are_the_nodes_it_is_assigned() -> None:
    nodes = [(f"node-{i}", "") for i in range(20)]
    duties = compute_probe_duties(3, "v1", nodes, PROBERS, count=3)
    assert duties == tuple(n for n, _ in nodes if "v1" in compute_probers(3, n, PROBERS, count=3))
    assert 0 < len(duties) < len(nodes)


def test_the_quorum_is_a_majority_of_the_assigned_and_at_least_two() -> None:
    assert [compute_liveness_quorum(n) for n in (1, 2, 3, 4, 5)] == [2, 2, 2, 3, 3]


def _report(up: bool, rtt_us: int) -> ProbeReport:
    return ProbeReport(("n",), encode_bitmap([up]), (rtt_us,))


def test_two_of_three_decide_and_a_lone_liar_changes_nothing() -> None:
    assigned = ("v0", "v1", "v2")
    reports = {"v0": _report(True, 900), "v1": _report(True, 1_100), "v2": _report(False, 0)}
    outcome = compute_node_uptime("n", assigned, reports, PROBERS)
    assert outcome is not None and outcome.up
    assert outcome.rtt_us == 900  # the lower median of 900 and 1100
    assert {r.region: r.rtt_us for r in outcome.rtt_by_region} == {"us-east": 900, "eu-west": 1_100}


def test_one_report_alone_decides_nothing() -> None:
    outcome = compute_node_uptime("n", ("v0", "v1", "v2"), {"v0": _report(False, 0)}, PROBERS)
    assert outcome is None


def test_reports_of_unassigned_validators_are_not_counted() -> None:
    reports = {"v3": _report(False, 0), "v4": _report(False, 0), "v0": _report(True, 5)}
    assert compute_node_uptime("n", ("v0", "v1", "v2"), reports, PROBERS) is None


def test_two_of_three_down_decide_down() -> None:
    reports = {"v0": _report(False, 0), "v1": _report(False, 0), "v2": _report(True, 5)}
    outcome = compute_node_uptime("n", ("v0", "v1", "v2"), reports, PROBERS)
    assert outcome is not None and not outcome.up


def test_medians_are_the_lower_middle_value() -> None:
    assert compute_median([]) == 0
    assert compute_median([5]) == 5
    assert compute_median([9, 1, 5, 7]) == 5


def test_bitmaps_put_bit_i_in_byte_i_div_8_least_significant_first() -> None:
    bits = [True, False, False, False, False, False, False, False, True]
    assert encode_bitmap(bits) == bytes([0b1, 0b1])
    assert [is_bit_set(encode_bitmap(bits), i) for i in range(10)] == [*bits, False]


def test_a_report_needs_one_bit_and_one_rtt_per_distinct_node() -> None:
    check_report_shape(ProbeReport(("a", "b"), b"\x01", (1, 2)))
    for bad in (
        ProbeReport(("a", "a"), b"\x01", (1, 2)),
        ProbeReport(("a", "b"), b"\x01", (1,)),
        ProbeReport(("a", "b"), b"\x01\x00", (1, 2)),
    ):
        with pytest.raises(Rejection) as info:
            check_report_shape(bad)
        assert info.value.code == "liveness_report_malformed"


def test_reports_are_taken_in_their_epoch_and_the_next_and_closing_after() -> None:
    epoch_ns = POLICY.liveness_epoch_ns
    for at in (10 * epoch_ns, 12 * epoch_ns - 1):
        check_epoch_timing(10, now_ns=at, policy=POLICY, closing=False)
    for at in (10 * epoch_ns - 1, 12 * epoch_ns):
        with pytest.raises(Rejection) as info:
            check_epoch_timing(10, now_ns=at, policy=POLICY, closing=False)
        assert info.value.code == "liveness_report_out_of_epoch"
    with pytest.raises(Rejection) as info:
        check_epoch_timing(10, now_ns=12 * epoch_ns - 1, policy=POLICY, closing=True)
    assert info.value.code == "liveness_epoch_not_over"
    check_epoch_timing(10, now_ns=12 * epoch_ns, policy=POLICY, closing=True)


def _report_body(nodes: int, rtt_us: int = 1) -> dict[str, object]:
    actor = "1" * 32
    return {
        "epoch": 1,
        "nodes": [actor] * nodes,
        "up": "",
        "rtt_us": [rtt_us] * nodes,
    }


def test_a_report_names_at_most_its_bound_of_nodes_with_rtts_up_to_theirs() -> None:
    decode_command("liveness.report", _report_body(LIVENESS_REPORT_NODES_MAX))
    decode_command("liveness.report", _report_body(1, LIVENESS_RTT_US_MAX))
    for body in (
        _report_body(LIVENESS_REPORT_NODES_MAX + 1),
        _report_body(1, LIVENESS_RTT_US_MAX + 1),
        _report_body(0),
    ):
        with pytest.raises(Rejection) as info:
            decode_command("liveness.report", body)
        assert info.value.code == "command_body_invalid"


def test_an_epoch_takes_reports_up_to_its_bound_of_distinct_nodes() -> None:
    epoch_ns = POLICY.liveness_epoch_ns
    epoch = LivenessEpoch.open(5, probers=PROBERS, now_ns=5 * epoch_ns)

    def report(first: int, count: int) -> ProbeReport:
        nodes = tuple(f"node-{i}" for i in range(first, first + count))
        return ProbeReport(nodes, encode_bitmap([True] * count), (1,) * count)

    half = LIVENESS_EPOCH_NODES_MAX // 2
    epoch.record_report(
        validator_id="v0", report=report(0, half), policy=POLICY, now_ns=5 * epoch_ns
    )
    epoch.record_report(
        validator_id="v1", report=report(half, half), policy=POLICY, now_ns=5 * epoch_ns
    )
    assert len(epoch.reported_nodes()) == LIVENESS_EPOCH_NODES_MAX
    epoch.record_report(validator_id="v2", report=report(0, 1), policy=POLICY, now_ns=5 * epoch_ns)
    with pytest.raises(Rejection) as info:
        epoch.record_report(
            validator_id="v3", report=report(2 * half, 1), policy=POLICY, now_ns=5 * epoch_ns
        )
    assert info.value.code == "liveness_epoch_full"
