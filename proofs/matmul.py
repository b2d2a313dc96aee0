"""Matmul proofs: inputs, the commitment to C = A·B row by row, and row openings.

Jobs ship all of C and are checked by Freivalds with beacon randomness
(``proofs.matmul_product``); row openings derived from the commitment (below) remain for
hardware attestations, whose challenge seed the ledger draws.

Inputs. ``derive_inputs(seed, n)`` expands ``SHAKE-256(INPUT_TAG || u32 len(seed) || seed ||
u32 n)`` (FIPS 202) to 2·n² bytes: the first n² fill A, the next n² fill B, row-major, each
entry ``(byte & 0x0F) - 8``, an integer in [-8, 7]. A node agent on torch does the same with
``(torch.frombuffer(stream, dtype=torch.uint8) & 15).to(torch.float32) - 8``.

Exactness bound. Every partial sum of a row·column product is an integer of magnitude at most
64·n. float32 holds every integer up to 2^24 exactly, so for n <= 2^18 the product is exact
whatever the summation order, on CPU or GPU, including TF32/BF16 tensor-core paths (the
inputs need 4 bits of mantissa) as long as they accumulate in float32. We cap n at
``MATRIX_SIZE_MAX`` = 4096 (64 MiB per float32 matrix). An honest C is therefore bit-exact,
and ``DEFAULT_TOLERANCE`` is 0: any deviation, however small, is a wrong row.

Commitment. The RFC 6962 Merkle root (``proofs.merkle``) over the rows of C, each row as
little-endian float32 bytes with -0.0 written as +0.0 (hardware may produce either sign of
zero for the same exact result).

Openings (attestations). Rows to open follow from the commitment (Fiat–Shamir,
``proofs.fiat_shamir`` with ``ROW_TAG``): ``u64`` draws from ``SHA-256(ROW_TAG || u32
len(seed) || seed || u64 n || root || u64 counter)``, without modulo bias, the first
``min(s, n)`` distinct rows (for n <= s every row is opened). Cheating on a fraction f of
rows escapes with probability at most (1-f)^s per try; ``DEFAULT_OPENINGS`` = 459 makes
that <= 0.01 for f = 1%.

numpy (in this module and ``proofs.matmul_product`` only): validators must recompute opened
rows and derive inputs fast, without torch; numpy is a light dependency where torch is not.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt

from proofs.fiat_shamir import derive_openings
from proofs.invariants import require
from proofs.merkle import (
    HASH_SIZE,
    PROOF_LENGTH_MAX,
    inclusion_proofs_from_hashes,
    leaf_hash,
    root_from_hashes,
    verify_inclusion,
)

MATRIX_SIZE_MAX = 4096
"""Largest n accepted (exactness holds up to 2^18; memory sets this bound)."""

ENTRY_MIN, ENTRY_MAX = -8, 7
TARGET_CHEAT_FRACTION = 0.01
TARGET_DETECTION = 0.99
DEFAULT_OPENINGS = math.ceil(math.log(1 - TARGET_DETECTION) / math.log(1 - TARGET_CHEAT_FRACTION))
"""459: the least s with 1 - 0.99^s >= 0.99."""

DEFAULT_TOLERANCE = 0.0
"""Absolute tolerance per entry of an opened row: 0, since an honest product is exact."""

FREIVALDS_ENTRY_BITS = 16
"""Freivalds vectors have entries in [0, 2^16): a wrong C passes one round w.p. <= 2^-16;
A(Br) stays below 2^53 for n <= 4096, so float64 arithmetic is exact."""

INPUT_TAG = b"flopledger/matmul/inputs/v1\x00"
ROW_TAG = b"flopledger/matmul/rows/v1\x00"
FREIVALDS_TAG = b"flopledger/matmul/freivalds/v1\x00"
SEED_BYTES_MAX = 256

Matrix = npt.NDArray[np.float32]


class RowOpening(msgspec.Struct, frozen=True, array_like=True):
    """One opened row of C: its index, its canonical bytes, its RFC 6962 audit path."""

    index: Annotated[int, msgspec.Meta(ge=0, lt=MATRIX_SIZE_MAX)]
    row: Annotated[bytes, msgspec.Meta(max_length=4 * MATRIX_SIZE_MAX)]
    proof: Annotated[list[bytes], msgspec.Meta(max_length=PROOF_LENGTH_MAX)]


class MatmulProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a node ships for a matmul challenge: seed, size, commitment, opened rows."""

    seed: Annotated[bytes, msgspec.Meta(max_length=SEED_BYTES_MAX)]
    n: Annotated[int, msgspec.Meta(ge=1, le=MATRIX_SIZE_MAX)]
    root: Annotated[bytes, msgspec.Meta(min_length=HASH_SIZE, max_length=HASH_SIZE)]
    openings: list[RowOpening]


