"""``flopledger agent``: run a node agent (``node_agent``) until SIGINT/SIGTERM.

The first signal only sets the stop flag: the agent stops taking jobs, finishes or abandons
the jobs in hand within ``--shutdown-deadline``, and exits 0. A second signal exits at once
(status 130). Spooled results not yet committed are delivered by the next start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import msgspec
import structlog

from adapters.keyfile import load_identity
from flopledger.daemon import AsyncDaemon, configure_logging
from flopledger.settings import get_settings

EXIT_OK = 0
EXIT_CONFIG = 2
AGENT_STOP_MARGIN_S = 10.0
"""How long past its own --shutdown-deadline the agent may take before the runner gives up."""

_log = structlog.get_logger("flopledger.agent")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = subparsers.add_parser("agent", help="run a node agent on a GPU (or CPU) machine")
    parser.add_argument("--key", required=True, help="the node's key file (flopledger keys new)")
    parser.add_argument("--region", required=True)
    parser.add_argument("--price", type=int, required=True, help="price per job, base units")
    parser.add_argument(
        "--api", default=get_settings().api_url, help="API URL (default FLOP_API_URL)"
    )
    parser.add_argument("--nats", help="NATS URL (default FLOP_NATS_URL; none: API only)")
    parser.add_argument("--stake", type=int, default=1_000, help="stake to keep bonded")
    parser.add_argument("--gpu-class", help="override the class derived from the inventory")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs at once per device")
    parser.add_argument("--state-dir", type=Path, help="spool directory (default: data dir)")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds")
    parser.add_argument("--heartbeat-interval", type=float, default=10.0, help="seconds")
    parser.add_argument("--region-stagger", type=float, default=5.0, help="seconds per tier")
    parser.add_argument("--shutdown-deadline", type=float, default=30.0, help="seconds")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    llm = parser.add_argument_group("LLM completions (issue 18)")
    llm.add_argument(
        "--serve-model",
        action="append",
        default=[],
        metavar="MODEL_ID",
        help="a registered model to hold warm and serve (repeat for more)",
    )
    llm.add_argument("--llm-listen", metavar="HOST:PORT", help="the completion server's address")
    llm.add_argument(
        "--llm-capacity", type=int, default=1, metavar="N", help="completions of each model at once"
    )
    llm.add_argument(
        "--llm-endpoint",
        metavar="URL",
        help="URL advertised to the API (default: from --llm-listen)",
    )
    parser.set_defaults(func=run_agent_command)


def run_agent_command(args: argparse.Namespace) -> int:
    """Entry point of ``flopledger agent``; returns the exit status."""
    from node_agent.bootstrap import run_agent
    from node_agent.config import AgentConfig

    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        identity = load_identity(args.key)
        config = msgspec.convert(
            {
                "region": args.region,
                "price": args.price,
                "api_url": args.api,
                "nats_url": args.nats or settings.nats_url,
                "state_dir": Path(args.state_dir or settings.data_dir / "agent" / identity.id),
                "stake": args.stake,
                "gpu_class": args.gpu_class,
                "concurrency_per_device": args.concurrency,
                "shutdown_deadline_s": args.shutdown_deadline,
                "poll_interval_s": args.poll_interval,
                "heartbeat_interval_s": args.heartbeat_interval,
                "region_stagger_s": args.region_stagger,
                "prefer_cuda": not args.cpu,
                "serve_models": tuple(args.serve_model),
                "llm_listen": args.llm_listen,
                "llm_capacity": args.llm_capacity,
                "llm_endpoint": args.llm_endpoint,
            },
            AgentConfig,
        )
    except (OSError, ValueError, msgspec.ValidationError) as exc:
        print(f"flopledger agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def main(stop: asyncio.Event) -> int:
        from node_agent.llm_serving import ServeModelError

        try:
            agent = await run_agent(config, identity, stop)
        except ServeModelError as exc:
            print(f"flopledger agent: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        if agent.abandoned:
            # Worker threads of abandoned jobs cannot be interrupted; do not wait for them.
            sys.stderr.flush()
            os._exit(EXIT_OK)
        return EXIT_OK

    # The agent keeps its own deadline for the jobs in hand (--shutdown-deadline); the
    # runner's is a backstop past it.
    deadline_s = config.shutdown_deadline_s + AGENT_STOP_MARGIN_S
    return AsyncDaemon("agent", deadline_s=deadline_s).run(main)
