"""Proofs from chunk roots and two or three chunks of leaves equal the proofs from every leaf
(``proofs.merkle``), at every size and index around the chunk edges."""

from __future__ import annotations

import hashlib

import pytest

from proofs import merkle
from proofs.merkle_chunked import (
    ChunkedTree,
    ChunkLevels,
    chunk_indexes_for_consistency,
    chunk_indexes_for_inclusion,
)

HASHES = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(70)]


def _tree(size: int, chunk_size: int, chunks: set[int]) -> ChunkedTree:
    hashes = HASHES[:size]
    roots = ChunkLevels()
    for i in range(0, size - size % chunk_size, chunk_size):
        roots.append(merkle.root_from_hashes(hashes[i : i + chunk_size]))
    leaves = {
        i: hashes[i] for c in chunks for i in range(c * chunk_size, min((c + 1) * chunk_size, size))
    }
    return ChunkedTree(size, chunk_size, roots, leaves)


@pytest.mark.parametrize("chunk_size", [1, 2, 4, 8])
def test_inclusion_proofs_and_roots_equal_the_full_trees(chunk_size: int) -> None:
    for size in range(1, 41):
        hashes = HASHES[:size]
        for index in range(size):
            chunks = chunk_indexes_for_inclusion(index, size, chunk_size)
            tree = _tree(size, chunk_size, chunks)
            assert tree.inclusion_proof(index) == merkle.inclusion_proof_from_hashes(
                hashes, index
            ), (size, index)
            assert tree.root() == merkle.root_from_hashes(hashes)


@pytest.mark.parametrize("chunk_size", [1, 2, 4, 8])
def test_consistency_proofs_equal_the_full_trees(chunk_size: int) -> None:
    for size in range(1, 41):
        hashes = HASHES[:size]
        for old_size in range(1, size + 1):
            chunks = chunk_indexes_for_consistency(old_size, size, chunk_size)
            tree = _tree(size, chunk_size, chunks)
            assert tree.consistency_proof(old_size) == merkle.consistency_proof_from_hashes(
                hashes, old_size
            ), (size, old_size)


def test_chunk_levels_hold_the_root_of_every_aligned_run() -> None:
    levels = ChunkLevels()
    for h in HASHES[:13]:
        levels.append(h)
    assert len(levels) == 13
    for count in (1, 2, 4, 8):
        for first in range(0, 13 - count + 1, count):
            run = HASHES[first : first + count]
            assert levels.get_run_root(first, count) == merkle.root_from_hashes(run)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="power of two"):
        ChunkedTree(4, 3, ChunkLevels(), {})
    with pytest.raises(ValueError, match="chunk roots"):
        ChunkedTree(8, 4, ChunkLevels(), {})
    tree = _tree(5, 4, {0, 1})
    with pytest.raises(ValueError, match="not in a tree"):
        tree.inclusion_proof(5)
    with pytest.raises(ValueError, match="old size"):
        tree.consistency_proof(0)
