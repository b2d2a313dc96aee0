"""Node state machine: registered -> attested -> active <-> jailed -> deregistered."""

from __future__ import annotations

import pytest

from domain.errors import InvalidTransition, Rejection, Unauthorized
from domain.events import decode_event, encode_event
from domain.node import ACTIVE, ATTESTED, DEREGISTERED, JAILED, REGISTERED, GpuClaim, Node
from domain.policy import LedgerPolicy
from domain.records import Record

NOW = 1_800_000_000_000_000_000
S = 1_000_000_000
POLICY = LedgerPolicy(node_stake_min=100, unbonding_period_ns=10 * S, jail_period_ns=20 * S)


def _node() -> Node:
    return Node.register(
        "node-1",
        owner="owner-1",
        region="eu-west",
        gpus=(GpuClaim("H100", 81559),),
        gpu_class="datacenter",
        price=5,
        now_ns=NOW,
    )


def _attested(stake: int = 0) -> Node:
    node = _node()
    if stake:
        node.bond(signer=node.owner, amount=stake, policy=POLICY, now_ns=NOW)
    node.challenge_attestation(nonce="n1", seed="s", size=64, deadline_ns=NOW + 10 * S, now_ns=NOW)
    node.submit_attestation(
        nonce="n1",
        inventory_digest=b"i" * 32,
        commitment=b"c" * 32,
        timings_ns=(5,),
        signature=b"",
        now_ns=NOW + S,
    )
    node.accept_attestation(certificate=b"qc", policy=POLICY, now_ns=NOW + 2 * S)
    return node


def test_attestation_then_stake_makes_the_node_active() -> None:
    node = _attested()
    assert node.state == ATTESTED
    node.bond(signer=node.owner, amount=99, policy=POLICY, now_ns=NOW + 3 * S)
    assert node.state == ATTESTED
    node.bond(signer=node.owner, amount=1, policy=POLICY, now_ns=NOW + 3 * S)
    assert (node.state, node.stake) == (ACTIVE, 100)


def test_stake_first_then_attestation_also_activates() -> None:
    assert _attested(stake=100).state == ACTIVE


def test_attestation_rules() -> None:
    node = _node()
    with pytest.raises(InvalidTransition, match="no open") as info:
        node.submit_attestation(
            nonce="n1",
            inventory_digest=b"",
            commitment=b"",
            timings_ns=(),
            signature=b"",
            now_ns=NOW,
        )
    assert info.value.code == "no_open_challenge"
    with pytest.raises(InvalidTransition) as info:
        node.accept_attestation(certificate=b"", policy=POLICY, now_ns=NOW)
    assert info.value.code == "no_submitted_attestation"
    node.challenge_attestation(nonce="n1", seed="s", size=64, deadline_ns=NOW + 10, now_ns=NOW)
    with pytest.raises(InvalidTransition) as info:
        node.challenge_attestation(nonce="n2", seed="s", size=64, deadline_ns=NOW + 20, now_ns=NOW)
    assert info.value.code == "challenge_already_open"
    with pytest.raises(Rejection) as info:
        node.submit_attestation(
            nonce="other",
            inventory_digest=b"",
            commitment=b"c",
            timings_ns=(),
            signature=b"",
            now_ns=NOW,
        )
    assert info.value.code == "challenge_nonce_mismatch"
    with pytest.raises(Rejection) as info:
        node.submit_attestation(
            nonce="n1",
            inventory_digest=b"",
            commitment=b"c",
            timings_ns=(),
            signature=b"",
            now_ns=NOW + 11,
        )
    assert info.value.code == "challenge_expired"
    node.submit_attestation(
        nonce="n1",
        inventory_digest=b"",
        commitment=b"c",
        timings_ns=(),
        signature=b"",
        now_ns=NOW + 10,
    )
    with pytest.raises(InvalidTransition) as info:
        node.submit_attestation(
            nonce="n1",
            inventory_digest=b"",
            commitment=b"c",
            timings_ns=(),
            signature=b"",
            now_ns=NOW + 10,
        )
    assert info.value.code == "attestation_already_submitted"
    node.reject_attestation(certificate=b"qc", reason="timing implausible", now_ns=NOW + 11)
    assert node.state == REGISTERED and node.challenge is None


def test_unbonding_below_minimum_deactivates_and_withdraw_waits_for_the_period() -> None:
    node = _attested(stake=150)
    with pytest.raises(Rejection) as info:
        node.request_unbond(amount=151, policy=POLICY, now_ns=NOW)
    assert info.value.code == "unbond_amount_out_of_range"
    node.request_unbond(amount=60, policy=POLICY, now_ns=NOW)
    assert (node.state, node.stake, node.unbonding) == (ATTESTED, 90, 60)
    with pytest.raises(Rejection) as info:
        node.withdraw_unbonded(now_ns=NOW + 9 * S)
    assert info.value.code == "unbonding_not_complete"
    assert node.withdraw_unbonded(now_ns=NOW + 10 * S) == 60
    with pytest.raises(InvalidTransition) as info:
        node.withdraw_unbonded(now_ns=NOW + 10 * S)
    assert info.value.code == "nothing_to_withdraw"


