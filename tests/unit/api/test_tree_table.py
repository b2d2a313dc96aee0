"""The stored tree (``adapters.store.tree_table``): every aligned subtree root it stores is
the Merkle root of those leaves, and proofs from it, on worker threads while leaves are being
appended, equal ``proofs.merkle``'s from every leaf."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from adapters.store.tree_table import TreeTable
from api.transparency import compute_consistency, compute_inclusion
from proofs import merkle

LEAVES = 70
WORKERS = 4


def make_leaves(count: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(count)]


def test_every_stored_run_root_is_the_root_of_its_leaves() -> None:
    leaves = make_leaves(LEAVES)
    table = TreeTable()
    table.extend(leaves[:5])
    table.extend(leaves[5:])
    assert len(table) == LEAVES
    count = 1
    while count <= LEAVES:
        for first in range(0, LEAVES - count + 1, count):
            expected = merkle.root_from_hashes(leaves[first : first + count])
            assert table.get_run_root(first, count) == expected, (first, count)
        count *= 2
    with pytest.raises(LookupError):
        table.get_run_root(64, 64)  # leaves 64..127: not all there
    table.close()


def test_proofs_on_threads_while_appending_equal_the_full_trees() -> None:
    leaves = make_leaves(LEAVES)
    table = TreeTable()
    table.extend(leaves[: LEAVES // 2])

    def check(size: int) -> None:
        for index in range(size):
            leaf, root, proof = compute_inclusion(table, index, size)
            assert leaf == leaves[index]
            assert root == merkle.root_from_hashes(leaves[:size])
            assert proof == merkle.inclusion_proof_from_hashes(leaves[:size], index)
        for first in range(1, size + 1):
            first_root, _, proof = compute_consistency(table, first, size)
            assert first_root == merkle.root_from_hashes(leaves[:first])
            assert proof == merkle.consistency_proof_from_hashes(leaves[:size], first)

    with ThreadPoolExecutor(WORKERS) as pool:
        early = [pool.submit(check, size) for size in range(1, LEAVES // 2 + 1)]
        for leaf in leaves[LEAVES // 2 :]:
            table.extend([leaf])
        late = [pool.submit(check, size) for size in range(LEAVES // 2 + 1, LEAVES + 1)]
        for future in early + late:
            future.result()
    table.close()


def test_a_leaf_of_the_wrong_length_is_refused() -> None:
    table = TreeTable()
    with pytest.raises(ValueError, match="32 bytes"):
        table.extend([b"short"])
    assert len(table) == 0
