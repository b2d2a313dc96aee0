"""The sealer inside ``flopledger serve``: sign tree heads while holding the leader lock.

Every API process (and every replica) may run this; only the one holding the ``sealer`` lock
beside the store (``adapters.store.leader``: an advisory lock on PostgreSQL, a file lock on
SQLite) seals, the others retry the lock every ``LOCK_RETRY_S``. The sealer signs with the
log key (``FLOP_LOG_KEY_FILE``), which must be an operator (``FLOP_OPERATOR_IDS``); when it
is not, the sealer stays off and says so once. Configured by ``FLOP_SEAL`` (``0`` turns it
off), ``FLOP_SEAL_EVERY_RECORDS`` and ``FLOP_SEAL_INTERVAL_S`` (README, "Configuration").
It runs in a thread of its own with its own event loop, so it works the same whether uvicorn
runs one worker in-process or supervises several.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Mapping

import msgspec
import structlog

from adapters.keyfile import get_log_key_path, load_or_create_identity
from adapters.store.factory import open_event_store
from adapters.store.leader import LeaderLock, try_acquire_leader_lock
from domain.errors import FlopError
from domain.policy import LedgerPolicy
from flopledger.settings import Settings, SettingsError
from operations.sealer import SEAL_EVERY_RECORDS, SEAL_EVERY_S, SEAL_POLL_INTERVAL_S, Sealer
from proofs.identity import Identity

SEALER_LOCK_NAME = "sealer"
LOCK_RETRY_S = 2.0
ERROR_BACKOFF_S = 2.0
STOP_DEADLINE_S = 10.0
SEAL_EVERY_RECORDS_MAX = 10_000_000
SEAL_INTERVAL_S_MIN = 0.05
SEAL_INTERVAL_S_MAX = 86_400.0

_log = structlog.get_logger("flopledger.sealer")


class SealConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``FLOP_SEAL``, ``FLOP_SEAL_EVERY_RECORDS``, ``FLOP_SEAL_INTERVAL_S``."""

    enabled: bool = True
    every_records: int = SEAL_EVERY_RECORDS
    interval_s: float = SEAL_EVERY_S


def load_seal_config(environ: Mapping[str, str] | None = None) -> SealConfig:
    """The sealer's settings from the environment; SettingsError names a bad variable."""
    env = os.environ if environ is None else environ
    enabled = env.get("FLOP_SEAL", "1").strip().lower()
    if enabled not in {"0", "1", "true", "false", "yes", "no", "on", "off"}:
        raise SettingsError(f"FLOP_SEAL={enabled!r}: use 1 or 0")
    every_records = _get_number(env, "FLOP_SEAL_EVERY_RECORDS", SEAL_EVERY_RECORDS, int)
    if not 1 <= every_records <= SEAL_EVERY_RECORDS_MAX:
        raise SettingsError(
            f"FLOP_SEAL_EVERY_RECORDS={every_records}: expected 1..{SEAL_EVERY_RECORDS_MAX}"
        )
    interval_s = _get_number(env, "FLOP_SEAL_INTERVAL_S", SEAL_EVERY_S, float)
    if not SEAL_INTERVAL_S_MIN <= interval_s <= SEAL_INTERVAL_S_MAX:
        raise SettingsError(
            f"FLOP_SEAL_INTERVAL_S={interval_s}: expected "
            f"{SEAL_INTERVAL_S_MIN}..{SEAL_INTERVAL_S_MAX}"
        )
    return SealConfig(
        enabled=enabled in {"1", "true", "yes", "on"},
        every_records=int(every_records),
        interval_s=float(interval_s),
    )


def get_log_identity(settings: Settings) -> Identity:
    """The sealer's identity: the log key (created under the data dir if absent)."""
    return load_or_create_identity(get_log_key_path(settings.data_dir, settings.log_key_file))


async def run_sealer_service(settings: Settings, config: SealConfig, stop: asyncio.Event) -> None:
    """Seal while holding the leader lock, until ``stop``; an operating error backs off."""
    identity = get_log_identity(settings)
    if identity.id not in settings.operator_ids:
        _log.warning(
            "sealer_off", reason="the log key is not in FLOP_OPERATOR_IDS", log_key=identity.id
        )
        return
    url = settings.event_store_url
    while not stop.is_set():
        try:
            lock = await try_acquire_leader_lock(url, SEALER_LOCK_NAME)
            if lock is not None:
                try:
                    await _seal_while_leader(settings, config, identity, lock, stop)
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

    def __init__(self, settings: Settings, config: SealConfig) -> None:
        self._settings, self._config = settings, config
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
        await run_sealer_service(self._settings, self._config, self._stop)


async def _seal_while_leader(
    settings: Settings,
    config: SealConfig,
    identity: Identity,
    lock: LeaderLock,
    stop: asyncio.Event,
) -> None:
    store = await open_event_store(settings.event_store_url)
    try:
        sealer = Sealer(
            store,
            identity,
            policy=LedgerPolicy(operators=settings.operator_ids),
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


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _get_number(env: Mapping[str, str], name: str, default: float, kind: type) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value: float = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    return value
