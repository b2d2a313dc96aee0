"""The audit against the chain's own history (issue 16, items 3 and 4), on LiteSVM and
through the devnet operator's JSON-RPC subset: every deposit is backed by the transaction it
names, every payout pays what the signed withdrawal asked, and every tree head the treasury
anchored is a head of the log with its anchor record. Each attack is played with the
operator's real keys through the ledger's own commands; the audit fails naming the position."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

import domain.services.handlers_jobs as handlers_jobs
from adapters.solana.common import build_transaction
from adapters.solana.history import RpcChainHistory
from adapters.solana.litesvm import LiteSvmGateway
from adapters.store.memory import MemoryEventStore
from domain.errors import InvalidTransition
from domain.log import encode_anchor_memo
from domain.policy import SOLANA_RENT_EXEMPT_MIN_LAMPORTS
from domain.services.bridge_service import (
    DEPOSIT_MEMO_PREFIX,
    WITHDRAWAL_MEMO_PREFIX,
    BridgeService,
)
from flopledger.devnet.operator import answer_rpc
from flopledger.network import LocalNetwork
from operations.bridge import BridgeLoop
from operations.sealer import Sealer
from proofs.identity import Identity
from validator.audit import AuditOptions
from validator.audit_run import AuditReport, StoreSource, run_audit

LAMPORTS = 1_000_000_000
CONSUMER = Identity.from_seed(b"chain-consumer".ljust(32, b"\0"))
DESTINATION = Identity.from_seed(b"chain-destination".ljust(32, b"\0"))
WITHDRAWAL = 2 * SOLANA_RENT_EXEMPT_MIN_LAMPORTS


async def setup() -> tuple[LocalNetwork, LiteSvmGateway, BridgeService]:
    net, chain = await LocalNetwork.start(MemoryEventStore()), LiteSvmGateway.create()
    bridge = BridgeService(net.store, chain, net.operator, net.service, lambda: net.now_ns)
    payer = Keypair()
    chain.svm.airdrop(payer.pubkey(), 4 * LAMPORTS)
    memo = DEPOSIT_MEMO_PREFIX + CONSUMER.id
    chain.submit(
        build_transaction(
            payer, chain.svm.latest_blockhash(), memo, Pubkey.from_string(chain.treasury), LAMPORTS
        )
    )
    assert (await bridge.credit_deposits()).credited == 1
    return net, chain, bridge


async def audit(net: LocalNetwork, chain: Any) -> AuditReport:
    options = AuditOptions(trusted_operators=frozenset(net.policy.operators))
    return await run_audit(StoreSource(net.store, "memory:"), options, chain=chain)


def over_rpc(chain: LiteSvmGateway) -> RpcChainHistory:
    """The devnet's view: the operator's /rpc answers, served from the chain log."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer_rpc(chain, msgspec.json.decode(request.content)))

    return RpcChainHistory(
        "http://operator/rpc", chain.treasury, transport=httpx.MockTransport(handle)
    )


async def test_a_clean_history_passes_against_the_chain_directly_and_over_rpc() -> None:
    net, chain, bridge = await setup()
    net.advance(1)
    body = {"amount": WITHDRAWAL, "destination": DESTINATION.id}
    await net.run(CONSUMER, "account.withdraw", body)
    assert await Sealer(net.store, net.operator, clock_ns=lambda: net.now_ns).seal_once(force=True)
    outcome = await BridgeLoop(bridge).run_once()
    assert outcome.paid == 1 and outcome.anchored_size is not None
    for reader in (chain, over_rpc(chain)):
        report = await audit(net, reader)
        assert report.ok, report.failure
        assert report.checks["chain_money"].status == "passed"
        assert report.checks["chain_money"].count == 2  # one deposit, one payout


async def test_an_unbacked_mint_fails_the_audit() -> None:
    net, chain, _bridge = await setup()
    forged = await net.deposit(CONSUMER, 10 * LAMPORTS, chain_reference="5" * 88)
    report = await audit(net, over_rpc(chain))
    assert report.failure is not None and report.failure.check == "chain_money"
    assert report.failure.position == forged.first_position
    assert "unbacked mint" in report.failure.message
    assert (await audit(net, None)).checks["chain_money"].status == "skipped"


async def test_a_real_deposit_credited_twice_is_refused_and_fails_the_audit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net, chain, _bridge = await setup()
    signature = chain.chain_log[0].signature
    with pytest.raises(InvalidTransition) as refused:
        await net.deposit(CONSUMER, LAMPORTS, chain_reference=signature)
    assert refused.value.code == "deposit_chain_reference_reused"
    # A patched API that forgets which transactions it credited: the audit still finds it.
    fresh = iter(range(1_000_000))
    with monkeypatch.context() as patched:  # the operator's API, not the auditor's code
        patched.setattr(
            handlers_jobs, "compute_chain_credit_id", lambda _ref: f"chain-credit:{next(fresh)}"
        )
        again = await net.deposit(CONSUMER, LAMPORTS, chain_reference=signature)
    report = await audit(net, chain)
    assert report.failure is not None and report.failure.check == "chain_money"
    assert report.failure.position == again.first_position


async def test_a_diverted_payout_fails_the_audit() -> None:
    net, chain, _bridge = await setup()
    net.advance(1)
    body = {"amount": WITHDRAWAL, "destination": DESTINATION.id}
    withdrawal_id = (await net.run(CONSUMER, "account.withdraw", body)).command_id
    # The operator pays itself instead and records that payout as the withdrawal's.
    prepared = await chain.prepare_transfer(
        net.operator.id, WITHDRAWAL, WITHDRAWAL_MEMO_PREFIX + withdrawal_id
    )
    submit = {
        "withdrawal_id": withdrawal_id,
        "chain_signature": prepared.signature,
        "last_valid_block_height": prepared.last_valid_block_height,
    }
    await net.run(net.operator, "withdrawal.submit", submit)
    await chain.send_prepared(prepared)
    landed = await chain.get_landed(prepared.signature)
    assert landed is not None
    confirm = {
        "withdrawal_id": withdrawal_id,
        "chain_signature": landed.signature,
        "slot": landed.slot,
    }
    confirmed = await net.run(net.operator, "withdrawal.confirm", confirm)
    report = await audit(net, chain)
    assert report.failure is not None and report.failure.check == "chain_money"
    assert report.failure.position == confirmed.first_position


async def test_an_anchor_dropped_from_the_log_is_found_on_chain() -> None:
    net, chain, bridge = await setup()
    sealer = Sealer(net.store, net.operator, clock_ns=lambda: net.now_ns)
    first = await sealer.seal_once(force=True)
    assert first is not None
    await bridge.anchor(first.size, first.root)  # on chain, and no log.anchor record
    net.advance(1)
    await net.run(CONSUMER, "account.withdraw", {"amount": WITHDRAWAL})  # the log grows
    assert await sealer.seal_once(force=True)
    assert await bridge.anchor_latest_head() is not None
    report = await audit(net, chain)
    assert report.failure is not None and report.failure.check == "anchor"
    assert "dropped" in report.failure.message


async def test_a_rewritten_head_is_found_in_the_treasury_memos() -> None:
    net, chain, _bridge = await setup()
    sealed = await Sealer(net.store, net.operator, clock_ns=lambda: net.now_ns).seal_once(
        force=True
    )
    assert sealed is not None
    await chain.send_memo(encode_anchor_memo(sealed.size, bytes(32)))  # another root, same size
    report = await audit(net, chain)
    assert report.failure is not None and report.failure.check == "anchor"
    assert report.failure.position == sealed.size
    assert "rewritten" in report.failure.message
