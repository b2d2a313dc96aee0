"""The Node's attestation under rules v3: a timed challenge judged at once, expiry, the
attested inventory, failures that revoke and count, re-challenge intervals, probe slots and
the tier of a pass."""

from __future__ import annotations

import msgspec
import pytest

from domain.attestation import TIER_CC, TIER_OPERATOR, TIER_TIMED, compute_tier
from domain.devices import compute_probe_specs
from domain.errors import Rejection
from domain.node import ACTIVE, JAILED, REGISTERED, GpuClaim, Node
from domain.policy import RULES_V3, LedgerPolicy
from domain.verdicts import Verdict, VerdictRound

NOW = 1_800_000_000_000_000_000
S = 1_000_000_000
POLICY = LedgerPolicy(
    node_stake_min=100,
    attestation_ttl_ns=100 * S,
    rechallenge_interval_min_ns=50 * S,
    probe_slot_ns=5 * S,
    probe_misses_slash=3,
)
H100 = GpuClaim("NVIDIA H100 80GB HBM3", 81_559, "h100-sxm", "GPU-1")
SEED = "ab" * 32


def _node(stake: int = 100) -> Node:
    node = Node.register(
        "node-1",
        owner="owner-1",
        region="eu-west",
        gpus=(H100,),
        gpu_class="datacenter",
        price=5,
        now_ns=NOW,
    )
    node.bond(signer=node.owner, amount=stake, policy=POLICY, now_ns=NOW)
    return node


def _challenge(node: Node, now_ns: int, nonce: str = "n1") -> None:
    node.challenge_attestation(
        nonce=nonce,
        seed=SEED,
        size=0,
        deadline_ns=now_ns + 10 * S,
        now_ns=now_ns,
        probes=compute_probe_specs(("h100-sxm",), policy=POLICY),
    )


def _attested(now_ns: int = NOW) -> Node:
    node = _node()
    _challenge(node, now_ns)
    node.accept_attestation(certificate=b"", policy=POLICY, now_ns=now_ns, tier=TIER_OPERATOR)
    return node


def test_a_timed_challenge_binds_its_seed_and_no_report_answers_it() -> None:
    node = _node()
    _challenge(node, NOW)
    assert node.challenge is not None and node.challenge.is_timed
    assert node.round_commitment() == bytes.fromhex(SEED)
    with pytest.raises(Rejection) as info:
        node.submit_attestation(
            nonce="n1",
            inventory_digest=b"i" * 32,
            commitment=b"c" * 32,
            timings_ns=(1,),
            signature=b"",
            now_ns=NOW,
        )
    assert info.value.code == "attestation_by_report_retired"


def test_a_pass_records_its_tier_models_and_an_expiry_one_ttl_later() -> None:
    node = _attested()
    assert node.state == ACTIVE
    assert (node.attestation_tier, node.attested_at_ns) == (TIER_OPERATOR, NOW)
    assert node.attestation_expires_ns == NOW + 100 * S
    view = node.view()
    assert view["models"] == ["h100-sxm"] and view["uuids"] == ["GPU-1"]
    assert view["inventory_attested"] is True


def test_the_attestation_lets_the_node_claim_until_one_nanosecond_before_expiry() -> None:
    node = _attested()
    node.check_attestation_current(now_ns=NOW + 100 * S - 1)
    with pytest.raises(Rejection) as info:
        node.check_attestation_current(now_ns=NOW + 100 * S)
    assert info.value.code == "attestation_expired"


def test_a_report_attestation_never_lets_a_node_claim_under_rules_v3() -> None:
    """A pass written under rules v2 has no expiry: rules v3 asks for a timed one."""
    node = _node()
    node.challenge_attestation(nonce="n", seed=SEED, size=1024, deadline_ns=NOW + S, now_ns=NOW)
    node.submit_attestation(
        nonce="n",
        inventory_digest=b"i" * 32,
        commitment=b"c" * 32,
        timings_ns=(1,),
        signature=b"",
        now_ns=NOW,
    )
    node.accept_attestation(
        certificate=b"", policy=msgspec.structs.replace(POLICY, rules_version=2), now_ns=NOW
    )
    assert node.state == ACTIVE and node.attestation_expires_ns == 0
    with pytest.raises(Rejection) as info:
        node.check_attestation_current(now_ns=NOW)
    assert info.value.code == "attestation_expired"


def test_a_changed_inventory_is_not_attested_until_a_new_challenge_passes() -> None:
    node = _attested()
    node.update_inventory(gpus=(H100, H100), gpu_class="datacenter", now_ns=NOW + S)
    with pytest.raises(Rejection) as info:
        node.check_attestation_current(now_ns=NOW + S)
    assert info.value.code == "inventory_not_attested"
    node.update_inventory(gpus=(H100,), gpu_class="datacenter", now_ns=NOW + 2 * S)
    node.check_attestation_current(now_ns=NOW + 2 * S)  # the attested list again


