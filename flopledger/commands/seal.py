"""``flopledger seal``: sign tree heads of the event log every N records or T seconds.

Runs the sealer (``operations.sealer``) against the configured store (``--store-url``), signing
``log.seal`` commands with the operator key in ``--key-file`` (hex Ed25519 seed; default
``FLOP_LOG_KEY_FILE`` or ``<data dir>/log_key.hex``, created if absent; its id must be an
operator in the log's rules, ``domain.network``). ``--once`` seals one head if there is
anything new and exits. Run one sealer at a time. The first SIGINT/SIGTERM stops it after the
head in hand, a second exits at once (``flopledger.daemon``). Exit status: 0 stopped cleanly,
1 operating error or rejection, 130 forced by a second signal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from adapters.keyfile import get_log_key_path, load_or_create_identity
from adapters.store.factory import open_event_store
from domain.errors import FlopError
from flopledger.daemon import AsyncDaemon
from flopledger.settings import get_settings
from operations.sealer import SEAL_EVERY_RECORDS, SEAL_EVERY_S, Sealer

EXIT_OK = 0
EXIT_ERROR = 1


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "seal",
        help="sign tree heads of the log every N records or T seconds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store-url", help="event store URL (default: from the settings)")
    parser.add_argument("--key-file", help="hex Ed25519 seed of the sealer's operator key")
    parser.add_argument("--every-records", type=int, default=SEAL_EVERY_RECORDS)
    parser.add_argument("--every-s", type=float, default=SEAL_EVERY_S)
    parser.add_argument("--once", action="store_true", help="seal at most one head and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    daemon = AsyncDaemon("sealer")
    try:
        return daemon.run(lambda stop: _main(args, daemon, stop))
    except FlopError as exc:
        print(f"flopledger seal: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR


async def _main(args: argparse.Namespace, daemon: AsyncDaemon, stop: asyncio.Event) -> int:
    settings = get_settings()
    key_path = Path(args.key_file) if args.key_file else None
    identity = load_or_create_identity(
        key_path or get_log_key_path(settings.data_dir, settings.log_key_file)
    )
    store = await open_event_store(args.store_url or settings.event_store_url)
    daemon.at_shutdown("store", store.close)
    sealer = Sealer(
        store,
        identity,
        clock_ns=time.time_ns,
        every_records=args.every_records,
        every_s=args.every_s,
    )
    if args.once:
        result = await sealer.seal_once(force=True)
        print("nothing new to seal" if result is None else f"sealed size {result.size}")
        return EXIT_OK
    await sealer.run(stop)
    return EXIT_OK