def derive_inputs(seed: bytes, n: int) -> tuple[Matrix, Matrix]:
    """A and B (n×n float32, integer entries in [-8, 7]) from ``seed``; see the module doc."""
    _check_size(seed, n)
    header = INPUT_TAG + struct.pack(">I", len(seed)) + seed + struct.pack(">I", n)
    stream = np.frombuffer(hashlib.shake_256(header).digest(2 * n * n), dtype=np.uint8)
    values = (stream & 0x0F).astype(np.float32) - np.float32(8)
    return values[: n * n].reshape(n, n), values[n * n :].reshape(n, n)


def compute_product(a: Matrix, b: Matrix) -> Matrix:
    """C = A·B in float32 (exact for derived inputs): what an honest CPU node computes."""
    return np.matmul(a, b, dtype=np.float32)


def canonical_row_bytes(row: npt.ArrayLike) -> bytes:
    """A row of C as little-endian float32 bytes, -0.0 written as +0.0."""
    values = np.asarray(row, dtype="<f4") + np.float32(0.0)  # -0.0 + 0.0 == +0.0 (IEEE 754)
    return values.astype("<f4").tobytes()


def compute_row_hashes(c: Matrix) -> list[bytes]:
    """RFC 6962 leaf hashes of the canonical rows of C."""
    return [leaf_hash(canonical_row_bytes(row)) for row in np.asarray(c)]


def commit_rows(c: Matrix) -> bytes:
    """The commitment to C: Merkle root over its canonical rows."""
    n = len(c)
    require(np.shape(c) == (n, n) and 0 < n <= MATRIX_SIZE_MAX, "C must be n×n, 1 <= n <= 4096")
    return root_from_hashes(compute_row_hashes(c))


def select_rows(seed: bytes, n: int, root: bytes, openings: int) -> list[int]:
    """Rows to open, derived from the commitment (Fiat–Shamir), sorted; every row if n <= s."""
    _check_size(seed, n)
    require(len(root) == HASH_SIZE and openings >= 1, "root is 32 bytes, openings >= 1")
    return derive_openings(ROW_TAG, seed, n, root, openings)


def open_rows(c: Matrix, seed: bytes, root: bytes, openings: int) -> list[RowOpening]:
    """The rows ``select_rows`` picks, each with its bytes and inclusion proof."""
    require(np.shape(c) == (len(c), len(c)), "C must be n×n")
    hashes = compute_row_hashes(c)
    require(root_from_hashes(hashes) == root, "root is not the commitment to this C")
    indices = select_rows(seed, len(hashes), root, openings)
    proofs = inclusion_proofs_from_hashes(hashes, indices)
    rows = np.asarray(c)
    return [
        RowOpening(index=i, row=canonical_row_bytes(rows[i]), proof=p)
        for i, p in zip(indices, proofs, strict=True)
    ]


def make_matmul_proof(c: Matrix, seed: bytes, openings: int = DEFAULT_OPENINGS) -> MatmulProof:
    """Commit to C and open the challenged rows: the node agent's side in one call."""
    root = commit_rows(c)
    return MatmulProof(seed=seed, n=len(c), root=root, openings=open_rows(c, seed, root, openings))


