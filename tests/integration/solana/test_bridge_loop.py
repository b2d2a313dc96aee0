"""The gateway loop (``flopledger gateway``) on LiteSVM: each pass credits new deposits once,
pays the withdrawal outbox once, anchors the latest tree head once; the CLI runs a pass."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from adapters.solana.common import build_transaction
from adapters.solana.litesvm import LiteSvmGateway
from adapters.store.factory import open_event_store
from adapters.store.leader import try_acquire_leader_lock
from adapters.store.memory import MemoryEventStore
from domain.ledger import user_account
from domain.log import LOG_STREAM_ID, Log, decode_anchor_memo
from domain.policy import LedgerPolicy
from domain.services.bridge_service import DEPOSIT_MEMO_PREFIX, BridgeService
from domain.services.queries import get_aggregate, get_balances
from flopledger.network import LocalNetwork
from operations.bridge import GATEWAY_LOCK_NAME, BridgeLoop
from operations.sealer import Sealer
from proofs.identity import Identity
from validator.audit import AuditOptions
from validator.audit_run import StoreSource, run_audit

LAMPORTS = 1_000_000_000
CONSUMER = Identity.from_seed(b"loop-consumer".ljust(32, b"\0"))
DESTINATION = Identity.from_seed(b"loop-destination".ljust(32, b"\0"))
LOOP_WAIT_S = 10.0
CLI_TIMEOUT_S = 60


def pay_in(chain: LiteSvmGateway, amount: int) -> str:
    payer = Keypair()
    chain.svm.airdrop(payer.pubkey(), amount + LAMPORTS)
    memo = DEPOSIT_MEMO_PREFIX + CONSUMER.id
    tx = build_transaction(
        payer, chain.svm.latest_blockhash(), memo, Pubkey.from_string(chain.treasury), amount
    )
    return chain.submit(tx).signature


async def user_balance(net: LocalNetwork, owner: Identity) -> int:
    account = (await get_balances(net.store)).get(user_account(owner.id))
    return account.balance if account else 0


def make_loop(net: LocalNetwork, chain: LiteSvmGateway) -> BridgeLoop:
    return BridgeLoop(
        BridgeService(net.store, chain, net.operator, net.service, lambda: net.now_ns)
    )


async def test_each_pass_credits_pays_and_anchors_once() -> None:
    net, chain = await LocalNetwork.start(MemoryEventStore()), LiteSvmGateway.create()
    loop = make_loop(net, chain)
    pay_in(chain, 3 * LAMPORTS)
    first = await loop.run_once()
    assert (first.credited, first.paid, first.anchored_size) == (1, 0, None)
    assert await user_balance(net, CONSUMER) == 3 * LAMPORTS

    net.advance(1)
    await net.run(CONSUMER, "account.withdraw", {"amount": LAMPORTS, "destination": DESTINATION.id})
    sealer = Sealer(net.store, net.operator, clock_ns=lambda: net.now_ns)
    sealed = await sealer.seal_once(force=True)
    assert sealed is not None
    second = await loop.run_once()
    assert (second.credited, second.paid, second.anchored_size) == (0, 1, sealed.size)
    assert chain.balance(DESTINATION.id) == LAMPORTS

    net.advance(1)
    third = await loop.run_once()  # a restarted loop would find the same: nothing to do
    assert (third.credited, third.paid, third.anchored_size) == (0, 0, None)
    assert chain.balance(DESTINATION.id) == LAMPORTS
    assert await user_balance(net, CONSUMER) == 2 * LAMPORTS

    log = await get_aggregate(net.store, Log, LOG_STREAM_ID)
    assert log is not None and log.latest is not None
    memo = await chain.get_memo(log.latest.anchor_signature)
    assert memo is not None and decode_anchor_memo(memo.memo) == (sealed.size, sealed.root)
    options = AuditOptions(trusted_operators=frozenset(net.policy.operators))
    report = await run_audit(StoreSource(net.store, "memory:"), options, chain=chain)
    assert report.ok, report.failure
    assert report.checks["anchor"].count >= 1


async def test_the_loop_runs_until_stopped() -> None:
    net, chain = await LocalNetwork.start(MemoryEventStore()), LiteSvmGateway.create()
    loop = make_loop(net, chain)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop, interval_s=0.02))
    pay_in(chain, LAMPORTS)
    pay_in(chain, 2 * LAMPORTS)
    deadline = asyncio.get_running_loop().time() + LOOP_WAIT_S
    while loop.credited < 2:
        assert asyncio.get_running_loop().time() < deadline, "the loop credited nothing"
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, LOOP_WAIT_S)
    assert await user_balance(net, CONSUMER) == 3 * LAMPORTS


async def _sealed_store(tmp_path: Path) -> tuple[Path, str, str, int]:
    """A SQLite store with one deposit and a sealed head: its operator's key file, the store's
    URL, the operator's id and the sealed size."""
    key_file = tmp_path / "log_key.hex"
    operator = Identity.from_seed(b"gateway-operator".ljust(32, b"\0"))
    key_file.write_text(operator.seed().hex() + "\n")
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    store = await open_event_store(url)
    net = LocalNetwork.create(store, operator=operator)
    await net.deposit(CONSUMER, 100)
    sealed = await Sealer(store, operator, clock_ns=lambda: net.now_ns).seal_once(force=True)
    assert sealed is not None
    await store.close()
    return key_file, url, operator.id, sealed.size


