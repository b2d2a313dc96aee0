"""Shared options of the CLI subcommands that talk to the API (``--api``, ``--key``).

Commands go through the client's one ``send(command)``: the CLI builds the typed command of
``domain.commands`` (checked against its limits before anything is signed) and prints the
typed answer as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from adapters.keyfile import load_identity
from adapters.ledger_api.client import ApiClient, ApiProblem
from domain.commands import Command
from flopledger.settings import get_settings

C = TypeVar("C", bound=Command)

EXIT_PROBLEM = 1


def add_api_options(parser: argparse.ArgumentParser, *, key_required: bool = False) -> None:
    parser.add_argument(
        "--api", default=get_settings().api_url, help="API base URL (default FLOP_API_URL)"
    )
    parser.add_argument(
        "--key", required=key_required, help="file holding a 32-byte Ed25519 seed in hex"
    )


def make_client(args: argparse.Namespace) -> ApiClient:
    identity = load_identity(args.key) if getattr(args, "key", None) else None
    return ApiClient(args.api, identity=identity)


def build_command(command_type: type[C], fields: Mapping[str, Any]) -> C:
    """The typed command from CLI values; msgspec.ValidationError names a field out of bounds."""
    return msgspec.convert(dict(fields), command_type, strict=False)


def print_result(call: Callable[[], Any]) -> int:
    """Run ``call()``, print its JSON; a problem (or a command that does not fit its type) is
    printed to stderr with exit status 1."""
    try:
        result = call()
    except ApiProblem as problem:
        print(
            json.dumps({"status": problem.status, "code": problem.code, "detail": problem.detail}),
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    except msgspec.ValidationError as exc:
        print(json.dumps({"code": "command_body_invalid", "detail": str(exc)}), file=sys.stderr)
        return EXIT_PROBLEM
    print(json.dumps(msgspec.to_builtins(result), indent=2, sort_keys=True))
    return 0
