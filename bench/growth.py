"""Cost that does not grow with history: commands, appends, API reads and API memory on SQLite
stores holding 10k, 100k and 1M events, and opening an account among 1k, 10k and 100k.

Each store is seeded in bulk (not timed): a small history is made with the real command bus on
the memory store (a node, three validators, a funded consumer, a settled job), then a block of
33 records (a deposit that opens a consumer's account, and that consumer's job: escrow, claim,
result, commit-reveal, settlement, every payout) is copied with fresh consumer, job and
command ids until the log holds the wanted number of events, hash-chained as the stores chain
them, straight into the SQLite file. The copies grow every shared stream a job touches (the
provider's and validators' accounts, the treasury, the boundary account, the account
directory). The account stores copy one deposit to a new account the same way. Then, on each
store, the same measurement:

- ``command``: the commands of one job, submit to settlement, through the command bus on the
  SQLite store (median of ``--jobs`` jobs after a first, cold one reported on its own: the
  first load of a hot account reads its whole stream once and leaves a snapshot);
- ``append``: one single-event command appended to the store (median);
- ``read``: ``flopledger serve`` on the store, after its first read (the cold catch-up over the
  whole log, reported apart): one job, the first page of jobs, an account, the tree head and
  an inclusion proof in the whole log, each the median over ``--reads`` requests; the figure
  is the slowest of the five;
- ``memory``: that process's resident set after the reads;
- ``new_account``: a deposit to an account that does not exist yet (median).

The measured jobs are the first consumer's, whose own history is the same on every store: a
consumer's account keeps the ids of its closed holds (``domain.ledger.Account.closed_holds``),
so a consumer's commands still cost more as *its own* jobs pile up (not measured here).

Last line: ``RESULT command_cost_1m_vs_10k=<r> append_cost_1m_vs_10k=<r>
read_cost_1m_vs_10k=<r> memory_1m_vs_10k=<r> new_account_cost_100k_vs_1k=<r>`` (each the figure
at the largest size over the figure at the smallest; the target is at most 2).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import logging
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from adapters.store.memory import MemoryEventStore  # noqa: E402
from adapters.store.sqlite import SqliteEventStore  # noqa: E402
from domain.job import RESULT_COMMITTED, Job  # noqa: E402
from domain.ports import READ_ALL_LIMIT_MAX, EventStore  # noqa: E402
from domain.records import NewEvent, Record, RecordBody, StreamAppend, make_record  # noqa: E402
from domain.services.queries import get_aggregate  # noqa: E402
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys  # noqa: E402
from proofs.identity import Identity  # noqa: E402

EVENT_SIZES = (10_000, 100_000, 1_000_000)
ACCOUNT_SIZES = (1_000, 10_000, 100_000)
JOBS_MEASURED = 20
APPENDS_MEASURED = 200
READS_MEASURED = 40
NEW_ACCOUNTS_MEASURED = 40
INSERT_BATCH = 20_000
SERVE_READY_TIMEOUT_S = 120.0
SERVE_FIRST_READ_TIMEOUT_S = 600.0
CONSUMER_FUNDS = 10**15
# Nonces of the measured commands start here, far from the template's.
MEASURED_NONCE_START = 10**9

NODE = Identity.from_seed(b"growth-node".ljust(32, b"\0"))
CONSUMER = Identity.from_seed(b"growth-consumer".ljust(32, b"\0"))
NEW_USER = Identity.from_seed(b"growth-new-user".ljust(32, b"\0"))
SEEDED_CONSUMER = Identity.from_seed(b"growth-seeded-consumer".ljust(32, b"\0"))
VALIDATORS = [make_validator_keys(i) for i in range(3)]
INSERT = (
    "INSERT INTO events (position, stream_id, stream_type, version, event_type, data, "
    "command_id, metadata, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
stderr = Console(stderr=True)


@dataclass
class Template:
    """A history to start from and a block of records to copy (with the names to rename)."""

    setup: list[Record]
    block: list[Record]
    names: list[bytes]  # ids in the block that each copy renames (same length each time)
    now_ns: int


# -- templates, made with the real command bus ------------------------------------------------


async def make_job_template() -> Template:
    store = MemoryEventStore()
    net = LocalNetwork.create(store)
    await _setup(net)
    await run_job(net)  # the first job opens the treasury; the block comes after it
    start = (await store.head()).position
    await net.deposit(SEEDED_CONSUMER, CONSUMER_FUNDS)
    job_id = await run_job(net, SEEDED_CONSUMER)
    records = await _read_all(store)
    block = records[start:]
    names = [job_id.encode(), SEEDED_CONSUMER.id.encode()]
    names += sorted({r.command_id.encode() for r in block})
    return Template(records[:start], block, names, net.now_ns)


async def make_account_template() -> Template:
    store = MemoryEventStore()
    net = LocalNetwork.create(store)
    await net.deposit(CONSUMER, 5)  # opens the boundary account and the directory
    start = (await store.head()).position
    await net.deposit(NEW_USER, 5)
    records = await _read_all(store)
    block = records[start:]
    names = [NEW_USER.id.encode(), *sorted({r.command_id.encode() for r in block})]
    return Template(records[:start], block, names, net.now_ns)


async def _setup(net: LocalNetwork) -> None:
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, CONSUMER_FUNDS)


async def run_job(net: LocalNetwork, consumer: Identity = CONSUMER) -> str:
    """One job of ``consumer`` through every command, submit to settlement; returns its id."""
    job_id = await net.submit_job(consumer, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, b"\x07" * 32)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    keys = [k for k in VALIDATORS if k.identity.id in job.validators]
    await _vote(net, job_id, keys)
    return job_id


async def _vote(net: LocalNetwork, job_id: str, keys: list[ValidatorKeys]) -> None:
    salts = [await net.commit_vote(k, job_id, True) for k in keys]
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.round is not None
    if not job.round.is_commit_phase_over(net.now_ns):
        net.now_ns = job.round.commit_deadline_ns + 1
    for k, salt in zip(keys, salts, strict=True):
        await net.reveal_vote(k, job_id, True, salt)
        job = await get_aggregate(net.store, Job, job_id)
        assert job is not None
        if job.state != RESULT_COMMITTED:
            return


async def _read_all(store: EventStore) -> list[Record]:
    records: list[Record] = []
    while batch := await store.read_all(len(records) + 1, READ_ALL_LIMIT_MAX):
        records.extend(batch)
    return records


# -- bulk seeding -----------------------------------------------------------------------------


def copies(template: Template, total: int) -> Iterator[RecordBody]:
    """The template's setup, then renamed copies of its block, up to ``total`` records."""
    versions: dict[str, int] = {}
    position = 0

    def numbered(record: Record, rename: Callable[[bytes], bytes]) -> RecordBody:
        nonlocal position
        position += 1
        stream_id = rename(record.stream_id.encode()).decode()
        versions[stream_id] = versions.get(stream_id, 0) + 1
        return RecordBody(
            position=position,
            stream_id=stream_id,
            stream_type=record.stream_type,
            version=versions[stream_id],
            event_type=record.event_type,
            data=rename(record.data),
            command_id=rename(record.command_id.encode()).decode(),
            metadata=rename(record.metadata),
        )

    for record in template.setup:
        yield numbered(record, lambda raw: raw)
    # Which names occur in each block record, so that a copy replaces only those.
    occurring = [[n for n in template.names if n in _fields(r)] for r in template.block]
    for copy in itertools.count():
        fresh = {name: _fresh_name(name, copy) for name in template.names}
        for record, names in zip(template.block, occurring, strict=True):
            if position >= total:
                return

            def rename(
                raw: bytes, names: list[bytes] = names, fresh: dict[bytes, bytes] = fresh
            ) -> bytes:
                for name in names:
                    raw = raw.replace(name, fresh[name])
                return raw

            yield numbered(record, rename)


