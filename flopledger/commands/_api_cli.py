"""Shared options of the CLI subcommands that talk to the API (``--api``, ``--key``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from adapters.keyfile import load_identity
from adapters.ledger_api.client import ApiClient, ApiProblem
from flopledger.settings import get_settings

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


def print_result(call: Any) -> int:
    """Run ``call()``, print its JSON; a problem is printed to stderr with exit status 1."""
    try:
        result = call()
    except ApiProblem as problem:
        print(
            json.dumps({"status": problem.status, "code": problem.code, "detail": problem.detail}),
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0
