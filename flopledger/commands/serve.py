"""``flopledger serve``: run the HTTP API on uvicorn (host, port and workers from settings)."""

from __future__ import annotations

import argparse

from flopledger.settings import load_settings

APP_FACTORY = "api.bootstrap:build_app"


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

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=load_settings().log_level,
    )
    return 0