def _fields(record: Record) -> bytes:
    return b"\n".join(
        (record.stream_id.encode(), record.data, record.command_id.encode(), record.metadata)
    )


def _fresh_name(name: bytes, copy: int) -> bytes:
    """A name of the same length and alphabet, unique per (name, copy)."""
    digest = hashlib.sha256(name + copy.to_bytes(8, "big")).hexdigest().encode()
    if name.startswith(b"job-"):
        return b"job-" + digest[: len(name) - 4]
    if len(name) == 64:  # a command id (hex)
        return digest
    # a base58 actor id: hex digits minus '0' are all base58
    return digest.replace(b"0", b"z")[: len(name)].ljust(len(name), b"z")


def seed(path: Path, template: Template, total: int, label: str) -> None:
    """Write ``total`` records into a new SQLite store at ``path`` (not timed)."""
    started = time.perf_counter()
    asyncio.run(_create_store(path))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    prev_hash = bytes(32)
    last = None
    rows: list[tuple[object, ...]] = []
    with _progress() as progress:
        task = progress.add_task(f"seeding {label}", total=total)
        for body in copies(template, total):
            record = make_record(prev_hash, body)
            prev_hash, last = record.hash, record
            rows.append(
                (
                    record.position,
                    record.stream_id,
                    record.stream_type,
                    record.version,
                    record.event_type,
                    record.data,
                    record.command_id,
                    record.metadata,
                    record.prev_hash,
                    record.hash,
                )
            )
            if len(rows) == INSERT_BATCH:
                conn.executemany(INSERT, rows)
                progress.advance(task, len(rows))
                rows.clear()
        conn.executemany(INSERT, rows)
        progress.advance(task, len(rows))
    assert last is not None
    conn.execute("UPDATE head SET position = ?, hash = ? WHERE id = 1", (last.position, last.hash))
    conn.commit()
    conn.close()
    stderr.print(f"seeded {label}: {total:,} records in {time.perf_counter() - started:.0f} s")


