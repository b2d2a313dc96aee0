"""The Solana gateway on LiteSVM: deposits credited exactly once, withdrawals paid exactly
once across crashes, tree heads anchored in memos and checked by the audit."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from adapters.solana.common import ChainError, build_transaction
from adapters.solana.litesvm import LiteSvmGateway
from adapters.store.memory import MemoryEventStore
from domain.ledger import user_account
from domain.policy import LedgerPolicy
from domain.ports import PreparedTransfer
from domain.services.bridge_service import DEPOSIT_MEMO_PREFIX, BridgeService
from domain.services.queries import get_aggregate, get_balances
from domain.withdrawal import Withdrawal, withdrawal_stream_id
from flopledger.network import LocalNetwork
from operations.sealer import AnchorReceipt, Sealer
from proofs.identity import Identity
from validator.audit import AuditOptions
from validator.audit_run import StoreSource, run_audit

LAMPORTS = 1_000_000_000
CONSUMER = Identity.from_seed(b"sol-consumer".ljust(32, b"\0"))
DESTINATION = Identity.from_seed(b"sol-destination".ljust(32, b"\0"))


class Crash(BaseException):
    """A process dying mid-step (not an Exception: nothing may swallow it)."""


class CrashingGateway(LiteSvmGateway):
    """Dies right before or right after sending a payout, once."""

    def __init__(self, inner: LiteSvmGateway, *, after_send: bool) -> None:
        super().__init__(inner.svm, inner.treasury_key)
        self._landed, self._incoming = inner._landed, inner._incoming
        self.chain_log, self._logged = inner.chain_log, inner._logged
        self.after_send = after_send

    async def send_prepared(self, prepared: PreparedTransfer) -> None:
        if self.after_send:
            await super().send_prepared(prepared)
        raise Crash


@pytest.fixture
def chain() -> LiteSvmGateway:
    return LiteSvmGateway.create()


@pytest.fixture
async def net() -> LocalNetwork:
    return await LocalNetwork.start(MemoryEventStore(), policy=LedgerPolicy())


def bridge_service(net: LocalNetwork, gateway: LiteSvmGateway) -> BridgeService:
    return BridgeService(net.store, gateway, net.operator, net.service, lambda: net.now_ns)


def pay_in(chain: LiteSvmGateway, payer: Keypair, amount: int, memo: str) -> str:
    chain.svm.airdrop(payer.pubkey(), 2 * LAMPORTS)
    tx = build_transaction(
        payer, chain.svm.latest_blockhash(), memo, Pubkey.from_string(chain.treasury), amount
    )
    return chain.submit(tx).signature


async def balance(net: LocalNetwork, owner: Identity) -> int:
    accounts = await get_balances(net.store)
    account = accounts.get(user_account(owner.id))
    return account.balance if account else 0


async def test_deposit_is_credited_exactly_once(chain: LiteSvmGateway, net: LocalNetwork) -> None:
    signature = pay_in(chain, Keypair(), 3 * LAMPORTS // 2, DEPOSIT_MEMO_PREFIX + CONSUMER.id)
    pay_in(chain, Keypair(), 5_000_000, "no ledger account here")
    first = await bridge_service(net, chain).credit_deposits()
    assert (first.credited, first.skipped) == (1, 1)
    net.advance(5)
    again = await bridge_service(net, chain).credit_deposits()  # a restarted gateway
    assert again.credited == 0
    assert await balance(net, CONSUMER) == 3 * LAMPORTS // 2
    records = await net.store.read_all(1, 1000)
    assert sum(signature.encode() in r.metadata for r in records if r.event_type == "Credited")


async def fund(chain: LiteSvmGateway, net: LocalNetwork) -> str:
    await net.deposit(CONSUMER, 5 * LAMPORTS)
    result = await net.run(
        CONSUMER, "account.withdraw", {"amount": LAMPORTS, "destination": DESTINATION.id}
    )
    return result.command_id


@pytest.mark.parametrize("after_send", [False, True], ids=["before-send", "after-send"])
async def test_withdrawal_crash_never_pays_twice(
    chain: LiteSvmGateway, net: LocalNetwork, after_send: bool
) -> None:
    withdrawal_id = await fund(chain, net)
    with pytest.raises(Crash):
        await bridge_service(net, CrashingGateway(chain, after_send=after_send)).pay_withdrawals()
    assert chain.balance(DESTINATION.id) == (LAMPORTS if after_send else 0)
    net.advance(1)
    restarted = bridge_service(net, chain)
    assert await restarted.pending_withdrawals() == [withdrawal_id]
    (signature,) = (await restarted.pay_withdrawals()).paid
    assert (await restarted.pay_withdrawals()).paid == []
    assert chain.balance(DESTINATION.id) == LAMPORTS
    withdrawal = await get_aggregate(net.store, Withdrawal, withdrawal_stream_id(withdrawal_id))
    assert withdrawal is not None and withdrawal.sent_signature == signature
    assert len(withdrawal.attempts) == 1
    assert await balance(net, CONSUMER) == 4 * LAMPORTS


async def test_expired_unsent_payout_is_signed_anew_and_paid_once(
    chain: LiteSvmGateway, net: LocalNetwork
) -> None:
    withdrawal_id = await fund(chain, net)
    with pytest.raises(Crash):
        await bridge_service(net, CrashingGateway(chain, after_send=False)).pay_withdrawals()
    chain.expire()
    stale = await get_aggregate(net.store, Withdrawal, withdrawal_stream_id(withdrawal_id))
    assert stale is not None
    with pytest.raises(ChainError):
        await chain.send_prepared(
            PreparedTransfer(
                stale.attempts[0].chain_signature, 10**12, stale.attempts[0].transaction
            )
        )
    await bridge_service(net, chain).pay_withdrawals()
    withdrawal = await get_aggregate(net.store, Withdrawal, withdrawal_stream_id(withdrawal_id))
    assert withdrawal is not None and len(withdrawal.attempts) == 2
    assert withdrawal.sent_signature == withdrawal.attempts[1].chain_signature
    assert chain.balance(DESTINATION.id) == LAMPORTS


async def test_tree_heads_are_anchored_and_audited_on_chain(
    chain: LiteSvmGateway, net: LocalNetwork
) -> None:
    bridge = bridge_service(net, chain)

    async def anchor(size: int, root: bytes) -> AnchorReceipt:
        signature, slot = await bridge.anchor(size, root)
        return AnchorReceipt(signature, slot)

    sealer = Sealer(net.store, net.operator, clock_ns=lambda: net.now_ns, anchor=anchor)
    pay_in(chain, Keypair(), 1_000, DEPOSIT_MEMO_PREFIX + CONSUMER.id)
    await bridge.credit_deposits()
    first = await sealer.seal_once(force=True)
    pay_in(chain, Keypair(), 2_000, DEPOSIT_MEMO_PREFIX + CONSUMER.id)
    await bridge.credit_deposits()
    second = await sealer.seal_once(force=True)
    assert first is not None and second is not None and second.anchor is not None
    memo = await chain.get_memo(second.anchor.chain_signature)
    assert memo is not None and memo.memo.endswith(second.root.hex())
    options = AuditOptions(trusted_operators=frozenset(net.policy.operators))
    report = await run_audit(StoreSource(net.store, "memory:"), options, chain=chain)
    assert report.ok, report.failure
    assert report.checks["anchor"].count == 6  # 2 anchors: the log's 4 checks, 2 found on chain
    forged = LiteSvmGateway.create()  # another chain: the anchors are not there
    report = await run_audit(StoreSource(net.store, "memory:"), options, chain=forged)
    assert report.failure is not None and report.failure.check == "anchor"
