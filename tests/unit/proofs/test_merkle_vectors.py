"""RFC 6962 Merkle vectors: merkle/rfc6962_sizes_0_to_8.json (transparency-dev/merkle)."""

from __future__ import annotations

from typing import Any

import pytest

from proofs import merkle
from tests.unit.proofs._vectors import load_json

VECTORS: dict[str, Any] = load_json("merkle", "rfc6962_sizes_0_to_8.json")
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves"]]
UPSTREAM = VECTORS["upstream_testdata"]


def _h(value: str) -> bytes:
    return bytes.fromhex(value)


def _case_id(case: dict[str, Any]) -> str:
    return str(case.get("source_file", case.get("desc")))


def test_leaf_hashes() -> None:
    assert [merkle.leaf_hash(d).hex() for d in LEAVES] == VECTORS["leaf_hashes"]


def test_complete_subtree_hashes() -> None:
    for level, expected in enumerate(VECTORS["complete_subtree_hashes"]):
        width = 1 << level
        got = [merkle.root(LEAVES[i : i + width]).hex() for i in range(0, 8, width)]
        assert got == expected


@pytest.mark.parametrize("size", range(9))
def test_roots(size: int) -> None:
    expected = VECTORS["roots"][str(size)]
    assert merkle.root(LEAVES[:size]).hex() == expected
    hashes = [merkle.leaf_hash(d) for d in LEAVES[:size]]
    assert merkle.root_from_hashes(hashes).hex() == expected


@pytest.mark.parametrize("case", VECTORS["inclusion_proofs"], ids=_case_id)
def test_inclusion_proofs(case: dict[str, Any]) -> None:
    leaves = LEAVES[: case["tree_size"]]
    proof = [_h(p) for p in case["proof"]]
    assert case["expected_valid"]
    assert merkle.inclusion_proof(leaves, case["leaf_index"]) == proof
    assert merkle.verify_inclusion(
        _h(case["leaf_hash"]), case["leaf_index"], case["tree_size"], proof, _h(case["root"])
    )


@pytest.mark.parametrize("case", VECTORS["consistency_proofs"], ids=_case_id)
def test_consistency_proofs(case: dict[str, Any]) -> None:
    proof = [_h(p) for p in case["proof"]]
    assert case["expected_valid"]
    assert merkle.consistency_proof(LEAVES[: case["size2"]], case["size1"]) == proof
    assert merkle.verify_consistency(
        case["size1"], case["size2"], _h(case["root1"]), _h(case["root2"]), proof
    )


@pytest.mark.parametrize("case", UPSTREAM["inclusion"], ids=_case_id)
def test_upstream_inclusion(case: dict[str, Any]) -> None:
    got = merkle.verify_inclusion(
        _h(case["leaf_hash"]),
        case["leaf_index"],
        case["tree_size"],
        [_h(p) for p in case["proof"]],
        _h(case["root"]),
    )
    assert got is case["expected_valid"]


@pytest.mark.parametrize("case", UPSTREAM["consistency"], ids=_case_id)
def test_upstream_consistency(case: dict[str, Any]) -> None:
    got = merkle.verify_consistency(
        case["size1"],
        case["size2"],
        _h(case["root1"]),
        _h(case["root2"]),
        [_h(p) for p in case["proof"]],
    )
    assert got is case["expected_valid"]