async def _create_store(path: Path) -> None:
    store = await SqliteEventStore.open(path)
    await store.close()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )


# -- measurements: every size in turn, round after round, so that a busy machine slows all alike


async def measure_commands(
    paths: list[Path], template: Template, rounds: int
) -> tuple[list[float], list[list[float]]]:
    """Milliseconds of one job's commands on each store: the first (cold) and one per round."""
    stores = [await SqliteEventStore.open(path) for path in paths]
    try:
        nets = []
        for store in stores:
            net = LocalNetwork.create(store)
            net.now_ns = template.now_ns
            net._nonces = itertools.count(MEASURED_NONCE_START)
            nets.append(net)
        cold = [await _timed_ms(run_job(net)) for net in nets]
        steady: list[list[float]] = [[] for _ in nets]
        for _ in range(rounds):
            for index, net in enumerate(nets):
                steady[index].append(await _timed_ms(run_job(net)))
        return cold, steady
    finally:
        for store in stores:
            await store.close()


async def measure_appends(paths: list[Path], rounds: int) -> list[list[float]]:
    """Milliseconds of one single-event command appended to each store, one per round."""
    stores = [await SqliteEventStore.open(path) for path in paths]
    try:
        timings: list[list[float]] = [[] for _ in stores]
        for index in range(rounds):
            append = StreamAppend(
                stream_id=f"bench-append-{index}",
                stream_type="bench",
                expected_version=0,
                events=(NewEvent(event_type="Happened", data=b"{}"),),
            )
            for position, store in enumerate(stores):
                command = store.append([append], command_id=f"bench-append-{index}")
                timings[position].append(await _timed_ms(command))
        return timings
    finally:
        for store in stores:
            await store.close()


async def measure_new_accounts(
    paths: list[Path], template: Template, rounds: int
) -> list[list[float]]:
    """Milliseconds of a deposit to a new account on each store, one per round (after a
    first one on each, which loads the boundary account whole and leaves its snapshot)."""
    stores = [await SqliteEventStore.open(path) for path in paths]
    try:
        nets = []
        for store in stores:
            net = LocalNetwork.create(store)
            net.now_ns = template.now_ns
            net._nonces = itertools.count(MEASURED_NONCE_START)
            nets.append(net)
        timings: list[list[float]] = [[] for _ in nets]
        for index in range(rounds + 1):
            owner = Identity.from_seed(f"growth-fresh-{index}".encode().ljust(32, b"\0"))
            for position, net in enumerate(nets):
                spent = await _timed_ms(net.deposit(owner, 5))
                if index:
                    timings[position].append(spent)
        return timings
    finally:
        for store in stores:
            await store.close()


async def _timed_ms(work: Awaitable[object]) -> float:
    started = time.perf_counter()
    await work
    return (time.perf_counter() - started) * 1000


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    cold_ms: float = 0.0
    job_id: str = ""


def measure_api(
    paths: list[Path], tmp: Path, rounds: int
) -> tuple[list[float], list[dict[str, float]], list[float]]:
    """Per store: the cold first read (ms), steady reads by kind (median ms), resident MiB."""
    served = [_serve(path, tmp / f"data-{index}") for index, path in enumerate(paths)]
    try:
        with httpx.Client(timeout=SERVE_FIRST_READ_TIMEOUT_S) as client:
            for server in served:
                _wait_ready(server)
                started = time.perf_counter()
                first = client.get(f"{server.url}/v1/jobs", params={"limit": 1})
                server.cold_ms = (time.perf_counter() - started) * 1000
                first.raise_for_status()
                server.job_id = first.json()["items"][0]["id"]
            timings: list[dict[str, list[float]]] = [{} for _ in served]
            for _ in range(rounds):
                for index, server in enumerate(served):
                    for kind, target in _read_targets(server.job_id).items():
                        started = time.perf_counter()
                        client.get(server.url + target).raise_for_status()
                        spent = (time.perf_counter() - started) * 1000
                        timings[index].setdefault(kind, []).append(spent)
        medians = [{k: statistics.median(v) for k, v in t.items()} for t in timings]
        return [s.cold_ms for s in served], medians, [_resident_mib(s.process.pid) for s in served]
    finally:
        for server in served:
            server.process.send_signal(signal.SIGTERM)
        for server in served:
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.process.kill()


