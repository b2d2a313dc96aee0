"""TOPLOC chunk proofs on synthetic activations: exact round trip, size, acceptance, rejection."""

from __future__ import annotations

import ml_dtypes
import msgspec
import numpy as np
import pytest

from proofs import toploc

HIDDEN = 576  # SmolLM2-135M's hidden size
LLAMA_8B_HIDDEN = 4096  # 32 × 4096 flat indices exceed 2^16: the modulus must fold them


def _activations(seed: int, rows: int = 32, hidden: int = HIDDEN) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, hidden)).astype(np.float32)


def _expected_bf16_bits(values: np.ndarray) -> np.ndarray:
    # ml_dtypes' own float32 → bfloat16 cast (round to nearest even), not ours.
    return values.astype(ml_dtypes.bfloat16).view(np.uint16)


def _evaluate(proof: bytes, points: np.ndarray) -> list[int]:
    decoded = toploc.decode_chunk_proof(proof)
    assert decoded is not None
    modulus, coefficients = decoded
    # Plain Python Horner over the integers mod p, independent of the module's numpy loop.
    out = []
    for x in (points % modulus).tolist():
        acc = 0
        for c in reversed(coefficients.tolist()):
            acc = (acc * x + c) % toploc.PRIME
        out.append(acc)
    return out


@pytest.mark.parametrize("hidden", [HIDDEN, LLAMA_8B_HIDDEN])
def test_the_polynomial_returns_every_committed_bf16_value_at_its_index(hidden: int) -> None:
    activations = _activations(1, hidden=hidden)
    proof = toploc.compute_chunk_proof(activations)
    flat = activations.reshape(-1)
    top = np.argsort(-np.abs(flat))[: toploc.TOPK]
    assert _evaluate(proof, top) == _expected_bf16_bits(flat[top]).tolist()


def test_a_chunk_proof_is_258_bytes_as_in_the_paper() -> None:
    assert len(toploc.compute_chunk_proof(_activations(2))) == 258 == toploc.CHUNK_PROOF_BYTES


def test_a_chunk_smaller_than_k_commits_to_every_entry() -> None:
    activations = _activations(3, rows=1, hidden=64)
    proof = toploc.compute_chunk_proof(activations)
    assert len(proof) == 2 + 2 * 64
    assert toploc.is_valid_completion([proof], [activations], toploc.PAPER_THRESHOLDS)


def test_bf16_rounding_matches_ml_dtypes() -> None:
    values = np.concatenate([_activations(4).reshape(-1), [1.00390625, 1.01171875, -0.0, 65504.0]])
    values = values.astype(np.float32)
    assert toploc.compute_bf16_bits(values).tolist() == _expected_bf16_bits(values).tolist()


@pytest.mark.parametrize("thresholds", [toploc.PAPER_THRESHOLDS, toploc.FLOAT32_THRESHOLDS])
def test_the_same_activations_are_accepted(thresholds: toploc.ToplocThresholds) -> None:
    activations = _activations(5)
    proof = toploc.compute_chunk_proof(activations)
    assert toploc.is_valid_completion([proof], [activations], thresholds)


@pytest.mark.parametrize("thresholds", [toploc.PAPER_THRESHOLDS, toploc.FLOAT32_THRESHOLDS])
def test_float32_reordering_noise_is_accepted(thresholds: toploc.ToplocThresholds) -> None:
    activations = _activations(6)
    noise = np.random.default_rng(60).standard_normal(activations.shape) * 1e-6
    recomputed = (activations * (1 + noise)).astype(np.float32)
    proof = toploc.compute_chunk_proof(activations)
    assert toploc.is_valid_completion([proof], [recomputed], thresholds)


@pytest.mark.parametrize("thresholds", [toploc.PAPER_THRESHOLDS, toploc.FLOAT32_THRESHOLDS])
def test_other_activations_are_rejected(thresholds: toploc.ToplocThresholds) -> None:
    proof = toploc.compute_chunk_proof(_activations(7))
    assert not toploc.is_valid_completion([proof], [_activations(8)], thresholds)


def test_the_same_top_k_set_with_other_values_is_rejected() -> None:
    activations = _activations(9)
    proof = toploc.compute_chunk_proof(activations)
    # Same top-k set, values 15 % larger: ~20 bf16 mantissa units on every committed entry.
    assert not toploc.is_valid_completion([proof], [activations * 1.15], toploc.PAPER_THRESHOLDS)


def test_a_bf16_rounded_recomputation_fails_the_float32_bound_only() -> None:
    activations = _activations(10)
    proof = toploc.compute_chunk_proof(activations)
    # A lower precision: every activation perturbed by about one bfloat16 ulp.
    rng = np.random.default_rng(100)
    lowered = (activations * (1 + rng.choice([-1, 1], activations.shape) * 2.0**-8)).astype(
        np.float32
    )
    assert not toploc.is_valid_completion([proof], [lowered], toploc.FLOAT32_THRESHOLDS)
    assert toploc.is_valid_completion([proof], [lowered], toploc.PAPER_THRESHOLDS)


