"""The network's rules as the log holds them, for every process that applies them.

A ``RulesCache`` reads the network stream once and then only its new records, so a service
asks it before every command at the cost of one short stream read.
"""

from __future__ import annotations

from domain.network import NETWORK_STREAM_ID, NetworkRules
from domain.ports import EventStore


class RulesCache:
    """The rules of one store, refreshed when the network stream moves."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._rules = NetworkRules()

    async def get(self) -> NetworkRules:
        for record in await self.store.read_stream(NETWORK_STREAM_ID, self._rules.version + 1):
            # Concurrent callers (an API process's first requests) read the same new records:
            # the first to come back applies them, the others skip what is applied.
            if record.version > self._rules.version:
                self._rules.add(record)
        return self._rules


async def load_network_rules(store: EventStore) -> NetworkRules:
    """The rules recorded in ``store`` (no genesis yet: ``has_genesis`` is False)."""
    return await RulesCache(store).get()
