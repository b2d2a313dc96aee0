"""Inference commitments: a node commits to and ships a batch of outputs; validators re-run a few.

Commitment. The RFC 6962 Merkle root (``proofs.merkle``) over the batch's outputs in item
order, each output as little-endian float32 bytes with -0.0 written as +0.0 (the leaf's
position binds it to its item).

Proof. The node ships every output (``InferenceProof.outputs``, ``batch·output_dim``
float32s, at most 16 MiB): it cannot know at commit time which items will be checked.

Openings. Items to check are drawn after the commitment is recorded, from the job's
``openings_seed`` (beacon randomness outside the node's control) and the root
(``proofs.fiat_shamir`` with ``ITEM_TAG``): ``u64`` draws from ``SHA-256(ITEM_TAG || u32
len(openings_seed) || openings_seed || u64 batch || root || u64 counter)``, without modulo
bias, the first ``min(s, batch)`` distinct items, sorted. A node that grinds commitments
offline learns nothing about them, so a node wrong on a fraction f of items escapes with
probability at most (1-f)^s per job, not per try. A validator checks the root over all
outputs, re-executes the chosen items (``adapters.compute.inference_model``) and accepts
each entry within ``|claimed - expected| <= atol + rtol·|expected|``: float32 inference is
not bit-exact across devices and batch shapes, unlike the integer matmul. With
``DEFAULT_ITEM_OPENINGS`` = 32: escape 0.72 for f = 1%, 0.034 for f = 10%, 1.0e-4 for
f = 25%, 2.3e-10 for f = 50%.

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
from proofs.merkle import HASH_SIZE, leaf_hash, root_from_hashes

ITEM_TAG = b"flopledger/inference/items/v1\x00"
BATCH_MAX = 4096
OUTPUT_DIM_MAX = 1024
SEED_BYTES_MAX = 256
DEFAULT_ITEM_OPENINGS = 32
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3
FLOAT32_BYTES = 4
OUTPUTS_BYTES_MAX = FLOAT32_BYTES * OUTPUT_DIM_MAX * BATCH_MAX
"""16 MiB: a whole batch's outputs at the largest shape."""


class InferenceProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Seed (the job seed the inputs derive from), shape, root and every item's output."""

    seed: Annotated[bytes, msgspec.Meta(max_length=SEED_BYTES_MAX)]
    batch: Annotated[int, msgspec.Meta(ge=1, le=BATCH_MAX)]
    output_dim: Annotated[int, msgspec.Meta(ge=1, le=OUTPUT_DIM_MAX)]
    root: Annotated[bytes, msgspec.Meta(min_length=HASH_SIZE, max_length=HASH_SIZE)]
    outputs: Annotated[bytes, msgspec.Meta(max_length=OUTPUTS_BYTES_MAX)]


def decode_output(data: bytes) -> tuple[float, ...]:
    """The float32 values of canonical output bytes."""
    require(len(data) % FLOAT32_BYTES == 0, "output bytes are float32s")
    return struct.unpack(f"<{len(data) // FLOAT32_BYTES}f", data)


def select_items(openings_seed: bytes, batch: int, root: bytes, openings: int) -> list[int]:
    """Items to open, drawn from ``openings_seed`` and the commitment, sorted; all if
    batch <= s. The seed is the job's beacon randomness, fixed after the commitment."""
    require(
        isinstance(openings_seed, bytes) and len(openings_seed) <= SEED_BYTES_MAX,
        "openings seed: bytes, <= 256",
    )
    require(isinstance(batch, int) and 1 <= batch <= BATCH_MAX, f"batch in 1..{BATCH_MAX}")
    require(len(root) == HASH_SIZE and openings >= 1, "root is 32 bytes, openings >= 1")
    return derive_openings(ITEM_TAG, openings_seed, batch, root, openings)


def make_inference_proof(seed: bytes, outputs: list[bytes], output_dim: int) -> InferenceProof:
    """Commit to the outputs and ship all of them (the node's side)."""
    require(all(len(o) == FLOAT32_BYTES * output_dim for o in outputs), "outputs: output_dim")
    root = root_from_hashes([leaf_hash(o) for o in outputs])
    return InferenceProof(
        seed=seed,
        batch=len(outputs),
        output_dim=output_dim,
        root=root,
        outputs=b"".join(outputs),
    )


def get_outputs(proof: InferenceProof) -> list[bytes] | None:
    """Every item's output when the proof holds ``batch`` outputs whose root is ``root``, else
    None: the check that what was shipped is what was committed. Never raises."""
    width = FLOAT32_BYTES * proof.output_dim
    if len(proof.outputs) != width * proof.batch:
        return None
    outputs = [proof.outputs[i : i + width] for i in range(0, len(proof.outputs), width)]
    if root_from_hashes([leaf_hash(o) for o in outputs]) != proof.root:
        return None
    return outputs


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
