"""Accounts: deposits (operators) and withdrawals; balances and paged entries."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import (
    ID_CHARS_MAX,
    POSITION_MAX,
    BalanceView,
    CommandAccepted,
    EntryList,
    EntryView,
)
from api.commands import run_command
from api.controllers.common import (
    COMMAND_ERRORS,
    DEFAULT_LIMIT,
    READ_ERRORS,
    Limit,
    SignedEnvelope,
    to_accepted,
)
from api.errors import ApiError
from api.state import Deps
from domain.errors import RejectionCode
from domain.ledger import Account
from domain.services.queries import get_aggregate

ACCOUNT_ID_PATTERN = "^[a-z]+(:[A-Za-z0-9-]+)?$"
VERSION_MAX = POSITION_MAX

AccountPath = Annotated[
    str,
    Parameter(
        description="account id: user:<actor>, stake:<actor>, escrow:<job>, treasury, ...",
        pattern=ACCOUNT_ID_PATTERN,
        max_length=ID_CHARS_MAX,
    ),
]
FromVersion = Annotated[int, Parameter(ge=1, le=VERSION_MAX, description="first version")]

PATH = "/v1/accounts"
DEPOSIT_ROUTE = COMMAND_ROUTES["account.deposit"]
WITHDRAW_ROUTE = COMMAND_ROUTES["account.withdraw"]


class AccountController(Controller):
    """``/v1/accounts``."""

    path = PATH
    tags = ("accounts",)

    @post(
        DEPOSIT_ROUTE.compute_handler_path(PATH),
        operation_id="deposit",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def deposit(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Credit a deposit that arrived on chain (``account.deposit``, operators)."""
        return to_accepted(await run_command(deps, request, data, DEPOSIT_ROUTE))

    @post(
        WITHDRAW_ROUTE.compute_handler_path(PATH),
        operation_id="withdraw",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def withdraw(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Withdraw from the signer's account (``account.withdraw``)."""
        return to_accepted(await run_command(deps, request, data, WITHDRAW_ROUTE))

    @get("/{account_id:str}", operation_id="getBalance", responses=READ_ERRORS)
    async def get_balance(self, deps: Deps, account_id: AccountPath) -> BalanceView:
        """An account's posted and pending balances."""
        account = await get_aggregate(deps.store, Account, account_id)
        if account is None:
            raise ApiError(RejectionCode.ACCOUNT_NOT_FOUND, f"no account {account_id}", status=404)
        return BalanceView(
            account=account.id,
            balance=account.balance,
            available=account.available,
            debits_posted=account.debits_posted,
            credits_posted=account.credits_posted,
            debits_pending=account.debits_pending,
            credits_pending=account.credits_pending,
            version=account.version,
        )

    @get("/{account_id:str}/entries", operation_id="listEntries", responses=READ_ERRORS)
    async def list_entries(
        self,
        deps: Deps,
        account_id: AccountPath,
        from_version: FromVersion = 1,
        limit: Limit = DEFAULT_LIMIT,
    ) -> EntryList:
        """The account's events from ``from_version`` on, ``limit`` at a time."""
        records = await deps.store.read_stream(account_id, from_version)
        if records and records[0].stream_type != Account.STREAM_TYPE:
            raise ApiError(
                RejectionCode.ACCOUNT_NOT_FOUND, f"{account_id} is not an account", status=404
            )
        if not records and from_version == 1:
            raise ApiError(RejectionCode.ACCOUNT_NOT_FOUND, f"no account {account_id}", status=404)
        page = records[:limit]
        items = []
        for record in page:
            data = msgspec.json.decode(record.data)
            fields = {k: data[k] for k in EntryView.__struct_fields__ if k in data}
            items.append(
                msgspec.convert(
                    {
                        **fields,
                        "version": record.version,
                        "position": record.position,
                        "event_type": record.event_type,
                    },
                    EntryView,
                )
            )
        next_version = page[-1].version + 1 if len(records) > limit else None
        return EntryList(account=account_id, items=items, next_version=next_version)
