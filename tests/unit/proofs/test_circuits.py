"""The circuit builder: Poseidon(2) preimage and matrix-vector circuits, proved and verified
without Node.js (builder → seed setup → prover → verifier), their snarkjs JSON shapes, and
the job binding every circuit carries as its last public input (issue 14, attack 8)."""

from __future__ import annotations

import hashlib

import pytest

from proofs.bn254 import R
from proofs.circuits import Circuit, compute_binding, matvec, poseidon_preimage
from proofs.groth16 import VerificationKey, verify
from proofs.groth16_prover import prove
from proofs.groth16_setup import setup_from_seed
from proofs.poseidon import poseidon
from proofs.r1cs import decode_r1cs, decode_witness, encode_r1cs, encode_witness, first_unsatisfied
from proofs.zkey import ProvingKey


@pytest.fixture(scope="module")
def preimage_keys() -> tuple[ProvingKey, VerificationKey]:
    return setup_from_seed(poseidon_preimage(0, 0, 0).r1cs, seed=11)


BINDING = compute_binding("job-1", "node-1")
OTHER_BINDING = compute_binding("job-2", "node-1")


def test_preimage_circuit_is_satisfied_and_public_is_the_hash_then_the_binding() -> None:
    circuit = poseidon_preimage(1, 2, BINDING)
    assert circuit.public == (poseidon([1, 2]), BINDING)
    assert first_unsatisfied(circuit.r1cs, circuit.witness) is None
    assert (circuit.r1cs.n_outputs, circuit.r1cs.n_pub_inputs, circuit.r1cs.n_prv_inputs) == (
        1,
        1,
        2,
    )


def test_constraints_depend_on_shape_only() -> None:
    assert poseidon_preimage(1, 2, BINDING).r1cs == poseidon_preimage(3, 4, OTHER_BINDING).r1cs
    assert matvec([[1, 2]], [3, 4], BINDING).r1cs == matvec([[5, 6]], [7, 8], 0).r1cs


def test_preimage_round_trip(preimage_keys: tuple[ProvingKey, VerificationKey]) -> None:
    pk, vk = preimage_keys
    circuit = poseidon_preimage(123456789, 987654321, BINDING)
    proof, public = prove(pk, circuit.witness)
    assert public == circuit.public
    assert verify(vk, proof, public) is True
    assert verify(vk, proof, (poseidon([1, 2]), BINDING)) is False


def test_a_proof_does_not_verify_for_another_binding(
    preimage_keys: tuple[ProvingKey, VerificationKey],
) -> None:
    """The same statement proved for job-1 is no proof for job-2 (or another node)."""
    pk, vk = preimage_keys
    proof, public = prove(pk, poseidon_preimage(5, 9, BINDING).witness)
    assert verify(vk, proof, public) is True
    assert verify(vk, proof, (public[0], OTHER_BINDING)) is False
    assert verify(vk, proof, (public[0], compute_binding("job-1", "node-2"))) is False


@pytest.mark.parametrize(
    "circuit", [poseidon_preimage(1, 2, BINDING), matvec([[1, 2]], [3, 4], BINDING)]
)
def test_the_binding_is_the_last_public_signal_and_is_constrained(circuit: Circuit) -> None:
    """In a constraint, so no setup can leave it out of the verification equation."""
    wire = circuit.r1cs.n_public
    assert circuit.public[-1] == BINDING
    assert any(wire in a or wire in b for a, b, _c in circuit.r1cs.constraints)


def test_the_binding_is_sha256_of_the_tagged_ids_mod_r() -> None:
    """Pinned encoding: tag, then u32 length-prefixed job id and node id."""
    body = b"flopledger/zk-job-binding/v1\x00" + b"\x00\x00\x00\x05job-1\x00\x00\x00\x06node-1"
    assert int.from_bytes(hashlib.sha256(body).digest(), "big") % R == BINDING
    assert compute_binding("job-1", "node-1") != compute_binding("node-1", "job-1")
    assert compute_binding("ab", "c") != compute_binding("a", "bc")


def test_wrong_preimage_witness_is_caught() -> None:
    circuit = poseidon_preimage(1, 2, BINDING)
    forged = list(circuit.witness)
    forged[3] = 5  # the private input a
    assert first_unsatisfied(circuit.r1cs, forged) is not None


def test_matvec_round_trip() -> None:
    circuit = matvec([[1, 2, 3], [4, 5, 6]], [7, 8, 9], BINDING)
    assert circuit.public == (1, 2, 3, 4, 5, 6, 50, 122, BINDING)
    assert first_unsatisfied(circuit.r1cs, circuit.witness) is None
    pk, vk = setup_from_seed(circuit.r1cs, seed=5)
    proof, public = prove(pk, circuit.witness)
    assert verify(vk, proof, public) is True
    wrong_y = (*public[:-2], public[-2] + 1, public[-1])
    assert verify(vk, proof, wrong_y) is False
    assert verify(vk, proof, (*public[:-1], OTHER_BINDING)) is False


@pytest.mark.parametrize("bad", [[], [[]], [[1, 2], [3]]])
def test_matvec_rejects_bad_shapes(bad: list[list[int]]) -> None:
    with pytest.raises(ValueError, match="matvec"):
        matvec(bad, [1, 2], BINDING)


@pytest.mark.parametrize(
    "circuit", [poseidon_preimage(1, 2, BINDING), matvec([[1, 2]], [3, 4], BINDING)]
)
def test_snarkjs_json_round_trip(circuit: Circuit) -> None:
    r1cs_json = encode_r1cs(circuit.r1cs)
    assert r1cs_json["nConstraints"] == len(circuit.r1cs.constraints)
    assert decode_r1cs(r1cs_json) == circuit.r1cs
    assert decode_witness(encode_witness(circuit.witness), circuit.r1cs.n_vars) == circuit.witness
