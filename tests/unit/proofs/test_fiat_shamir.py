"""The one Fiat–Shamir opening derivation that matmul rows and inference items share."""

from __future__ import annotations

import hashlib

import pytest

from proofs.fiat_shamir import derive_openings
from proofs.inference_commitment import ITEM_TAG, select_items
from proofs.matmul import ROW_TAG, select_rows

ROOT = hashlib.sha256(b"root").digest()
# Recorded from the two copies this module replaced (proofs/matmul.py select_rows and
# proofs/inference_commitment.py select_items before the move): the derivation is unchanged.
ROWS_RECORDED = [125, 134, 343, 354, 424, 506, 614, 869]
ITEMS_RECORDED = [38, 54, 182, 222, 296, 574, 645, 722]


def test_matmul_rows_and_inference_items_are_unchanged() -> None:
    assert select_rows(b"seed", 1000, ROOT, 8) == ROWS_RECORDED
    assert select_items(b"seed", 1000, ROOT, 8) == ITEMS_RECORDED
    assert derive_openings(ROW_TAG, b"seed", 1000, ROOT, 8) == ROWS_RECORDED
    assert derive_openings(ITEM_TAG, b"seed", 1000, ROOT, 8) == ITEMS_RECORDED


def test_openings_are_distinct_sorted_and_in_range() -> None:
    chosen = derive_openings(b"t", b"s", 50, ROOT, 49)
    assert chosen == sorted(set(chosen)) and len(chosen) == 49
    assert all(0 <= index < 50 for index in chosen)


def test_every_index_is_opened_at_the_bound_and_past_it() -> None:
    assert derive_openings(b"t", b"s", 8, ROOT, 8) == list(range(8))
    assert derive_openings(b"t", b"s", 8, ROOT, 9) == list(range(8))
    assert len(derive_openings(b"t", b"s", 9, ROOT, 8)) == 8


def test_refuses_an_empty_sequence_no_openings_or_a_short_root() -> None:
    for count, openings, root in ((0, 1, ROOT), (5, 0, ROOT), (5, 1, ROOT[:31])):
        with pytest.raises(ValueError):
            derive_openings(b"t", b"s", count, root, openings)
