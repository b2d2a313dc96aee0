"""Matmul job proofs: the node ships all of C; a validator checks all of it by Freivalds.

Why all of C. Rows opened by Fiat–Shamir from the node's own commitment let a lazy node
retry commitments until no wrong row is opened (issue 14, attack 3). The challenge must come
from randomness drawn after the commitment is recorded (the job's ``openings_seed``, from
the beacon), so the node cannot know at commit time what will be checked, and must ship
everything a check could touch: the whole product.

Wire form. ``product`` holds the n² entries of C row-major, each a little-endian two's
complement 24-bit integer. An honest C is integral with ``|c| <= 64·n <= 2^18``
(``proofs.matmul``, "Exactness bound"), so 3 bytes hold every honest entry, and any claimed
entry lies in [-2^23, 2^23). At n = ``MATRIX_SIZE_MAX`` = 4096 that is 48 MiB, under the
artifact store's 64 MiB object limit (``adapters.nats.objects.ARTIFACT_BYTES_MAX``; float32
rows would take 64 MiB plus framing, over it). The commitment is unchanged: the RFC 6962 root
over C's canonical float32 rows (``proofs.matmul.commit_rows``), recomputed by the verifier
from every entry, so the product checked is the product committed.

Check. Freivalds (1977): with r drawn after the commitment, A(Br) == Cr; a C ≠ A·B has a
nonzero row d of A·B - C, and d·r = 0 for at most one value of one coordinate of r, so one
round with entries of r in [0, 2^16) passes a wrong C with probability at most 2^-16 and
``FREIVALDS_ROUNDS`` = 2 rounds at most 2^-32, whatever rows or entries are wrong. The
vectors come from ``SHAKE-256(FREIVALDS_TAG || u32 len(s) || s || u32 round)`` with
s = root || openings_seed (``proofs.matmul.freivalds_check``). Exact in float64:
|A(Br)| <= 8·2^16·8·n² <= 2^46 and |Cr| <= 2^23·2^16·n <= 2^51, below 2^53. Cost
O(rounds·n²) against O(s·n²) for s re-computed rows.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt

from proofs.invariants import require
from proofs.matmul import (
    MATRIX_SIZE_MAX,
    SEED_BYTES_MAX,
    Matrix,
    RowOpening,
    canonical_row_bytes,
    commit_rows,
    compute_row_hashes,
    derive_inputs,
    freivalds_check,
)
from proofs.merkle import HASH_SIZE, inclusion_proof_from_hashes

ENTRY_BYTES = 3
ENTRY_LIMIT = 2**23
"""Claimed entries lie in [-2^23, 2^23): 24-bit two's complement."""

PRODUCT_BYTES_MAX = ENTRY_BYTES * MATRIX_SIZE_MAX**2
"""48 MiB: the product at n = 4096."""

FREIVALDS_ROUNDS = 2
"""A wrong C passes with probability at most 2^-16 per round: 2^-32 per job."""

OPENINGS_SEED_BYTES_MAX = 64


class MatmulProductProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a node ships for a matmul job: the input seed, n, the commitment, all of C."""

    seed: Annotated[bytes, msgspec.Meta(max_length=SEED_BYTES_MAX)]
    n: Annotated[int, msgspec.Meta(ge=1, le=MATRIX_SIZE_MAX)]
    root: Annotated[bytes, msgspec.Meta(min_length=HASH_SIZE, max_length=HASH_SIZE)]
    product: Annotated[bytes, msgspec.Meta(max_length=PRODUCT_BYTES_MAX)]


def encode_entries(c: npt.ArrayLike) -> bytes:
    """C's entries row-major as 24-bit little-endian two's complement (integral entries)."""
    values = np.asarray(c)
    as_int = values.astype(np.int64)
    require(bool(np.all(as_int == values)), "C's entries are integers")
    require(bool(np.all((as_int >= -ENTRY_LIMIT) & (as_int < ENTRY_LIMIT))), "entries in int24")
    raw = as_int.astype("<i4").reshape(-1).view(np.uint8).reshape(-1, 4)
    return raw[:, :ENTRY_BYTES].tobytes()


def decode_entries(data: bytes, n: int) -> npt.NDArray[np.int64] | None:
    """The n×n integer C of ``encode_entries``, or None when the length is not 3·n²."""
    if len(data) != ENTRY_BYTES * n * n:
        return None
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, ENTRY_BYTES).astype(np.int64)
    values = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
    values -= (values >= ENTRY_LIMIT).astype(np.int64) << 24  # sign of the 24-bit value
    return values.reshape(n, n)


def make_product_proof(c: Matrix, seed: bytes) -> MatmulProductProof:
    """Commit to C and ship all of it: the node agent's side."""
    root = commit_rows(c)
    return MatmulProductProof(seed=seed, n=len(c), root=root, product=encode_entries(c))


def verify_product_proof(
    proof: MatmulProductProof, openings_seed: bytes, *, rounds: int = FREIVALDS_ROUNDS
) -> bool:
    """True iff the shipped C is the committed one (root over all its rows) and passes
    ``rounds`` Freivalds rounds drawn from ``root || openings_seed``. Never raises."""
    if not isinstance(openings_seed, bytes) or len(openings_seed) > OPENINGS_SEED_BYTES_MAX:
        return False
    try:
        entries = decode_entries(proof.product, proof.n)
        if entries is None:
            return False
        c = entries.astype(np.float32)  # below 2^24 in magnitude: exact, as in the rows
        if commit_rows(c) != proof.root:
            return False
        a, b = derive_inputs(proof.seed, proof.n)
    except (ValueError, TypeError):
        return False
    return freivalds_check(a, b, c, rounds, seed=proof.root + openings_seed)


def open_product_row(proof: MatmulProductProof, index: int) -> RowOpening:
    """Row ``index`` of the shipped C with its inclusion path under the root: what a
    challenger presents as a fraud proof once it found a wrong row (anyone can, since the
    whole product is public)."""
    entries = decode_entries(proof.product, proof.n)
    if entries is None or not 0 <= index < proof.n:
        raise ValueError("open_product_row needs a product of 3·n² bytes and an index < n")
    c = entries.astype(np.float32)
    path = inclusion_proof_from_hashes(compute_row_hashes(c), index)
    return RowOpening(index=index, row=canonical_row_bytes(c[index]), proof=path)


def encode_product_proof(proof: MatmulProductProof) -> bytes:
    """Wire form: msgpack (C as raw bytes)."""
    return msgspec.msgpack.encode(proof)


def decode_product_proof(data: bytes) -> MatmulProductProof:
    """Parse and validate the wire form; raises ``msgspec.ValidationError`` on bad input."""
    return msgspec.msgpack.decode(data, type=MatmulProductProof)
