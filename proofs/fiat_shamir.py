"""Openings: which items of a committed sequence a verifier checks.

``u64`` draws come from ``SHA-256(tag || u32 len(seed) || seed || u64 count || root || u64
counter)`` for counter = 0, 1, ...; each maps to an index without modulo bias (draws at or
past the largest multiple of ``count`` below 2^64 are rejected); the first ``openings``
distinct indices are kept (sampling without replacement) and returned sorted. When
``openings >= count`` every index is opened.

Where ``seed`` comes from decides soundness. With only the prover's own values (Fiat and
Shamir, "How to Prove Yourself", CRYPTO '86, §3: the verifier's coins replaced by a hash of
the prover's first message) a prover may retry commitments offline until no wrong item is
opened: an escape chance (1-f)^s per try, not per proof (issue 14, attack 3). Job results
therefore pass the job's ``openings_seed`` (beacon randomness revealed only after the
commitment is recorded, outside the prover's control); only hardware attestations still
use the challenge seed they were given.

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
