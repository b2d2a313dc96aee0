"""The ledger's gateway rules of rules v4 (issue 16, items 3 and 7): a withdrawal at least
``withdrawal_min`` (Solana's rent-exempt minimum), a deposit naming its Solana transaction.
Records written under older rules keep what those rules allowed."""

from __future__ import annotations

import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection, RejectionCode
from domain.policy import RULES_V3, SOLANA_RENT_EXEMPT_MIN_LAMPORTS, LedgerPolicy
from flopledger.network import LocalNetwork
from proofs.identity import Identity

CONSUMER = Identity.from_seed(b"rules-consumer".ljust(32, b"\0"))
FUNDS = 10 * SOLANA_RENT_EXEMPT_MIN_LAMPORTS


async def network(policy: LedgerPolicy) -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=policy)
    await net.deposit(CONSUMER, FUNDS, chain_reference="tx-1")
    return net


def test_the_default_minimum_is_the_rent_exempt_minimum() -> None:
    assert LedgerPolicy().withdrawal_min == 890_880


async def test_a_withdrawal_below_the_minimum_is_refused_and_one_at_it_accepted() -> None:
    net = await network(LedgerPolicy())
    minimum = net.policy.withdrawal_min
    head = await net.store.head()
    with pytest.raises(Rejection) as refused:
        await net.run(CONSUMER, "account.withdraw", {"amount": minimum - 1})
    assert refused.value.code == RejectionCode.WITHDRAWAL_BELOW_MINIMUM
    assert await net.store.head() == head
    await net.run(CONSUMER, "account.withdraw", {"amount": minimum})


async def test_rules_v3_keep_accepting_small_withdrawals() -> None:
    net = await network(LedgerPolicy(rules_version=RULES_V3))
    await net.run(CONSUMER, "account.withdraw", {"amount": 1})


async def test_a_deposit_without_a_chain_reference_is_refused_under_rules_v4() -> None:
    net = await network(LedgerPolicy())
    head = await net.store.head()
    with pytest.raises(Rejection) as refused:
        await net.run(net.operator, "account.deposit", {"account_owner": CONSUMER.id, "amount": 5})
    assert refused.value.code == RejectionCode.DEPOSIT_CHAIN_REFERENCE_REQUIRED
    assert await net.store.head() == head


async def test_rules_v3_keep_accepting_deposits_without_a_chain_reference() -> None:
    net = await network(LedgerPolicy(rules_version=RULES_V3))
    await net.run(net.operator, "account.deposit", {"account_owner": CONSUMER.id, "amount": 5})
