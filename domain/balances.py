"""Materialized balances: an account's balances as of a stream version, kept as a snapshot.

The sealer writes one for every account a sealed range touched (``EventStore.save_snapshot``,
stream id = account id), so readers can show balances without replaying the log. They are a
read table, never a source of truth: the audit recomputes every balance from the events and
names any snapshot that disagrees.
"""

from __future__ import annotations

import msgspec

from domain.ledger import Account


class BalanceSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    balance: int
    debits_pending: int
    credits_pending: int


def encode_balance_snapshot(account: Account) -> bytes:
    return msgspec.json.encode(
        BalanceSnapshot(account.balance, account.debits_pending, account.credits_pending)
    )


def decode_balance_snapshot(state: bytes) -> BalanceSnapshot:
    """Raises msgspec.ValidationError / DecodeError when the bytes are not a balance snapshot."""
    return msgspec.json.decode(state, type=BalanceSnapshot)
