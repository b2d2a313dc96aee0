"""Append-only RFC 6962 Merkle tree with O(log n) state (the log sealer's running root).

The state is the "frontier": the roots of the perfect subtrees that the leaves so far split
into, largest first, one per set bit of the size (as in RFC 9162 §2.1.1 the left subtree is
always the largest power of two). Appending merges equal-height subtrees like a binary
counter; the root folds the frontier from the right. ``root()`` equals
``proofs.merkle.root_from_hashes`` of every leaf hash appended.
"""

from __future__ import annotations

from collections.abc import Sequence

from proofs.merkle import EMPTY_ROOT, HASH_SIZE, TREE_SIZE_MAX, leaf_hash, node_hash


class IncrementalMerkleTree:
    """A Merkle tree that only grows; keeps ``size`` and at most 64 subtree hashes."""

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> IncrementalMerkleTree:
        """Resume a tree from ``(size, frontier)`` as saved from a previous instance."""
        if not 0 <= size <= TREE_SIZE_MAX or len(frontier) != size.bit_count():
            raise ValueError(f"a frontier of a {size}-leaf tree has {size.bit_count()} hashes")
        if any(len(h) != HASH_SIZE for h in frontier):
            raise ValueError(f"frontier hashes must be {HASH_SIZE} bytes")
        tree = cls()
        tree._size = size
        tree._frontier = list(frontier)
        return tree

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, largest (leftmost) first: the whole state."""
        return tuple(self._frontier)

    def append(self, data: bytes) -> bytes:
        """Append one leaf given as raw data; return its leaf hash."""
        hashed = leaf_hash(data)
        self.append_leaf_hash(hashed)
        return hashed

    def append_leaf_hash(self, hashed: bytes) -> None:
        """Append one leaf given as its leaf hash (``leaf_hash(data)``, e.g. a record hash)."""
        if len(hashed) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(hashed)}")
        if self._size == TREE_SIZE_MAX:
            raise ValueError("tree is full (uint64 size)")
        node = hashed
        size = self._size
        while size & 1:  # merge equal-height subtrees, as a carry propagates
            node = node_hash(self._frontier.pop(), node)
            size >>= 1
        self._frontier.append(node)
        self._size += 1

    def root(self) -> bytes:
        """Current Merkle tree hash (RFC 9162 §2.1.1); ``SHA-256()`` when empty."""
        if not self._frontier:
            return EMPTY_ROOT
        acc = self._frontier[-1]
        for subtree in reversed(self._frontier[:-1]):
            acc = node_hash(subtree, acc)
        return acc
