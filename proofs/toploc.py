"""TOPLOC activation proofs for LLM completions (Ong et al. 2025, arXiv 2501.16007).

Scheme (the paper's method section, "proof generation" and "proof validation"; the byte
layout follows the authors' reference implementation, PrimeIntellect-ai/toploc, so a proof
is 258 bytes per 32 tokens as the paper states):

Commitment. The last hidden state (after the final norm) of every position is split into
chunks: the prompt's positions as one chunk, then the generated tokens' positions 32 at a time
(``TOKENS_PER_CHUNK``). Per chunk, flattened, the ``TOPK`` = 128 entries of largest magnitude
are kept: their flat indices ``x_i`` and their values rounded to bfloat16, ``y_i`` (the 16-bit
pattern). The pairs are encoded as the unique polynomial ``P`` of degree < k over GF(p),
p = ``PRIME`` = 65497, with ``P(x_i mod m) = y_i``, where ``m`` is the largest modulus in
(2^15, p] for which the ``x_i mod m`` are distinct (the "polynomial congruence": indices are
never stored, only where ``P`` must be evaluated). Wire form: ``u16 m || k × u16
coefficient`` (big-endian, lowest degree first), 2 + 2k = 258 bytes for k = 128.

Validation. A validator runs one prefill over prompt + completion, splits its hidden states
the same way, takes its own top-k indices per chunk and evaluates the committed ``P`` there.
Where the node's top-k agrees, ``P`` returns the node's bfloat16 value; elsewhere it returns
an unrelated 16-bit word. Per chunk it counts the indices whose sign and exponent match
(``exp_matches``) and, over those, the mean and median absolute mantissa difference (in
bfloat16 mantissa units, 7 bits). A chunk passes when ``exp_matches >= exp_matches_min``,
``mean <= mantissa_err_mean_max`` and ``median <= mantissa_err_median_max``; a completion
passes when every chunk does. ``PAPER_THRESHOLDS`` are the reference implementation's
(90 of 128, mean 10, median 8), calibrated there for bfloat16 inference across GPUs;
``FLOAT32_THRESHOLDS`` are ours for a model registered in float32 (honest float32 runs differ
by float reordering only, so a tighter bound catches a lower precision: see its docstring).

Pure functions over numpy arrays and bytes; checks return a verdict and never raise on a
malformed proof.
"""

from __future__ import annotations

import functools
import hashlib
import statistics
from collections.abc import Sequence
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt

from proofs.invariants import require

TOPK = 128
TOKENS_PER_CHUNK = 32
PRIME = 65497
"""The field of the reference implementation: a prime below 2^16, so a coefficient is a u16."""
MODULUS_MIN = 2**15 + 1
CHUNK_PROOF_BYTES = 2 + 2 * TOPK
"""258: the paper's proof size per 32 tokens."""
CHUNKS_MAX = 4096
"""A completion's chunks at most (131,072 generated tokens): bounds a proof list's decoding."""
BF16_MANTISSA_BITS = 7
TOKENS_MAX = 1 << 20
"""Prompt or completion tokens at most in one proof (the longest context a model registers)."""
TOKEN_ID_MAX = 2**32 - 1
COMMITMENT_TAG = b"flopledger/llm/toploc/v1\x00"


class ToplocThresholds(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Acceptance bounds of one chunk (calibrated per model and registered precision)."""

    exp_matches_min: int
    mantissa_err_mean_max: float
    mantissa_err_median_max: float


PAPER_THRESHOLDS = ToplocThresholds(
    exp_matches_min=90, mantissa_err_mean_max=10.0, mantissa_err_median_max=8.0
)
FLOAT32_THRESHOLDS = ToplocThresholds(
    exp_matches_min=120, mantissa_err_mean_max=0.25, mantissa_err_median_max=0.0
)
"""For a model registered in float32: an honest float32 recomputation (other thread count,
batch shape, kernel order) moves an activation by ~1e-6 relative, far below a bfloat16 ulp
(2^-8), so nearly every committed value comes back bit for bit. Measured on CPU
(``tests/unit/compute/test_llm_toploc.py``): honest runs 128/128 exponents and mantissa error
0 per chunk, for the tiny Llama and SmolLM2-135M; bfloat16 weights mean 0.4-0.7 (tiny) and
1.6-2.2 (SmolLM2), which the paper's bounds accept. Bounds for 128 entries (fewer in a short
chunk are scaled in ``is_chunk_accepted``). Not yet measured: float32 generation on a GPU
checked on a CPU."""


class ChunkCheck(msgspec.Struct, frozen=True):
    """What one chunk's comparison measured (``k`` entries compared)."""

    k: int
    exp_matches: int
    mantissa_err_mean: float
    mantissa_err_median: float


class ToplocProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a node ships with a completion: its token counts and one proof per chunk."""

    prompt_tokens: Annotated[int, msgspec.Meta(ge=1, le=TOKENS_MAX)]
    completion_tokens: Annotated[int, msgspec.Meta(ge=1, le=TOKENS_MAX)]
    chunks: Annotated[
        list[Annotated[bytes, msgspec.Meta(max_length=CHUNK_PROOF_BYTES)]],
        msgspec.Meta(min_length=1, max_length=CHUNKS_MAX),
    ]


def compute_chunk_count(prompt_tokens: int, completion_tokens: int) -> int:
    """Chunks of a completion: the prompt's (when it has more than one token), then per 32."""
    require(prompt_tokens >= 1 and completion_tokens >= 1, "token counts must be positive")
    return (1 if prompt_tokens > 1 else 0) + -(-completion_tokens // TOKENS_PER_CHUNK)


def compute_completion_commitment(
    prompt_ids: Sequence[int], token_ids: Sequence[int], proofs: Sequence[bytes]
) -> bytes:
    """SHA-256 binding a completion's prompt, tokens and activation proofs, for the ledger.

    ``TAG || u32 P || P × u32 token || u32 N || N × u32 token || u32 chunks || (u16 len ||
    proof)*``, big-endian: a node that changes any token or proof byte after recording this
    is caught by recomputing it.
    """
    require(all(0 <= t <= TOKEN_ID_MAX for t in (*prompt_ids, *token_ids)), "token id range")
    require(all(len(p) <= CHUNK_PROOF_BYTES for p in proofs), "chunk proof too long")
    digest = hashlib.sha256(COMMITMENT_TAG)
    for ids in (prompt_ids, token_ids):
        digest.update(len(ids).to_bytes(4, "big"))
        digest.update(np.asarray(ids, dtype=">u4").tobytes())
    digest.update(len(proofs).to_bytes(4, "big"))
    for proof in proofs:
        digest.update(len(proof).to_bytes(2, "big") + proof)
    return digest.digest()


def compute_chunks(hidden: npt.NDArray[np.floating], prefill_rows: int) -> list[np.ndarray]:
    """Split ``hidden`` (positions × hidden size) into the prompt chunk and 32-row chunks.

    The first ``prefill_rows`` rows form one chunk (none when 0); the rest go 32 at a time.
    """
    require(hidden.ndim == 2, "hidden states must be (positions, hidden size)")
    require(0 <= prefill_rows <= hidden.shape[0], "prefill rows out of range")
    chunks = [hidden[:prefill_rows]] if prefill_rows > 0 else []
    for start in range(prefill_rows, hidden.shape[0], TOKENS_PER_CHUNK):
        chunks.append(hidden[start : start + TOKENS_PER_CHUNK])
    require(len(chunks) <= CHUNKS_MAX, "too many chunks")
    return chunks


def compute_chunk_proof(activations: npt.NDArray[np.floating]) -> bytes:
    """The 2 + 2k bytes committing to the top-k (k = min(128, size)) of ``activations``."""
    flat = np.asarray(activations, dtype=np.float32).reshape(-1)
    require(flat.size > 0, "an empty chunk has no proof")
    require(bool(np.isfinite(flat).all()), "activations must be finite")
    indices = _topk_indices(flat)
    values = compute_bf16_bits(flat[indices])
    modulus = _injective_modulus(indices)
    coefficients = _interpolate(indices % modulus, values.astype(np.int64))
    return encode_chunk_proof(modulus, coefficients)


def compute_proofs(chunks: Sequence[npt.NDArray[np.floating]]) -> list[bytes]:
    """One chunk proof per chunk, in order."""
    return [compute_chunk_proof(chunk) for chunk in chunks]


def encode_chunk_proof(modulus: int, coefficients: npt.NDArray[np.int64]) -> bytes:
    """``u16 modulus || u16 coefficients`` big-endian (the reference implementation's layout)."""
    return modulus.to_bytes(2, "big") + coefficients.astype(">u2").tobytes()


def decode_chunk_proof(proof: bytes) -> tuple[int, np.ndarray] | None:
    """(modulus, coefficients) of a well-formed proof; None for anything else."""
    if len(proof) < 4 or len(proof) > CHUNK_PROOF_BYTES or len(proof) % 2:
        return None
    modulus = int.from_bytes(proof[:2], "big")
    coefficients = np.frombuffer(proof[2:], dtype=">u2").astype(np.int64)
    if not MODULUS_MIN <= modulus <= PRIME or bool((coefficients >= PRIME).any()):
        return None
    return modulus, coefficients


def compute_chunk_check(proof: bytes, activations: npt.NDArray[np.floating]) -> ChunkCheck:
    """Compare a committed chunk proof with a validator's recomputed activations."""
    flat = np.asarray(activations, dtype=np.float32).reshape(-1)
    decoded = decode_chunk_proof(proof)
    if decoded is None or flat.size == 0 or not bool(np.isfinite(flat).all()):
        return ChunkCheck(k=0, exp_matches=0, mantissa_err_mean=np.inf, mantissa_err_median=np.inf)
    modulus, coefficients = decoded
    indices = _topk_indices(flat)
    if coefficients.size != indices.size:
        return ChunkCheck(k=0, exp_matches=0, mantissa_err_mean=np.inf, mantissa_err_median=np.inf)
    committed = _evaluate(coefficients, indices % modulus)
    recomputed = compute_bf16_bits(flat[indices]).astype(np.int64)
    # Sign and exponent together: the top 9 bits of a bfloat16.
    same_exponent = (committed >> BF16_MANTISSA_BITS) == (recomputed >> BF16_MANTISSA_BITS)
    mask = (1 << BF16_MANTISSA_BITS) - 1
    errors = np.abs((committed & mask) - (recomputed & mask))[same_exponent].tolist()
    if not errors:
        return ChunkCheck(k=int(indices.size), exp_matches=0, mantissa_err_mean=np.inf,
                          mantissa_err_median=np.inf)  # fmt: skip
    return ChunkCheck(
        k=int(indices.size),
        exp_matches=len(errors),
        mantissa_err_mean=float(statistics.fmean(errors)),
        mantissa_err_median=float(statistics.median(errors)),
    )


def is_chunk_accepted(check: ChunkCheck, thresholds: ToplocThresholds) -> bool:
    """Whether one chunk's measurements lie within ``thresholds`` (scaled to its k)."""
    if check.k == 0:
        return False
    exp_min = -(-thresholds.exp_matches_min * check.k // TOPK)  # ceiling
    return (
        check.exp_matches >= exp_min
        and check.mantissa_err_mean <= thresholds.mantissa_err_mean_max
        and check.mantissa_err_median <= thresholds.mantissa_err_median_max
    )


def is_valid_completion(
    proofs: Sequence[bytes],
    chunks: Sequence[npt.NDArray[np.floating]],
    thresholds: ToplocThresholds,
) -> bool:
    """Whether every committed chunk proof matches the recomputed chunks (same count)."""
    if len(proofs) != len(chunks) or not proofs or len(proofs) > CHUNKS_MAX:
        return False
    return all(
        is_chunk_accepted(compute_chunk_check(proof, chunk), thresholds)
        for proof, chunk in zip(proofs, chunks, strict=True)
    )


def compute_bf16_bits(values: npt.NDArray[np.floating]) -> npt.NDArray[np.uint16]:
    """float32 → bfloat16 bit patterns, rounding to nearest, ties to even (finite inputs)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def _topk_indices(flat: np.ndarray) -> np.ndarray:
    # Ties broken by the lower index (a stable sort), so node and validator agree on equal data.
    k = min(TOPK, flat.size)
    order = np.argsort(-np.abs(flat), kind="stable")
    return order[:k].astype(np.int64)


def _injective_modulus(indices: np.ndarray) -> int:
    for modulus in range(PRIME, MODULUS_MIN - 1, -1):
        if np.unique(indices % modulus).size == indices.size:
            return modulus
    raise ValueError("no modulus in (2^15, p] separates these indices")


@functools.cache
def _inverses() -> np.ndarray:
    # inv[i] = -(p // i) · inv[p mod i] (mod p), for every i in [1, p): computed once.
    table = [0, 1] + [0] * (PRIME - 2)
    for i in range(2, PRIME):
        table[i] = (PRIME - (PRIME // i) * table[PRIME % i] % PRIME) % PRIME
    return np.array(table, dtype=np.int64)


def _interpolate(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Monomial coefficients of the polynomial through (xs, ys) over GF(p): Newton form first."""
    inverse = _inverses()
    n = xs.size
    dd = ys % PRIME
    for k in range(1, n):
        # Divided differences of order k, in place (the right side reads the order k-1 values).
        denominators = (xs[k:] - xs[:-k]) % PRIME
        dd[k:] = (dd[k:] - dd[k - 1 : -1]) % PRIME * inverse[denominators] % PRIME
    coefficients = np.zeros(n, dtype=np.int64)
    basis = np.zeros(n, dtype=np.int64)  # ∏_{j<i} (x - x_j), lowest degree first
    basis[0] = 1
    for i in range(n):
        coefficients[: i + 1] = (coefficients[: i + 1] + dd[i] * basis[: i + 1]) % PRIME
        if i + 1 < n:
            shifted = np.concatenate(([0], basis[: i + 1]))
            basis[: i + 2] = (shifted - xs[i] * basis[: i + 2]) % PRIME
    return coefficients


def _evaluate(coefficients: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Horner's rule at every point of ``xs`` at once."""
    result = np.zeros(xs.size, dtype=np.int64)
    for coefficient in coefficients[::-1]:
        result = (result * xs + coefficient) % PRIME
    return result
