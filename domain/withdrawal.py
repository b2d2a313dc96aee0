"""The payout side of a withdrawal: an outbox record per ``account.withdraw`` command.

``account.withdraw`` debits the ledger at once (user -> ``external:solana``). The Solana
bridge then pays the destination. So that a crash never pays twice, it first signs the
transfer, records its signature here (``WithdrawalSubmitted``, with the block height after
which that transaction can no longer land) and only then sends it; after a crash it asks the
chain about the recorded signature and signs a new transaction only when the old one has
expired without landing. ``WithdrawalSent`` closes the withdrawal with the landed signature;
``WithdrawalVoided`` closes one whose payout the chain refused for good (issue 16, item 7):
the amount goes back to the user's account, with the chain's reason recorded.
Stream id: ``withdrawal:<command id of the account.withdraw>``.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from domain.errors import InvalidTransition, RejectionCode
from domain.events import FlopAggregate, ns_to_datetime

ATTEMPTS_MAX = 16


def withdrawal_stream_id(withdrawal_id: str) -> str:
    return f"withdrawal:{withdrawal_id}"


class Attempt(msgspec.Struct, frozen=True):
    chain_signature: str
    last_valid_block_height: int
    transaction: bytes = b""


class Withdrawal(FlopAggregate):
    """A withdrawal's payout attempts and, once landed, its Solana signature and slot."""

    STREAM_TYPE: ClassVar[str] = "withdrawal"

    class WithdrawalRequested(FlopAggregate.Created):
        withdrawal_id: str
        account_owner: str
        destination: str
        amount: int

        def apply(self, withdrawal: Withdrawal) -> None:
            withdrawal.withdrawal_id = self.withdrawal_id
            withdrawal.account_owner = self.account_owner
            withdrawal.destination = self.destination
            withdrawal.amount = self.amount
            withdrawal.attempts = []
            withdrawal.sent_signature = ""
            withdrawal.sent_slot = 0

    class WithdrawalSubmitted(FlopAggregate.Event):
        chain_signature: str
        last_valid_block_height: int
        transaction: bytes = b""

        def apply(self, withdrawal: Withdrawal) -> None:
            withdrawal.attempts.append(
                Attempt(self.chain_signature, self.last_valid_block_height, self.transaction)
            )

    class WithdrawalSent(FlopAggregate.Event):
        chain_signature: str
        slot: int

        def apply(self, withdrawal: Withdrawal) -> None:
            withdrawal.sent_signature, withdrawal.sent_slot = self.chain_signature, self.slot

    class WithdrawalVoided(FlopAggregate.Event):
        reason: str

        def apply(self, withdrawal: Withdrawal) -> None:
            withdrawal.void_reason = self.reason

    withdrawal_id: str
    account_owner: str
    destination: str
    amount: int
    attempts: list[Attempt]
    sent_signature: str
    sent_slot: int
    void_reason: str
    """Set by ``WithdrawalVoided`` only (older histories' states have no such field)."""

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def request(
        cls, withdrawal_id: str, *, account_owner: str, destination: str, amount: int, now_ns: int
    ) -> Withdrawal:
        return cls._create(
            cls.WithdrawalRequested,
            id=withdrawal_stream_id(withdrawal_id),
            withdrawal_id=withdrawal_id,
            account_owner=account_owner,
            destination=destination,
            amount=amount,
            timestamp=ns_to_datetime(now_ns),
        )

    @property
    def is_sent(self) -> bool:
        return bool(self.sent_signature)

    def submit(
        self,
        *,
        chain_signature: str,
        last_valid_block_height: int,
        transaction: bytes,
        now_ns: int,
    ) -> None:
        """Record a signed payout before it is sent (the outbox entry)."""
        self._require_open()
        if any(a.chain_signature == chain_signature for a in self.attempts):
            raise InvalidTransition(
                f"{chain_signature} is already recorded for {self.withdrawal_id}",
                code=RejectionCode.WITHDRAWAL_ATTEMPT_ALREADY_RECORDED,
            )
        if len(self.attempts) >= ATTEMPTS_MAX:
            raise InvalidTransition(
                f"withdrawal {self.withdrawal_id} has {ATTEMPTS_MAX} attempts already",
                code=RejectionCode.WITHDRAWAL_ATTEMPTS_EXHAUSTED,
            )
        self._trigger(
            self.WithdrawalSubmitted,
            now_ns,
            chain_signature=chain_signature,
            last_valid_block_height=last_valid_block_height,
            transaction=transaction,
        )

    def confirm(self, *, chain_signature: str, slot: int, now_ns: int) -> None:
        """Close the withdrawal with the attempt that landed."""
        self._require_open()
        if all(a.chain_signature != chain_signature for a in self.attempts):
            raise InvalidTransition(
                f"{chain_signature} is not a recorded attempt of {self.withdrawal_id}",
                code=RejectionCode.WITHDRAWAL_ATTEMPT_UNKNOWN,
            )
        self._trigger(self.WithdrawalSent, now_ns, chain_signature=chain_signature, slot=slot)

    @property
    def is_voided(self) -> bool:
        return bool(getattr(self, "void_reason", ""))

    def void(self, *, reason: str, now_ns: int) -> None:
        """Close a withdrawal whose payout cannot land (its caller refunds the user)."""
        self._require_open()
        self._trigger(self.WithdrawalVoided, now_ns, reason=reason)

    def _require_open(self) -> None:
        if self.is_voided:
            raise InvalidTransition(
                f"withdrawal {self.withdrawal_id} was voided: {self.void_reason}",
                code=RejectionCode.WITHDRAWAL_VOIDED,
            )
        if self.is_sent:
            raise InvalidTransition(
                f"withdrawal {self.withdrawal_id} was already paid by {self.sent_signature}",
                code=RejectionCode.WITHDRAWAL_ALREADY_SENT,
            )
