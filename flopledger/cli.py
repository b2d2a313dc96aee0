"""The ``flopledger`` command line: one entry point, one subcommand per module.

Each subcommand lives in ``flopledger/commands/<name>.py`` and exposes
``register(subparsers) -> None`` that adds its parser and sets ``func``. The top-level parser
is built from the table below alone, so ``flopledger --help`` imports no subcommand; the
module of the one subcommand asked for is imported when it runs (or shows its ``--help``), and
a command module imports its heavy dependencies (torch) only inside ``run``. A subcommand
that needs an optional extra (``SUBCOMMANDS[...].extras``) and finds it missing exits 2 with
one line naming the extra to install. A planned subcommand whose module does not exist yet is
listed in ``--help`` and exits 2 saying so. The settings (``flopledger.settings``) are built
once, before the subcommand runs; a bad ``FLOP_*`` value exits 2 with one line naming it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NamedTuple

EXIT_NOT_BUILT = 2
EXIT_MISSING_EXTRA = 2
EXIT_BAD_SETTINGS = 2
COMMANDS_PACKAGE = "flopledger.commands"


class Subcommand(NamedTuple):
    """One row of the table: name, module in ``flopledger.commands``, one-line help, and the
    optional extras (``pyproject.toml``) it cannot run without."""

    name: str
    module: str
    summary: str
    extras: tuple[str, ...] = ()


EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "agent": ("torch",),
    "validator": ("torch",),
}
"""The modules whose absence means the extra is not installed."""

# The order is the order of --help.
SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("demo", "demo", "run the scripted local scenario and print every balance"),
    Subcommand("serve", "serve", "run the HTTP API (Litestar on uvicorn)"),
    Subcommand("relay", "relay", "mirror the event log onto NATS JetStream"),
    Subcommand(
        "validator",
        "validator",
        "run a validator: replay, verify, sign BLS verdicts",
        ("validator",),
    ),
    Subcommand("agent", "agent", "run a node agent on a GPU (or CPU) machine", ("agent",)),
    Subcommand("audit", "audit", "replay the whole log from genesis and check every invariant"),
    Subcommand("seal", "seal", "sign tree heads of the log every N records or T seconds"),
    Subcommand(
        "gateway", "gateway", "Solana gateway: credit deposits, pay withdrawals, anchor heads"
    ),
    Subcommand(
        "devnet",
        "devnet",
        "start a whole local network on the embedded defaults",
        ("agent", "validator"),
    ),
    Subcommand("keys", "keys", "create and show Ed25519 / BLS key files"),
    Subcommand("job", "job", "submit, get, list and cancel jobs through the API"),
    Subcommand("account", "account", "your own account: balance, deposit, withdraw"),
    Subcommand("apikey", "apikey", "create and revoke delegated API keys (bearer keys)"),
    Subcommand("model", "model", "register and list the language models the network serves"),
    Subcommand("object", "object", "store and fetch objects (job inputs, results) by digest"),
    Subcommand("node", "node", "register and inspect nodes through the API"),
    Subcommand("db", "db", "database administration (migrations)"),
    Subcommand("proofs", "proofs", "offline proof tools (Groth16 prove and verify)"),
)


class MissingExtra(Exception):
    """A subcommand needs an optional extra that is not installed."""

    def __init__(self, name: str, extras: Sequence[str]) -> None:
        self.name, self.extras = name, tuple(extras)
        super().__init__(
            f"flopledger {name}: needs the {' and '.join(self.extras)} extra "
            f"(not installed): pip install 'flopledger[{','.join(self.extras)}]'"
        )


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser, from the table alone: no subcommand module is imported."""
    parser = _new_parser()
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for entry in SUBCOMMANDS:
        built = _is_built(entry)
        help_text = entry.summary if built else f"{entry.summary} [not built yet]"
        subparsers.add_parser(entry.name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    entry = _find(args[0]) if args else None
    if entry is None:  # --help, no command, or an unknown one: argparse answers and exits
        build_parser().parse_args(args)
        build_parser().print_help()
        return EXIT_NOT_BUILT
    if not _is_built(entry):
        return _not_built(entry.name)
    from flopledger.settings import SettingsError, get_settings

    try:
        get_settings()  # built and validated once, before the command reads it
    except SettingsError as exc:
        print(f"flopledger {entry.name}: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    try:
        parsed = _command_parser(entry).parse_args(args)
        missing = get_missing_extras(entry)
        if missing:
            raise MissingExtra(entry.name, missing)
        result = parsed.func(parsed)
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return EXIT_MISSING_EXTRA
    except ModuleNotFoundError as exc:  # an extra's module imported by the command itself
        if not _extras_providing(exc.name):
            raise
        print(
            MissingExtra(entry.name, entry.extras or _extras_providing(exc.name)), file=sys.stderr
        )
        return EXIT_MISSING_EXTRA
    return int(result or 0)


def get_missing_extras(entry: Subcommand) -> tuple[str, ...]:
    """The extras of ``entry`` whose modules cannot be found (no import is done)."""
    return tuple(
        extra
        for extra in entry.extras
        if any(importlib.util.find_spec(module) is None for module in EXTRA_MODULES[extra])
    )


def load_command(entry: Subcommand) -> ModuleType:
    """Import the module of one subcommand."""
    return importlib.import_module(f"{COMMANDS_PACKAGE}.{entry.module}")


def _command_parser(entry: Subcommand) -> argparse.ArgumentParser:
    parser = _new_parser()
    load_command(entry).register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def _new_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="flopledger",
        description=(
            "flopledger: the ledger and verification service of a decentralized GPU compute "
            "network. Every subcommand has its own --help."
        ),
    )


def _find(name: str) -> Subcommand | None:
    return next((entry for entry in SUBCOMMANDS if entry.name == name), None)


def _is_built(entry: Subcommand) -> bool:
    return importlib.util.find_spec(f"{COMMANDS_PACKAGE}.{entry.module}") is not None


def _extras_providing(module: str | None) -> tuple[str, ...]:
    top = (module or "").split(".")[0]
    return tuple(extra for extra, modules in EXTRA_MODULES.items() if top in modules)


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