async def test_cli_runs_one_pass_and_anchors_the_latest_head(tmp_path: Path) -> None:
    key_file, url, operator_id, sealed_size = await _sealed_store(tmp_path)
    env = {
        **os.environ,
        "FLOP_DATA_DIR": str(tmp_path / "data"),
        "FLOP_OPERATOR_IDS": operator_id,
        "FLOP_DEPOSIT_AUTHORITY_KEY_FILE": str(key_file),  # the gateway's key (issue 16, 5)
    }
    env.pop("FLOP_SOLANA_RPC", None)
    args = ["gateway", "--store-url", url, "--once"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "flopledger.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"anchored {sealed_size}" in done.stdout
    store = await open_event_store(url)
    try:
        log = await get_aggregate(store, Log, LOG_STREAM_ID)
        assert log is not None and log.latest is not None and log.latest.anchor_signature
    finally:
        await store.close()


async def test_a_credited_deposit_is_not_tried_again_by_the_same_loop() -> None:
    net, chain = await LocalNetwork.start(MemoryEventStore()), LiteSvmGateway.create()
    loop = make_loop(net, chain)
    pay_in(chain, LAMPORTS)
    assert (await loop.run_once()).credited == 1
    executed: list[str] = []
    inner = loop.service.service.execute

    async def counting(envelope: Any, **kwargs: Any) -> Any:
        executed.append(envelope.kind)
        return await inner(envelope, **kwargs)

    loop.service.service.execute = counting  # type: ignore[method-assign]
    assert (await loop.run_once()).credited == 0
    assert "account.deposit" not in executed


async def test_a_second_gateway_does_nothing_while_another_holds_the_lock(tmp_path: Path) -> None:
    key_file, url, operator_id, _ = await _sealed_store(tmp_path)
    env = {
        **os.environ,
        "FLOP_DATA_DIR": str(tmp_path / "data"),
        "FLOP_OPERATOR_IDS": operator_id,
        "FLOP_DEPOSIT_AUTHORITY_KEY_FILE": str(key_file),  # the gateway's key (issue 16, 5)
    }
    env.pop("FLOP_SOLANA_RPC", None)
    held = await try_acquire_leader_lock(url, GATEWAY_LOCK_NAME)
    assert held is not None
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "flopledger.cli", "gateway", "--store-url", url, "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
    finally:
        await held.release()
    assert done.returncode == 1 and "another gateway holds" in done.stderr
    store = await open_event_store(url)
    try:
        log = await get_aggregate(store, Log, LOG_STREAM_ID)
        assert log is not None and log.latest is not None and not log.latest.anchor_signature
    finally:
        await store.close()


async def test_the_gateway_runs_only_as_the_deposit_authority_the_genesis_names(
    tmp_path: Path,
) -> None:
    # Issue 16, item 5: the log key is an operator, but the genesis names another key to
    # credit deposits; a gateway given the log key refuses to start and names the right one.
    log_key = Identity.from_seed(b"gateway-log-key".ljust(32, b"\0"))
    authority = Identity.from_seed(b"gateway-deposit-authority".ljust(32, b"\0"))
    key_file = tmp_path / "log_key.hex"
    key_file.write_text(log_key.seed().hex() + "\n")
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    store = await open_event_store(url)
    policy = LedgerPolicy(
        operators=(log_key.id, authority.id), log_key=log_key.id, deposit_authority=authority.id
    )
    await LocalNetwork.start(store, policy=policy, operator=log_key)
    await store.close()
    env = {**os.environ, "FLOP_DATA_DIR": str(tmp_path / "data")}
    env.pop("FLOP_SOLANA_RPC", None)
    argv = ["gateway", "--store-url", url, "--once", "--key-file", str(key_file)]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "flopledger.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 1
    assert "not the deposit authority" in done.stderr and authority.id in done.stderr
