"""Voiding a withdrawal (issue 16, item 7) gives money back: only an operator may, only a
withdrawal whose payout is not paid, only once, and only to its owner for its amount."""

from __future__ import annotations

import pytest

from domain.errors import Rejection, RejectionCode, Unauthorized
from domain.ledger import user_account
from domain.policy import SOLANA_RENT_EXEMPT_MIN_LAMPORTS
from flopledger.network import LocalNetwork
from proofs.identity import Identity
from tests.adversarial._harness import get_balance, get_money_total, start_network

OWNER = Identity.from_seed(b"void-owner".ljust(32, b"\0"))
THIEF = Identity.from_seed(b"void-thief".ljust(32, b"\0"))
FUNDS = 4 * SOLANA_RENT_EXEMPT_MIN_LAMPORTS
AMOUNT = 2 * SOLANA_RENT_EXEMPT_MIN_LAMPORTS
SIGNATURE = "5" * 88


async def submitted_withdrawal(net: LocalNetwork) -> str:
    await net.deposit(OWNER, FUNDS)
    withdrawal_id = (await net.run(OWNER, "account.withdraw", {"amount": AMOUNT})).command_id
    body = {
        "withdrawal_id": withdrawal_id,
        "chain_signature": SIGNATURE,
        "last_valid_block_height": 9,
    }
    await net.run(net.operator, "withdrawal.submit", body)
    return withdrawal_id


async def test_only_an_operator_voids_and_only_once() -> None:
    net = await start_network()
    withdrawal_id = await submitted_withdrawal(net)
    void = {"withdrawal_id": withdrawal_id, "reason": "refused"}
    with pytest.raises(Unauthorized):
        await net.run(OWNER, "withdrawal.void", void)
    await net.run(net.operator, "withdrawal.void", void)
    assert await get_balance(net, user_account(OWNER.id)) == FUNDS
    with pytest.raises(Rejection) as again:
        await net.run(net.operator, "withdrawal.void", {**void, "reason": "twice"})
    assert again.value.code == RejectionCode.WITHDRAWAL_VOIDED
    assert await get_balance(net, user_account(OWNER.id)) == FUNDS
    assert await get_money_total(net) == 0
    confirm = {"withdrawal_id": withdrawal_id, "chain_signature": SIGNATURE, "slot": 3}
    with pytest.raises(Rejection) as late:
        await net.run(net.operator, "withdrawal.confirm", confirm)
    assert late.value.code == RejectionCode.WITHDRAWAL_VOIDED


async def test_a_paid_withdrawal_cannot_be_voided_into_a_second_payment() -> None:
    net = await start_network()
    withdrawal_id = await submitted_withdrawal(net)
    confirm = {"withdrawal_id": withdrawal_id, "chain_signature": SIGNATURE, "slot": 3}
    await net.run(net.operator, "withdrawal.confirm", confirm)
    with pytest.raises(Rejection) as refused:
        await net.run(
            net.operator, "withdrawal.void", {"withdrawal_id": withdrawal_id, "reason": "x"}
        )
    assert refused.value.code == RejectionCode.WITHDRAWAL_ALREADY_SENT
    assert await get_balance(net, user_account(OWNER.id)) == FUNDS - AMOUNT
