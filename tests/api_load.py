"""Load on ``flopledger serve`` over loopback: signed job submissions, a light HTTP/1.1 client.

Shared by ``bench/api.py`` and the replica failover test (``tests/integration/api``).
Submissions are signed before the clock starts (signing is the client's work, not the
server's), one actor per client so that no two in-flight commands touch one account stream.
The client is a few lines of asyncio on keep-alive connections, so that its own cost stays
small next to the server's and is the same for every route measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec

from adapters.ledger_api.client import ApiClient
from adapters.ledger_api.routes import get_route
from domain import commands as c
from proofs.envelope import from_command_envelope, sign_command
from proofs.identity import Identity
from tests.chain_tx import fresh_chain_reference

SUBMIT_PATH = "/v1/jobs"
JOB_MAX_PRICE = 10
JOB_DEADLINE_S = 3_600
DEPOSIT_PER_JOB = JOB_MAX_PRICE
REQUEST_TIMEOUT_S = 30.0
HEADER_BYTES_MAX = 64 * 1024
SECOND_NS = 1_000_000_000
RETRIES_PER_TARGET = 3


@dataclass(frozen=True)
class SignedRequest:
    """One POST ready to send: its path, its JSON body and its Idempotency-Key."""

    path: str
    body: bytes
    key: str
    actor: str


@dataclass
class Answer:
    """What the server answered one request, and how long it took."""

    request: SignedRequest
    status: int
    body: bytes
    latency_s: float
    target: str


@dataclass
class LoadReport:
    answers: list[Answer] = field(default_factory=list)
    elapsed_s: float = 0.0
    transport_errors: int = 0
    unanswered: list[SignedRequest] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return len(self.answers) / self.elapsed_s if self.elapsed_s else 0.0

    def latency_ms(self, quantile: float) -> float:
        ordered = sorted(a.latency_s for a in self.answers)
        if not ordered:
            return 0.0
        return 1000.0 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def seeded(name: str) -> Identity:
    return Identity.from_seed(name.encode().ljust(32, b"\0"))


def fund_submitters(url: str, operator: Identity, submitters: Sequence[Identity], jobs: int) -> str:
    """Credit each submitter enough for ``jobs`` submissions; return the network id."""
    client = ApiClient(url, identity=operator)
    try:
        for owner in submitters:
            client.send(
                c.Deposit(
                    account_owner=owner.id,
                    amount=DEPOSIT_PER_JOB * jobs,
                    chain_reference=fresh_chain_reference(),
                )
            )
        return client.get_network_id()
    finally:
        client.close()


def sign_submissions(
    submitter: Identity, count: int, *, network_id: str, clock_ns: Callable[[], int] = time.time_ns
) -> list[SignedRequest]:
    """``count`` job submissions by ``submitter``, each with a fresh nonce; the key is the
    envelope's digest, as ``ApiClient`` sends it."""
    route = get_route(
        c.SubmitJob(
            workload=c.Workload(kind="matmul", gpu_class_min="consumer", params={"n": 512}),
            max_price=JOB_MAX_PRICE,
            region="eu-west",
            deadline_ns=0,
        )
    )
    now_ns = clock_ns()
    out: list[SignedRequest] = []
    for _ in range(count):
        body = c.encode_command_body(
            c.SubmitJob(
                workload=c.Workload(kind="matmul", gpu_class_min="consumer", params={"n": 512}),
                max_price=JOB_MAX_PRICE,
                region="eu-west",
                deadline_ns=now_ns + JOB_DEADLINE_S * SECOND_NS,
            )
        )
        envelope = sign_command(
            submitter,
            route.kind,
            body,
            nonce=secrets.token_hex(16),
            issued_at_ns=now_ns,
            network=network_id,
        )
        out.append(
            SignedRequest(
                path=route.compute_path(body),
                body=msgspec.json.encode(from_command_envelope(envelope)),
                key=envelope.digest().hex(),
                actor=submitter.id,
            )
        )
    return out


class HttpConnection:
    """One keep-alive HTTP/1.1 connection (Content-Length bodies only: what uvicorn sends)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        head = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += ["content-type: application/json", f"content-length: {len(body)}", "", ""]
        try:
            self._writer.write("\r\n".join(head).encode() + body)
            raw_head = await asyncio.wait_for(
                self._reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S
            )
            status, length, closing = _parse_head(raw_head)
            payload = await asyncio.wait_for(self._reader.readexactly(length), REQUEST_TIMEOUT_S)
        except BaseException:
            await self.close()
            raise
        if closing:
            await self.close()
        return status, payload

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def run_load(
    targets: Sequence[str],
    queues: Sequence[Sequence[SignedRequest]],
    *,
    retry_elsewhere: bool = False,
    report: LoadReport | None = None,
) -> LoadReport:
    """One client per queue, client ``i`` on ``targets[i % len(targets)]``, each sending its
    queue in order. A transport error (a server killed under load) is counted; with
    ``retry_elsewhere`` the request is sent again, same body and key, to the next target
    until one answers. ``report`` (filled as answers come) lets a caller watch the load."""
    report = report if report is not None else LoadReport()

    async def client(index: int, queue: Sequence[SignedRequest]) -> None:
        order = [targets[(index + k) % len(targets)] for k in range(len(targets))]
        connections = {target: HttpConnection(target) for target in order}
        try:
            for request in queue:
                await _send_one(request, order, connections, report, retry_elsewhere)
        finally:
            for connection in connections.values():
                await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i, q) for i, q in enumerate(queues)))
    report.elapsed_s = time.perf_counter() - started
    return report


async def _send_one(
    request: SignedRequest,
    order: list[str],
    connections: dict[str, HttpConnection],
    report: LoadReport,
    retry_elsewhere: bool,
) -> None:
    headers = {"idempotency-key": request.key}
    for _ in range(RETRIES_PER_TARGET * len(order) if retry_elsewhere else 1):
        target = order[0]
        started = time.perf_counter()
        try:
            status, body = await connections[target].post(request.path, request.body, headers)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            report.transport_errors += 1
            order.append(order.pop(0))  # this client's next tries go to another target first
            continue
        report.answers.append(Answer(request, status, body, time.perf_counter() - started, target))
        return
    report.unanswered.append(request)


def _parse_head(raw: bytes) -> tuple[int, int, bool]:
    if len(raw) > HEADER_BYTES_MAX:
        raise OSError("response head too long")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, closing = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            closing = True
    return status, length, closing
