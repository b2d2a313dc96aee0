"""``flopledger relay``: mirror the event log onto NATS JetStream (stream FLOP_EVENTS).

Opens the store (``--store-url``, default from the settings), connects to ``--nats-url``
(default ``FLOP_NATS_URL``; unset: an embedded nats-server under ``<data dir>/nats``) and
runs the relay until SIGINT/SIGTERM. The first signal asks for a clean stop (finish in-flight
publishes, release the leader lock, drain, close); a second one forces the exit.
Exit status: 0 stopped cleanly, 1 operating error, 3 alarm (the mirror diverges from the
store: a human must look), 130 forced by a second signal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import structlog

from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.errors import MirrorDiverged, NatsError
from adapters.nats.leader import LOCK_TTL_S
from adapters.nats.relay import RELAY_WINDOW_MAX, Relay, RelayConfig, default_holder
from adapters.nats.server import EmbeddedNatsServer
from adapters.store.factory import open_event_store
from domain.errors import OperatingError
from domain.ports import EventStore
from flopledger.daemon import AsyncDaemon, configure_logging
from flopledger.settings import get_settings
from operations.offers import OfferPublisher

EXIT_OK = 0
EXIT_OPERATING_ERROR = 1
EXIT_ALARM = 3
SHUTDOWN_DEADLINE_S = 15.0

_log = structlog.get_logger("flopledger.relay")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``relay`` subcommand."""
    parser = subparsers.add_parser(
        "relay",
        help="mirror the event log onto NATS JetStream",
        description=(
            "Follow the store's global log and publish every record to JetStream stream "
            "FLOP_EVENTS so that stream sequence N is global position N."
        ),
    )
    parser.add_argument(
        "--store-url",
        help="event store URL (default: FLOP_DATABASE_URL, else SQLite under FLOP_DATA_DIR)",
    )
    parser.add_argument(
        "--nats-url", help="NATS URL(s), comma-separated (default: FLOP_NATS_URL, else embedded)"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="replicas of FLOP_EVENTS and the lock bucket when the relay creates them "
        "(default: FLOP_NATS_REPLICAS, 1)",
    )
    parser.add_argument("--relay-id", help="leader-lock holder id (default: host:pid)")
    parser.add_argument("--lock-ttl", type=float, default=LOCK_TTL_S, help="leader lock TTL, s")
    parser.add_argument("--window", type=int, default=RELAY_WINDOW_MAX, help="publishes in flight")
    parser.add_argument(
        "--offers",
        action="store_true",
        help="also announce every newly opened job on flop.offer.<region> (run this in exactly "
        "one process of a deployment; the devnet's operator process does it there)",
    )
    parser.set_defaults(func=run_relay_command)


def run_relay_command(args: argparse.Namespace) -> int:
    """Entry point of ``flopledger relay``; returns the exit status."""
    settings = get_settings()
    configure_logging(settings.log_level)
    daemon = AsyncDaemon("relay", deadline_s=SHUTDOWN_DEADLINE_S)
    return daemon.run(lambda stop: _relay_main(args, daemon, stop))


async def _relay_main(args: argparse.Namespace, daemon: AsyncDaemon, stop: asyncio.Event) -> int:
    settings = get_settings()
    store_url = args.store_url or settings.event_store_url
    nats_url: str = args.nats_url or settings.nats_url or ""
    try:
        if not nats_url:
            server = EmbeddedNatsServer(settings.data_dir / "nats")
            daemon.on_force(server.kill)
            daemon.at_shutdown("nats-server", lambda: asyncio.to_thread(server.stop))
            nats_url = await asyncio.to_thread(server.start)
        store = await _open_store(store_url)
        daemon.at_shutdown("store", store.close)
        nc = await connect_nats(nats_url, name="flopledger-relay")
        daemon.at_shutdown("nats", lambda: close_nats(nc))
        config = RelayConfig(
            replicas=args.replicas or settings.nats_replicas,
            holder=args.relay_id or default_holder(),
            lock_ttl_s=args.lock_ttl,
            window=args.window,
        )
        offers = (
            asyncio.create_task(OfferPublisher(store, nc).run(stop), name="offers")
            if args.offers
            else None
        )
        try:
            await Relay(store, nc, config).run(stop)
        finally:
            if offers is not None:
                stop.set()
                await offers
        _log.info("relay_stopped")
        return EXIT_OK
    except MirrorDiverged as exc:
        _log.critical("relay_alarm_mirror_diverged", sequence=exc.sequence, reason=exc.reason)
        print(f"flopledger relay: ALARM: {exc}", file=sys.stderr)
        return EXIT_ALARM
    except (NatsError, OperatingError) as exc:
        _log.error("relay_failed", error=str(exc))
        print(f"flopledger relay: {exc}", file=sys.stderr)
        return EXIT_OPERATING_ERROR


async def _open_store(url: str) -> EventStore:
    """Open the store named by ``url`` (sqlite:///path, postgresql://..., memory:)."""
    try:
        return await open_event_store(url)
    except ValueError as exc:
        raise OperatingError(f"cannot open event store: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    """``python -m flopledger.commands.relay``: the relay alone, without loading every
    other subcommand (quicker to start, e.g. under a supervisor that restarts it)."""
    parser = argparse.ArgumentParser(prog="flopledger")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["relay", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