def verify_matmul_proof(
    seed: bytes,
    n: int,
    root: bytes,
    openings: list[RowOpening],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    openings_required: int = DEFAULT_OPENINGS,
) -> bool:
    """True iff ``openings`` are exactly the challenged rows, each included under ``root`` and
    within ``tolerance`` (absolute, per entry) of A·B recomputed in float64. Never raises."""
    try:
        _check_size(seed, n)
        expected = select_rows(seed, n, root, openings_required)
    except (ValueError, TypeError):
        return False
    if not isinstance(openings, list) or not all(isinstance(o, RowOpening) for o in openings):
        return False
    if [o.index for o in openings] != expected:
        return False
    for opening in openings:
        if not isinstance(opening.row, bytes) or len(opening.row) != 4 * n:
            return False
        if not verify_inclusion(leaf_hash(opening.row), opening.index, n, opening.proof, root):
            return False
    claimed = np.frombuffer(b"".join(o.row for o in openings), dtype="<f4").reshape(-1, n)
    a, b = derive_inputs(seed, n)
    recomputed = a[expected].astype(np.float64) @ b.astype(np.float64)
    return bool(np.all(np.abs(claimed.astype(np.float64) - recomputed) <= tolerance))


def verify_proof(proof: MatmulProof, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """``verify_matmul_proof`` on a decoded ``MatmulProof``."""
    return verify_matmul_proof(proof.seed, proof.n, proof.root, proof.openings, tolerance)


def freivalds_check(
    a: Matrix, b: Matrix, c: Matrix, rounds: int, seed: bytes, tolerance: float = 0.0
) -> bool:
    """Freivalds' check (1977) that A·B == C, for a verifier holding all of C: O(rounds·n²).

    Each round draws r with entries in [0, 2^16) from SHAKE-256(FREIVALDS_TAG || seed ||
    round) and compares A(Br) with Cr in float64; a wrong C survives a round w.p. <= 2^-16.
    ``seed`` must be fixed after C (e.g. include C's commitment), or a prover could adapt.
    """
    require(rounds >= 1, "rounds >= 1")
    n = len(c)
    a64, b64, c64 = (np.asarray(m, dtype=np.float64) for m in (a, b, c))
    if a64.shape != (n, n) or b64.shape != (n, n) or c64.shape != (n, n):
        return False
    for round_index in range(rounds):
        header = (
            FREIVALDS_TAG + struct.pack(">I", len(seed)) + seed + struct.pack(">I", round_index)
        )
        raw = hashlib.shake_256(header).digest(2 * n)
        r = np.frombuffer(raw, dtype=">u2").astype(np.float64)
        if not np.all(np.abs(a64 @ (b64 @ r) - c64 @ r) <= tolerance):
            return False
    return True


def detection_probability(cheat_fraction: float, openings: int) -> float:
    """1 - (1-f)^s: chance that s rows sampled with replacement hit a wrong row (a lower
    bound for our sampling without replacement)."""
    require(0.0 <= cheat_fraction <= 1.0 and openings >= 0, "f in [0, 1], s >= 0")
    return 1.0 - (1.0 - cheat_fraction) ** openings


def encode_matmul_proof(proof: MatmulProof) -> bytes:
    """Wire form: msgpack (rows are raw bytes; JSON would inflate them by a third)."""
    return msgspec.msgpack.encode(proof)


def decode_matmul_proof(data: bytes) -> MatmulProof:
    """Parse and validate the wire form; raises ``msgspec.ValidationError`` on bad input."""
    return msgspec.msgpack.decode(data, type=MatmulProof)


def _check_size(seed: bytes, n: int) -> None:
    require(isinstance(seed, bytes) and len(seed) <= SEED_BYTES_MAX, "seed: bytes, <= 256")
    require(isinstance(n, int) and 1 <= n <= MATRIX_SIZE_MAX, f"n in 1..{MATRIX_SIZE_MAX}")
