"""``flopledger apikey create|revoke|show``: delegated API keys (issue 18; ``domain.api_keys``).

``create --spend-limit N [--expires-s S]`` draws a random secret key (``flk_`` and 32 random
bytes in hex), signs ``apikey.create`` with ``--key`` recording only its SHA-256, the cap and
the expiry, and prints the secret key alone on stdout (so ``KEY=$(flopledger apikey create
...)`` works) and its id on stderr. The secret is printed once and stored nowhere: the
ledger keeps its hash. ``revoke KEY_ID`` ends one of your keys; ``show KEY_ID`` prints a
key's record.

Exit status: 0 done; 1 the API refused; 2 malformed input.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time

from adapters.keyfile import KeyFileError
from adapters.ledger_api.client import ApiProblem
from domain.api_keys import compute_api_key_hash, compute_api_key_id
from domain.commands import CreateApiKey, RevokeApiKey
from domain.policy import AMOUNT_MAX
from flopledger.commands._api_cli import add_api_options, build_command, make_client, print_result

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
SECRET_KEY_PREFIX = "flk_"
SECRET_KEY_BYTES = 32
EXPIRES_S_MAX = 100 * 365 * 86_400  # a century: past it an expiry is a mistake, not a choice


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = subparsers.add_parser(
        "apikey",
        help="create and revoke delegated API keys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="apikey_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key; prints the secret key alone")
    add_api_options(create, key_required=True)
    create.add_argument("--spend-limit", required=True, help="cap in base units")
    create.add_argument("--expires-s", help="seconds until the key expires (default: never)")
    create.set_defaults(func=run_create)
    revoke = actions.add_parser("revoke", help="revoke one of your keys")
    add_api_options(revoke, key_required=True)
    revoke.add_argument("key_id")
    revoke.set_defaults(func=run_revoke)
    show = actions.add_parser("show", help="print a key's record (hash, cap, spent, expiry)")
    add_api_options(show)
    show.add_argument("key_id")
    show.set_defaults(func=run_show)


def generate_secret_key() -> str:
    """A fresh bearer key: a recognisable prefix and 256 random bits."""
    return SECRET_KEY_PREFIX + secrets.token_hex(SECRET_KEY_BYTES)


def run_create(args: argparse.Namespace) -> int:
    spend_limit = _parse_int(args.spend_limit, "--spend-limit", 1, AMOUNT_MAX)
    expires_s = None if args.expires_s is None else _parse_int(args.expires_s, "--expires-s", 1)
    if spend_limit is None or (args.expires_s is not None and expires_s is None):
        return EXIT_USAGE
    secret_key = generate_secret_key()
    key_hash = compute_api_key_hash(secret_key)
    key_id = compute_api_key_id(key_hash)
    expires_ns = 0 if expires_s is None else get_now_ns() + expires_s * 1_000_000_000
    command = CreateApiKey(
        key_id=key_id, key_hash=key_hash, spend_limit=spend_limit, expires_ns=expires_ns
    )
    try:
        make_client(args).send(command)
    except (KeyFileError, OSError) as exc:
        return _usage(str(exc))
    except ApiProblem as problem:
        print(f"flopledger apikey create: {problem.code}: {problem.detail}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"key_id {key_id}", file=sys.stderr)
    print(secret_key)
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    try:
        command = build_command(RevokeApiKey, {"key_id": args.key_id})
        client = make_client(args)
    except (KeyFileError, OSError) as exc:
        return _usage(str(exc))
    except ValueError:
        return _usage(f"{args.key_id!r} is not a key id (64 hex digits)")
    return print_result(lambda: client.send(command))


def run_show(args: argparse.Namespace) -> int:
    try:
        build_command(RevokeApiKey, {"key_id": args.key_id})
    except ValueError:
        return _usage(f"{args.key_id!r} is not a key id (64 hex digits)")
    client = make_client(args)
    return print_result(lambda: client.get_api_key(args.key_id))


def get_now_ns() -> int:
    """The wall clock an expiry counts from (the ledger compares it with its own)."""
    return time.time_ns()


def _parse_int(text: str, name: str, low: int, high: int = EXPIRES_S_MAX) -> int | None:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        _usage(f"{name} must be an integer in {low}..{high}, not {text!r}")
        return None
    return value


def _usage(message: str) -> int:
    print(f"flopledger apikey: {message}", file=sys.stderr)
    return EXIT_USAGE
