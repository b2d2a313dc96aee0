"""Merkle hash trees of RFC 6962 §2.1 / RFC 9162 §2.1 (Certificate Transparency), SHA-256.

``MTH({}) = SHA-256()``, ``MTH({d0}) = SHA-256(0x00 || d0)`` and, for n > 1 with k the largest
power of two smaller than n, ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.

Generators take raw leaf data (``root``, ``inclusion_proof``, ``consistency_proof``) or, for
callers that already hold record hashes (the log sealer), precomputed leaf hashes (the
``*_from_hashes`` variants). Verifiers implement RFC 9162 §2.1.3.2 and §2.1.4.2 and return a
bool: malformed input (wrong hash length, out-of-range index, a proof too long or too short)
gives False, never an exception. The append-only tree with O(log n) state lives in
``proofs.merkle_incremental`` and signed tree heads in ``proofs.tree_head``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from proofs.invariants import require

HASH_SIZE = 32
"""Bytes in a SHA-256 digest: every leaf hash, node hash, root and proof element."""

TREE_SIZE_MAX = 2**64 - 1
"""RFC 9162 §2.1: tree sizes and indices are uint64; larger values are rejected."""

PROOF_LENGTH_MAX = 64
"""An inclusion or consistency proof of a uint64-sized tree has at most 64 elements."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""RFC 9162 §2.1.1: the hash of an empty list is the hash of an empty string."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x00 || data)``, the hash of one leaf."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x01 || left || right)``, the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash (RFC 9162 §2.1.1) of a list of raw leaf data."""
    return root_from_hashes([leaf_hash(d) for d in leaves])


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path PATH(index, D[n]) of RFC 9162 §2.1.3.1 over raw leaf data."""
    return inclusion_proof_from_hashes([leaf_hash(d) for d in leaves], index)


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Consistency proof PROOF(old_size, D[n]) of RFC 9162 §2.1.4.1 over raw leaf data."""
    return consistency_proof_from_hashes([leaf_hash(d) for d in leaves], old_size)


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash of a list of leaf hashes (each already ``leaf_hash(d)``).

    Built level by level, pairing neighbours and lifting a lone last node unchanged: that
    gives the left-complete tree of RFC 9162 §2.1.1 (largest power of two on the left).
    """
    if not hashes:
        return EMPTY_ROOT
    return _levels(hashes)[-1][0]


def inclusion_proof_from_hashes(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for leaf ``index`` (RFC 9162 §2.1.3.1), from the leaf upwards."""
    return inclusion_proofs_from_hashes(hashes, [index])[0]


def inclusion_proofs_from_hashes(
    hashes: Sequence[bytes], indices: Sequence[int]
) -> list[list[bytes]]:
    """Audit paths for several leaves, building the tree once (O(n + k log n))."""
    size = len(hashes)
    for index in indices:
        require(0 <= index < size, f"leaf index {index} outside a tree of size {size}")
    levels = _levels(hashes)
    proofs: list[list[bytes]] = []
    for index in indices:
        path: list[bytes] = []
        position = index
        for level in levels[:-1]:
            sibling = position ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            position >>= 1
        proofs.append(path)
    return proofs


def consistency_proof_from_hashes(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 for ``0 < m <= n``; empty when ``m == n``."""
    size = len(hashes)
    require(0 < old_size <= size, f"old size {old_size} not in 1..{size}")
    return _subproof(old_size, hashes, True)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf ``index`` of a ``size``-leaf tree in ``root``?"""
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_proof(proof)):
        return False
    if not (_is_uint64(index) and _is_uint64(size)) or index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the ``old_size`` tree with ``old_root`` a prefix of the new one?

    ``old_size == 0`` is rejected (RFC 9162 defines consistency only for ``0 < m``). Equal
    sizes need an empty proof and equal roots, compared as bytes, as transparency-dev does.
    """
    if not (_is_uint64(old_size) and _is_uint64(new_size)) or not 0 < old_size <= new_size:
        return False
    if not _is_proof(proof):
        return False
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    if not (_is_hash(old_root) and _is_hash(new_root)) or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 1: m is a power of two, prepend first_hash
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:  # step 3
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def _levels(hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, root last (a one-element list)."""
    require(len(hashes) > 0, "a tree with no leaves has no levels")
    level = list(hashes)
    levels = [level]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        levels.append(level)
    return levels


def _subproof(m: int, hashes: Sequence[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(hashes)
    if m == n:
        return [] if complete else [root_from_hashes(hashes)]
    k = _split_point(n)
    if m <= k:
        return [*_subproof(m, hashes[:k], complete), root_from_hashes(hashes[k:])]
    return [*_subproof(m - k, hashes[k:], False), root_from_hashes(hashes[:k])]


def _split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1), RFC 9162 §2.1.1."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_uint64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= TREE_SIZE_MAX


def _is_proof(proof: object) -> bool:
    if isinstance(proof, (bytes, str)) or not isinstance(proof, Sequence):
        return False
    return len(proof) <= PROOF_LENGTH_MAX and all(_is_hash(p) for p in proof)
