"""``flopledger serve``: run the HTTP API on uvicorn (host, port and workers from settings).

Unless ``FLOP_SEAL=0`` the process also runs the log sealer (``operations.sealer_thread``), which
signs tree heads only while it holds the store's ``sealer`` leader lock, so any number of
``serve`` processes on one store seal with one key at a time. SIGTERM stops the API
(uvicorn's graceful shutdown), then the sealer, and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from flopledger.settings import SettingsError, load_settings

APP_FACTORY = "api.bootstrap:build_app"
EXIT_BAD_SETTINGS = 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    settings = load_settings()
    parser = subparsers.add_parser("serve", help="run the HTTP API (Litestar on uvicorn)")
    parser.add_argument("--host", default=settings.api_host, help="FLOP_API_HOST")
    parser.add_argument("--port", type=int, default=settings.api_port, help="FLOP_API_PORT")
    parser.add_argument(
        "--workers", type=int, default=settings.api_workers, help="FLOP_API_WORKERS"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from operations.sealer_thread import SealerThread, load_seal_config

    try:
        settings, seal_config = load_settings(), load_seal_config()
    except SettingsError as exc:
        print(f"flopledger serve: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    sealer = SealerThread(settings, seal_config) if seal_config.enabled else None
    # uvicorn re-raises the signal it shut down on once it has restored this handler: exit
    # through ``finally`` (stopping the sealer) instead of dying of the signal.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if sealer is not None:
        sealer.start()
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level,
        )
    finally:
        if sealer is not None:
            sealer.stop()
    return 0


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    sys.exit(0)
