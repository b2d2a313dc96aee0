"""The reputation score (``domain.reputation``): the prior, the units, the step halvings, the
horizon, and the bound on a node's buckets. Expected scores are worked out here by hand from
the formula in the module docstring."""

from __future__ import annotations

from domain.policy import BPS
from domain.reputation import (
    DOWN,
    NO_SHOW,
    REJECTED,
    REPUTATION_BUCKET_NS,
    REPUTATION_BUCKETS_MAX,
    REPUTATION_HORIZON_NS,
    UP,
    VERIFIED,
    WEIGHT_ONE,
    Observations,
    compute_reputation_bps,
    compute_weight,
)

HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS
T0 = 500_000 * HOUR_NS  # a bucket boundary


def _score(observations: Observations, now_ns: int, half_life_ns: int = DAY_NS) -> int:
    return compute_reputation_bps(observations.buckets, now_ns=now_ns, half_life_ns=half_life_ns)


def test_a_node_without_observations_starts_in_the_middle() -> None:
    assert _score(Observations(), T0) == BPS // 2


def test_one_verified_result_raises_the_score_one_rejection_lowers_it_four_times_as_much() -> None:
    verified, rejected = Observations(), Observations()
    verified.observe(VERIFIED, T0)
    rejected.observe(REJECTED, T0)
    # prior 16 units good and bad; a verified result 4 good units, a rejection 16 bad
    assert _score(verified, T0) == BPS * (16 + 4) // (4 + 32)
    assert _score(rejected, T0) == BPS * 16 // (16 + 32)
    assert _score(rejected, T0) < BPS // 2 < _score(verified, T0)


def test_weights_halve_once_per_half_life_of_age_in_steps() -> None:
    assert compute_weight(0, DAY_NS) == WEIGHT_ONE
    assert compute_weight(DAY_NS - 1, DAY_NS) == WEIGHT_ONE
    assert compute_weight(DAY_NS, DAY_NS) == WEIGHT_ONE // 2
    assert compute_weight(3 * DAY_NS, DAY_NS) == WEIGHT_ONE // 8


def test_an_observation_at_the_horizon_no_longer_counts() -> None:
    assert compute_weight(REPUTATION_HORIZON_NS - 1, 10 * REPUTATION_HORIZON_NS) == WEIGHT_ONE
    assert compute_weight(REPUTATION_HORIZON_NS, 10 * REPUTATION_HORIZON_NS) == 0
    old = Observations()
    old.observe(REJECTED, T0)
    assert _score(old, T0 + REPUTATION_HORIZON_NS, half_life_ns=10 * REPUTATION_HORIZON_NS) == (
        BPS // 2
    )


def test_a_rejection_a_half_life_ago_weighs_half() -> None:
    observations = Observations()
    observations.observe(REJECTED, T0)
    # 16 bad units at half weight: 8
    assert _score(observations, T0 + DAY_NS) == BPS * 16 // (8 + 32)


def test_observations_of_one_hour_share_a_bucket_and_later_hours_add_one() -> None:
    observations = Observations()
    observations.observe(UP, T0)
    observations.observe(DOWN, T0 + HOUR_NS - 1)
    observations.observe(NO_SHOW, T0 + HOUR_NS)
    assert [b.index for b in observations.buckets] == [T0 // HOUR_NS, T0 // HOUR_NS + 1]
    assert observations.totals == {UP: 1, DOWN: 1, NO_SHOW: 1}


def test_buckets_past_the_horizon_are_dropped_without_changing_any_later_score() -> None:
    observations = Observations()
    observations.observe(REJECTED, T0)
    last = T0 + REPUTATION_BUCKETS_MAX * REPUTATION_BUCKET_NS
    observations.observe(VERIFIED, last - REPUTATION_BUCKET_NS)
    assert len(observations.buckets) == 2  # one bucket short of the bound: still kept
    kept = list(observations.buckets)
    observations.observe(VERIFIED, last)
    assert observations.buckets[0].index == kept[1].index  # the oldest was dropped
    # it weighed nothing anyway at any time from the newest observation on
    assert _score(observations, last, REPUTATION_HORIZON_NS) == compute_reputation_bps(
        [*kept, *observations.buckets[1:]], now_ns=last, half_life_ns=REPUTATION_HORIZON_NS
    )
