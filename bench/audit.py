"""Audit throughput against raw ``read_all`` throughput of the same SQLite store, same run.

Builds a history on the memory store with the real command bus (deposits, withdrawals, node
and validator registration, a settled job, sealed tree heads), copies its records into a
SQLite file, then measures: reading every record (``read_all`` in batches), the audit without
signature checks, and the full audit. Last line:
``RESULT audit_vs_read=<ratio> audit_sigs_vs_read=<ratio> audit_events_per_s=<n>``
(ratios of events per second; the target is audit_vs_read >= 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from adapters.store.memory import MemoryEventStore  # noqa: E402
from adapters.store.sqlite import SqliteEventStore  # noqa: E402
from domain.policy import LedgerPolicy  # noqa: E402
from domain.ports import READ_ALL_LIMIT_MAX  # noqa: E402
from domain.records import Record  # noqa: E402
from flopledger.network import LocalNetwork  # noqa: E402
from operations.sealer import Sealer  # noqa: E402
from proofs.identity import Identity  # noqa: E402
from validator.audit import AuditOptions  # noqa: E402
from validator.audit_run import StoreSource, run_audit  # noqa: E402

USERS = 50
SEAL_EVERY_COMMANDS = 500
INSERT = (
    "INSERT INTO events (position, stream_id, stream_type, version, event_type, data, "
    "command_id, metadata, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def build(path: Path, commands: int) -> int:
    memory = MemoryEventStore()
    net = LocalNetwork.create(memory, policy=LedgerPolicy(withdrawal_min=1))
    sealer = Sealer(memory, net.operator, clock_ns=lambda: net.now_ns)
    users = [Identity.from_seed(f"bench-user-{i}".encode().ljust(32, b"\0")) for i in range(USERS)]
    for index in range(commands):
        user = users[index % USERS]
        if index >= USERS and index % 3 == 2:
            await net.run(user, "account.withdraw", {"amount": 1})
        else:
            await net.deposit(user, 10)
        if index % SEAL_EVERY_COMMANDS == SEAL_EVERY_COMMANDS - 1:
            net.advance(1)
            await sealer.seal_once(force=True)
    records: list[Record] = []
    while batch := await memory.read_all(len(records) + 1, READ_ALL_LIMIT_MAX):
        records.extend(batch)  # read_all returns at most READ_ALL_LIMIT_MAX records
    store = await SqliteEventStore.open(path)
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            INSERT,
            [
                (
                    r.position,
                    r.stream_id,
                    r.stream_type,
                    r.version,
                    r.event_type,
                    r.data,
                    r.command_id,
                    r.metadata,
                    r.prev_hash,
                    r.hash,
                )
                for r in records
            ],
        )
        conn.execute(
            "UPDATE head SET position = ?, hash = ?", (records[-1].position, records[-1].hash)
        )
    return len(records)


async def read_rate(path: Path) -> float:
    store = await SqliteEventStore.open(path)
    try:
        started = time.perf_counter()
        position, count = 1, 0
        while batch := await store.read_all(position, READ_ALL_LIMIT_MAX):
            count += len(batch)
            position = batch[-1].position + 1
        return count / (time.perf_counter() - started)
    finally:
        await store.close()


async def audit_rate(path: Path, operators: frozenset[str], *, signatures: bool) -> float:
    store = await SqliteEventStore.open(path)
    try:
        options = AuditOptions(verify_signatures=signatures, trusted_operators=operators)
        report = await run_audit(StoreSource(store, str(path)), options)
        if not report.ok:
            raise SystemExit(f"audit failed: {report.failure}")
        return report.events_per_s
    finally:
        await store.close()


async def main(commands: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        events = await build(path, commands)
        operator = LocalNetwork.create(MemoryEventStore()).operator.id
        operators = frozenset({operator})
        reads, audits, signed = [], [], []
        for _ in range(rounds):
            reads.append(await read_rate(path))
            audits.append(await audit_rate(path, operators, signatures=False))
            signed.append(await audit_rate(path, operators, signatures=True))
        read, audit, audit_sigs = max(reads), max(audits), max(signed)
        print(
            f"events={events} read={read:,.0f}/s audit={audit:,.0f}/s "
            f"audit+sigs={audit_sigs:,.0f}/s"
        )
        print(
            f"RESULT audit_vs_read={audit / read:.3f} audit_sigs_vs_read={audit_sigs / read:.3f} "
            f"audit_events_per_s={audit:.0f}"
        )


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=6_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.commands, args.rounds))