def test_the_inventory_attested_is_the_one_challenged() -> None:
    """A GPU added while the challenge is open is not covered by its pass."""
    node = _node()
    _challenge(node, NOW)
    node.update_inventory(gpus=(H100, H100), gpu_class="datacenter", now_ns=NOW)
    node.accept_attestation(certificate=b"", policy=POLICY, now_ns=NOW, tier=TIER_OPERATOR)
    with pytest.raises(Rejection) as info:
        node.check_attestation_current(now_ns=NOW)
    assert info.value.code == "inventory_not_attested"


def test_a_failed_challenge_revokes_deactivates_and_counts() -> None:
    node = _attested()
    _challenge(node, NOW + S, nonce="n2")
    node.reject_attestation(certificate=b"qc", reason="late", now_ns=NOW + S, policy=POLICY)
    assert (node.state, node.is_attested, node.failed_challenges) == (REGISTERED, False, 1)
    assert node.attestation_expires_ns == 0 and not node.is_misses_slash_due(POLICY)
    node.bond(signer=node.owner, amount=1, policy=POLICY, now_ns=NOW + S)
    assert node.state == REGISTERED  # stake alone does not reactivate it


def test_failures_reach_the_misses_slash_at_the_policy_count_and_a_pass_resets_them() -> None:
    node = _attested()
    for i in range(2):
        _challenge(node, NOW + (i + 1) * S, nonce=f"f{i}")
        node.reject_attestation(
            certificate=bytes([i]), reason="late", now_ns=NOW + (i + 1) * S, policy=POLICY
        )
    assert not node.is_misses_slash_due(POLICY)
    _challenge(node, NOW + 3 * S, nonce="f2")
    node.reject_attestation(certificate=b"x", reason="late", now_ns=NOW + 3 * S, policy=POLICY)
    assert node.is_misses_slash_due(POLICY)
    evidence = node.compute_misses_evidence()
    assert len(evidence) == 3 * 32
    node.slash(
        amount=10, reason="misses", evidence=evidence, policy=POLICY, now_ns=NOW + 3 * S, misses=3
    )
    assert (node.state, node.failed_challenges, node.compute_misses_evidence()) == (JAILED, 0, b"")


def test_an_abandoned_round_counts_no_failure() -> None:
    node = _attested()
    _challenge(node, NOW + S, nonce="n2")
    node.reject_attestation(certificate=b"", reason="no validator quorum", now_ns=NOW + S)
    assert (node.state, node.is_attested, node.failed_challenges) == (ACTIVE, True, 0)


def test_a_rechallenge_waits_the_interval_from_the_last_challenge() -> None:
    node = _attested()
    node.require_rechallenge_allowed(policy=POLICY, now_ns=NOW + 50 * S)
    with pytest.raises(Rejection) as info:
        node.require_rechallenge_allowed(policy=POLICY, now_ns=NOW + 50 * S - 1)
    assert info.value.code == "rechallenge_too_soon"


def test_probe_slots_follow_the_validators_order_from_the_draw() -> None:
    node = _node()
    _challenge(node, NOW)
    node.assign_validators(
        validators=("v1", "v2", "v3"),
        log_position=1,
        log_hash=b"h" * 32,
        policy=POLICY,
        now_ns=NOW + 7 * S,
    )
    # an H100's probe takes longer than probe_slot_ns: the slot is twice its deadlines
    (spec,) = compute_probe_specs(("h100-sxm",), policy=POLICY)
    slot = 2 * (spec.compute_deadline_ns + spec.fill_deadline_ns + spec.read_deadline_ns)
    assert slot > POLICY.probe_slot_ns
    assert node.compute_probe_slot_ns("v1", POLICY) == NOW + 7 * S + slot
    assert node.compute_probe_slot_ns("v3", POLICY) == NOW + 7 * S + 3 * slot
    assert node.compute_probe_slot_ns("stranger", POLICY) is None


def _round(reasons: list[str], weights: tuple[int, ...] = (1, 1, 1)) -> VerdictRound:
    validators = ("v1", "v2", "v3")
    verdict_round = VerdictRound(validators, weights, NOW, NOW)
    for validator, reason in zip(validators, reasons, strict=False):
        verdict_round.verdicts[validator] = Verdict(True, reason, b"")
    return verdict_round


def test_the_tier_is_cc_only_when_the_cc_votes_are_a_quorum_themselves() -> None:
    assert POLICY.rules_version >= RULES_V3
    assert compute_tier(_round(["cc", "cc", ""]), POLICY) == TIER_CC
    assert compute_tier(_round(["cc", "", ""]), POLICY) == TIER_TIMED
    assert compute_tier(_round(["cc", "cc", ""], weights=(1, 1, 4)), POLICY) == TIER_TIMED
