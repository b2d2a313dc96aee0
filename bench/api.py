"""Benchmark: signed job submissions through ``flopledger serve`` vs a no-op Litestar route.

64 concurrent clients (one keep-alive connection and one funded actor each) over loopback
POST pre-signed ``job.submit`` envelopes with an Idempotency-Key, as ``ApiClient`` does, to

- ``flopledger serve`` on SQLite, then on PostgreSQL (a throwaway database: ``tests/pg.py``);
- two ``flopledger serve`` replicas on one PostgreSQL database, the clients split across them;
- a no-op Litestar route that reads the same bodies and answers 201, served by uvicorn with
  the same settings as ``serve`` (one worker, log level warning), driven by the same client.

Each line reports submissions/s and p50/p99 latency; ratios are against the no-op route of the
same run. ``FLOP_BENCH_API_PER_CLIENT`` (default 40) sets the requests per client and
measurement: lower it for a quick run. Last line:
``RESULT submit_vs_noop_postgresql=<r> submit_per_s_postgresql=<n> p99_ms_postgresql=<n>
submit_vs_noop_sqlite=<r> submit_per_s_sqlite=<n> p99_ms_sqlite=<n> replicas2_vs_1=<r>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, post

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.store.factory import migrate_event_store  # noqa: E402
from proofs.identity import Identity  # noqa: E402
from tests.api_load import (  # noqa: E402
    LoadReport,
    SignedRequest,
    fund_submitters,
    run_load,
    seeded,
    sign_submissions,
)
from tests.pg import create_test_database, drop_test_database  # noqa: E402
from tests.serve_process import free_port, running_serve  # noqa: E402

CLIENTS = 64
PER_CLIENT_ENV = "FLOP_BENCH_API_PER_CLIENT"
PER_CLIENT_DEFAULT = 40
WARMUP_PER_CLIENT = 2
NOOP_PATH = "/noop"
LOG_LEVEL = "warning"
OPERATOR = seeded("bench-operator")
LOG_KEY_SEED = b"bench-log-key".ljust(32, b"\0")


def build_noop_app() -> Litestar:
    """One POST route that reads its body and answers a small JSON 201: the framework, the
    server and the client, without the ledger."""

    @post(NOOP_PATH, status_code=201)
    async def noop(request: Request[Any, Any, Any]) -> dict[str, bool]:
        await request.body()
        return {"accepted": True}

    return Litestar(route_handlers=[noop])


def serve_noop(port: int) -> None:
    import uvicorn

    uvicorn.run(build_noop_app(), host="127.0.0.1", port=port, workers=1, log_level=LOG_LEVEL)


@contextlib.contextmanager
def running_noop() -> Iterator[str]:
    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve-noop", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_port(port, child)
        yield url
    finally:
        child.terminate()
        child.wait(timeout=15)


def serve_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    key_file = data_dir / "log_key.hex"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(LOG_KEY_SEED.hex() + "\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FLOP_DATA_DIR": str(data_dir / "data"),
        "FLOP_OPERATOR_IDS": f"{OPERATOR.id},{Identity.from_seed(LOG_KEY_SEED).id}",
        "FLOP_LOG_KEY_FILE": str(key_file),
        "FLOP_LOG_LEVEL": LOG_LEVEL,
        # One actor sends each client's commands as fast as the server answers them.
        "FLOP_API_ACTOR_COMMANDS_BURST": "1000000",
        "FLOP_API_ACTOR_COMMANDS_PER_S": "1000000",
    }
    if database_url:
        env["FLOP_DATABASE_URL"] = database_url
    return env


def measure_submit(
    urls: Sequence[str], per_client: int, label: str, run: int
) -> tuple[LoadReport, list[list[SignedRequest]]]:
    submitters = [seeded(f"bench-{label}-{run}-{i}") for i in range(CLIENTS)]
    jobs = per_client + WARMUP_PER_CLIENT
    network_id = fund_submitters(urls[0], OPERATOR, submitters, jobs)
    queues = [sign_submissions(s, jobs, network_id=network_id) for s in submitters]
    warmup = [q[:WARMUP_PER_CLIENT] for q in queues]
    timed = [q[WARMUP_PER_CLIENT:] for q in queues]
    _check_accepted(label, asyncio.run(run_load(urls, warmup)))
    report = asyncio.run(run_load(urls, timed))
    _check_accepted(label, report)
    return report, queues


def _check_accepted(label: str, report: LoadReport) -> None:
    refused = [a for a in report.answers if a.status != 201]
    if refused or report.transport_errors:
        first = refused[0].body[:300] if refused else b""
        raise SystemExit(
            f"{label}: {len(refused)} refused, {report.transport_errors} transport errors {first!r}"
        )


def measure_noop(url: str, queues: list[list[SignedRequest]]) -> LoadReport:
    noop = [[SignedRequest(NOOP_PATH, r.body, r.key, r.actor) for r in q] for q in queues]
    _check_accepted("noop", asyncio.run(run_load([url], [q[:WARMUP_PER_CLIENT] for q in noop])))
    report = asyncio.run(run_load([url], [q[WARMUP_PER_CLIENT:] for q in noop]))
    _check_accepted("noop", report)
    return report


def describe(label: str, report: LoadReport) -> None:
    print(
        f"{label:<24} {len(report.answers):>6} requests  {report.per_s:>8.0f}/s  "
        f"p50 {report.latency_ms(0.50):7.1f} ms  p99 {report.latency_ms(0.99):7.1f} ms",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-noop", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_noop is not None:
        serve_noop(args.serve_noop)
        return 0
    per_client = int(os.environ.get(PER_CLIENT_ENV) or PER_CLIENT_DEFAULT)
    print(f"{CLIENTS} clients x {per_client} requests per measurement, loopback, one worker")
    with tempfile.TemporaryDirectory(prefix="flop-bench-api-") as tmp:
        root = Path(tmp)
        with running_serve(serve_env(root / "sqlite", None)) as (url, _):
            sqlite, queues = measure_submit([url], per_client, "sqlite", 0)
        describe("submit sqlite", sqlite)
        with running_noop() as url:
            noop = measure_noop(url, queues)
        describe("noop", noop)
        database = asyncio.run(create_test_database(prefix="flop_bench_"))
        try:
            asyncio.run(migrate_event_store(database))
            pg_env = serve_env(root / "pg", database)
            with running_serve(pg_env) as (url, _):
                postgres, _ = measure_submit([url], per_client, "pg", 0)
            describe("submit postgresql", postgres)
            with running_serve(pg_env) as (first, _), running_serve(pg_env) as (second, _):
                replicas, _ = measure_submit([first, second], per_client, "pg2", 0)
            describe("submit postgresql x2", replicas)
        finally:
            asyncio.run(drop_test_database(database))
    print(
        f"RESULT submit_vs_noop_postgresql={postgres.per_s / noop.per_s:.3f} "
        f"submit_per_s_postgresql={postgres.per_s:.0f} "
        f"p99_ms_postgresql={postgres.latency_ms(0.99):.1f} "
        f"submit_vs_noop_sqlite={sqlite.per_s / noop.per_s:.3f} "
        f"submit_per_s_sqlite={sqlite.per_s:.0f} p99_ms_sqlite={sqlite.latency_ms(0.99):.1f} "
        f"replicas2_vs_1={replicas.per_s / postgres.per_s:.3f}"
    )
    return 0


def _wait_port(port: int, child: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit("the no-op server exited during start-up")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise SystemExit("the no-op server did not start")


if __name__ == "__main__":
    sys.exit(main())