def test_slash_jails_and_unjail_waits_for_the_sentence() -> None:
    node = _attested(stake=200)
    with pytest.raises(Rejection) as info:
        node.slash(amount=10, reason="bad", evidence=b"", policy=POLICY, now_ns=NOW)
    assert info.value.code == "slash_needs_evidence"
    with pytest.raises(Rejection) as info:
        node.slash(amount=201, reason="bad", evidence=b"qc", policy=POLICY, now_ns=NOW)
    assert info.value.code == "slash_amount_out_of_range"
    node.slash(amount=20, reason="bad", evidence=b"qc", policy=POLICY, now_ns=NOW)
    assert (node.state, node.stake, node.slashed_total) == (JAILED, 180, 20)
    with pytest.raises(Rejection) as info:
        node.unjail(policy=POLICY, now_ns=NOW + 19 * S)
    assert info.value.code == "jail_not_served"
    node.unjail(policy=POLICY, now_ns=NOW + 20 * S)
    assert node.state == ACTIVE
    with pytest.raises(InvalidTransition) as info:
        node.unjail(policy=POLICY, now_ns=NOW + 20 * S)
    assert info.value.code == "node_active"


def test_unjail_without_enough_stake_leaves_the_node_attested() -> None:
    node = _attested(stake=100)
    node.slash(amount=10, reason="bad", evidence=b"qc", policy=POLICY, now_ns=NOW)
    node.unjail(policy=POLICY, now_ns=NOW + 20 * S)
    assert node.state == ATTESTED


def test_deregistration_needs_all_stake_withdrawn_and_is_final() -> None:
    node = _attested(stake=100)
    with pytest.raises(Rejection) as info:
        node.deregister(now_ns=NOW)
    assert info.value.code == "stake_must_be_withdrawn"
    node.request_unbond(amount=100, policy=POLICY, now_ns=NOW)
    node.withdraw_unbonded(now_ns=NOW + 10 * S)
    node.deregister(now_ns=NOW + 10 * S)
    assert node.state == DEREGISTERED
    for action in (
        lambda: node.bond(signer=node.owner, amount=1, policy=POLICY, now_ns=NOW),
        lambda: node.deregister(now_ns=NOW),
        lambda: node.challenge_attestation(
            nonce="x", seed="s", size=1, deadline_ns=NOW, now_ns=NOW
        ),
    ):
        with pytest.raises(InvalidTransition) as info:
            action()
        assert info.value.code == "node_deregistered"


def test_only_the_node_or_its_owner_may_act() -> None:
    node = _node()
    node.require_owner("owner-1")
    node.require_owner("node-1")
    with pytest.raises(Unauthorized):
        node.require_owner("someone-else")


def test_only_the_owner_bonds_and_the_bond_records_whose_account_paid() -> None:
    node = _node()
    with pytest.raises(Unauthorized) as info:
        node.bond(signer="node-1", amount=1, policy=POLICY, now_ns=NOW)
    assert info.value.code == "bond_must_be_signed_by_owner"
    assert node.stake == 0
    node.bond(signer="owner-1", amount=1, policy=POLICY, now_ns=NOW)
    bonded = node.collect_new_events()[-1]
    assert isinstance(bonded, Node.StakeBonded) and bonded.funded_by == "user:owner-1"


def test_replaying_the_recorded_events_rebuilds_the_same_node() -> None:
    node = _attested(stake=150)
    node.slash(amount=15, reason="bad", evidence=b"qc", policy=POLICY, now_ns=NOW)
    events = node.collect_new_events()
    rebuilt = None
    for version, event in enumerate(events, start=1):
        stored = encode_event(event)
        record = Record(
            position=version,
            stream_id=node.id,
            stream_type="node",
            version=version,
            event_type=stored.event_type,
            data=stored.data,
            command_id="c",
            metadata=b"",
            prev_hash=b"",
            hash=b"",
        )
        rebuilt = decode_event(record).mutate(rebuilt)
    assert isinstance(rebuilt, Node)
    assert rebuilt.view() == node.view()


def test_attestation_challenge_size_bounds() -> None:
    from domain.commands import decode_command
    from domain.policy import ATTESTATION_SIZE_MAX, ATTESTATION_SIZE_MIN

    node_id = "1" * 32
    for size in (ATTESTATION_SIZE_MIN, ATTESTATION_SIZE_MAX):
        decode_command("node.attestation.challenge", {"node_id": node_id, "size": size})
    for size in (ATTESTATION_SIZE_MIN - 1, ATTESTATION_SIZE_MAX + 1):
        with pytest.raises(Rejection) as info:
            decode_command("node.attestation.challenge", {"node_id": node_id, "size": size})
        assert info.value.code == "command_body_invalid"
