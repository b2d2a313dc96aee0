"""The one claim rule on the Node aggregate (``domain.claims``), given/when/then: capacity and
stake coverage at their bounds and one past, the unbond floor, the release fee, takes from
the unbonding stake first, and a node snapshot that restores every field."""

from __future__ import annotations

import pytest

from domain.claims import OpenClaim, compute_claim_bond, compute_release_fee
from domain.completions import WarmModel
from domain.errors import Rejection
from domain.node import GpuClaim, Node
from domain.node_snapshots import (
    LATE_NODE_FIELDS,
    NODE_FIELDS,
    decode_node_state,
    encode_node_state,
)
from domain.policy import LedgerPolicy

NOW = 1_800_000_000_000_000_000
S = 1_000_000_000
POLICY = LedgerPolicy(node_stake_min=100, slash_bps=1_000, claim_bond_bps=2_000, claim_bond_min=10)
DUE = NOW + 600 * S


def _node(*, gpus: int = 1, stake: int = 1_000) -> Node:
    node = Node.register(
        "node-1",
        owner="owner-1",
        region="eu-west",
        gpus=tuple(GpuClaim("H100", 80_000) for _ in range(gpus)),
        gpu_class="datacenter",
        price=50,
        now_ns=NOW,
    )
    node.bond(signer="owner-1", amount=stake, policy=POLICY, now_ns=NOW)
    return node


def _claim(node: Node, job_id: str, max_price: int = 1_000) -> OpenClaim:
    return node.reserve_claim(
        job_id=job_id, max_price=max_price, due_ns=DUE, policy=POLICY, now_ns=NOW
    )


def test_a_claim_reserves_its_slash_and_its_bond() -> None:
    node = _node(stake=1_000)
    claim = _claim(node, "job-1")
    assert (claim.slash_at_risk, claim.claim_bond) == (100, 200)
    assert node.reserved_stake() == 300 and set(node.claims) == {"job-1"}


def test_the_bond_has_a_floor_for_cheap_jobs() -> None:
    assert compute_claim_bond(1, POLICY) == 10
    assert compute_claim_bond(1_000, POLICY) == 200


def test_capacity_is_one_claim_per_gpu_and_one_for_a_cpu_only_node() -> None:
    node = _node(gpus=2, stake=10_000)
    _claim(node, "job-1")
    _claim(node, "job-2")
    with pytest.raises(Rejection) as info:
        _claim(node, "job-3")
    assert info.value.code == "claim_capacity_reached"
    assert _node(gpus=0).claim_capacity() == 1


def test_stake_must_cover_every_open_reserve_at_the_bound_and_one_past() -> None:
    """Without the slash part (``slash_bps`` 0) each claim reserves just its bond, 200."""
    no_slash = LedgerPolicy(node_stake_min=100, slash_bps=0, claim_bond_bps=2_000)
    for stake, fits in ((400, 2), (399, 1)):
        node = _node(gpus=4, stake=stake)
        claims = 0
        with pytest.raises(Rejection) as info:
            for index in range(4):
                node.reserve_claim(
                    job_id=f"job-{index}", max_price=1_000, due_ns=DUE, policy=no_slash, now_ns=NOW
                )
                claims += 1
        assert info.value.code == "stake_below_claim_reserve"
        assert claims == fits


def test_an_unbond_keeps_the_open_reserves_and_the_minimum_bonded() -> None:
    node = _node(stake=1_000)
    _claim(node, "job-1")  # reserves 300; with a claim open the floor is max(300, 100)
    with pytest.raises(Rejection) as info:
        node.request_unbond(amount=701, policy=POLICY, now_ns=NOW)
    assert info.value.code == "unbond_below_claim_reserve"
    node.request_unbond(amount=700, policy=POLICY, now_ns=NOW)
    assert (node.stake, node.unbonding) == (300, 700)


def test_without_claims_everything_may_unbond() -> None:
    node = _node(stake=1_000)
    node.request_unbond(amount=1_000, policy=POLICY, now_ns=NOW)
    assert node.stake == 0


def test_the_release_fee_is_the_share_of_the_window_held() -> None:
    claim = OpenClaim(slash_at_risk=100, claim_bond=200, claimed_at_ns=NOW, due_ns=NOW + 100)
    assert compute_release_fee(claim, NOW) == 0
    assert compute_release_fee(claim, NOW + 50) == 100
    assert compute_release_fee(claim, NOW + 100) == 200
    assert compute_release_fee(claim, NOW + 101) == 200


def test_a_slash_and_a_forfeit_take_the_unbonding_stake_first() -> None:
    node = _node(stake=1_000)
    node.request_unbond(amount=600, policy=POLICY, now_ns=NOW)
    assert node.slash(amount=700, reason="r", evidence=b"e", policy=POLICY, now_ns=NOW) == 600
    assert (node.stake, node.unbonding, node.slashed_total) == (300, 0, 700)
    with pytest.raises(Rejection) as info:
        node.slash(amount=301, reason="r", evidence=b"e", policy=POLICY, now_ns=NOW)
    assert info.value.code == "slash_amount_out_of_range"


def test_a_forfeit_takes_at_most_the_bond_and_release_ends_the_claim() -> None:
    node = _node(stake=1_000)
    _claim(node, "job-1")
    taken = node.forfeit_claim_bond(
        job_id="job-1", amount=5_000, to_account="user:c", reason="missed", now_ns=NOW
    )
    assert taken == (200, 0) and node.stake == 800
    node.release_claim(job_id="job-1", reason="expired", now_ns=NOW)
    assert node.claims == {} and node.reserved_stake() == 0


def test_a_node_snapshot_restores_every_field() -> None:
    node = _node(gpus=2, stake=1_000)
    _claim(node, "job-1")
    node.request_unbond(amount=100, policy=POLICY, now_ns=NOW)
    restored = decode_node_state(node.id, encode_node_state(node))
    public = {name for name in vars(node) if not name.startswith("_")}
    # issue 18's fields are the class's defaults until a node sets them, and stay so restored
    assert public == set(NODE_FIELDS) - LATE_NODE_FIELDS
    assert vars(restored).keys() == vars(node).keys()
    assert {n: getattr(restored, n) for n in NODE_FIELDS} == {
        n: getattr(node, n) for n in NODE_FIELDS
    }
    assert restored.version == node.version


def test_a_node_snapshot_restores_its_warm_models_and_completion_charges() -> None:
    node = _node(gpus=1, stake=1_000)
    node.advertise_models(
        models=(WarmModel("tiny-llama-1", 2),), endpoint="http://127.0.0.1:1", now_ns=NOW
    )
    node.record_completion_charge(completion_id="cmpl-1", charge=7, window_ns=10, now_ns=NOW)
    restored = decode_node_state(node.id, encode_node_state(node))
    assert {n: getattr(restored, n) for n in NODE_FIELDS} == {
        n: getattr(node, n) for n in NODE_FIELDS
    }
    assert restored.warm_models == (WarmModel("tiny-llama-1", 2),)
    assert restored.completion_charges == node.completion_charges != ()


def test_a_committed_result_frees_its_device_and_keeps_only_its_slash_reserved() -> None:
    node = _node(gpus=1, stake=1_000)
    _claim(node, "job-1")
    with pytest.raises(Rejection) as info:
        _claim(node, "job-2")
    assert info.value.code == "claim_capacity_reached"
    node.commit_claim(job_id="job-1", now_ns=NOW)
    assert node.reserved_stake() == 100  # the slash; the bond is no longer at risk
    _claim(node, "job-2")
    assert node.count_claims_running() == 1 and node.reserved_stake() == 400
