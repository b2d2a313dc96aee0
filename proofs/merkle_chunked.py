"""RFC 6962 (RFC 9162 §2.1) proofs from chunk roots and two chunks of leaves, not every leaf.

A log of n leaves splits into aligned chunks of ``chunk_size`` leaves (a power of two). Every
subtree the RFC's recursion visits either covers whole chunks from an aligned start (its root
folds the roots of those chunks) or lies inside one chunk. An inclusion proof for leaf m only
descends into m's chunk and, for the right edge, the last (partial) chunk; a consistency proof
only into the chunk where the old tree ends and the last chunk. So a caller keeps one root per
full chunk and of every aligned run of 2^j chunks (``ChunkLevels``: about ``2 n / chunk_size``
hashes) and reads at most three chunks of leaf hashes per proof; the rest is O(log n).
With chunks of one leaf and every run root stored (``RunRoots``, as the API's tree table
keeps them) a proof reads no leaves at all: O(log n) lookups and hashes. The results equal
``proofs.merkle.inclusion_proof_from_hashes`` and ``consistency_proof_from_hashes``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from proofs.merkle import EMPTY_ROOT, node_hash

LeafHash = Callable[[int], bytes]


class RunRoots(Protocol):
    """Roots of aligned perfect runs of whole chunks: ``ChunkLevels`` in memory, or a store of
    every node (chunks of one leaf, so a proof needs no leaves besides)."""

    def __len__(self) -> int: ...

    def get_run_root(self, first_chunk: int, count: int) -> bytes: ...


class ChunkLevels:
    """The roots of every aligned perfect run of whole chunks: level 0 holds each chunk's root,
    level j the root of each aligned run of 2^j chunks. Appending costs O(log n) hashes; the
    root of such a run is one lookup."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = []

    def __len__(self) -> int:
        return len(self.levels[0]) if self.levels else 0

    def append(self, chunk_root: bytes) -> None:
        node, level = chunk_root, 0
        while True:
            if len(self.levels) == level:
                self.levels.append([])
            nodes = self.levels[level]
            nodes.append(node)
            if len(nodes) % 2:
                return
            node, level = node_hash(nodes[-2], nodes[-1]), level + 1

    def get_run_root(self, first_chunk: int, count: int) -> bytes:
        """The root of chunks ``first_chunk .. first_chunk + count - 1`` (``count`` a power of
        two dividing ``first_chunk``)."""
        level = count.bit_length() - 1
        return self.levels[level][first_chunk >> level]


class ChunkedTree:
    """A tree of ``size`` leaves, seen through the roots of its full chunks and the leaf hashes
    the caller read (``leaves``: index -> leaf hash; a missing one needed is a bug)."""

    def __init__(
        self,
        size: int,
        chunk_size: int,
        chunks: RunRoots,
        leaves: Mapping[int, bytes],
    ) -> None:
        if chunk_size < 1 or chunk_size & (chunk_size - 1):
            raise ValueError(f"chunk size {chunk_size} is not a power of two")
        if len(chunks) < size // chunk_size:
            raise ValueError(f"{size} leaves need {size // chunk_size} chunk roots")
        self.size = size
        self.chunk_size = chunk_size
        self.chunks = chunks
        self.leaves = leaves

    def root(self) -> bytes:
        return self._mth(0, self.size) if self.size else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 6962 §2.1.1)."""
        if not 0 <= index < self.size:
            raise ValueError(f"leaf {index} is not in a tree of {self.size}")
        return self._path(index, 0, self.size)

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """PROOF(old_size, D[0:size]) (RFC 6962 §2.1.2)."""
        if not 0 < old_size <= self.size:
            raise ValueError(f"old size {old_size} is not in 1..{self.size}")
        return self._subproof(old_size, 0, self.size, True)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split_point(hi - lo)
        if m < k:
            return [*self._path(m, lo, lo + k), self._mth(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self._mth(lo, lo + k)]

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self._mth(lo, hi)]
        k = _split_point(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete), self._mth(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._mth(lo, lo + k)]

    def _mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range the RFC's recursion visits."""
        c = self.chunk_size
        if lo % c == 0 and (hi - lo) % c == 0 and _is_power_of_two((hi - lo) // c):
            return self.chunks.get_run_root(lo // c, (hi - lo) // c)
        if hi - lo == 1:
            return self.leaves[lo]
        k = _split_point(hi - lo)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))


def chunk_indexes_for_inclusion(index: int, size: int, chunk_size: int) -> set[int]:
    """The chunks whose leaves an inclusion proof of ``index`` in ``size`` leaves reads."""
    return {index // chunk_size, (size - 1) // chunk_size}


def chunk_indexes_for_consistency(old_size: int, size: int, chunk_size: int) -> set[int]:
    """The chunks whose leaves a consistency proof from ``old_size`` to ``size`` reads."""
    return {(old_size - 1) // chunk_size, old_size // chunk_size, (size - 1) // chunk_size}


def _split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0
