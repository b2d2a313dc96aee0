"""The Groth16 prover against the snarkjs vectors' proving keys and against the seed setup."""

from __future__ import annotations

import pytest

from proofs.groth16 import (
    Groth16DecodeError,
    batch_verify,
    decode_proof,
    decode_public,
    decode_verification_key,
    encode_proof,
    encode_public,
    encode_verification_key,
    verify,
)
from proofs.groth16_prover import prove
from proofs.groth16_setup import setup_from_seed
from proofs.r1cs import decode_r1cs, decode_witness, first_unsatisfied
from proofs.zkey import decode_zkey

from ._groth16_helpers import (
    GROTH16_CIRCUITS,
    GROTH16_PROOF_INDICES,
    load_groth16,
    zkey_bytes,
)


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
@pytest.mark.parametrize("index", GROTH16_PROOF_INDICES)
def test_proof_from_vector_zkey_verifies_with_vector_vkey(circuit: str, index: int) -> None:
    pk = decode_zkey(zkey_bytes(circuit))
    vk = decode_verification_key(load_groth16(circuit, f"{circuit}_vkey.json"))
    witness = decode_witness(load_groth16(circuit, f"witness_{index}.json"), pk.n_vars)
    proof, public = prove(pk, witness)
    assert encode_public(public) == load_groth16(circuit, f"public_{index}.json")
    assert verify(vk, decode_proof(encode_proof(proof)), public) is True


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
def test_seed_setup_round_trip(circuit: str) -> None:
    r1cs = decode_r1cs(load_groth16(circuit, f"{circuit}.r1cs.json"))
    pk, vk = setup_from_seed(r1cs, seed=2026)
    vk_json = encode_verification_key(vk)
    assert decode_verification_key(vk_json) == vk
    for index in GROTH16_PROOF_INDICES:
        witness = decode_witness(load_groth16(circuit, f"witness_{index}.json"), r1cs.n_vars)
        proof, public = prove(pk, witness)
        assert verify(vk, proof, decode_public(encode_public(public), vk.n_public)) is True
        tampered = [(public[0] + 1) % (1 << 250), *public[1:]]
        assert verify(vk, proof, tampered) is False


def test_seed_setup_is_deterministic_and_seed_dependent() -> None:
    r1cs = decode_r1cs(load_groth16("multiplier", "multiplier.r1cs.json"))
    assert setup_from_seed(r1cs, 1)[1] == setup_from_seed(r1cs, 1)[1]
    assert setup_from_seed(r1cs, 1)[1] != setup_from_seed(r1cs, 2)[1]


def test_proof_under_one_setup_fails_under_another() -> None:
    r1cs = decode_r1cs(load_groth16("multiplier", "multiplier.r1cs.json"))
    witness = decode_witness(load_groth16("multiplier", "witness_1.json"), r1cs.n_vars)
    pk, _ = setup_from_seed(r1cs, 1)
    _, other_vk = setup_from_seed(r1cs, 2)
    proof, public = prove(pk, witness)
    assert verify(other_vk, proof, public) is False


def test_unsatisfying_witness_gives_a_proof_that_does_not_verify() -> None:
    r1cs = decode_r1cs(load_groth16("multiplier", "multiplier.r1cs.json"))
    pk, vk = setup_from_seed(r1cs, 3)
    witness = (1, 34, 3, 11)  # 3 · 11 != 34
    assert first_unsatisfied(r1cs, witness) == 0
    proof, public = prove(pk, witness)
    assert verify(vk, proof, public) is False


def test_blinding_makes_proofs_differ_but_fixed_randomness_repeats() -> None:
    pk = decode_zkey(zkey_bytes("multiplier"))
    witness = decode_witness(load_groth16("multiplier", "witness_1.json"), pk.n_vars)
    assert prove(pk, witness)[0] != prove(pk, witness)[0]
    assert prove(pk, witness, randomness=(5, 7)) == prove(pk, witness, randomness=(5, 7))


def test_batch_of_own_proofs_verifies() -> None:
    pk = decode_zkey(zkey_bytes("sumproduct"))
    vk = pk.verification_key()
    items = []
    for index in GROTH16_PROOF_INDICES:
        witness = decode_witness(load_groth16("sumproduct", f"witness_{index}.json"), pk.n_vars)
        items.append(prove(pk, witness))
    items.append(items[0])
    assert batch_verify(vk, items) is True
    assert batch_verify(vk, [*items, (items[0][0], items[1][1])]) is False


def test_witness_of_wrong_length_is_a_typed_error() -> None:
    pk = decode_zkey(zkey_bytes("multiplier"))
    with pytest.raises(Groth16DecodeError, match="witness: expected 4 wires"):
        prove(pk, (1, 33, 3))
