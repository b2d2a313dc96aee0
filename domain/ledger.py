"""Double-entry account ledger with TigerBeetle-style semantics.

Every movement is a transfer from a debit account to a credit account of a positive integer
amount. A *hold* (pending transfer) reserves funds on the debit account; it is later posted
(moved) or voided (released), exactly once. Only the boundary account may go negative.
Balances: ``balance = credits_posted - debits_posted``; ``available = balance -
debits_pending``. Rejections are checked in a fixed order and named after their rule.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from domain.errors import InsufficientFunds, InvalidTransition, NotFound, Rejection, RejectionCode
from domain.events import FlopAggregate, ns_to_datetime
from domain.policy import AMOUNT_MAX

BOUNDARY_ACCOUNT = "external:solana"
TREASURY_ACCOUNT = "treasury"
BURN_ACCOUNT = "burn"
DEBIT = "debit"
CREDIT = "credit"


def user_account(actor_id: str) -> str:
    return f"user:{actor_id}"


def stake_account(owner_id: str) -> str:
    """Bonded stake of a node or validator (by its id)."""
    return f"stake:{owner_id}"


def unbonding_account(owner_id: str) -> str:
    return f"unbonding:{owner_id}"


def escrow_account(job_id: str) -> str:
    return f"escrow:{job_id}"


def is_boundary(account_id: str) -> bool:
    return account_id == BOUNDARY_ACCOUNT


class Hold(msgspec.Struct, frozen=True):
    """One side of a pending transfer, as its account sees it."""

    counterparty: str
    amount: int
    side: str


class Account(FlopAggregate):
    """An account of the double-entry ledger; its stream id is the account id."""

    STREAM_TYPE: ClassVar[str] = "account"

    class Opened(FlopAggregate.Created):
        allows_negative: bool

        def apply(self, account: Account) -> None:
            account.allows_negative = self.allows_negative
            account.debits_posted = account.credits_posted = 0
            account.debits_pending = account.credits_pending = 0
            account.holds = {}
            account.closed_holds = set()

    class Debited(FlopAggregate.Event):
        transfer_id: str
        counterparty: str
        amount: int
        reason: str

        def apply(self, account: Account) -> None:
            account.debits_posted += self.amount

    class Credited(FlopAggregate.Event):
        transfer_id: str
        counterparty: str
        amount: int
        reason: str

        def apply(self, account: Account) -> None:
            account.credits_posted += self.amount

    class HoldPlaced(FlopAggregate.Event):
        transfer_id: str
        counterparty: str
        amount: int
        side: str
        reason: str

        def apply(self, account: Account) -> None:
            account.holds[self.transfer_id] = Hold(self.counterparty, self.amount, self.side)
            if self.side == DEBIT:
                account.debits_pending += self.amount
            else:
                account.credits_pending += self.amount

    class HoldPosted(FlopAggregate.Event):
        transfer_id: str

        def apply(self, account: Account) -> None:
            hold = account.holds.pop(self.transfer_id)
            account.closed_holds.add(self.transfer_id)
            if hold.side == DEBIT:
                account.debits_pending -= hold.amount
                account.debits_posted += hold.amount
            else:
                account.credits_pending -= hold.amount
                account.credits_posted += hold.amount

    class HoldVoided(FlopAggregate.Event):
        transfer_id: str

        def apply(self, account: Account) -> None:
            hold = account.holds.pop(self.transfer_id)
            account.closed_holds.add(self.transfer_id)
            if hold.side == DEBIT:
                account.debits_pending -= hold.amount
            else:
                account.credits_pending -= hold.amount

    allows_negative: bool
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    holds: dict[str, Hold]
    closed_holds: set[str]

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def open(cls, account_id: str, *, now_ns: int) -> Account:
        return cls._create(
            cls.Opened,
            id=account_id,
            allows_negative=is_boundary(account_id),
            timestamp=ns_to_datetime(now_ns),
        )

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        return self.balance - self.debits_pending

    def state(self) -> dict[str, object]:
        """Comparable snapshot of the account (for replay checks and reads)."""
        return {
            "id": self.id,
            "balance": self.balance,
            "debits_posted": self.debits_posted,
            "credits_posted": self.credits_posted,
            "debits_pending": self.debits_pending,
            "credits_pending": self.credits_pending,
            "holds": dict(self.holds),
            "closed_holds": set(self.closed_holds),
        }


def transfer(
    debit: Account,
    credit: Account,
    *,
    transfer_id: str,
    amount: int,
    reason: str,
    now_ns: int,
) -> None:
    """Move ``amount`` from debit to credit at once."""
    _check_amount(debit, credit, amount)
    if not debit.allows_negative and debit.available < amount:
        raise InsufficientFunds(
            f"account {debit.id} has {debit.available} available, the transfer needs {amount}",
            code=RejectionCode.EXCEEDS_AVAILABLE,
        )
    at = ns_to_datetime(now_ns)
    common = {"transfer_id": transfer_id, "amount": amount, "reason": reason, "timestamp": at}
    debit.trigger_event(Account.Debited, counterparty=credit.id, **common)
    credit.trigger_event(Account.Credited, counterparty=debit.id, **common)


def place_hold(
    debit: Account,
    credit: Account,
    *,
    transfer_id: str,
    amount: int,
    reason: str,
    now_ns: int,
) -> None:
    """Reserve ``amount`` on debit for credit, to be posted or voided later."""
    _check_amount(debit, credit, amount)
    if transfer_id in debit.holds or transfer_id in debit.closed_holds:
        raise Rejection(
            f"hold {transfer_id} already exists", code=RejectionCode.HOLD_ID_MUST_BE_UNIQUE
        )
    if not debit.allows_negative and debit.available < amount:
        raise InsufficientFunds(
            f"account {debit.id} has {debit.available} available, the hold needs {amount}",
            code=RejectionCode.EXCEEDS_AVAILABLE,
        )
    at = ns_to_datetime(now_ns)
    common = {"transfer_id": transfer_id, "amount": amount, "reason": reason, "timestamp": at}
    debit.trigger_event(Account.HoldPlaced, counterparty=credit.id, side=DEBIT, **common)
    credit.trigger_event(Account.HoldPlaced, counterparty=debit.id, side=CREDIT, **common)


def post_hold(debit: Account, credit: Account, *, transfer_id: str, now_ns: int) -> int:
    """Move the held amount; returns it. A hold is posted or voided at most once."""
    amount = _check_open_hold(debit, credit, transfer_id)
    at = ns_to_datetime(now_ns)
    debit.trigger_event(Account.HoldPosted, transfer_id=transfer_id, timestamp=at)
    credit.trigger_event(Account.HoldPosted, transfer_id=transfer_id, timestamp=at)
    return amount


def void_hold(debit: Account, credit: Account, *, transfer_id: str, now_ns: int) -> int:
    """Release the held amount back to the debit account; returns it."""
    amount = _check_open_hold(debit, credit, transfer_id)
    at = ns_to_datetime(now_ns)
    debit.trigger_event(Account.HoldVoided, transfer_id=transfer_id, timestamp=at)
    credit.trigger_event(Account.HoldVoided, transfer_id=transfer_id, timestamp=at)
    return amount


def _check_amount(debit: Account, credit: Account, amount: int) -> None:
    if amount <= 0:
        raise Rejection(
            f"amount {amount} must be positive", code=RejectionCode.AMOUNT_MUST_BE_POSITIVE
        )
    if amount > AMOUNT_MAX:
        raise Rejection(
            f"amount {amount} exceeds {AMOUNT_MAX}", code=RejectionCode.AMOUNT_EXCEEDS_MAXIMUM
        )
    if debit.id == credit.id:
        raise Rejection(
            "debit and credit are the same account", code=RejectionCode.ACCOUNTS_MUST_DIFFER
        )


def _check_open_hold(debit: Account, credit: Account, transfer_id: str) -> int:
    """The held amount, with the hold open on BOTH sides. A hold is placed on both at once,
    so one side closed and the other open is a torn view (the two accounts read around a
    concurrent post or void): refused like a closed hold, which the command bus decides again
    on fresh reads, instead of an apply failing on the missing side."""
    for account in (debit, credit):
        if transfer_id in account.closed_holds:
            raise InvalidTransition(
                f"hold {transfer_id} was already posted or voided",
                code=RejectionCode.HOLD_ALREADY_CLOSED,
            )
    hold = debit.holds.get(transfer_id)
    other = credit.holds.get(transfer_id)
    if (
        hold is None
        or other is None
        or (hold.side, hold.counterparty) != (DEBIT, credit.id)
        or (other.side, other.counterparty, other.amount) != (CREDIT, debit.id, hold.amount)
    ):
        raise NotFound(
            f"no open hold {transfer_id} from {debit.id} to {credit.id}",
            code=RejectionCode.HOLD_NOT_FOUND,
        )
    return hold.amount
