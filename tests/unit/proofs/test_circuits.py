"""The circuit builder: Poseidon(2) preimage and matrix-vector circuits, proved and verified
without Node.js (builder → seed setup → prover → verifier), and their snarkjs JSON shapes."""

from __future__ import annotations

import pytest

from proofs.circuits import Circuit, matvec, poseidon_preimage
from proofs.groth16 import VerificationKey, verify
from proofs.groth16_prover import prove
from proofs.groth16_setup import setup_from_seed
from proofs.poseidon import poseidon
from proofs.r1cs import decode_r1cs, decode_witness, encode_r1cs, encode_witness, first_unsatisfied
from proofs.zkey import ProvingKey


@pytest.fixture(scope="module")
def preimage_keys() -> tuple[ProvingKey, VerificationKey]:
    return setup_from_seed(poseidon_preimage(0, 0).r1cs, seed=11)


def test_preimage_circuit_is_satisfied_and_public_is_the_hash() -> None:
    circuit = poseidon_preimage(1, 2)
    assert circuit.public == (poseidon([1, 2]),)
    assert first_unsatisfied(circuit.r1cs, circuit.witness) is None
    assert (circuit.r1cs.n_outputs, circuit.r1cs.n_pub_inputs, circuit.r1cs.n_prv_inputs) == (
        1,
        0,
        2,
    )


def test_constraints_depend_on_shape_only() -> None:
    assert poseidon_preimage(1, 2).r1cs == poseidon_preimage(3, 4).r1cs
    assert matvec([[1, 2]], [3, 4]).r1cs == matvec([[5, 6]], [7, 8]).r1cs


def test_preimage_round_trip(preimage_keys: tuple[ProvingKey, VerificationKey]) -> None:
    pk, vk = preimage_keys
    circuit = poseidon_preimage(123456789, 987654321)
    proof, public = prove(pk, circuit.witness)
    assert public == circuit.public
    assert verify(vk, proof, public) is True
    assert verify(vk, proof, (poseidon([1, 2]),)) is False


def test_wrong_preimage_witness_is_caught() -> None:
    circuit = poseidon_preimage(1, 2)
    forged = list(circuit.witness)
    forged[2] = 5
    assert first_unsatisfied(circuit.r1cs, forged) is not None


def test_matvec_round_trip() -> None:
    circuit = matvec([[1, 2, 3], [4, 5, 6]], [7, 8, 9])
    assert circuit.public == (1, 2, 3, 4, 5, 6, 50, 122)
    assert first_unsatisfied(circuit.r1cs, circuit.witness) is None
    pk, vk = setup_from_seed(circuit.r1cs, seed=5)
    proof, public = prove(pk, circuit.witness)
    assert verify(vk, proof, public) is True
    wrong_y = (*public[:-1], public[-1] + 1)
    assert verify(vk, proof, wrong_y) is False


@pytest.mark.parametrize("bad", [[], [[]], [[1, 2], [3]]])
def test_matvec_rejects_bad_shapes(bad: list[list[int]]) -> None:
    with pytest.raises(ValueError, match="matvec"):
        matvec(bad, [1, 2])


@pytest.mark.parametrize("circuit", [poseidon_preimage(1, 2), matvec([[1, 2]], [3, 4])])
def test_snarkjs_json_round_trip(circuit: Circuit) -> None:
    r1cs_json = encode_r1cs(circuit.r1cs)
    assert r1cs_json["nConstraints"] == len(circuit.r1cs.constraints)
    assert decode_r1cs(r1cs_json) == circuit.r1cs
    assert decode_witness(encode_witness(circuit.witness), circuit.r1cs.n_vars) == circuit.witness
