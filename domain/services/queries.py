"""Reads over the store: aggregates by id and every account's balance."""

from __future__ import annotations

from typing import TypeVar

from domain.directory import Directory
from domain.events import FlopAggregate
from domain.ledger import Account
from domain.ports import EventStore
from domain.services.loading import load_aggregate
from domain.services.unit_of_work import ACCOUNTS_DIRECTORY

A = TypeVar("A", bound=FlopAggregate)


async def get_aggregate(store: EventStore, cls: type[A], aggregate_id: str) -> A | None:
    """The aggregate as the store holds it now (an account from its snapshot on), or None."""
    return (await load_aggregate(store, cls, aggregate_id)).aggregate


async def get_members(store: EventStore, name: str) -> list[str]:
    directory = await get_aggregate(store, Directory, Directory.stream_id(name))
    return list(directory.members) if directory else []


async def get_balances(store: EventStore) -> dict[str, Account]:
    """Every account of the ledger, by id."""
    accounts = {}
    for account_id in await get_members(store, ACCOUNTS_DIRECTORY):
        account = await get_aggregate(store, Account, account_id)
        if account is not None:
            accounts[account_id] = account
    return accounts
