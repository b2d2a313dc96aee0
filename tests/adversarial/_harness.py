"""What the attack tests share: a network on the memory store, driven through the command bus
with valid keys (``LocalNetwork``), and the ledger's money as the attacker leaves it."""

from __future__ import annotations

from adapters.store.memory import MemoryEventStore
from domain.policy import SECOND_NS, LedgerPolicy
from domain.services.queries import get_balances
from flopledger.network import LocalNetwork

POLICY = LedgerPolicy(
    node_stake_min=1_000,
    validator_stake_min=500,
    verdict_commit_window_ns=10 * SECOND_NS,
    verdict_reveal_window_ns=10 * SECOND_NS,
)
LOG_FEE = POLICY.log_fee
"""What each stake.bond and stake.unbond pays under rules v4 (issue 16, item 8): an actor that
bonds or unbonds keeps it liquid beside its stake."""


async def start_network() -> LocalNetwork:
    return await LocalNetwork.start(MemoryEventStore(), policy=POLICY)


async def get_balance(net: LocalNetwork, account_id: str) -> int:
    accounts = await get_balances(net.store)
    return accounts[account_id].balance if account_id in accounts else 0


async def get_money_total(net: LocalNetwork) -> int:
    """The sum of every account's balance: zero when no money was made or lost."""
    return sum(account.balance for account in (await get_balances(net.store)).values())