def _read_targets(job_id: str) -> dict[str, str]:
    return {
        "job": f"/v1/jobs/{job_id}",
        "jobs_page": "/v1/jobs?limit=20",
        "account": f"/v1/accounts/user:{CONSUMER.id}",
        "tree_head": "/v1/log/tree-head",
        "inclusion_proof": "/v1/log/inclusion?position=2",
    }


def _serve(path: Path, data_dir: Path) -> Served:
    port = _free_port()
    env = {
        **os.environ,
        "FLOP_DATABASE_URL": f"sqlite:///{path}",
        "FLOP_DATA_DIR": str(data_dir),
        "FLOP_SEAL": "0",
        "FLOP_LOG_LEVEL": "warning",
    }
    args = [sys.executable, "-m", "flopledger.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    return Served(url=f"http://127.0.0.1:{port}", process=process)


def _wait_ready(server: Served) -> None:
    deadline = time.monotonic() + SERVE_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"flopledger serve exited with {server.process.returncode}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("flopledger serve did not become ready")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS in /proc (Linux only)")


def _ratio(figures: list[float]) -> float:
    return figures[-1] / figures[0]


def main(args: argparse.Namespace) -> None:
    job_template = asyncio.run(make_job_template())
    account_template = asyncio.run(make_account_template())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        event_paths = [tmp / f"events-{n}.sqlite3" for n in args.event_sizes]
        for events, path in zip(args.event_sizes, event_paths, strict=True):
            seed(path, job_template, events, f"{events:,} events")
        account_paths = [tmp / f"accounts-{n}.sqlite3" for n in args.account_sizes]
        for accounts, path in zip(args.account_sizes, account_paths, strict=True):
            records = len(account_template.setup) + accounts * len(account_template.block)
            seed(path, account_template, records, f"{accounts:,} accounts")
        stderr.print("measuring (every size in turn, round after round)")
        cold, jobs = asyncio.run(measure_commands(event_paths, job_template, args.jobs))
        appends = asyncio.run(measure_appends(event_paths, args.appends))
        read_cold, reads, memory = measure_api(event_paths, tmp, args.reads)
        deposits = asyncio.run(
            measure_new_accounts(account_paths, account_template, args.new_accounts)
        )
    command = [statistics.median(t) for t in jobs]
    append = [statistics.median(t) for t in appends]
    read = [max(r.values()) for r in reads]
    for index, events in enumerate(args.event_sizes):
        kinds = " ".join(f"{kind} {ms:.2f}" for kind, ms in reads[index].items())
        print(
            f"events={events:>9,}  one job's commands {command[index]:6.1f} ms "
            f"(cold {cold[index]:,.0f})  append {append[index]:5.2f} ms  "
            f"reads ms: {kinds} (cold first read {read_cold[index]:,.0f})  "
            f"api memory {memory[index]:6.1f} MiB"
        )
    new_account = [statistics.median(t) for t in deposits]
    for accounts, ms in zip(args.account_sizes, new_account, strict=True):
        print(f"accounts={accounts:>8,}  deposit to a new account {ms:6.2f} ms")
    print(
        f"RESULT command_cost_1m_vs_10k={_ratio(command):.2f} "
        f"append_cost_1m_vs_10k={_ratio(append):.2f} "
        f"read_cost_1m_vs_10k={_ratio(read):.2f} "
        f"memory_1m_vs_10k={_ratio(memory):.2f} "
        f"new_account_cost_100k_vs_1k={_ratio(new_account):.2f}"
    )


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--event-sizes", type=int, nargs="+", default=list(EVENT_SIZES))
    parser.add_argument("--account-sizes", type=int, nargs="+", default=list(ACCOUNT_SIZES))
    parser.add_argument("--jobs", type=int, default=JOBS_MEASURED, help="rounds of jobs")
    parser.add_argument("--appends", type=int, default=APPENDS_MEASURED, help="rounds")
    parser.add_argument("--reads", type=int, default=READS_MEASURED, help="rounds of reads")
    parser.add_argument("--new-accounts", type=int, default=NEW_ACCOUNTS_MEASURED, help="rounds")
    main(parser.parse_args())
