"""Fiat–Shamir openings: which items of a committed sequence a prover must open.

The challenge is derived from the commitment itself (Fiat and Shamir, "How to Prove
Yourself", CRYPTO '86, §3: the verifier's random choices replaced by a hash of the prover's
first message), so the prover learns the items to open only after it has committed to all of
them. ``u64`` draws come from ``SHA-256(tag || u32 len(seed) || seed || u64 count || root ||
u64 counter)`` for counter = 0, 1, ...; each maps to an index without modulo bias (draws at
or past the largest multiple of ``count`` below 2^64 are rejected); the first ``openings``
distinct indices are kept (sampling without replacement) and returned sorted. When
``openings >= count`` every index is opened.

The ``tag`` separates the uses (matmul rows, inference items), so one commitment never
yields the same challenge for two proof kinds.
"""

from __future__ import annotations

import hashlib
import struct

from proofs.invariants import require

HASH_SIZE = 32
U64_RANGE = 2**64


def derive_openings(tag: bytes, seed: bytes, count: int, root: bytes, openings: int) -> list[int]:
    """The sorted indices in ``[0, count)`` to open for the commitment ``root``."""
    require(count >= 1 and openings >= 1, "count >= 1 and openings >= 1")
    require(len(root) == HASH_SIZE, "the root is 32 bytes")
    if openings >= count:
        return list(range(count))
    prefix = tag + struct.pack(">I", len(seed)) + seed + struct.pack(">Q", count) + root
    limit = (U64_RANGE // count) * count
    chosen: set[int] = set()
    counter = 0
    while len(chosen) < openings:
        draw = hashlib.sha256(prefix + struct.pack(">Q", counter)).digest()
        value = int.from_bytes(draw[:8], "big")
        if value < limit:
            chosen.add(value % count)
        counter += 1
    return sorted(chosen)
