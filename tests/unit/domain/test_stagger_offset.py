"""The claim offset within a region tier (rules v3, ``domain.scheduling``): anchored where a
new node stands, growing as reputation falls and latency grows, always below one stagger."""

from __future__ import annotations

from domain.policy import BPS
from domain.scheduling import (
    LATENCY_RTT_CAP_US,
    LATENCY_RTT_FREE_US,
    compute_stagger_offset_ns,
)

STAGGER = 5_000_000_001  # stagger - 1 divides evenly below


def _offset(reputation_bps: int, rtt_us: int | None = None) -> int:
    return compute_stagger_offset_ns(
        reputation_bps=reputation_bps, rtt_us=rtt_us, stagger_ns=STAGGER
    )


def test_a_new_node_and_a_better_one_claim_at_the_tier_start() -> None:
    assert _offset(BPS // 2) == 0
    assert _offset(BPS) == 0
    assert _offset(BPS // 2, LATENCY_RTT_FREE_US) == 0


def test_reputation_zero_waits_three_quarters_of_a_stagger() -> None:
    assert _offset(0) == (STAGGER - 1) * 3 // 4
    assert _offset(BPS // 4) == (STAGGER - 1) * 3 // 8


def test_latency_past_the_cap_waits_a_quarter_and_the_sum_stays_below_a_stagger() -> None:
    assert _offset(BPS, LATENCY_RTT_CAP_US) == (STAGGER - 1) // 4
    assert _offset(BPS, 10 * LATENCY_RTT_CAP_US) == (STAGGER - 1) // 4
    assert _offset(0, 10 * LATENCY_RTT_CAP_US) == STAGGER - 1
    assert compute_stagger_offset_ns(reputation_bps=0, rtt_us=None, stagger_ns=0) == 0


def test_the_offset_grows_as_reputation_falls_and_latency_grows() -> None:
    by_reputation = [_offset(r) for r in range(BPS // 2, -1, -500)]
    assert by_reputation == sorted(by_reputation) and by_reputation[0] < by_reputation[-1]
    by_latency = [_offset(BPS, rtt) for rtt in range(0, LATENCY_RTT_CAP_US + 1, 10_000)]
    assert by_latency == sorted(by_latency) and by_latency[0] < by_latency[-1]
