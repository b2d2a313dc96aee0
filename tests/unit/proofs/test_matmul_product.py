"""Matmul job proofs: all of C shipped, checked by Freivalds with randomness drawn after the
commit; a wrong entry anywhere is caught, and the proof fits the artifact store at n = 4096."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from adapters.nats.objects import ARTIFACT_BYTES_MAX
from proofs import matmul
from proofs.matmul import MATRIX_SIZE_MAX, commit_rows, compute_product, derive_inputs
from proofs.matmul_product import (
    ENTRY_LIMIT,
    OPENINGS_SEED_BYTES_MAX,
    PRODUCT_BYTES_MAX,
    MatmulProductProof,
    decode_entries,
    decode_product_proof,
    encode_entries,
    encode_product_proof,
    make_product_proof,
    open_product_row,
    verify_product_proof,
)
from proofs.merkle import leaf_hash, verify_inclusion

SEED, N = b"product", 48
A, B = derive_inputs(SEED, N)
C = compute_product(A, B)
PROOF = make_product_proof(C, SEED)
ROUND_SEEDS = [bytes([i]) * 32 for i in range(8)]
"""Stand-ins for beacon randomness of eight rounds."""


def test_honest_product_verifies_under_any_round_randomness() -> None:
    assert PROOF.root == commit_rows(C)
    assert all(verify_product_proof(PROOF, seed) for seed in [b"", *ROUND_SEEDS])
    decoded = decode_product_proof(encode_product_proof(PROOF))
    assert decoded == PROOF and verify_product_proof(decoded, ROUND_SEEDS[0])


def test_entries_round_trip_at_and_past_the_24_bit_bound() -> None:
    edge = np.array([[-ENTRY_LIMIT, ENTRY_LIMIT - 1], [0, -1]], dtype=np.float32)
    decoded = decode_entries(encode_entries(edge), 2)
    assert decoded is not None and decoded.tolist() == edge.astype(np.int64).tolist()
    with pytest.raises(ValueError):
        encode_entries(np.array([[ENTRY_LIMIT]], dtype=np.float64))
    with pytest.raises(ValueError):
        encode_entries(np.array([[-ENTRY_LIMIT - 1]], dtype=np.float64))
    with pytest.raises(ValueError):
        encode_entries(np.array([[0.5]], dtype=np.float32))
    assert decode_entries(b"\0" * 11, 2) is None


def test_one_wrong_entry_committed_consistently_fails_every_round() -> None:
    """The node's root, proof and C agree, but one entry of C is off by one."""
    for row, column in [(0, 0), (17, 30), (N - 1, N - 1)]:
        wrong = C.copy()
        wrong[row, column] += 1
        proof = make_product_proof(wrong, SEED)
        assert not any(verify_product_proof(proof, seed) for seed in ROUND_SEEDS)


def test_shipped_product_must_be_the_committed_one() -> None:
    wrong = C.copy()
    wrong[3, 4] += 1
    swapped = msgspec.structs.replace(PROOF, product=encode_entries(wrong))
    assert not verify_product_proof(swapped, ROUND_SEEDS[0])
    assert not verify_product_proof(
        msgspec.structs.replace(PROOF, product=PROOF.product[:-3]), ROUND_SEEDS[0]
    )
    assert not verify_product_proof(msgspec.structs.replace(PROOF, n=N - 1), ROUND_SEEDS[0])
    assert not verify_product_proof(msgspec.structs.replace(PROOF, seed=b"other"), ROUND_SEEDS[0])


def test_openings_seed_at_and_past_its_bound() -> None:
    assert verify_product_proof(PROOF, b"\1" * OPENINGS_SEED_BYTES_MAX)
    assert not verify_product_proof(PROOF, b"\1" * (OPENINGS_SEED_BYTES_MAX + 1))
    assert not verify_product_proof(PROOF, "seed")  # type: ignore[arg-type]


def test_largest_product_fits_the_artifact_store() -> None:
    """n = 4096: 48 MiB of entries, under the 64 MiB object limit with its framing."""
    assert PRODUCT_BYTES_MAX == 3 * MATRIX_SIZE_MAX**2
    largest = MatmulProductProof(
        seed=b"s" * 32, n=MATRIX_SIZE_MAX, root=bytes(32), product=bytes(PRODUCT_BYTES_MAX)
    )
    encoded = encode_product_proof(largest)
    assert len(encoded) <= ARTIFACT_BYTES_MAX
    assert decode_product_proof(encoded).n == MATRIX_SIZE_MAX
    too_long = msgspec.structs.replace(largest, product=bytes(PRODUCT_BYTES_MAX + 1))
    with pytest.raises(msgspec.ValidationError):
        decode_product_proof(encode_product_proof(too_long))


def test_any_row_of_the_shipped_product_opens_under_the_root() -> None:
    """What a challenger needs for a fraud proof: a row of C and its path to the root."""
    for index in (0, 17, N - 1):
        opening = open_product_row(PROOF, index)
        assert opening.row == matmul.canonical_row_bytes(C[index])
        assert verify_inclusion(leaf_hash(opening.row), index, N, opening.proof, PROOF.root)
    with pytest.raises(ValueError):
        open_product_row(PROOF, N)
