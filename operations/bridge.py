"""The bridge loop: credit deposits, pay withdrawals, anchor heads, through the Solana gateway.

The *bridge* carries money and tree heads between the ledger and Solana (``BridgeService``
over the ``SolanaGateway`` port). Each pass (``BridgeLoop.run_once``) credits every deposit
to the treasury not credited yet (once per Solana signature), pays the withdrawal outbox (a
payout not landed yet is sent again on the next pass, never signed twice), and anchors the
latest signed tree head in a memo unless it is anchored. Every step is idempotent, so a
crash anywhere is repaired by the next pass of this or another process. An operating error
(chain, store) ends the pass and is retried after ``ERROR_BACKOFF_S``, as is a rejection
(logged: a human should look). A payout that fails never holds up the others
(``BridgeService.pay_withdrawals``). One gateway is active at a time: ``run_as_leader``
makes passes only while it holds the store's ``gateway`` leader lock
(``adapters.store.leader``); a standby retries the lock every ``LOCK_RETRY_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from adapters.store.leader import LeaderLock, try_acquire_leader_lock
from domain.errors import FlopError, Rejection
from domain.network import NetworkRules
from domain.operator_powers import is_deposit_authority
from domain.services.bridge_service import BridgeService

BRIDGE_INTERVAL_S = 1.0
ERROR_BACKOFF_S = 5.0
GATEWAY_LOCK_NAME = "gateway"
LOCK_RETRY_S = 2.0

_log = structlog.get_logger("flopledger.bridge")


def find_gateway_key_problem(rules: NetworkRules, key_id: str) -> str | None:
    """Why the key ``key_id`` cannot run the gateway under the log's ``rules`` (it credits
    deposits: an operator and, where the genesis names one, the deposit authority; issue 16,
    item 5), or None when it can (also before the genesis, which the ledger then enforces)."""
    if not rules.has_genesis:
        return None
    policy = rules.current
    if key_id not in policy.operators:
        return f"the gateway key {key_id} is not an operator in the log's rules"
    if not is_deposit_authority(policy, key_id):
        return (
            f"the gateway key {key_id} is not the deposit authority {policy.deposit_authority} "
            "the genesis names: give it FLOP_DEPOSIT_AUTHORITY_KEY_FILE (or --key-file)"
        )
    return None


@dataclass(frozen=True)
class PassOutcome:
    """What one pass did."""

    credited: int
    paid: int
    anchored_size: int | None


class BridgeLoop:
    """Runs ``BridgeService``'s three duties in passes until stopped."""

    def __init__(self, service: BridgeService) -> None:
        self.service = service
        self.credited = 0
        self.paid = 0
        self.anchored = 0

    async def run_once(self) -> PassOutcome:
        """One pass: deposits, then withdrawals, then the latest head's anchor."""
        deposits = await self.service.credit_deposits()
        payouts = await self.service.pay_withdrawals()
        paid = payouts.paid
        for withdrawal_id in payouts.voided:
            _log.warning("withdrawal_voided", withdrawal_id=withdrawal_id)
        for withdrawal_id in payouts.refused:
            _log.warning("payout_refused", withdrawal_id=withdrawal_id)
        for withdrawal_id, code in payouts.failed.items():
            _log.warning("payout_failed", withdrawal_id=withdrawal_id, code=code)
        anchored_size = None
        try:
            anchored = await self.service.anchor_latest_head()
        except Rejection as exc:  # e.g. another process anchored it first
            _log.info("anchor_refused", code=exc.code)
            anchored = None
        if anchored is not None:
            anchored_size, signature = anchored
            self.anchored += 1
            _log.info("log_anchored", size=anchored_size, signature=signature)
        self.credited += deposits.credited
        self.paid += len(paid)
        if deposits.credited or paid:
            _log.info("bridge_pass", credited=deposits.credited, paid=len(paid))
        return PassOutcome(deposits.credited, len(paid), anchored_size)

    async def run(
        self,
        stop: asyncio.Event,
        interval_s: float = BRIDGE_INTERVAL_S,
        *,
        lock: LeaderLock | None = None,
    ) -> None:
        """Pass after pass until ``stop`` is set (or ``lock`` is lost); an operating error
        backs off and retries."""
        while not stop.is_set() and (lock is None or await lock.is_held()):
            wait_s = interval_s
            try:
                await self.run_once()
            except FlopError as exc:
                _log.warning("bridge_pass_failed", code=exc.code, error=exc.message)
                wait_s = ERROR_BACKOFF_S
            await _sleep(stop, wait_s)

    async def run_as_leader(
        self, store_url: str, stop: asyncio.Event, interval_s: float = BRIDGE_INTERVAL_S
    ) -> None:
        """``run`` while this process holds the store's gateway lock, until ``stop``: two
        gateways never pay or anchor at once (each step is idempotent anyway)."""
        while not stop.is_set():
            try:
                lock = await try_acquire_leader_lock(store_url, GATEWAY_LOCK_NAME)
            except FlopError as exc:
                _log.warning("gateway_lock_failed", code=exc.code, error=exc.message)
                await _sleep(stop, ERROR_BACKOFF_S)
                continue
            if lock is None:
                await _sleep(stop, LOCK_RETRY_S)
                continue
            _log.info("gateway_leader_acquired")
            try:
                await self.run(stop, interval_s, lock=lock)
            finally:
                await lock.release()
                _log.info("gateway_leader_released")


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
