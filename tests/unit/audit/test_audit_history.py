"""The audit's history requirements (issue 16, item 4): parsing the auditor's options, their
bounds, and counting co-signers per head (``validator.audit_history``); the store-level tamper
tests are in ``tests/integration/audit/test_history_rewrite.py``."""

from __future__ import annotations

import hashlib

import pytest

from proofs import bls
from proofs.merkle import root_from_hashes
from validator.audit_history import (
    MIN_COSIGNERS_MAX,
    TRUSTED_HEADS_MAX,
    HistoryAudit,
    HistoryOptionError,
    HistoryRequirements,
    TrustedHead,
    parse_trusted_head,
    parse_witness_key,
)
from validator.audit_log import LogView

ROOT = hashlib.sha256(b"root").digest()
KEY_A = bls.sk_to_pk(bls.key_gen(b"a" * 32))
KEY_B = bls.sk_to_pk(bls.key_gen(b"b" * 32))


def test_a_trusted_head_parses_from_size_and_hex_root() -> None:
    assert parse_trusted_head(f"12:{ROOT.hex()}") == TrustedHead(12, ROOT)
    assert str(TrustedHead(12, ROOT)) == f"12:{ROOT.hex()}"


@pytest.mark.parametrize(
    "text",
    ["", "12", f"0:{ROOT.hex()}", f"-3:{ROOT.hex()}", f"x:{ROOT.hex()}", "12:beef", "12:zz"],
)
def test_a_malformed_trusted_head_is_refused_naming_the_form(text: str) -> None:
    with pytest.raises(HistoryOptionError, match="SIZE:ROOT_HEX"):
        parse_trusted_head(text)


def test_a_witness_key_must_be_a_valid_bls_key() -> None:
    assert parse_witness_key(KEY_A.hex()) == KEY_A
    for text in ["00" * 48, KEY_A.hex()[:-2], "not hex"]:
        with pytest.raises(HistoryOptionError, match="BLS12-381"):
            parse_witness_key(text)


def test_bounds_on_the_requirements() -> None:
    heads = tuple(TrustedHead(size, ROOT) for size in range(1, TRUSTED_HEADS_MAX + 2))
    HistoryRequirements(trusted_heads=heads[:TRUSTED_HEADS_MAX])
    with pytest.raises(HistoryOptionError, match="trusted heads"):
        HistoryRequirements(trusted_heads=heads)
    HistoryRequirements(min_cosigners=MIN_COSIGNERS_MAX)
    for count in (-1, MIN_COSIGNERS_MAX + 1):
        with pytest.raises(HistoryOptionError, match="--min-cosigners"):
            HistoryRequirements(min_cosigners=count)


def test_two_trusted_heads_of_one_size_must_agree() -> None:
    same = TrustedHead(5, ROOT)
    HistoryRequirements(trusted_heads=(same, same))
    other = TrustedHead(5, hashlib.sha256(b"other").digest())
    with pytest.raises(HistoryOptionError, match="size 5 differ"):
        HistoryRequirements(trusted_heads=(same, other))


def test_a_key_counts_once_and_an_unstaked_one_only_when_named() -> None:
    history = HistoryAudit(HistoryRequirements(min_cosigners=2, witness_keys=frozenset({KEY_B})))
    history.note_head(10, ROOT, position=11)
    history.note_cosignature(10, KEY_A, is_staked=True)
    history.note_cosignature(10, KEY_A, is_staked=True)  # one key under two validator ids
    history.note_head(20, ROOT, position=22)
    violation = history.find_final_violation(30, None)
    assert violation is not None
    assert (violation.position, violation.check) == (11, "cosigners")
    history.note_cosignature(10, KEY_B, is_staked=False)
    assert history.find_final_violation(30, None) is None  # the newest head is exempt


def test_an_unstaked_unnamed_cosigner_does_not_count() -> None:
    history = HistoryAudit(HistoryRequirements(min_cosigners=1))
    history.note_head(10, ROOT, position=11)
    history.note_cosignature(10, KEY_A, is_staked=False)
    history.note_head(20, ROOT, position=22)
    assert history.find_final_violation(30, None) is not None
    assert history.summary()["cosignatures_not_counted"] == 1


def test_a_trusted_head_past_an_audit_at_a_position_is_left_unchecked() -> None:
    history = HistoryAudit(HistoryRequirements(trusted_heads=(TrustedHead(50, ROOT),)))
    assert history.find_final_violation(40, 40) is None
    assert history.unchecked_trusted(40) == [50]
    violation = history.find_final_violation(40, None)
    assert violation is not None and violation.position == 41


def test_peek_root_leaves_smaller_heads_their_root() -> None:
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(9)]
    log = LogView()
    for leaf in hashes:
        log.add_leaf(leaf)
    assert log.peek_root(7) == root_from_hashes(hashes[:7])
    assert log.root_at(4) == root_from_hashes(hashes[:4])  # a head sealed later, smaller
    assert log.peek_root(9) == root_from_hashes(hashes)
