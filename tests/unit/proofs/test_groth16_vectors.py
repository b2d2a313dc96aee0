"""Groth16 verification against the snarkjs vectors (testvectors/groth16, README section 1).

Which invalid cases give ``False`` and which raise ``Groth16DecodeError`` is decided here and
documented in ``proofs/groth16.py``: a well-formed proof whose pairing check fails gives
``False``; anything the strict decoding refuses (a number ≥ its modulus, including the
non-canonical ``x + p``, a point off its curve or outside the G2 subgroup, a public-signal
count that differs from the key's ``nPublic``) raises the typed error naming the field.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from py_ecc.optimized_bn128 import G1, G2, multiply
from py_ecc.optimized_bn128 import pairing as py_ecc_pairing

from proofs.bn254 import affine_g1, affine_g2
from proofs.groth16 import (
    Groth16DecodeError,
    batch_verify,
    decode_proof,
    decode_public,
    decode_verification_key,
    encode_proof,
    encode_verification_key,
    verify,
    verify_json,
)
from proofs.pairing import pairing

from ._groth16_helpers import GROTH16_CIRCUITS, GROTH16_PROOF_INDICES, groth16_dir, load_groth16

# case name -> expected outcome: True / False from verify, or the message fragment of the
# Groth16DecodeError ("field: reason").
EXPECTED_OUTCOME: dict[str, bool | str] = {
    "baseline_valid": True,
    "public_signal_changed": False,
    "pi_a_replaced_by_5G": False,
    "pi_a_negated": False,
    "pi_a_pi_c_swapped": False,
    "wrong_vkey": "public: expected",
    "public_signal_plus_r": "public[0]: value is not below the field modulus",
    "public_signal_equals_r": "public[0]: value is not below the field modulus",
    "pi_a_not_on_curve": "proof.pi_a: not on the G1 curve",
    "pi_c_not_on_curve": "proof.pi_c: not on the G1 curve",
    "pi_b_not_on_curve": "proof.pi_b: not on the G2 twist curve",
    "pi_b_fp2_components_swapped": "proof.pi_b: not on the G2 twist curve",
    "pi_b_not_in_subgroup": "proof.pi_b: not in the G2 subgroup",
    "pi_a_infinity": False,
    "public_signals_missing_one": "public: expected 2 signals, got 1",
    "public_signals_extra": "public: expected",
    "pi_a_x_noncanonical": "proof.pi_a.x: value is not below the field modulus",
}


def _invalid_cases() -> list[Any]:
    params = []
    for circuit in GROTH16_CIRCUITS:
        for case in load_groth16(circuit, f"{circuit}_invalid_cases.json")["cases"]:
            params.append(pytest.param(circuit, case, id=f"{circuit}-{case['name']}"))
    return params


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
@pytest.mark.parametrize("index", GROTH16_PROOF_INDICES)
def test_vector_proof_is_accepted(circuit: str, index: int) -> None:
    vkey = load_groth16(circuit, f"{circuit}_vkey.json")
    proof = load_groth16(circuit, f"proof_{index}.json")
    public = load_groth16(circuit, f"public_{index}.json")
    assert verify_json(vkey, proof, public) is True


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
def test_other_index_public_signals_are_rejected(circuit: str) -> None:
    vk = decode_verification_key(load_groth16(circuit, f"{circuit}_vkey.json"))
    proof = decode_proof(load_groth16(circuit, "proof_1.json"))
    public = decode_public(load_groth16(circuit, "public_2.json"), vk.n_public)
    assert verify(vk, proof, public) is False


@pytest.mark.parametrize(("circuit", "case"), _invalid_cases())
def test_invalid_case(circuit: str, case: dict[str, Any]) -> None:
    expected = EXPECTED_OUTCOME[case["name"]]
    vkey = _load_vkey_file(case["vkey_file"])
    if isinstance(expected, bool):
        assert verify_json(vkey, case["proof"], case["public_signals"]) is expected
    else:
        with pytest.raises(Groth16DecodeError, match=re.escape(expected)):
            verify_json(vkey, case["proof"], case["public_signals"])


def test_every_vector_case_has_an_expected_outcome() -> None:
    names = {case.values[1]["name"] for case in _invalid_cases()}
    assert names == set(EXPECTED_OUTCOME)


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
def test_encoded_vkey_reproduces_snarkjs_alphabeta(circuit: str) -> None:
    vkey = load_groth16(circuit, f"{circuit}_vkey.json")
    assert encode_verification_key(decode_verification_key(vkey)) == vkey


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
def test_encode_decode_round_trip(circuit: str) -> None:
    proof = load_groth16(circuit, "proof_1.json")
    assert encode_proof(decode_proof(proof)) == proof


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
def test_batch_verify_accepts_vector_proofs_and_rejects_one_bad(circuit: str) -> None:
    vk = decode_verification_key(load_groth16(circuit, f"{circuit}_vkey.json"))
    items = [
        (
            decode_proof(load_groth16(circuit, f"proof_{i}.json")),
            decode_public(load_groth16(circuit, f"public_{i}.json"), vk.n_public),
        )
        for i in GROTH16_PROOF_INDICES
    ]
    assert batch_verify(vk, items) is True
    swapped = [(items[0][0], items[1][1]), (items[1][0], items[0][1])]
    assert batch_verify(vk, swapped) is False
    assert batch_verify(vk, []) is True


def test_pairing_equals_py_ecc() -> None:
    p, q = multiply(G1, 7), multiply(G2, 11)
    expected = [int(c) for c in py_ecc_pairing(q, p).coeffs]
    assert pairing(affine_g1(p), affine_g2(q)) == expected


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.update(pi_a=p["pi_a"][:2]), "proof.pi_a: expected a list of 3"),
        (lambda p: p.update(protocol="plonk"), "proof.protocol: expected 'groth16'"),
        (lambda p: p.update(extra=1), "proof: unknown field 'extra'"),
        (lambda p: p["pi_c"].__setitem__(0, "01"), "proof.pi_c.x: not a canonical decimal"),
        (lambda p: p["pi_c"].__setitem__(2, "2"), "proof.pi_c: z must be 1"),
        (lambda p: p["pi_b"][0].__setitem__(1, 5), "proof.pi_b.x.c1: expected a decimal string"),
    ],
)
def test_malformed_proof_raises_typed_error(mutate: Any, message: str) -> None:
    proof = load_groth16("multiplier", "proof_1.json")
    mutate(proof)
    with pytest.raises(Groth16DecodeError, match=re.escape(message)):
        decode_proof(proof)


def _load_vkey_file(relative: str) -> Any:
    circuit, name = relative.split("/")
    assert (groth16_dir() / relative).is_file()
    return load_groth16(circuit, name)
