"""Matmul spot-check proofs: honest proofs verify, a C with 1% wrong rows is caught, and any
tampering with an opening is rejected."""

from __future__ import annotations

import random

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import matmul
from proofs.matmul import (
    DEFAULT_OPENINGS,
    MatmulProof,
    RowOpening,
    commit_rows,
    compute_product,
    derive_inputs,
    make_matmul_proof,
    select_rows,
    verify_matmul_proof,
    verify_proof,
)

# Pinned derivation (seed b"seed", n = 4): what a torch node agent must reproduce.
PINNED_A = [[0, -5, 6, -3], [-4, 0, 7, -4], [6, 5, -1, -2], [3, -2, -3, 3]]
PINNED_B = [[4, 5, 5, 4], [0, 5, 3, -6], [-2, -3, 1, 5], [-1, -6, 2, -4]]

SMALL_SEED = b"small-challenge"
SMALL_A, SMALL_B = derive_inputs(SMALL_SEED, 12)
SMALL_PROOF = make_matmul_proof(compute_product(SMALL_A, SMALL_B), SMALL_SEED)


def test_derive_inputs_is_pinned_and_in_range() -> None:
    a, b = derive_inputs(b"seed", 4)
    assert a.dtype == np.float32 and b.dtype == np.float32
    assert a.tolist() == PINNED_A and b.tolist() == PINNED_B
    big_a, big_b = derive_inputs(b"range", 64)
    assert big_a.min() == matmul.ENTRY_MIN and big_a.max() == matmul.ENTRY_MAX
    assert not np.array_equal(big_a, big_b)
    assert not np.array_equal(derive_inputs(b"range", 63)[0], big_a[:63, :63])


def test_float32_product_is_exact() -> None:
    a, b = derive_inputs(b"exact", 256)
    exact = a.astype(np.int64) @ b.astype(np.int64)
    assert np.array_equal(compute_product(a, b), exact.astype(np.float32))
    assert np.array_equal(compute_product(a, b).astype(np.int64), exact)


def test_default_openings_meets_target() -> None:
    assert DEFAULT_OPENINGS == 459
    assert matmul.detection_probability(0.01, DEFAULT_OPENINGS) >= 0.99
    assert matmul.detection_probability(0.01, DEFAULT_OPENINGS - 1) < 0.99


def test_small_n_opens_every_row() -> None:
    assert [o.index for o in SMALL_PROOF.openings] == list(range(12))
    assert verify_proof(SMALL_PROOF)


def test_honest_proof_verifies_when_sampling() -> None:
    seed = b"honest-600"
    a, b = derive_inputs(seed, 600)
    proof = make_matmul_proof(compute_product(a, b), seed)
    indices = [o.index for o in proof.openings]
    assert len(indices) == DEFAULT_OPENINGS == len(set(indices)) and indices == sorted(indices)
    assert verify_proof(proof)
    decoded = matmul.decode_matmul_proof(matmul.encode_matmul_proof(proof))
    assert decoded == proof and verify_proof(decoded)


def test_one_percent_wrong_rows_are_caught() -> None:
    """The cheater commits to C with 5 of 500 rows off by one in one entry."""
    seed = b"cheater"
    a, b = derive_inputs(seed, 500)
    c = compute_product(a, b)
    wrong = random.Random(7).sample(range(500), 5)
    c[wrong, 3] += 1
    proof = make_matmul_proof(c, seed)
    assert set(wrong) & {o.index for o in proof.openings}
    assert not verify_proof(proof)


def test_detection_rate_matches_the_bound_statistically() -> None:
    """s = 100 of n = 500 rows, 1% wrong: caught w.p. >= 1-0.99^100 = 0.634 (0.67 exactly)."""
    rng = random.Random(2026)
    trials, caught = 300, 0
    for trial in range(trials):
        wrong = set(rng.sample(range(500), 5))
        root = rng.randbytes(32)  # each commitment yields its own challenge
        caught += bool(wrong & set(select_rows(b"stat-%d" % trial, 500, root, 100)))
    assert 0.58 <= caught / trials <= 0.76


def test_row_selection_is_bound_to_every_input() -> None:
    root = bytes(32)
    base = select_rows(b"s", 1000, root, 50)
    assert len(base) == 50 == len(set(base))
    assert base == select_rows(b"s", 1000, root, 50)
    assert base != select_rows(b"t", 1000, root, 50)
    assert base != select_rows(b"s", 1000, b"\x01" + root[1:], 50)
    assert base != select_rows(b"s", 999, root, 50)


