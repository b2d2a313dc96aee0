"""``flopledger audit``: replay the whole log from genesis and check every invariant.

``--source`` is ``sqlite:///PATH``, ``postgresql://...`` or ``nats://HOST:PORT`` (default: the
configured store). Checks, in order: the hash chain; every command signature, that no command
ran twice and that its signer was allowed to cause each event; verdicts and quorum
certificates; signed tree heads, their roots and witness co-signatures; the network's rules
(operators and policy come from the log's genesis and rule records, never from ``FLOP_*``
settings; every operator-only command is checked against the operators in force at its
position; ``--operator`` names keys trusted to have signed the genesis); anchors (against the
tree heads, and on chain when ``FLOP_SOLANA_RPC`` is set or ``--solana-rpc`` given: with
``--treasury ADDRESS`` every deposit is checked against the Solana transaction it names,
every payout against its transaction, and the treasury's memo history against the log's
heads, ``chain_money``); with
``--verify-proofs`` proofs of possession and consistency/inclusion proofs between heads. It
rebuilds every aggregate and the ledger, checks DESIGN.md's invariants, and compares any
materialized balances the store holds. ``--at POSITION`` audits and shows the state as of that
position. ``--trusted-head SIZE:ROOT_HEX``, ``--min-cosigners N`` and ``--witness-key HEX``
hold the log to heads the auditor saw before and to its witnesses (a history rewritten and
re-signed with the log key fails). ``--verify-work`` (the ``validator`` extra) fetches every
settled or slashed job's artifacts and proofs, and every attestation report, from the object
store (``--objects nats://HOST:PORT``; default the ``nats://`` source, else ``FLOP_NATS_URL``)
and re-runs the validators' verifiers on them: a verdict its evidence does not support fails
the audit; items past retention or private are counted under their own statuses. Exit
status: 0 everything holds, 1 a check failed, 2 the source (or the object store) could not be
read or the verifiers' extra is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from domain.errors import OperatingError
from flopledger.commands._audit_history import add_history_arguments, get_history_requirements
from flopledger.settings import get_settings
from validator.audit import AuditOptions
from validator.audit_run import (
    AnchorReader,
    AuditReport,
    SourceUnreadable,
    WorkCheck,
    open_source,
    run_audit,
)
from validator.audit_work import EXTRA, STATUSES, is_verifier_installed, open_objects

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_UNREADABLE = 2


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="replay the whole log from genesis and check every invariant",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", help="sqlite:///PATH, postgresql://... or nats://HOST:PORT")
    parser.add_argument("--at", type=int, metavar="POSITION", help="audit up to this position")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--verify-proofs", action="store_true", help="re-verify stored proofs")
    parser.add_argument(
        "--no-signatures", action="store_true", help="skip signature checks (faster)"
    )
    parser.add_argument(
        "--no-reexecute",
        action="store_true",
        help="skip running every command again through the rules (the chain and cheap checks "
        "alone: faster, and blind to a patched API whose records break no cheap check)",
    )
    parser.add_argument(
        "--operator",
        action="append",
        default=[],
        help="a key trusted to have created the ledger: the genesis must be signed by one "
        "(repeatable; without it the genesis is taken as recorded and its signer reported)",
    )
    parser.add_argument(
        "--solana-rpc",
        help="check money and anchors against this JSON-RPC endpoint: a cluster's, or the "
        "devnet operator's /rpc (default FLOP_SOLANA_RPC)",
    )
    parser.add_argument(
        "--treasury",
        default="",
        help="the treasury's Solana address: deposits must pay it, payouts and anchors come "
        "from it (needed for the checks against the chain)",
    )
    add_history_arguments(parser)
    parser.add_argument(
        "--verify-work",
        action="store_true",
        help="re-run the verifiers of every decided job and attestation on its stored "
        "artifacts (needs the validator extra)",
    )
    parser.add_argument(
        "--objects",
        metavar="NATS_URL",
        help="the object store of --verify-work (default: a nats:// source, else FLOP_NATS_URL)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    options = AuditOptions(
        verify_signatures=not args.no_signatures,
        verify_proofs=args.verify_proofs,
        reexecute=not args.no_reexecute,
        trusted_operators=frozenset(args.operator),
        at_position=args.at,
        treasury=args.treasury,
        history=get_history_requirements(args),
        verify_work=args.verify_work,
    )
    source_url = args.source or settings.event_store_url
    rpc_url = args.solana_rpc or settings.solana_rpc
    console = Console(stderr=args.json)
    objects_url = None
    if args.verify_work:
        if not is_verifier_installed():
            from flopledger.cli import MissingExtra

            raise MissingExtra("audit --verify-work", (EXTRA,))
        objects_url = args.objects or _default_objects(source_url, settings.nats_url)
        if objects_url is None:
            console.print("[red]flopledger audit: --verify-work needs --objects nats://HOST:PORT")
            return EXIT_UNREADABLE
    try:
        report = asyncio.run(
            _audit(source_url, options, rpc_url, console, quiet=args.json, objects=objects_url)
        )
    except SourceUnreadable as exc:
        console.print(f"[red]flopledger audit: cannot read {source_url}: {exc}")
        return EXIT_UNREADABLE
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        print_report(console, report, show_accounts=args.at is not None)
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def _default_objects(source_url: str, nats_url: str | None) -> str | None:
    if source_url.startswith(("nats://", "tls://")):
        return source_url
    return nats_url


async def _audit(
    url: str,
    options: AuditOptions,
    rpc_url: str | None,
    console: Console,
    *,
    quiet: bool,
    objects: str | None = None,
) -> AuditReport:
    source = await open_source(url)
    chain = await _open_chain(rpc_url)
    stored = None
    if objects is not None:
        try:
            stored = await open_objects(objects)
        except OperatingError as exc:
            await source.close()
            raise SourceUnreadable(f"the object store {objects}: {exc}") from exc
    work = None if stored is None else WorkCheck(artifacts=stored, now_ns=time.time_ns())
    try:
        with Progress(
            TextColumn("audit"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} records"),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=True,
        ) as bar:
            task = bar.add_task("audit", total=0)

            def progress(position: int, total: int) -> None:
                bar.update(task, completed=position, total=total)

            return await run_audit(source, options, chain=chain, progress=progress, work=work)
    finally:
        await source.close()
        if stored is not None:
            await stored.close()
        if chain is not None:
            await chain.close()  # type: ignore[attr-defined]


async def _open_chain(rpc_url: str | None) -> AnchorReader | None:
    if rpc_url is None:
        return None
    from adapters.solana.history import RpcChainHistory

    return RpcChainHistory(rpc_url)


def print_report(console: Console, report: AuditReport, *, show_accounts: bool = False) -> None:
    """The human summary: one line per check, the first failure, the state (with every
    account's balance when ``show_accounts``)."""
    table = Table(title=f"audit of {report.source} up to position {report.position:,}")
    table.add_column("check")
    table.add_column("status")
    table.add_column("items", justify="right")
    colours = {"passed": "green", "failed": "red", "partial": "yellow", "skipped": "dim"}
    for name, check in report.checks.items():
        colour = colours.get(check.status, "white")
        table.add_row(name, f"[{colour}]{check.status}[/]", f"{check.count:,}")
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    state = report.state
    if show_accounts:
        balances = Table(title=f"balances at position {report.position:,}")
        balances.add_column("account")
        balances.add_column("balance", justify="right")
        for account_id, balance in state["accounts"].items():
            balances.add_row(account_id, f"{balance:,}")
        console.print(balances)
    console.print(
        f"{state['commands']:,} commands, streams {state['streams']}, jobs "
        f"{state['jobs_by_state']}, nodes {state['nodes_by_state']}; {state['tree_heads']} tree "
        f"heads (last size {state['last_tree_size']:,}), {state['cosignatures']} "
        f"co-signatures, {state['anchors']} anchors; balances sum to {state['total_balance']}"
    )
    network = state.get("network") or {}
    if network.get("genesis_position"):
        console.print(
            f"rules: genesis at position {network['genesis_position']:,} signed by "
            f"{network['genesis_signer']}; operators {network['operators']}; "
            f"{network['rule_changes']} rule changes"
        )
    work = state.get("work")
    if work is not None:
        console.print(f"verified work: {format_work(work)}")
    history = state.get("history") or {}
    if history.get("newest_head"):
        console.print(
            f"history: newest head {history['newest_head']} (pass it as --trusted-head next "
            f"time); trusted heads held: {history['trusted_heads_checked']}; co-signed by "
            f"{max(history['min_cosigners'], 1)}+ counted signers up to size "
            f"{history['witnessed_size']:,}"
        )
    console.print(f"{report.events:,} records in {report.elapsed_s:.2f} s")
    if report.failure is None:
        console.print("[bold green]AUDIT PASSED[/]: every check holds")
    else:
        failure = report.failure
        console.print(
            f"[bold red]AUDIT FAILED[/] at position {failure.position}: "
            f"[red]{failure.check}[/]: {failure.message}"
        )


def format_work(work: dict[str, int]) -> str:
    """``--verify-work``'s line: the re-verified count, then every other status that occurred."""
    others = ", ".join(
        f"{name.replace('_', ' ')} {work[name]:,}" for name in STATUSES[1:] if work.get(name)
    )
    line = f"{work.get('reverified', 0):,} of {work.get('items', 0):,} decisions re-verified"
    return f"{line} ({others})" if others else line
