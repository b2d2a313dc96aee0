"""Chain credits (issue 16, item 3; rules v4): each Solana transaction credits the ledger once.

A deposit names the transaction that paid it (``chain_reference``); the ledger keeps one
stream per reference, so a second deposit naming the same transaction is refused before any
money moves (``deposit_chain_reference_reused``). The audit checks each reference against the
chain itself (``validator.audit_chain``); this makes the ledger refuse what the audit would
only catch afterwards.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from domain.events import FlopAggregate, ns_to_datetime

CHAIN_CREDIT_STREAM_TYPE = "chain_credit"


def compute_chain_credit_id(chain_reference: str) -> str:
    """The stream of one chain transaction's credit (hashed: references are user text)."""
    return "chain-credit:" + hashlib.sha256(chain_reference.encode()).hexdigest()


class ChainCredit(FlopAggregate):
    """The credit of one chain transaction: to which account, how much."""

    STREAM_TYPE: ClassVar[str] = CHAIN_CREDIT_STREAM_TYPE

    class ChainCreditRecorded(FlopAggregate.Created):
        chain_reference: str
        account: str
        amount: int

        def apply(self, credit: ChainCredit) -> None:
            credit.chain_reference, credit.account, credit.amount = (
                self.chain_reference,
                self.account,
                self.amount,
            )

    chain_reference: str
    account: str
    amount: int

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def record(
        cls, credit_id: str, *, chain_reference: str, account: str, amount: int, now_ns: int
    ) -> ChainCredit:
        """The credit under ``credit_id`` (``compute_chain_credit_id`` of the reference)."""
        return cls._create(
            cls.ChainCreditRecorded,
            id=credit_id,
            chain_reference=chain_reference,
            account=account,
            amount=amount,
            timestamp=ns_to_datetime(now_ns),
        )
