"""Gateway payouts on LiteSVM (issue 16, item 7): a payout the chain refuses for good (dust to
an unfunded address) never holds up the next one, nor the anchor; once its last attempt has
expired it is voided and the amount goes back to its owner, with the chain's reason."""

from __future__ import annotations

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from adapters.solana.common import build_transaction
from adapters.solana.litesvm import LiteSvmGateway
from adapters.store.memory import MemoryEventStore
from domain.ledger import user_account
from domain.policy import RULES_V3, LedgerPolicy
from domain.services.bridge_service import DEPOSIT_MEMO_PREFIX, BridgeService
from domain.services.queries import get_aggregate, get_balances
from domain.withdrawal import Withdrawal, withdrawal_stream_id
from flopledger.network import LocalNetwork
from operations.bridge import BridgeLoop
from operations.sealer import Sealer
from proofs.identity import Identity

LAMPORTS = 1_000_000_000
DEPOSIT = 5 * LAMPORTS
DUST = 1
CONSUMER = Identity.from_seed(b"payout-consumer".ljust(32, b"\0"))
DUST_DESTINATION = Identity.from_seed(b"payout-dust".ljust(32, b"\0"))
DESTINATION = Identity.from_seed(b"payout-destination".ljust(32, b"\0"))


async def funded(policy: LedgerPolicy) -> tuple[LocalNetwork, LiteSvmGateway, BridgeService]:
    """A network whose consumer paid ``DEPOSIT`` into the treasury on chain (credited)."""
    net, chain = (
        await LocalNetwork.start(MemoryEventStore(), policy=policy),
        LiteSvmGateway.create(),
    )
    bridge = BridgeService(net.store, chain, net.operator, net.service, lambda: net.now_ns)
    payer = Keypair()
    chain.svm.airdrop(payer.pubkey(), DEPOSIT + LAMPORTS)
    tx = build_transaction(
        payer,
        chain.svm.latest_blockhash(),
        DEPOSIT_MEMO_PREFIX + CONSUMER.id,
        Pubkey.from_string(chain.treasury),
        DEPOSIT,
    )
    chain.submit(tx)
    assert (await bridge.credit_deposits()).credited == 1
    return net, chain, bridge


async def balance(net: LocalNetwork) -> int:
    account = (await get_balances(net.store)).get(user_account(CONSUMER.id))
    return account.balance if account else 0


async def withdraw(net: LocalNetwork, amount: int, destination: Identity) -> str:
    body = {"amount": amount, "destination": destination.id}
    return (await net.run(CONSUMER, "account.withdraw", body)).command_id


async def test_a_refused_payout_does_not_block_the_next_and_is_voided_once_expired() -> None:
    # Rules v3 had no withdrawal minimum: a dust withdrawal is on the ledger.
    net, chain, bridge = await funded(LedgerPolicy(rules_version=RULES_V3))
    dust_id = await withdraw(net, DUST, DUST_DESTINATION)
    await withdraw(net, LAMPORTS, DESTINATION)
    sealer = Sealer(net.store, net.operator, clock_ns=lambda: net.now_ns)
    sealed = await sealer.seal_once(force=True)
    assert sealed is not None

    loop = BridgeLoop(bridge)
    first = await loop.run_once()
    assert first.paid == 1 and first.anchored_size == sealed.size
    assert chain.balance(DESTINATION.id) == LAMPORTS
    assert chain.balance(DUST_DESTINATION.id) == 0
    assert await balance(net) == DEPOSIT - LAMPORTS - DUST  # not refunded while it could land

    chain.expire()  # the refused attempt can no longer land
    net.advance(1)
    second = await bridge.pay_withdrawals()
    assert second.voided == [dust_id] and second.paid == []
    assert await balance(net) == DEPOSIT - LAMPORTS
    voided = await get_aggregate(net.store, Withdrawal, withdrawal_stream_id(dust_id))
    assert voided is not None and voided.is_voided
    assert "InsufficientFundsForRent" in voided.void_reason
    assert chain.balance(DUST_DESTINATION.id) == 0

    net.advance(1)
    restarted = BridgeService(net.store, chain, net.operator, net.service, lambda: net.now_ns)
    assert await restarted.pending_withdrawals() == []
    assert await balance(net) == DEPOSIT - LAMPORTS


async def test_a_restarted_bridge_finds_the_refusal_again_and_never_voids_a_live_payout() -> None:
    net, chain, bridge = await funded(LedgerPolicy(withdrawal_min=DUST))
    dust_id = await withdraw(net, DUST, DUST_DESTINATION)
    assert (await bridge.pay_withdrawals()).refused == [dust_id]
    restarted = BridgeService(net.store, chain, net.operator, net.service, lambda: net.now_ns)
    again = await restarted.pay_withdrawals()  # sends the recorded bytes: refused again
    assert again.refused == [dust_id] and again.voided == []
    still = await restarted.pay_withdrawals()  # the attempt is live: left alone
    assert still.pending == [dust_id] and still.voided == []
    chain.expire()
    assert (await restarted.pay_withdrawals()).voided == [dust_id]
    withdrawal = await get_aggregate(net.store, Withdrawal, withdrawal_stream_id(dust_id))
    assert withdrawal is not None and len(withdrawal.attempts) == 1
    assert await balance(net) == DEPOSIT
