"""Audit throughput against raw ``read_all`` throughput of the same SQLite store, same run.

Builds a history of the whole lifecycle on the memory store with the real command bus:
validators registered and staked, nodes registered and attested by drawn validators (verdicts,
quorum certificates), deposits and withdrawals, jobs submitted, claimed, committed and voted on
(settled with certificates, and every ``--reject-every``-th job rejected with its node slashed),
beacon epochs, sealed tree heads co-signed by witnesses and anchored on a memo chain. It copies
the records into a SQLite file, then measures, each from a cold start of its own (a fresh store
and replayer, the process's caches of BLS verdicts and decoded keys emptied): reading every
record (``read_all`` in batches), the audit's chain and cheap checks (no signatures, no
re-execution), the same with deterministic re-execution of every command, and the full audit
(signatures and re-execution). The envelope signatures are the audit's parallel stage
(``validator.audit_signatures``: worker processes, one per core this process may use): it is
measured alone, every command's envelope through the pool with its workers started, against the
bound measured in the same run, the raw Ed25519 verifications per second of the same library
(``cryptography``) in one process times the worker count. Re-execution checks every BLS
signature the rules check; the pool answers the beacon contributions' and job verdicts' ahead,
the replaying process verifies the rest (certificates, attestation verdicts, co-signatures):
``reexec_bls_bound_vs_read`` is the ceiling those put on ``reexec_vs_read`` (the events over
the time they take at pyblst's raw rate, against the read rate). Last line:
``RESULT audit_vs_read=<r> reexec_vs_read=<r> audit_sigs_vs_read=<r> audit_sigs_vs_bound=<r>
reexec_bls_bound_vs_read=<r> audit_events_per_s=<n> reexec_events_per_s=<n>
sig_envelopes_per_s=<n> ed25519_per_s=<n> sig_workers=<n> events=<n>`` (issue 19 sets the
targets: audit_vs_read >= 0.5, reexec_vs_read >= 0.1, audit_sigs_vs_bound >= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rich.progress import Progress  # noqa: E402

from adapters.store.memory import MemoryEventStore  # noqa: E402
from adapters.store.sqlite import SqliteEventStore  # noqa: E402
from domain.job import Job  # noqa: E402
from domain.log import encode_anchor_memo  # noqa: E402
from domain.policy import LedgerPolicy  # noqa: E402
from domain.ports import READ_ALL_LIMIT_MAX  # noqa: E402
from domain.records import Record  # noqa: E402
from domain.services.queries import get_aggregate  # noqa: E402
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys  # noqa: E402
from operations.sealer import AnchorReceipt, Sealer  # noqa: E402
from proofs import bls  # noqa: E402
from proofs.identity import Identity, forget_public_keys  # noqa: E402
from validator.audit import AuditOptions  # noqa: E402
from validator.audit_run import StoreSource, run_audit  # noqa: E402
from validator.audit_signatures import (  # noqa: E402
    ENVELOPE_OK,
    SignaturePool,
    get_signature_workers,
)
from validator.audit_sources import AUDIT_BATCH  # noqa: E402
from validator.witness import make_cosign_envelopes  # noqa: E402

USERS = 50
NODES = 4
VALIDATORS = 5
WITNESSES = 2
SEAL_EVERY_JOBS = 20
ED25519_BOUND_VERIFIES = 3_000
BLS_BOUND_VERIFIES = 300
INSERT = (
    "INSERT INTO events (position, stream_id, stream_type, version, event_type, data, "
    "command_id, metadata, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass
class MemoChain:
    """Anchors as memos under made-up signatures (the audit without --solana-rpc checks them
    against the tree heads only)."""

    slot: int = 100

    async def anchor(self, size: int, root: bytes) -> AnchorReceipt:
        self.slot += 1
        signature = hashlib.sha256(encode_anchor_memo(size, root).encode()).hexdigest()
        return AnchorReceipt(chain_signature=signature, slot=self.slot)


async def cosign(net: LocalNetwork, witnesses: list[ValidatorKeys], from_position: int) -> int:
    """Have ``witnesses`` co-sign every head sealed from ``from_position`` on."""
    head = (await net.store.head()).position
    records: list[Record] = []
    while batch := await net.store.read_all(len(records) + 1, READ_ALL_LIMIT_MAX):
        records.extend(batch)
    for keys in witnesses:
        for envelope in make_cosign_envelopes(
            keys.identity,
            keys.bls_secret,
            records,
            issued_at_ns=net.now_ns,
            from_position=from_position,
        ):
            await net.service.execute(envelope, now_ns=net.now_ns)
    return head + 1


async def run_job(
    net: LocalNetwork, consumer: Identity, node: Identity, index: int, *, passed: bool
) -> None:
    job_id = await net.submit_job(consumer, region="eu-west", max_price=1_000)
    await net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id})
    await net.commit_result(node, job_id, hashlib.sha256(f"result-{index}".encode()).digest())
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.round is not None
    drawn = [net.validator_keys[v] for v in job.round.validators]
    await net.vote_round(job_id, [(keys, passed) for keys in drawn], "" if passed else "wrong")
    net.advance(1)


async def build(path: Path, jobs: int, reject_every: int) -> int:
    memory = MemoryEventStore()
    # Withdrawals of a few units: below Solana's rent minimum, so the policy lowers it.
    net = LocalNetwork.create(memory, policy=LedgerPolicy(withdrawal_min=1))
    chain = MemoChain()
    sealer = Sealer(memory, net.operator, clock_ns=lambda: net.now_ns, anchor=chain.anchor)
    validators = [make_validator_keys(i) for i in range(VALIDATORS)]
    for keys in validators:
        await net.deposit(keys.identity, 20_000)
        await net.register_validator(keys, stake=10_000)
    users = [Identity.from_seed(f"bench-user-{i}".encode().ljust(32, b"\0")) for i in range(USERS)]
    nodes = [Identity.from_seed(f"bench-node-{i}".encode().ljust(32, b"\0")) for i in range(NODES)]
    for node in nodes:
        await net.deposit(node, 100_000)
        await net.register_active_node(node, region="eu-west", price=400, stake=50_000)
    cosigned_from = 1
    with Progress(transient=True) as bar:
        task = bar.add_task("building the history", total=jobs)
        for index in range(jobs):
            consumer = users[index % USERS]
            await net.deposit(consumer, 2_000)
            rejected = reject_every > 0 and index % reject_every == reject_every - 1
            if rejected:  # a fresh node, slashed by the rejection
                node = Identity.from_seed(f"bench-cheat-{index}".encode().ljust(32, b"\0"))
                await net.deposit(node, 100_000)
                await net.register_active_node(node, region="eu-west", price=400, stake=50_000)
            else:
                node = nodes[index % NODES]
            await run_job(net, consumer, node, index, passed=not rejected)
            if index % 3 == 2:
                await net.run(consumer, "account.withdraw", {"amount": 500})
            if index % SEAL_EVERY_JOBS == SEAL_EVERY_JOBS - 1:
                await sealer.seal_once(force=True)
                cosigned_from = await cosign(net, validators[:WITNESSES], cosigned_from)
            bar.advance(task)
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


async def audit_rate(
    path: Path, operators: frozenset[str], *, signatures: bool, reexecute: bool
) -> float:
    # A cold start: no BLS verdict or decoded key left by an earlier run of this process.
    bls.forget_verified()
    forget_public_keys()
    store = await SqliteEventStore.open(path)
    try:
        options = AuditOptions(
            verify_signatures=signatures, trusted_operators=operators, reexecute=reexecute
        )
        report = await run_audit(StoreSource(store, str(path)), options)
        if not report.ok:
            raise SystemExit(f"audit failed: {report.failure}")
        return report.events_per_s
    finally:
        await store.close()


async def reexec_bls_verifies(path: Path, operators: frozenset[str]) -> int:
    """How many BLS verifications a cold re-execution (no signature checks) makes in this
    process (the pool's workers verify beacon contributions and job verdicts)."""
    backend = bls.BACKEND
    count = 0
    plain = backend.verify

    def counting(*args: Any) -> bool:
        nonlocal count
        count += 1
        return plain(*args)

    backend.verify = counting  # type: ignore[method-assign,assignment]
    try:
        await audit_rate(path, operators, signatures=False, reexecute=True)
    finally:
        del backend.verify  # the class's method again
    return count


def bls_rate() -> float:
    """Raw BLS verifications per second of the backend (pyblst), no cache."""
    secret = bls.key_gen(b"\x11" * 32)
    message = b"\x22" * 48
    signature, public = bls.sign(secret, message), bls.sk_to_pk(secret)
    started = time.perf_counter()
    for _ in range(BLS_BOUND_VERIFIES):
        bls.BACKEND.verify(public, message, signature, bls.DST_SIGNATURE)
    return BLS_BOUND_VERIFIES / (time.perf_counter() - started)


def ed25519_rate() -> float:
    """Raw Ed25519 verifications per second of ``cryptography`` in this process."""
    key = Ed25519PrivateKey.generate()
    public, message = key.public_key(), b"\x5a" * 200  # about an envelope's signed payload
    signature = key.sign(message)
    started = time.perf_counter()
    for _ in range(ED25519_BOUND_VERIFIES):
        public.verify(signature, message)
    return ED25519_BOUND_VERIFIES / (time.perf_counter() - started)


async def signature_rate(path: Path, workers: int) -> float:
    """Envelopes per second through the audit's signature pool, its workers started."""
    store = await SqliteEventStore.open(path)
    records: list[Record] = []
    try:
        while batch := await store.read_all(len(records) + 1, READ_ALL_LIMIT_MAX):
            records.extend(batch)
    finally:
        await store.close()
    pool = SignaturePool(workers)
    try:
        warm = records[:AUDIT_BATCH]
        await asyncio.gather(
            *(pool.submit(warm, envelopes=True, bls_checks=()) for _ in range(workers))
        )
        started = time.perf_counter()
        parts = [
            pool.submit(records[i : i + AUDIT_BATCH], envelopes=True, bls_checks=())
            for i in range(0, len(records), AUDIT_BATCH)
        ]
        verdicts: dict[bytes, str] = {}
        for part in parts:
            verdicts.update(await part)
        elapsed = time.perf_counter() - started
    finally:
        pool.close()
    if any(problem != ENVELOPE_OK for problem in verdicts.values()):
        raise SystemExit("signature pool: an envelope of the clean history failed")
    return len(verdicts) / elapsed


async def main(jobs: int, reject_every: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        started = time.perf_counter()
        events = await build(path, jobs, reject_every)
        built_s = time.perf_counter() - started
        operator = LocalNetwork.create(MemoryEventStore()).operator.id
        operators = frozenset({operator})
        workers = get_signature_workers()
        reads, cheap, reexec, full, sigs, bounds = [], [], [], [], [], []
        for _ in range(rounds):
            reads.append(await read_rate(path))
            cheap.append(await audit_rate(path, operators, signatures=False, reexecute=False))
            reexec.append(await audit_rate(path, operators, signatures=False, reexecute=True))
            full.append(await audit_rate(path, operators, signatures=True, reexecute=True))
            bounds.append(ed25519_rate())
            sigs.append(await signature_rate(path, workers))
        read, audit, rerun, audit_sigs = max(reads), max(cheap), max(reexec), max(full)
        sig, bound = max(sigs), max(bounds)
        bls_verifies = await reexec_bls_verifies(path, operators)
        bls_bound = events / (bls_verifies / bls_rate()) if bls_verifies else float("inf")
        print(
            f"events={events} (built in {built_s:.1f} s) read={read:,.0f}/s "
            f"audit={audit:,.0f}/s reexec={rerun:,.0f}/s audit+sigs+reexec={audit_sigs:,.0f}/s "
            f"signature stage={sig:,.0f} envelopes/s, bound {bound:,.0f}/s x {workers} workers"
        )
        print(
            f"RESULT audit_vs_read={audit / read:.3f} reexec_vs_read={rerun / read:.3f} "
            f"audit_sigs_vs_read={audit_sigs / read:.3f} "
            f"audit_sigs_vs_bound={sig / (bound * workers):.3f} "
            f"reexec_bls_bound_vs_read={bls_bound / read:.3f} audit_events_per_s={audit:.0f} "
            f"reexec_events_per_s={rerun:.0f} sig_envelopes_per_s={sig:.0f} "
            f"ed25519_per_s={bound:.0f} sig_workers={workers} events={events}"
        )


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=300, help="jobs in the history")
    parser.add_argument(
        "--reject-every", type=int, default=10, help="every N-th job is rejected, its node slashed"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.reject_every, args.rounds))
