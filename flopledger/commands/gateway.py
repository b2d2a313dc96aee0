"""``flopledger gateway``: the bridge loop over the Solana gateway (deposits, withdrawals, anchors).

Polls the treasury for deposits and credits each once (``account.deposit`` per Solana
signature), pays the withdrawal outbox, and anchors the latest signed tree head in a memo,
every ``--interval-s``, as the deposit authority's key in ``--key-file`` (default
``FLOP_DEPOSIT_AUTHORITY_KEY_FILE`` or ``<data dir>/deposit_authority_key.hex``; its id must
be an operator in the log's rules and, where the genesis names one, its deposit authority:
issue 16, item 5; never the log key, which only seals). The chain is
LiteSVM in this process by default (a fresh chain each start, for local use), or the
cluster at ``--solana-rpc`` / ``FLOP_SOLANA_RPC`` with the treasury keypair from
``--treasury-key`` (hex 32-byte seed; default ``<data dir>/treasury_key.hex``, created if
absent). One gateway is active per store: it works only while it holds the store's
``gateway`` leader lock (a second one waits as a standby; ``--once`` exits 1 when another
holds it). ``--once`` runs one pass and exits. The first SIGINT/SIGTERM stops after the pass
in hand, a second exits at once (``flopledger.daemon``). Exit status: 0 stopped cleanly,
1 operating error or rejection, 130 forced by a second signal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from adapters.keyfile import (
    TREASURY_KEY_FILE_NAME,
    get_deposit_authority_key_path,
    load_or_create_identity,
    load_or_create_key,
)
from adapters.store.factory import open_event_store
from adapters.store.leader import try_acquire_leader_lock
from domain.errors import FlopError
from domain.ports import SolanaGateway
from domain.services.bridge_service import BridgeService
from domain.services.ledger_service import LedgerService
from flopledger.daemon import AsyncDaemon
from flopledger.settings import Settings, get_settings
from operations.bridge import (
    BRIDGE_INTERVAL_S,
    GATEWAY_LOCK_NAME,
    BridgeLoop,
    find_gateway_key_problem,
)
from proofs.identity import Identity

EXIT_OK = 0
EXIT_ERROR = 1


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="Solana gateway loop: credit deposits, pay withdrawals, anchor tree heads",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store-url", help="event store URL (default: from the settings)")
    parser.add_argument(
        "--key-file",
        help="hex Ed25519 seed of the deposit authority (default FLOP_DEPOSIT_AUTHORITY_KEY_FILE)",
    )
    parser.add_argument("--treasury-key", help="hex 32-byte seed of the treasury keypair")
    parser.add_argument(
        "--solana-rpc", help="JSON-RPC URL (default FLOP_SOLANA_RPC; unset: LiteSVM)"
    )
    parser.add_argument("--interval-s", type=float, default=BRIDGE_INTERVAL_S)
    parser.add_argument("--once", action="store_true", help="run one pass and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    daemon = AsyncDaemon("bridge")
    try:
        return daemon.run(lambda stop: _main(args, daemon, stop))
    except FlopError as exc:
        print(f"flopledger gateway: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR


async def _main(args: argparse.Namespace, daemon: AsyncDaemon, stop: asyncio.Event) -> int:
    settings = get_settings()
    key_path = Path(args.key_file) if args.key_file else None
    identity = load_or_create_identity(
        key_path
        or get_deposit_authority_key_path(settings.data_dir, settings.deposit_authority_key_file)
    )
    chain = open_chain(settings, args.solana_rpc or settings.solana_rpc, args)
    daemon.at_shutdown("chain", chain.close)
    store_url = args.store_url or settings.event_store_url
    store = await open_event_store(store_url)
    daemon.at_shutdown("store", store.close)
    service = LedgerService(store)
    problem = find_gateway_key_problem(await service.get_rules(), identity.id)
    if problem is not None:
        print(f"flopledger gateway: {problem}", file=sys.stderr)
        return EXIT_ERROR
    loop = BridgeLoop(BridgeService(store, chain, identity, service, time.time_ns))
    if args.once:
        lock = await try_acquire_leader_lock(store_url, GATEWAY_LOCK_NAME)
        if lock is None:
            print("flopledger gateway: another gateway holds this store's lock", file=sys.stderr)
            return EXIT_ERROR
        try:
            outcome = await loop.run_once()
        finally:
            await lock.release()
        print(
            f"credited {outcome.credited}, paid {outcome.paid}, anchored "
            f"{outcome.anchored_size if outcome.anchored_size is not None else 'nothing'}"
        )
        return EXIT_OK
    await loop.run_as_leader(store_url, stop, args.interval_s)
    return EXIT_OK


def open_chain(settings: Settings, rpc_url: str | None, args: argparse.Namespace) -> SolanaGateway:
    """LiteSVM in this process, or the RPC endpoint, with the treasury keypair."""
    from solders.keypair import Keypair

    key_path = Path(args.treasury_key) if args.treasury_key else None
    seed_key = load_or_create_key(key_path or settings.data_dir / TREASURY_KEY_FILE_NAME)
    treasury = Keypair.from_seed(Identity(seed_key).seed())
    if rpc_url:
        from adapters.solana.rpc import RpcGateway

        return RpcGateway.connect(rpc_url, treasury)
    from adapters.solana.litesvm import LiteSvmGateway

    return LiteSvmGateway.create(treasury)
