"""The audit's account state machine agrees with ``domain.ledger.Account`` on every sequence
of transfers, holds, posts and voids (property test), and refuses records that do not fit."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import FlopError
from domain.events import encode_event
from domain.ledger import BOUNDARY_ACCOUNT, Account, place_hold, post_hold, transfer, void_hold
from validator.audit_accounts import AccountState, apply_account_event

NOW_NS = 1_800_000_000_000_000_000
ACCOUNTS = (BOUNDARY_ACCOUNT, "user:a", "user:b", "escrow:j")

Step = tuple[str, int, int, int]
steps = st.lists(
    st.tuples(
        st.sampled_from(["transfer", "hold", "post", "void"]),
        st.integers(0, len(ACCOUNTS) - 1),
        st.integers(0, len(ACCOUNTS) - 1),
        st.integers(1, 1_000),
    ),
    max_size=60,
)


def replay(accounts: dict[str, Account]) -> dict[str, AccountState]:
    """Every event the domain produced, through the audit's state machine."""
    states: dict[str, AccountState] = {}
    for account_id, account in accounts.items():
        state = None
        for version, event in enumerate(account.collect_new_events(), start=1):
            stored = encode_event(event)
            data = msgspec.json.decode(stored.data)
            state = apply_account_event(state, account_id, version, stored.event_type, data)
        assert state is not None
        states[account_id] = state
    return states


@settings(max_examples=200, deadline=None)
@given(steps)
def test_audit_accounts_match_the_domain(plan: list[Step]) -> None:
    accounts = {a: Account.open(a, now_ns=NOW_NS) for a in ACCOUNTS}
    holds: list[tuple[str, str, str]] = []
    for index, (action, debit_index, credit_index, amount) in enumerate(plan):
        debit, credit = accounts[ACCOUNTS[debit_index]], accounts[ACCOUNTS[credit_index]]
        try:
            if action == "transfer":
                transfer(
                    debit, credit, transfer_id=f"t{index}", amount=amount, reason="r", now_ns=NOW_NS
                )
            elif action == "hold":
                place_hold(
                    debit, credit, transfer_id=f"h{index}", amount=amount, reason="r", now_ns=NOW_NS
                )
                holds.append((f"h{index}", debit.id, credit.id))
            elif holds:
                hold_id, debit_id, credit_id = holds[amount % len(holds)]
                close = post_hold if action == "post" else void_hold
                close(accounts[debit_id], accounts[credit_id], transfer_id=hold_id, now_ns=NOW_NS)
        except FlopError:
            continue  # a rejected step changes nothing
    states = replay(accounts)
    for account_id, account in accounts.items():
        state = states[account_id]
        assert (state.balance, state.debits_pending, state.credits_pending) == (
            account.balance,
            account.debits_pending,
            account.credits_pending,
        )
        assert state.closed_holds == account.closed_holds
        assert state.version == account.version
    assert sum(s.balance for s in states.values()) == 0


def opened() -> AccountState:
    return apply_account_event(None, "user:a", 1, "Opened", {"allows_negative": False, "at_us": 1})


@pytest.mark.parametrize(
    ("event_type", "data", "error"),
    [
        (
            "Debited",
            {"transfer_id": "t", "counterparty": "x", "reason": "r", "at_us": 1},
            TypeError,
        ),
        (
            "Credited",
            {"transfer_id": "t", "counterparty": "x", "reason": "r", "amount": "5", "at_us": 1},
            TypeError,
        ),
        ("HoldPosted", {"transfer_id": "never-placed", "at_us": 1}, KeyError),
        ("Opened", {"allows_negative": False, "at_us": 1}, ValueError),
        ("Renamed", {"at_us": 1}, ValueError),
        ("HoldVoided", {"transfer_id": "t"}, TypeError),
    ],
)
def test_records_that_do_not_fit_are_refused(
    event_type: str, data: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        apply_account_event(opened(), "user:a", 2, event_type, data)


def test_an_event_before_opened_is_refused() -> None:
    with pytest.raises(ValueError, match="before the account"):
        apply_account_event(
            None,
            "user:a",
            1,
            "Credited",
            {"transfer_id": "t", "counterparty": "x", "reason": "r", "amount": 5, "at_us": 1},
        )
