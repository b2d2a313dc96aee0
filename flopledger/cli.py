"""The ``flopledger`` command line: one entry point, one subcommand per module.

Each subcommand lives in ``flopledger/commands/<name>.py`` and exposes
``register(subparsers) -> None`` that adds its parser and sets ``func``. A planned subcommand
whose module does not exist yet is listed in ``--help`` and exits with status 2 saying so.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

EXIT_NOT_BUILT = 2

# (subcommand, module name, one-line help); the order is the order of --help.
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "demo", "run the scripted local scenario and print every balance"),
    ("serve", "serve", "run the HTTP API (Litestar on uvicorn)"),
    ("relay", "relay", "mirror the event log onto NATS JetStream"),
    ("validator", "validator", "run a validator: replay, verify, sign BLS verdicts"),
    ("agent", "agent", "run a node agent on a GPU (or CPU) machine"),
    ("audit", "audit", "replay the whole log from genesis and check every invariant"),
    ("seal", "seal", "sign tree heads of the log every N records or T seconds"),
    ("gateway", "gateway", "Solana gateway: credit deposits, pay withdrawals, anchor heads"),
    ("devnet", "devnet", "start a whole local network on the embedded defaults"),
    ("keys", "keys", "create and show Ed25519 / BLS key files"),
    ("job", "job", "submit, get and list jobs through the API"),
    ("node", "node", "register and inspect nodes through the API"),
    ("db", "db", "database administration (migrations)"),
    ("proofs", "proofs", "offline proof tools (Groth16 prove and verify)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flopledger",
        description=(
            "flopledger: the ledger and verification service of a decentralized GPU compute "
            "network. Every subcommand has its own --help."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, summary in SUBCOMMANDS:
        full_name = f"flopledger.commands.{module_name}"
        if importlib.util.find_spec(full_name) is None:
            _register_not_built(subparsers, name, summary)
            continue
        module = importlib.import_module(full_name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_NOT_BUILT
    result = args.func(args)
    return int(result or 0)


def _register_not_built(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    sub = subparsers.add_parser(name, help=f"{summary} [not built yet]", add_help=True)
    sub.set_defaults(func=lambda _args, _name=name: _not_built(_name))


def _not_built(name: str) -> int:
    print(
        f"flopledger {name}: this subcommand is planned but not built yet; "
        "see the open issues for its status.",
        file=sys.stderr,
    )
    return EXIT_NOT_BUILT


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
