"""Validator aggregate: registration, stake, and slashing once per piece of evidence."""

from __future__ import annotations

import pytest

from domain.errors import InvalidTransition, Rejection, Unauthorized
from domain.policy import LedgerPolicy
from domain.validators import Validator

NOW = 1_800_000_000_000_000_000
S = 1_000_000_000
POLICY = LedgerPolicy(validator_stake_min=100, unbonding_period_ns=10 * S)


def _validator() -> Validator:
    return Validator.register(
        "val-1", owner="owner", bls_public_key=b"k" * 48, proof_of_possession=b"p" * 96, now_ns=NOW
    )


@pytest.mark.parametrize(("key", "pop"), [(b"k" * 47, b"p" * 96), (b"k" * 48, b"p" * 95)])
def test_malformed_bls_material_is_refused(key: bytes, pop: bytes) -> None:
    with pytest.raises(Rejection) as info:
        Validator.register("v", owner="o", bls_public_key=key, proof_of_possession=pop, now_ns=NOW)
    assert info.value.code == "bls_key_malformed"


def test_stake_activates_and_unbonding_waits() -> None:
    validator = _validator()
    assert not validator.is_active(POLICY)
    validator.bond(signer="owner", amount=100, now_ns=NOW)
    assert validator.is_active(POLICY)
    with pytest.raises(Rejection) as info:
        validator.request_unbond(amount=101, policy=POLICY, now_ns=NOW)
    assert info.value.code == "unbond_amount_out_of_range"
    validator.request_unbond(amount=40, policy=POLICY, now_ns=NOW)
    assert not validator.is_active(POLICY)
    with pytest.raises(Rejection) as info:
        validator.withdraw_unbonded(now_ns=NOW + 9 * S)
    assert info.value.code == "unbonding_not_complete"
    assert validator.withdraw_unbonded(now_ns=NOW + 10 * S) == 40
    with pytest.raises(InvalidTransition) as info:
        validator.withdraw_unbonded(now_ns=NOW + 10 * S)
    assert info.value.code == "nothing_to_withdraw"


def test_slash_needs_evidence_and_uses_it_once() -> None:
    validator = _validator()
    validator.bond(signer="owner", amount=100, now_ns=NOW)
    with pytest.raises(Rejection) as info:
        validator.slash(amount=10, reason="x", evidence_key="e1", evidence=b"", now_ns=NOW)
    assert info.value.code == "slash_needs_evidence"
    with pytest.raises(Rejection) as info:
        validator.slash(amount=101, reason="x", evidence_key="e1", evidence=b"v", now_ns=NOW)
    assert info.value.code == "slash_amount_out_of_range"
    validator.slash(amount=10, reason="equivocation", evidence_key="e1", evidence=b"v", now_ns=NOW)
    assert (validator.stake, validator.slashed_total) == (90, 10)
    with pytest.raises(InvalidTransition) as info:
        validator.slash(amount=10, reason="again", evidence_key="e1", evidence=b"v", now_ns=NOW)
    assert info.value.code == "evidence_already_used"


def test_only_the_validator_or_its_owner_may_act() -> None:
    validator = _validator()
    validator.require_owner("owner")
    validator.require_owner("val-1")
    with pytest.raises(Unauthorized):
        validator.require_owner("other")


def test_only_the_owner_bonds_a_validator() -> None:
    validator = _validator()
    with pytest.raises(Unauthorized) as info:
        validator.bond(signer="val-1", amount=1, now_ns=NOW)
    assert info.value.code == "bond_must_be_signed_by_owner"
    assert validator.stake == 0
