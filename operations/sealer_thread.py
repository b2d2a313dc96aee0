"""The sealer inside ``flopledger serve``: sign tree heads while holding the leader lock.

Every API process (and every replica) may run this; only the one holding the ``sealer`` lock
beside the store (``adapters.store.leader``: an advisory lock on PostgreSQL, a file lock on
SQLite) seals, the others retry the lock every ``LOCK_RETRY_S``. The sealer signs with the
log key (``FLOP_LOG_KEY_FILE``), which must be an operator in the log's rules (the store's
genesis, ``domain.network``; until the genesis is recorded the sealer waits) and, where the
genesis names one, the log key (issue 16, item 5); when it is not, the sealer stays off and
says so once. ``SealerConfig`` carries what it needs; the
settings (``FLOP_SEAL``, ``FLOP_SEAL_EVERY_RECORDS``, ``FLOP_SEAL_INTERVAL_S``, README,
"Configuration") are read by ``flopledger serve``, which builds it.
It runs in a thread of its own with its own event loop, so it works the same whether uvicorn
runs one worker in-process or supervises several.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

import msgspec
import structlog

from adapters.keyfile import load_or_create_identity
from adapters.store.factory import open_event_store
from adapters.store.leader import LeaderLock, try_acquire_leader_lock
from domain.errors import FlopError
from domain.operator_powers import is_log_key
from domain.services.network_rules import load_network_rules
from operations.sealer import SEAL_EVERY_RECORDS, SEAL_EVERY_S, SEAL_POLL_INTERVAL_S, Sealer
from proofs.identity import Identity

SEALER_LOCK_NAME = "sealer"
LOCK_RETRY_S = 2.0
ERROR_BACKOFF_S = 2.0
STOP_DEADLINE_S = 10.0
_log = structlog.get_logger("flopledger.sealer")


class SealerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the sealer needs: its store, the log key, when to seal (the operators are the
    log's)."""

    store_url: str
    log_key_path: Path
    """The log key's file (created if absent): it signs the heads and must be an operator."""
    every_records: int = SEAL_EVERY_RECORDS
    interval_s: float = SEAL_EVERY_S


async def run_sealer_service(config: SealerConfig, stop: asyncio.Event) -> None:
    """Seal while holding the leader lock, until ``stop``; an operating error backs off."""
    identity = load_or_create_identity(config.log_key_path)
    if not await _is_log_operator(config, identity, stop):
        return
    url = config.store_url
    while not stop.is_set():
        try:
            lock = await try_acquire_leader_lock(url, SEALER_LOCK_NAME)
            if lock is not None:
                try:
                    await _seal_while_leader(config, identity, lock, stop)
                finally:
                    await lock.release()
                    _log.info("sealer_leader_released")
        except FlopError as exc:
            _log.warning("sealer_error", code=exc.code, error=exc.message)
            await _sleep(stop, ERROR_BACKOFF_S)
            continue
        await _sleep(stop, LOCK_RETRY_S)


class SealerThread:
    """``run_sealer_service`` in a thread with its own event loop; ``stop`` joins it."""

    def __init__(self, config: SealerConfig) -> None:
        self._config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="flopledger-sealer", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(STOP_DEADLINE_S)

    def stop(self, deadline_s: float = STOP_DEADLINE_S) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(deadline_s)
        if self._thread.is_alive():
            _log.warning("sealer_stop_timeout", deadline_s=deadline_s)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await run_sealer_service(self._config, self._stop)


async def _seal_while_leader(
    config: SealerConfig,
    identity: Identity,
    lock: LeaderLock,
    stop: asyncio.Event,
) -> None:
    store = await open_event_store(config.store_url)
    try:
        sealer = Sealer(
            store,
            identity,
            clock_ns=time.time_ns,
            every_records=config.every_records,
            every_s=config.interval_s,
        )
        _log.info(
            "sealer_leader_acquired",
            every_records=config.every_records,
            interval_s=config.interval_s,
        )
        poll_s = min(SEAL_POLL_INTERVAL_S, config.interval_s)
        while not stop.is_set() and await lock.is_held():
            await sealer.seal_once()
            await _sleep(stop, poll_s)
    finally:
        await store.close()


async def _is_log_operator(config: SealerConfig, identity: Identity, stop: asyncio.Event) -> bool:
    """Whether the log key is an operator in the log's rules, once the store has its genesis
    (waited for, as ``serve`` writes it); False (said once) when it is not, or on ``stop``."""
    waited = False
    while not stop.is_set():
        try:
            store = await open_event_store(config.store_url)
            try:
                rules = await load_network_rules(store)
            finally:
                await store.close()
        except FlopError as exc:
            _log.warning("sealer_error", code=exc.code, error=exc.message)
            await _sleep(stop, ERROR_BACKOFF_S)
            continue
        if rules.has_genesis:
            if identity.id not in rules.current.operators:
                reason = "the log key is not an operator in the log's rules"
            elif not is_log_key(rules.current, identity.id):  # issue 16, item 5
                reason = f"the genesis names another log key ({rules.current.log_key})"
            else:
                return True
            _log.warning("sealer_off", reason=reason, log_key=identity.id)
            return False
        if not waited:
            _log.info("sealer_waiting_for_genesis")
            waited = True
        await _sleep(stop, LOCK_RETRY_S)
    return False


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
