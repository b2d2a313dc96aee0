"""Chain references for test deposits: under rules v4 each Solana transaction credits the
ledger once (``domain.chain_credits``), so every test deposit names a transaction of its own."""

from __future__ import annotations

import itertools

_NEXT = itertools.count(1)


def fresh_chain_reference() -> str:
    """A transaction reference no other deposit of this process names."""
    return f"test-tx-{next(_NEXT)}"
