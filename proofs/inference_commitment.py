"""Inference commitments: a node commits to a batch of model outputs, validators re-run a few.

Commitment. The RFC 6962 Merkle root (``proofs.merkle``) over the batch's outputs in item
order, each output as little-endian float32 bytes with -0.0 written as +0.0 (the leaf's
position binds it to its item).

Openings. Items to open follow from the commitment (Fiat–Shamir, ``proofs.fiat_shamir`` with
``ITEM_TAG``), as for matmul rows: ``u64`` draws from ``SHA-256(ITEM_TAG || u32 len(seed) ||
seed || u64 batch || root || u64 counter)``, without modulo bias, the first ``min(s, batch)``
distinct items, sorted. A
validator re-executes the opened items (``adapters.compute.inference_model``) and accepts
each entry within ``|claimed - expected| <= atol + rtol·|expected|``: float32 inference is
not bit-exact across devices and batch shapes, unlike the integer matmul. With
``DEFAULT_ITEM_OPENINGS`` = 32, cheating on a fraction f of items escapes with probability
at most (1-f)^32: 0.72 for f = 1%, 0.04 for f = 10%, 1e-10 for f = 50%.

Pure functions over bytes (struct, hashlib); they never raise on bad input where they
return a bool.
"""

from __future__ import annotations

import math
import struct
from typing import Annotated

import msgspec

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

ITEM_TAG = b"flopledger/inference/items/v1\x00"
BATCH_MAX = 4096
OUTPUT_DIM_MAX = 1024
SEED_BYTES_MAX = 256
DEFAULT_ITEM_OPENINGS = 32
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3
FLOAT32_BYTES = 4


class ItemOpening(msgspec.Struct, frozen=True, array_like=True):
    """One opened item: its index, its canonical output bytes, its RFC 6962 audit path."""

    index: Annotated[int, msgspec.Meta(ge=0, lt=BATCH_MAX)]
    output: Annotated[bytes, msgspec.Meta(max_length=FLOAT32_BYTES * OUTPUT_DIM_MAX)]
    proof: Annotated[list[bytes], msgspec.Meta(max_length=PROOF_LENGTH_MAX)]


class InferenceProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Seed (the job seed the inputs derive from), shape, root and the opened items."""

    seed: Annotated[bytes, msgspec.Meta(max_length=SEED_BYTES_MAX)]
    batch: Annotated[int, msgspec.Meta(ge=1, le=BATCH_MAX)]
    output_dim: Annotated[int, msgspec.Meta(ge=1, le=OUTPUT_DIM_MAX)]
    root: Annotated[bytes, msgspec.Meta(min_length=HASH_SIZE, max_length=HASH_SIZE)]
    openings: list[ItemOpening]


def decode_output(data: bytes) -> tuple[float, ...]:
    """The float32 values of canonical output bytes."""
    require(len(data) % FLOAT32_BYTES == 0, "output bytes are float32s")
    return struct.unpack(f"<{len(data) // FLOAT32_BYTES}f", data)


def select_items(seed: bytes, batch: int, root: bytes, openings: int) -> list[int]:
    """Items to open, derived from the commitment (Fiat–Shamir), sorted; all if batch <= s."""
    require(isinstance(seed, bytes) and len(seed) <= SEED_BYTES_MAX, "seed: bytes, <= 256")
    require(isinstance(batch, int) and 1 <= batch <= BATCH_MAX, f"batch in 1..{BATCH_MAX}")
    require(len(root) == HASH_SIZE and openings >= 1, "root is 32 bytes, openings >= 1")
    return derive_openings(ITEM_TAG, seed, batch, root, openings)


def make_inference_proof(
    seed: bytes, outputs: list[bytes], output_dim: int, openings: int = DEFAULT_ITEM_OPENINGS
) -> InferenceProof:
    """Commit to the outputs and open the items the commitment selects (the node's side)."""
    require(all(len(o) == FLOAT32_BYTES * output_dim for o in outputs), "outputs: output_dim")
    hashes = [leaf_hash(o) for o in outputs]
    root = root_from_hashes(hashes)
    indices = select_items(seed, len(outputs), root, openings)
    paths = inclusion_proofs_from_hashes(hashes, indices)
    opened = [
        ItemOpening(index=i, output=outputs[i], proof=path)
        for i, path in zip(indices, paths, strict=True)
    ]
    return InferenceProof(
        seed=seed, batch=len(outputs), output_dim=output_dim, root=root, openings=opened
    )


def verify_openings(
    proof: InferenceProof, *, openings_required: int = DEFAULT_ITEM_OPENINGS
) -> bool:
    """True iff the openings are exactly the selected items, each included under the root.
    The values themselves are checked by re-execution (``is_output_close``). Never raises."""
    try:
        expected = select_items(proof.seed, proof.batch, proof.root, openings_required)
    except (ValueError, TypeError):
        return False
    if [o.index for o in proof.openings] != expected:
        return False
    width = FLOAT32_BYTES * proof.output_dim
    for opening in proof.openings:
        if len(opening.output) != width:
            return False
        if not verify_inclusion(
            leaf_hash(opening.output), opening.index, proof.batch, opening.proof, proof.root
        ):
            return False
    return True


def is_output_close(
    claimed: bytes, expected: bytes, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL
) -> bool:
    """Every entry within ``atol + rtol·|expected|``; NaN or a length mismatch fails."""
    if len(claimed) != len(expected) or len(claimed) % FLOAT32_BYTES:
        return False
    for c, e in zip(decode_output(claimed), decode_output(expected), strict=True):
        if not (math.isfinite(c) and math.isfinite(e)) or abs(c - e) > atol + rtol * abs(e):
            return False
    return True


def encode_inference_proof(proof: InferenceProof) -> bytes:
    """Wire form: msgpack."""
    return msgspec.msgpack.encode(proof)


def decode_inference_proof(data: bytes) -> InferenceProof:
    """Parse and validate the wire form; raises ``msgspec.ValidationError`` on bad input."""
    return msgspec.msgpack.decode(data, type=InferenceProof)
