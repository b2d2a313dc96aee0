"""``flopledger demo``: the scripted local scenario on the embedded defaults.

Two nodes in two regions, three validators and a funded consumer; one job is submitted, the
in-region node wins the claim (the other is told to wait for its stagger), commits a result,
a validator quorum signs BLS verdicts, the job settles, and every account's balance prints.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.store.factory import open_event_store
from domain.errors import Rejection
from domain.job import Job
from domain.policy import LedgerPolicy
from domain.records import verify_chain
from domain.services.queries import get_aggregate, get_balances
from flopledger.network import LocalNetwork, make_validator_keys
from flopledger.settings import get_settings
from proofs.identity import Identity
from proofs.quorum import decode_qc, verify_qc

READ_ALL_PAGE = 1_000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the scripted local scenario and print every balance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--store",
        help="event store URL (sqlite:///PATH, postgresql://..., memory:); default: a new "
        "SQLite file under FLOP_DATA_DIR/demo/",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    url = args.store or _fresh_sqlite_url()
    try:
        asyncio.run(_scenario(url, console))
    except Rejection as rejection:
        console.print(f"[red]scenario stopped: {rejection.code}: {rejection.message}")
        return 1
    return 0


def _fresh_sqlite_url() -> str:
    directory = get_settings().data_dir / "demo"
    directory.mkdir(parents=True, exist_ok=True)
    path: Path = (
        directory / f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}.sqlite3"
    )
    return f"sqlite:///{path}"


async def _scenario(url: str, console: Console) -> None:
    store = await open_event_store(url)
    try:
        net = LocalNetwork.create(store, policy=LedgerPolicy())
        console.rule(f"flopledger demo  [dim]{url}")
        eu, us = (
            Identity.from_seed(b"node-eu".ljust(32, b"\0")),
            Identity.from_seed(b"node-us".ljust(32, b"\0")),
        )
        consumer = Identity.from_seed(b"consumer".ljust(32, b"\0"))
        validators = [make_validator_keys(i) for i in range(3)]
        for node, region in ((eu, "eu-west"), (us, "us-east")):
            await net.deposit(node, 10_000)
            await net.register_active_node(node, region=region, price=400, stake=5_000)
            console.print(f"node [cyan]{node.id[:8]}[/] registered in {region}, staked, attested")
        for keys in validators:
            await net.deposit(keys.identity, 2_000)
            await net.register_validator(keys, stake=1_000)
        console.print("3 validators registered with BLS proofs of possession, staked")
        await net.deposit(consumer, 5_000)
        console.print(f"consumer [cyan]{consumer.id[:8]}[/] funded with 5000")
        job_id = await net.submit_job(consumer, region="eu-west", max_price=1_000)
        console.print(f"job [magenta]{job_id}[/] submitted in eu-west, 1000 held in escrow")
        try:
            await net.run(us, "job.claim", {"job_id": job_id, "node_id": us.id})
        except Rejection as rejection:
            console.print(f"us-east node's claim refused: [yellow]{rejection.code}[/]")
        await net.run(eu, "job.claim", {"job_id": job_id, "node_id": eu.id})
        console.print("eu-west node claims the job at once and wins")
        await net.commit_result(eu, job_id, b"\x2a" * 32)
        job = await get_aggregate(store, Job, job_id)
        assert job is not None
        console.print(f"result committed; validators drawn by stake: {len(job.validators)}")
        assigned = [k for k in validators if k.identity.id in job.validators]
        await net.vote_round(job_id, [(keys, True) for keys in assigned])
        console.print("validators committed salted verdict hashes, then revealed BLS verdicts")
        await _report(net, job_id, validators, console)
    finally:
        await store.close()


async def _report(net: LocalNetwork, job_id: str, validators: list, console: Console) -> None:
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    keys = [k.bls_public for vid in job.validators for k in validators if k.identity.id == vid]
    qc_ok = verify_qc(keys, decode_qc(job.certificate), net.policy.quorum_size(len(keys)))
    console.print(f"quorum reached: job is [green]{job.state}[/], certificate verifies: {qc_ok}")
    table = Table(title="balances (base units)")
    for column in ("account", "balance", "available", "pending out"):
        table.add_column(column, justify="left" if column == "account" else "right")
    accounts = await get_balances(net.store)
    for account_id, account in sorted(accounts.items()):
        table.add_row(
            account_id, str(account.balance), str(account.available), str(account.debits_pending)
        )
    table.add_row("[bold]sum", f"[bold]{sum(a.balance for a in accounts.values())}", "", "")
    console.print(table)
    records: list = []
    while batch := await net.store.read_all(len(records) + 1, READ_ALL_PAGE):
        records.extend(batch)
    head = verify_chain(records)
    console.print(f"log: {head.position} records, hash chain verified, head {head.hash.hex()[:16]}")
