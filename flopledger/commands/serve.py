"""``flopledger serve``: run the HTTP API on uvicorn (host, port and workers from settings).

Unless ``FLOP_SEAL=0`` the process also runs the log sealer (``operations.sealer_thread``), which
signs tree heads only while it holds the store's ``sealer`` leader lock, so any number of
``serve`` processes on one store seal with one key at a time. SIGTERM stops the API
(uvicorn's graceful shutdown: requests in flight get ``GRACEFUL_SHUTDOWN_S``, then what is
still open, such as event streams that never end by themselves, is cancelled; a second
signal forces it), then the sealer under the runner's deadline (``flopledger.daemon``), and
exits 0.

Before it binds, ``serve`` makes sure the store has its genesis record: a new store gets one
from ``FLOP_OPERATOR_IDS`` and ``FLOP_POLICY_JSON``, signed by the log key
(``flopledger.genesis``); on a store that has one, the log's rules are in force and a log line
says so when the settings differ. A store with records but no genesis (written before rules
were recorded) is refused until ``flopledger db genesis`` declares its rules (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time

import structlog

from adapters.keyfile import KeyFileError, get_log_key_path, load_identity, load_or_create_identity
from flopledger.daemon import Daemon, configure_logging
from flopledger.settings import Settings, SettingsError, get_settings
from operations.sealer_thread import SealerConfig

APP_FACTORY = "api.bootstrap:build_app"
EXIT_OK = 0
EXIT_BAD_SETTINGS = 2
SHUTDOWN_DEADLINE_S = 15.0
"""For the steps after uvicorn returned (the sealer joins within its own 10 s)."""
GRACEFUL_SHUTDOWN_S = 5
"""How long uvicorn lets open requests finish at SIGTERM before it cancels them: an SSE
client would otherwise keep a replica from stopping (a rolling restart) for as long as it
stays connected."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    settings = get_settings()
    parser = subparsers.add_parser("serve", help="run the HTTP API (Litestar on uvicorn)")
    parser.add_argument("--host", default=settings.api_host, help="FLOP_API_HOST")
    parser.add_argument("--port", type=int, default=settings.api_port, help="FLOP_API_PORT")
    parser.add_argument(
        "--workers", type=int, default=settings.api_workers, help="FLOP_API_WORKERS"
    )
    parser.add_argument(
        "--completion-key",
        metavar="FILE",
        default=settings.completion_key_file,
        help="FLOP_COMPLETION_KEY_FILE: the completion signer's key (OpenAI-compatible "
        "completions; without one those routes answer 503)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from operations.sealer_thread import SealerThread

    try:
        settings = apply_completion_key(args.completion_key)
        configure_logging(settings.log_level)
        check_completion_key(settings)
        asyncio.run(prepare_store(settings))
    except SettingsError as exc:
        print(f"flopledger serve: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    # uvicorn handles the signals while it runs (first: graceful, second: forced) and
    # re-raises the one it stopped on once it has restored the runner's handler, which only
    # sets the flag: the shutdown steps (the sealer) still run.
    daemon = Daemon("serve", deadline_s=SHUTDOWN_DEADLINE_S)
    if settings.seal_enabled:
        sealer = SealerThread(build_sealer_config(settings))
        sealer.start()
        daemon.at_shutdown("sealer", sealer.stop)

    def serve(_stop: threading.Event) -> int:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        return EXIT_OK

    return daemon.run(serve)


def apply_completion_key(path: object) -> Settings:
    """The settings with ``--completion-key`` as FLOP_COMPLETION_KEY_FILE: set in the
    environment, so the app factory (and uvicorn's worker processes) read the same."""
    if path is not None and str(path) != str(get_settings().completion_key_file):
        os.environ["FLOP_COMPLETION_KEY_FILE"] = str(path)
        get_settings.cache_clear()
    return get_settings()


def check_completion_key(settings: Settings) -> None:
    """The completion signer's key can be read (SettingsError naming the file if not)."""
    path = settings.completion_key_file
    log = structlog.get_logger("flopledger.serve")
    if path is None:
        log.info("completions_disabled", reason="no FLOP_COMPLETION_KEY_FILE / --completion-key")
        return
    try:
        signer = load_identity(path)
    except (KeyFileError, OSError) as exc:
        raise SettingsError(f"FLOP_COMPLETION_KEY_FILE={path}: {exc}") from exc
    log.info("completion_signer", signer=signer.id)


def build_sealer_config(settings: Settings) -> SealerConfig:
    """The sealer's configuration from the settings (the store, the log key, FLOP_SEAL_*)."""
    return SealerConfig(
        store_url=settings.event_store_url,
        log_key_path=get_log_key_path(settings.data_dir, settings.log_key_file),
        every_records=settings.seal_every_records,
        interval_s=settings.seal_interval_s,
    )


async def prepare_store(settings: Settings) -> None:
    """Seed the genesis of a new store; say which rules are in force. SettingsError when
    the store cannot get one (the message says why)."""
    from adapters.store.factory import open_event_store
    from domain.services.ledger_service import LedgerService
    from flopledger.genesis import (
        GenesisRefused,
        build_policy,
        ensure_genesis,
        get_deposit_authority_id,
    )

    identity = load_or_create_identity(get_log_key_path(settings.data_dir, settings.log_key_file))
    seed = build_policy(
        settings, signer_id=identity.id, deposit_authority_id=get_deposit_authority_id(settings)
    )
    store = await open_event_store(settings.event_store_url)
    try:
        outcome = await ensure_genesis(LedgerService(store), identity, seed, now_ns=time.time_ns())
    except GenesisRefused as exc:
        raise SettingsError(str(exc)) from exc
    finally:
        await store.close()
    rules = outcome.rules.current
    log = structlog.get_logger("flopledger.serve")
    if outcome.created:
        log.info(
            "genesis_recorded",
            operators=list(rules.operators),
            signer=identity.id,
            log_key=rules.log_key,
            deposit_authority=rules.deposit_authority,
        )
        if not rules.deposit_authority:
            log.warning(
                "deposit_authority_unnamed",
                reason="no FLOP_DEPOSIT_AUTHORITY_ID or key file among FLOP_OPERATOR_IDS: any "
                "operator may credit deposits on this network",
            )
    elif outcome.seed_differs:
        log.warning(
            "genesis_rules_in_force",
            reason="FLOP_OPERATOR_IDS/FLOP_POLICY_JSON differ from the store's genesis; the "
            "log's rules apply (settings only seed a new store)",
            operators=list(rules.operators),
            genesis_position=outcome.rules.genesis_position,
        )
