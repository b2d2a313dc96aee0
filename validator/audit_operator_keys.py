"""The audit's own check of the operator keys the genesis names (issue 16, item 5; rules v4).

Where the policy in force at a record's position names them, every tree head
(``TreeHeadSigned``, caused by ``log.seal``) is signed by ``LedgerPolicy.log_key`` and every
deposit (``account.deposit`` debiting the boundary account ``external:solana``, money
entering the ledger) by ``LedgerPolicy.deposit_authority``. The ledger refuses anything else
(``domain.operator_powers``); the audit judges the stored history on its own, so a history
written by a ledger that skipped the rule (or edited afterwards and re-chained) fails here,
under the ``authorization`` check. A policy that names neither key, and rules before v4,
keep the older rule (any operator), as the ledger did.
"""

from __future__ import annotations

from typing import Any

from domain.ledger import BOUNDARY_ACCOUNT
from domain.operator_powers import is_deposit_authority, is_log_key
from domain.policy import LedgerPolicy

TREE_HEAD_EVENT = ("log", "TreeHeadSigned")
DEPOSIT_KIND = "account.deposit"


def find_operator_key_violation(
    policy: LedgerPolicy | None,
    kind: str,
    actor: str,
    stream_type: str,
    stream_id: str,
    event_type: str,
    data: dict[str, Any],
) -> str | None:
    """Why ``actor``'s ``kind`` may not cause this event under the keys ``policy`` names, or
    None when it may (``policy`` None: before a late genesis, so before rules v4)."""
    if policy is None:
        return None
    if (stream_type, event_type) == TREE_HEAD_EVENT and not is_log_key(policy, actor):
        return (
            f"tree head of size {data.get('size')} signed by {actor}, not by the log key "
            f"{policy.log_key} the genesis names (log_key_only)"
        )
    if (
        kind == DEPOSIT_KIND
        and stream_type == "account"
        and stream_id == BOUNDARY_ACCOUNT
        and _is_debit(event_type, data)
        and not is_deposit_authority(policy, actor)
    ):
        return (
            f"deposit of {data.get('amount')} across {BOUNDARY_ACCOUNT} credited by {actor}, not "
            f"by the deposit authority {policy.deposit_authority} the genesis names "
            "(deposit_authority_only)"
        )
    return None


def _is_debit(event_type: str, data: dict[str, Any]) -> bool:
    return event_type == "Debited" or (event_type == "HoldPlaced" and data.get("side") == "debit")
