"""``flopledger db``: database administration.

``db migrate`` brings the event store schema up. Migrations are versioned and idempotent:
running ``migrate`` again applies only what is missing, and several processes may run it at
once.

``db genesis`` records the network's rules in a store that has none: the operators
(``--operator``, default ``FLOP_OPERATOR_IDS``, else the log key) and the policy
(``FLOP_POLICY_JSON`` over the defaults), signed by the log key (``--key-file``, default
``FLOP_LOG_KEY_FILE`` or ``<data dir>/log_key.hex``), which must be one of the operators. It
names the signer the log key and ``--deposit-authority`` (default ``FLOP_DEPOSIT_AUTHORITY_ID``,
else the key in ``FLOP_DEPOSIT_AUTHORITY_KEY_FILE``) the deposit authority (issue 16, item 5);
a late genesis names only a ``--deposit-authority`` given (its records predate the keys). On
a store written before rules were recorded it declares the rules that governed its records
so far; the audit then checks that history against them (every operator-only command must
have been signed by a declared operator). A store that has a genesis is left as it is.

``db rules`` prints the operators and policy in force (from the log). With ``--policy-json``
(``LedgerPolicy`` fields to change, as in ``FLOP_POLICY_JSON``) or ``--operator`` (the new
operator set, repeatable) it records a rule change instead, signed by the ``--key-file``
operator key; the change governs the records after its own.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from adapters.store.factory import migrate_event_store
from domain.errors import FlopError, StoreUnavailable
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
    genesis = commands.add_parser(
        "genesis", help="record the network's operators and policy in a store that has none"
    )
    genesis.add_argument("--url", help="event store URL (default: from the settings)")
    genesis.add_argument("--key-file", help="hex Ed25519 seed of the signing operator key")
    genesis.add_argument(
        "--operator",
        action="append",
        default=[],
        help="an operator id (repeatable; default FLOP_OPERATOR_IDS, else the log key and the "
        "deposit authority)",
    )
    genesis.add_argument(
        "--deposit-authority",
        help="the id that alone credits deposits (default FLOP_DEPOSIT_AUTHORITY_ID, else the "
        "key in FLOP_DEPOSIT_AUTHORITY_KEY_FILE)",
    )
    genesis.set_defaults(func=handle_genesis)
    rules = commands.add_parser(
        "rules", help="print the rules in force, or record a change of policy or operators"
    )
    rules.add_argument("--url", help="event store URL (default: from the settings)")
    rules.add_argument("--key-file", help="hex Ed25519 seed of the signing operator key")
    change = rules.add_mutually_exclusive_group()
    change.add_argument("--policy-json", help="LedgerPolicy fields to change (a JSON object)")
    change.add_argument(
        "--operator", action="append", default=[], help="the new operator set (repeatable)"
    )
    rules.set_defaults(func=handle_rules)


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


def handle_genesis(args: argparse.Namespace) -> int:
    """Record the genesis (or report the one there is); 1 with a message when refused."""
    try:
        message = asyncio.run(_genesis(args))
    except (SettingsError, FlopError, ValueError) as exc:
        print(f"flopledger db genesis: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(message)
    return EXIT_OK


async def _genesis(args: argparse.Namespace) -> str:
    import msgspec

    from adapters.keyfile import get_log_key_path, load_or_create_identity
    from adapters.store.factory import open_event_store
    from domain.services.ledger_service import LedgerService
    from flopledger.genesis import (
        GenesisRefused,
        build_policy,
        ensure_genesis,
        get_deposit_authority_id,
    )
    from flopledger.settings import load_settings

    settings = get_settings()
    if args.operator:
        settings = msgspec.structs.replace(settings, operator_ids=tuple(args.operator))
    if args.deposit_authority:
        checked = load_settings({"FLOP_DEPOSIT_AUTHORITY_ID": args.deposit_authority})
        settings = msgspec.structs.replace(
            settings, deposit_authority_id=checked.deposit_authority_id
        )
    key_path = Path(args.key_file) if args.key_file else None
    identity = load_or_create_identity(
        key_path or get_log_key_path(settings.data_dir, settings.log_key_file)
    )
    store = await open_event_store(args.url or settings.event_store_url)
    try:
        # A late genesis (records before it) names a key only when asked: the records it
        # declares the rules of were written while any operator sealed and credited.
        prior = (await store.head()).position
        authority = settings.deposit_authority_id or None
        seed = build_policy(
            settings,
            signer_id=identity.id,
            deposit_authority_id=authority if prior else get_deposit_authority_id(settings),
            name_log_key=not prior,
        )
        outcome = await ensure_genesis(
            LedgerService(store),
            identity,
            seed,
            now_ns=time.time_ns(),
            prior_records_allowed=True,
        )
    except GenesisRefused as exc:
        raise SettingsError(str(exc)) from exc
    finally:
        await store.close()
    rules = outcome.rules
    verb = "recorded" if outcome.created else "already recorded"
    return (
        f"genesis {verb} at position {rules.genesis_position} "
        f"(operators {', '.join(rules.current.operators)}; log key "
        f"{rules.current.log_key or 'unnamed'}, deposit authority "
        f"{rules.current.deposit_authority or 'unnamed'})"
    )


def handle_rules(args: argparse.Namespace) -> int:
    """Print the rules in force, or record a change; 1 with a message when refused."""
    try:
        message = asyncio.run(_rules(args))
    except FlopError as exc:
        print(f"flopledger db rules: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except (SettingsError, ValueError) as exc:
        print(f"flopledger db rules: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(message)
    return EXIT_OK


async def _rules(args: argparse.Namespace) -> str:
    import msgspec

    from adapters.keyfile import get_log_key_path, load_or_create_identity
    from adapters.store.factory import open_event_store
    from domain.services.ledger_service import LedgerService
    from flopledger.genesis import change_rules
    from flopledger.settings import POLICY_ENV, get_policy_overrides

    settings = get_settings()
    store = await open_event_store(args.url or settings.event_store_url)
    try:
        service = LedgerService(store)
        if args.policy_json is None and not args.operator:
            rules = await service.get_rules()
            return msgspec.json.encode(
                {
                    "genesis_position": rules.genesis_position,
                    "rule_changes": len(rules.entries) - 1,
                    "policy": rules.current,
                }
            ).decode()
        overrides = get_policy_overrides({POLICY_ENV: args.policy_json or ""})
        key_path = Path(args.key_file) if args.key_file else None
        identity = load_or_create_identity(
            key_path or get_log_key_path(settings.data_dir, settings.log_key_file)
        )
        position = await change_rules(
            service,
            identity,
            overrides=overrides if args.policy_json is not None else None,
            operators=tuple(args.operator) or None,
            now_ns=time.time_ns(),
        )
    finally:
        await store.close()
    return f"rule change recorded at position {position}; it governs from {position + 1}"


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_FAILED