def test_a_swapped_chunk_order_is_rejected() -> None:
    first, second = _activations(11), _activations(12)
    proofs = toploc.compute_proofs([first, second])
    assert toploc.is_valid_completion(proofs, [first, second], toploc.PAPER_THRESHOLDS)
    assert not toploc.is_valid_completion(proofs, [second, first], toploc.PAPER_THRESHOLDS)


def test_a_missing_or_extra_chunk_is_rejected() -> None:
    first, second = _activations(13), _activations(14)
    proofs = toploc.compute_proofs([first, second])
    assert not toploc.is_valid_completion(proofs[:1], [first, second], toploc.PAPER_THRESHOLDS)
    assert not toploc.is_valid_completion(proofs, [first], toploc.PAPER_THRESHOLDS)
    assert not toploc.is_valid_completion([], [], toploc.PAPER_THRESHOLDS)


@pytest.mark.parametrize(
    "proof",
    [
        b"",
        b"\x80",
        b"\x80\x01\x00",  # odd length
        b"\x00\x10" + b"\x00\x01" * 128,  # modulus below 2^15
        b"\xff\xff" + b"\x00\x01" * 128,  # modulus above p
        b"\xff\xd9" + b"\xff\xff" * 128,  # coefficients not below p
        b"\xff\xd9" + b"\x00\x01" * 129,  # longer than k
        b"\xff\xd9" + b"\x00\x01" * 64,  # fewer coefficients than the chunk's k
    ],
)
def test_a_malformed_proof_is_rejected_without_raising(proof: bytes) -> None:
    assert not toploc.is_valid_completion([proof], [_activations(15)], toploc.PAPER_THRESHOLDS)


def test_non_finite_recomputed_activations_are_rejected() -> None:
    activations = _activations(16)
    proof = toploc.compute_chunk_proof(activations)
    activations[0, 0] = np.nan
    assert not toploc.is_valid_completion([proof], [activations], toploc.PAPER_THRESHOLDS)


def test_chunks_are_the_prompt_then_32_generated_positions_at_a_time() -> None:
    hidden = _activations(17, rows=5 + 70)
    chunks = toploc.compute_chunks(hidden, prefill_rows=5)
    assert [c.shape[0] for c in chunks] == [5, 32, 32, 6]
    assert np.array_equal(np.concatenate(chunks), hidden)
    assert [c.shape[0] for c in toploc.compute_chunks(hidden[:40], prefill_rows=0)] == [32, 8]


def test_the_chunk_count_follows_the_prompt_and_32_token_groups() -> None:
    assert toploc.compute_chunk_count(1, 1) == 1
    assert toploc.compute_chunk_count(5, 32) == 2
    assert toploc.compute_chunk_count(5, 33) == 3
    hidden = _activations(18, rows=5 + 33 - 1)  # a prefill over prompt + completion[:-1]
    assert len(toploc.compute_chunks(hidden, prefill_rows=4)) == toploc.compute_chunk_count(5, 33)


def test_the_commitment_changes_with_any_token_or_proof_byte() -> None:
    prompt, tokens = [1, 2, 3], [4, 5]
    proofs = toploc.compute_proofs([_activations(19), _activations(20)])
    base = toploc.compute_completion_commitment(prompt, tokens, proofs)
    assert len(base) == 32
    assert toploc.compute_completion_commitment(prompt, tokens, proofs) == base
    flipped = proofs[1][:-1] + bytes([proofs[1][-1] ^ 1])
    variants = [
        ([1, 2, 4], tokens, proofs),
        (prompt, [4, 6], proofs),
        ([1, 2], [3, 4, 5], proofs),  # the same tokens split elsewhere
        (prompt, tokens, [proofs[0], flipped]),
        (prompt, tokens, proofs[:1]),
    ]
    assert all(toploc.compute_completion_commitment(*v) != base for v in variants)


def test_a_proof_struct_is_bounded_at_the_edge_and_past_it() -> None:
    chunk = b"\x00" * toploc.CHUNK_PROOF_BYTES
    body = {"prompt_tokens": 1, "completion_tokens": 1, "chunks": [chunk]}
    proof = msgspec.json.decode(msgspec.json.encode(body), type=toploc.ToplocProof)
    assert proof.chunks == [chunk]
    for bad in (
        {**body, "chunks": [chunk + b"\x00"]},
        {**body, "chunks": []},
        {**body, "prompt_tokens": 0},
        {**body, "completion_tokens": toploc.TOKENS_MAX + 1},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(msgspec.json.encode(bad), type=toploc.ToplocProof)
