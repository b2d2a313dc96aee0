"""Double-entry ledger: transfers, holds, and every rejection in its fixed order."""

from __future__ import annotations

import pytest

from domain.errors import InsufficientFunds, InvalidTransition, NotFound, Rejection
from domain.ledger import (
    BOUNDARY_ACCOUNT,
    Account,
    place_hold,
    post_hold,
    transfer,
    void_hold,
)
from domain.policy import AMOUNT_MAX

NOW = 1_800_000_000_000_000_000


def _accounts(*names: str) -> list[Account]:
    return [Account.open(name, now_ns=NOW) for name in names]


def _funded(amount: int) -> tuple[Account, Account]:
    boundary, user = _accounts(BOUNDARY_ACCOUNT, "user:a")
    transfer(boundary, user, transfer_id="t0", amount=amount, reason="deposit", now_ns=NOW)
    return boundary, user


def test_transfer_moves_money_and_boundary_may_go_negative() -> None:
    boundary, user = _funded(100)
    assert (boundary.balance, user.balance) == (-100, 100)
    assert boundary.balance + user.balance == 0


def test_overdraft_is_refused_for_every_account_but_the_boundary() -> None:
    _, user = _funded(100)
    (other,) = _accounts("user:b")
    transfer(user, other, transfer_id="t1", amount=100, reason="all of it", now_ns=NOW)
    events_before = (len(user.pending_events), len(other.pending_events))
    with pytest.raises(InsufficientFunds) as info:
        transfer(user, other, transfer_id="t2", amount=1, reason="one more", now_ns=NOW)
    assert info.value.code == "exceeds_available"
    assert user.balance == 0
    assert (len(user.pending_events), len(other.pending_events)) == events_before


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (0, "amount_must_be_positive"),
        (-5, "amount_must_be_positive"),
        (AMOUNT_MAX + 1, "amount_exceeds_maximum"),
    ],
)
def test_amount_bounds(amount: int, code: str) -> None:
    boundary, user = _accounts(BOUNDARY_ACCOUNT, "user:a")
    with pytest.raises(Rejection) as info:
        transfer(boundary, user, transfer_id="t", amount=amount, reason="x", now_ns=NOW)
    assert info.value.code == code


def test_amount_at_the_maximum_is_accepted() -> None:
    boundary, user = _accounts(BOUNDARY_ACCOUNT, "user:a")
    transfer(boundary, user, transfer_id="t", amount=AMOUNT_MAX, reason="x", now_ns=NOW)
    assert user.balance == AMOUNT_MAX


def test_same_account_on_both_sides_is_refused() -> None:
    _, user = _funded(10)
    with pytest.raises(Rejection) as info:
        transfer(user, user, transfer_id="t", amount=1, reason="x", now_ns=NOW)
    assert info.value.code == "accounts_must_differ"


def test_hold_reserves_then_posts_exactly_once() -> None:
    _, user = _funded(100)
    (escrow,) = _accounts("escrow:j")
    place_hold(user, escrow, transfer_id="h", amount=60, reason="escrow", now_ns=NOW)
    assert (user.balance, user.available, escrow.balance) == (100, 40, 0)
    with pytest.raises(InsufficientFunds):
        place_hold(user, escrow, transfer_id="h2", amount=41, reason="x", now_ns=NOW)
    assert post_hold(user, escrow, transfer_id="h", now_ns=NOW) == 60
    assert (user.balance, user.available, escrow.balance) == (40, 40, 60)
    with pytest.raises(InvalidTransition) as info:
        post_hold(user, escrow, transfer_id="h", now_ns=NOW)
    assert info.value.code == "hold_already_closed"
    with pytest.raises(InvalidTransition):
        void_hold(user, escrow, transfer_id="h", now_ns=NOW)


def test_void_releases_the_hold() -> None:
    _, user = _funded(100)
    (escrow,) = _accounts("escrow:j")
    place_hold(user, escrow, transfer_id="h", amount=60, reason="escrow", now_ns=NOW)
    assert void_hold(user, escrow, transfer_id="h", now_ns=NOW) == 60
    assert (user.balance, user.available, escrow.balance, escrow.credits_pending) == (
        100,
        100,
        0,
        0,
    )


def test_hold_ids_are_unique_even_after_closing() -> None:
    _, user = _funded(100)
    (escrow,) = _accounts("escrow:j")
    place_hold(user, escrow, transfer_id="h", amount=10, reason="x", now_ns=NOW)
    void_hold(user, escrow, transfer_id="h", now_ns=NOW)
    with pytest.raises(Rejection) as info:
        place_hold(user, escrow, transfer_id="h", amount=10, reason="x", now_ns=NOW)
    assert info.value.code == "hold_id_must_be_unique"


def test_unknown_hold_or_wrong_counterparty_is_not_found() -> None:
    _, user = _funded(100)
    escrow, other = _accounts("escrow:j", "escrow:k")
    place_hold(user, escrow, transfer_id="h", amount=10, reason="x", now_ns=NOW)
    for debit, credit, hold_id in ((user, escrow, "nope"), (user, other, "h"), (escrow, user, "h")):
        with pytest.raises(NotFound) as info:
            post_hold(debit, credit, transfer_id=hold_id, now_ns=NOW)
        assert info.value.code == "hold_not_found"
