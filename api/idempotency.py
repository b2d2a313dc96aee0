"""Idempotency-Key support: the same key with the same body gets the same response.

The ledger itself is idempotent by (actor, nonce): re-executing an envelope returns the first
outcome and writes nothing, so a retried command rebuilds an identical response in any
process. This table adds the other half, per process and bounded (LRU of
``IDEMPOTENCY_KEYS_MAX``): a key reused with a different body is refused with 409.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

IDEMPOTENCY_KEYS_MAX = 10_000


class IdempotencyTable:
    """Remembers which request body each recent Idempotency-Key was first used with."""

    def __init__(self, capacity: int = IDEMPOTENCY_KEYS_MAX) -> None:
        self.capacity = capacity
        self._bodies: OrderedDict[str, bytes] = OrderedDict()

    def is_conflicting(self, key: str, body: bytes) -> bool:
        """True when ``key`` was first used with another body (the caller answers 409)."""
        digest = hashlib.sha256(body).digest()
        known = self._bodies.get(key)
        if known is None:
            return False
        self._bodies.move_to_end(key)
        return known != digest

    def remember(self, key: str, body: bytes) -> None:
        """Bind ``key`` to ``body`` (after a command succeeded or was replayed)."""
        self._bodies[key] = hashlib.sha256(body).digest()
        self._bodies.move_to_end(key)
        while len(self._bodies) > self.capacity:
            self._bodies.popitem(last=False)
