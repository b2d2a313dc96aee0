"""The audit's own account state machine: balances rebuilt straight from record data.

Account records are most of any log, so the audit does not rebuild them through the
domain's eventsourcing aggregates (an event object, a datetime and a mutate per record):
``apply_account_event`` folds the record's already decoded JSON into an ``AccountState``
with the same rules as ``domain.ledger.Account`` (posted and pending sums, holds posted or
voided once). Being a second implementation is the point of an auditor; the audit tests
and the ledger's property tests compare the two. A record that does not fit (a field of the
wrong type, an event before ``Opened``, a hold closed that was never placed) raises
``ValueError``, ``TypeError`` or ``KeyError``: the audit reports it as ``aggregate_replay``.
"""

from __future__ import annotations

from typing import Any

from domain.ledger import DEBIT

OPENED = "Opened"
DEBITED = "Debited"
CREDITED = "Credited"
HOLD_PLACED = "HoldPlaced"
HOLD_POSTED = "HoldPosted"
HOLD_VOIDED = "HoldVoided"


class AccountState:
    """One account as the audit rebuilds it (the attributes ``domain.ledger.Account`` has)."""

    __slots__ = (
        "allows_negative",
        "closed_holds",
        "credits_pending",
        "credits_posted",
        "debits_pending",
        "debits_posted",
        "holds",
        "id",
        "version",
    )

    def __init__(self, account_id: str, allows_negative: bool, version: int) -> None:
        self.id = account_id
        self.version = version
        self.allows_negative = allows_negative
        self.debits_posted = self.credits_posted = 0
        self.debits_pending = self.credits_pending = 0
        self.holds: dict[str, tuple[int, bool]] = {}  # transfer id -> (amount, is debit)
        self.closed_holds: set[str] = set()

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted


def apply_account_event(
    previous: AccountState | None, stream_id: str, version: int, event_type: str, data: Any
) -> AccountState:
    """The account after one event (``previous`` is changed in place and returned)."""
    if type(data.get("at_us")) is not int:
        raise TypeError("at_us is not an integer")
    if event_type == OPENED:
        if previous is not None:
            raise ValueError(f"account {stream_id} is opened twice")
        return AccountState(stream_id, _require(data, "allows_negative", bool), version)
    if previous is None:
        raise ValueError(f"{event_type} before the account {stream_id} was opened")
    account = previous
    if event_type in (DEBITED, CREDITED):
        amount = data.get("amount")
        if (
            type(amount) is not int
            or type(data.get("transfer_id")) is not str
            or type(data.get("counterparty")) is not str
            or type(data.get("reason")) is not str
        ):
            raise TypeError(f"{event_type} needs transfer_id, counterparty, reason and amount")
        if event_type == DEBITED:
            account.debits_posted += amount
        else:
            account.credits_posted += amount
    elif event_type == HOLD_PLACED:
        transfer_id = _require(data, "transfer_id", str)
        _require(data, "counterparty", str)
        _require(data, "reason", str)
        amount = _require(data, "amount", int)
        is_debit = _require(data, "side", str) == DEBIT
        account.holds[transfer_id] = (amount, is_debit)
        if is_debit:
            account.debits_pending += amount
        else:
            account.credits_pending += amount
    elif event_type in (HOLD_POSTED, HOLD_VOIDED):
        transfer_id = _require(data, "transfer_id", str)
        amount, is_debit = account.holds.pop(transfer_id)
        account.closed_holds.add(transfer_id)
        posted = amount if event_type == HOLD_POSTED else 0
        if is_debit:
            account.debits_pending -= amount
            account.debits_posted += posted
        else:
            account.credits_pending -= amount
            account.credits_posted += posted
    else:
        raise ValueError(f"unknown event account.{event_type}")
    account.version = version
    return account


def _require(data: Any, name: str, kind: type) -> Any:
    value = data.get(name)
    if type(value) is not kind:
        raise TypeError(f"{name} is {type(value).__name__}, not {kind.__name__}")
    return value
