"""``flopledger validator``: run a validator against ``flopledger serve`` and a NATS mirror.

Registers (Ed25519 key, BLS key with proof of possession) and bonds stake, replays
FLOP_EVENTS from sequence 1 or its checkpoint (hash chain verified), verifies what it is
drawn for and commits / reveals BLS verdicts through the API, and co-signs the sealed tree
heads that match its replay (``--log-signer`` pins the sealer's key; ``--no-witness`` turns
co-signing off), and checks the sampled LLM completions of each ``--check-model`` (loaded at
start, refused unless it is the registered model), until SIGINT/SIGTERM.
Exit status: 0 stopped cleanly, 1 operating error, 130 forced by a second signal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import structlog

from adapters.keyfile import load_bls_secret, load_identity
from domain.errors import OperatingError
from flopledger.daemon import AsyncDaemon, configure_logging
from flopledger.settings import get_settings
from validator.config import DEFAULT_STAKE, ValidatorConfig

EXIT_OK, EXIT_OPERATING_ERROR = 0, 1

_log = structlog.get_logger("flopledger.validator")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "validator", help="run a validator: replay, verify, sign BLS verdicts"
    )
    parser.add_argument("--key", required=True, help="Ed25519 seed file (hex)")
    parser.add_argument("--bls-key", required=True, help="BLS seed file (32 bytes, hex)")
    parser.add_argument(
        "--api", default=get_settings().api_url, help="API URL (default FLOP_API_URL)"
    )
    parser.add_argument("--nats", help="NATS URL (default: FLOP_NATS_URL)")
    parser.add_argument("--stake", type=int, default=DEFAULT_STAKE, help="stake to keep bonded")
    parser.add_argument("--db", help="signing database (default: <data dir>/validator-<id>.db)")
    parser.add_argument(
        "--log-signer",
        action="append",
        default=[],
        help="hex Ed25519 public key that signs tree heads (repeatable; default: any)",
    )
    parser.add_argument(
        "--no-witness", action="store_true", help="do not check and co-sign tree heads"
    )
    parser.add_argument(
        "--check-model",
        action="append",
        default=[],
        metavar="MODEL_ID",
        help="registered LLM whose sampled completions to check (repeatable; loaded at start)",
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    identity = load_identity(args.key)
    bls_secret = load_bls_secret(Path(args.bls_key))
    nats_url = args.nats or settings.nats_url
    if not nats_url:
        print("flopledger validator: --nats or FLOP_NATS_URL is required", file=sys.stderr)
        return EXIT_OPERATING_ERROR
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db_path = Path(args.db) if args.db else settings.data_dir / f"validator-{identity.id}.db"
    try:
        log_signers = tuple(bytes.fromhex(key) for key in args.log_signer)
    except ValueError:
        print("flopledger validator: --log-signer takes hex public keys", file=sys.stderr)
        return EXIT_OPERATING_ERROR
    config = ValidatorConfig(
        api_url=args.api,
        nats_url=nats_url,
        db_path=db_path,
        stake=args.stake,
        witness=not args.no_witness,
        log_signers=log_signers,
        check_models=tuple(args.check_model),
    )
    return AsyncDaemon("validator").run(lambda stop: _main(config, identity, bls_secret, stop))


async def _main(
    config: ValidatorConfig, identity: Any, bls_secret: int, stop: asyncio.Event
) -> int:
    from validator.bootstrap import run_validator  # re-execution: the validator extra (torch)

    try:
        daemon = await run_validator(config, identity, bls_secret, stop)
    except (OperatingError, ConnectionError) as exc:
        print(f"flopledger validator: {exc}", file=sys.stderr)
        return EXIT_OPERATING_ERROR
    _log.info(
        "validator_stopped",
        verified=daemon.verified,
        heads_cosigned=daemon.heads_cosigned,
        heads_refused=daemon.heads_refused,
    )
    return EXIT_OK