def _replace_opening(matmul_proof: MatmulProof, k: int, **changes: object) -> MatmulProof:
    openings = list(matmul_proof.openings)
    openings[k] = msgspec.structs.replace(openings[k], **changes)
    return msgspec.structs.replace(matmul_proof, openings=openings)


def test_tampered_openings_rejected() -> None:
    p = SMALL_PROOF
    first = p.openings[0]
    value = np.frombuffer(first.row, dtype="<f4").copy()
    value[0] += 1
    assert not verify_proof(_replace_opening(p, 0, row=value.tobytes()))
    assert not verify_proof(_replace_opening(p, 0, row=first.row[:-4]))
    assert not verify_proof(_replace_opening(p, 0, proof=first.proof[:-1]))
    assert not verify_proof(_replace_opening(p, 0, index=1))
    assert not verify_proof(msgspec.structs.replace(p, openings=p.openings[1:]))
    assert not verify_proof(msgspec.structs.replace(p, openings=p.openings[::-1]))
    assert not verify_proof(msgspec.structs.replace(p, root=bytes(32)))
    assert not verify_proof(msgspec.structs.replace(p, seed=b"other"))
    assert not verify_matmul_proof(p.seed, 13, p.root, p.openings)
    assert not verify_matmul_proof(p.seed, 0, p.root, p.openings)
    assert not verify_matmul_proof(p.seed, 12, b"short", p.openings)
    assert not verify_matmul_proof(p.seed, 12, p.root, "rows")  # type: ignore[arg-type]


def test_nan_row_is_rejected_even_with_tolerance() -> None:
    """A committed NaN must not slip through an ``abs(diff) <= tol`` comparison."""
    c = compute_product(SMALL_A, SMALL_B)
    c[4, 4] = np.nan
    proof = make_matmul_proof(c, SMALL_SEED)
    assert not verify_proof(proof, tolerance=1e9)


@settings(max_examples=100)
@given(st.data())
def test_flipping_any_opening_byte_rejects(data: st.DataObject) -> None:
    k = data.draw(st.integers(0, len(SMALL_PROOF.openings) - 1))
    opening = SMALL_PROOF.openings[k]
    blob = bytearray(opening.row + b"".join(opening.proof))
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] ^= data.draw(st.integers(1, 255))
    row, rest = bytes(blob[: len(opening.row)]), bytes(blob[len(opening.row) :])
    path = [rest[i : i + 32] for i in range(0, len(rest), 32)]
    tampered = _replace_opening(SMALL_PROOF, k, row=row, proof=path)
    assert verify_proof(tampered) is False


def test_negative_zero_is_canonical() -> None:
    row = np.array([0.0, -0.0, 1.5], dtype=np.float32)
    assert matmul.canonical_row_bytes(row) == np.array([0.0, 0.0, 1.5], "<f4").tobytes()
    c = np.zeros((2, 2), dtype=np.float32)
    assert commit_rows(c) == commit_rows(-c)


def test_freivalds() -> None:
    a, b = derive_inputs(b"freivalds", 128)
    c = compute_product(a, b)
    assert matmul.freivalds_check(a, b, c, rounds=3, seed=commit_rows(c))
    c[77, 5] -= 1
    assert not matmul.freivalds_check(a, b, c, rounds=1, seed=commit_rows(c))
    assert not matmul.freivalds_check(a, b, c[:, :100], rounds=1, seed=b"")


def test_wire_form_rejects_bad_fields() -> None:
    encoded = matmul.encode_matmul_proof(msgspec.structs.replace(SMALL_PROOF, n=0))
    with pytest.raises(msgspec.ValidationError):
        matmul.decode_matmul_proof(encoded)
    assert isinstance(SMALL_PROOF.openings[0], RowOpening)


def test_bounds() -> None:
    derive_inputs(b"", 1)
    with pytest.raises(ValueError):
        derive_inputs(b"", 0)
    with pytest.raises(ValueError):
        derive_inputs(b"", matmul.MATRIX_SIZE_MAX + 1)
    with pytest.raises(ValueError):
        derive_inputs(b"x" * (matmul.SEED_BYTES_MAX + 1), 4)
