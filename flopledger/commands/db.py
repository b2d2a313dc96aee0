"""``flopledger db``: database administration; ``db migrate`` brings the event store schema up.

Migrations are versioned and idempotent: running ``migrate`` again applies only what is
missing, and several processes may run it at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from adapters.store.factory import migrate_event_store
from domain.errors import StoreUnavailable
from flopledger.settings import SettingsError, get_settings

EXIT_OK = 0
EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``db`` and its subcommands to the CLI."""
    db = subparsers.add_parser("db", help="database administration (migrations)")
    db.set_defaults(func=lambda _args: _print_help(db))
    commands = db.add_subparsers(dest="db_command", metavar="DB_COMMAND")
    migrate = commands.add_parser(
        "migrate", help="create or upgrade the event store schema (idempotent)"
    )
    migrate.add_argument(
        "--url",
        help="event store URL (default: FLOP_DATABASE_URL, else SQLite under FLOP_DATA_DIR)",
    )
    migrate.add_argument("--schema", default="public", help="PostgreSQL schema (default public)")
    migrate.set_defaults(func=handle_migrate)


def handle_migrate(args: argparse.Namespace) -> int:
    """Run the migrations; print what was done; 1 with a message when it failed."""
    try:
        url = args.url or get_settings().event_store_url
        report = asyncio.run(migrate_event_store(url, schema=args.schema))
    except (SettingsError, ValueError, StoreUnavailable) as exc:
        print(f"flopledger db migrate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(report)
    return EXIT_OK


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_FAILED
