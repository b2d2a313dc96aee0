"""``flopledger keys new|show``: Ed25519 key files (a 32-byte seed in hex, mode 0600).

The file format is the one ``--key`` reads everywhere (``adapters.keyfile``). ``new``
refuses to overwrite a file unless ``--force``; the key's id (base58 public key, also its
Solana address) is printed, never the seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from adapters.keyfile import load_identity, write_key_file

EXIT_OK = 0
EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = subparsers.add_parser("keys", help="create and show Ed25519 key files")
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    new = actions.add_parser("new", help="write a new Ed25519 key file (mode 0600)")
    new.add_argument("--out", type=Path, required=True, help="key file to create")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(func=run_new)
    show = actions.add_parser("show", help="print the id of a key file")
    show.add_argument("--key", type=Path, required=True)
    show.set_defaults(func=run_show)


def run_new(args: argparse.Namespace) -> int:
    try:
        key_id = write_key_file(args.out, force=args.force)
    except FileExistsError:
        print(f"flopledger keys new: {args.out} exists (use --force)", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"flopledger keys new: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"id": key_id, "file": str(args.out)}))
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    try:
        key_id = load_identity(args.key).id
    except (OSError, ValueError) as exc:
        print(f"flopledger keys show: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"id": key_id, "file": str(args.key)}))
    return EXIT_OK
