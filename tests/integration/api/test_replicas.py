"""Two ``flopledger serve`` replicas on one PostgreSQL database behave as one service.

Real processes: both replicas take signed job submissions with Idempotency-Keys; the one
holding the sealer lock is SIGKILLed under load and the clients retry what it did not answer,
same body and key, on the survivor. Then every accepted command is in the log exactly once,
a retried key answers the first result on the other replica (and a key reused with another
body is refused there: the bindings live in the database), the survivor takes the sealer
lock and seals past the kill, and the live event feed (SSE) of both replicas carries the
same records as the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest

from adapters.ledger_api.client import ApiClient
from adapters.ledger_api.wire import EVENTS_LIMIT_MAX
from adapters.store.factory import migrate_event_store
from proofs.identity import Identity
from proofs.tree_head import SignedTreeHead, verify_tree_head
from tests.api_load import (
    Answer,
    HttpConnection,
    LoadReport,
    SignedRequest,
    fund_submitters,
    run_load,
    seeded,
    sign_submissions,
)
from tests.conftest_pg import pg_server_url, pg_url  # noqa: F401  (fixtures)
from tests.serve_process import running_serve

pytestmark = pytest.mark.slow

OPERATOR = seeded("replica-operator")
LOG_KEY_SEED = b"replica-log-key".ljust(32, b"\0")
SUBMITTERS = 16
JOBS_EACH = 24
BEFORE_KILL = 6
"""Submissions each submitter sends before the load (the cross-replica retry checks)."""
KILL_AFTER_ANSWERS = 120
LEADER_WAIT_S = 20.0
SEAL_WAIT_S = 20.0
SSE_WAIT_S = 20.0
LEADER_LOG_EVENT = "sealer_leader_acquired"


@contextmanager
def replica(env: dict[str, str], log: IO[bytes]) -> Iterator[tuple[str, int]]:
    with running_serve(env, stderr=log, stdout=subprocess.DEVNULL) as (url, process):
        yield url, process.pid


def test_two_replicas_survive_the_leaders_death_under_load(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    asyncio.run(migrate_event_store(pg_url))
    env = _serve_env(tmp_path, pg_url)
    logs = [tmp_path / "replica-a.log", tmp_path / "replica-b.log"]
    with ExitStack() as stack:
        files = [stack.enter_context(path.open("wb")) for path in logs]
        (url_a, pid_a), (url_b, pid_b) = (stack.enter_context(replica(env, f)) for f in files)
        urls, pids = [url_a, url_b], [pid_a, pid_b]
        leader = _wait_for_leader(logs)
        survivor = 1 - leader
        submitters = [seeded(f"replica-submitter-{i}") for i in range(SUBMITTERS)]
        network_id = fund_submitters(urls[0], OPERATOR, submitters, JOBS_EACH + BEFORE_KILL)
        queues = [
            sign_submissions(s, JOBS_EACH + BEFORE_KILL, network_id=network_id) for s in submitters
        ]
        before = [q[:BEFORE_KILL] for q in queues]
        load = [q[BEFORE_KILL:] for q in queues]

        first_new = _get_head(urls[0]) + 1
        feeds = [SseFeed(url, first_new) for url in urls]
        for feed in feeds:
            stack.callback(feed.close)
        early = asyncio.run(run_load(urls, before))
        _check_a_reused_key_is_refused_on_the_other_replica(early, urls)
        _check_retries_elsewhere_answer_the_first_result(early, urls)
        _check_feeds_agree_with_the_log(feeds, urls[1], first_new, _get_head(urls[0]))

        report = asyncio.run(_load_and_kill(urls, load, pids[leader]))
        assert report.transport_errors > 0, "the kill hit no request in flight"
        assert not report.unanswered
        answered = early.answers + report.answers
        assert all(a.status == 201 for a in answered), [
            a.body[:200] for a in answered if a.status != 201
        ][:3]
        _check_each_command_in_the_log_once(urls[survivor], answered, submitters)
        _check_retries_elsewhere_answer_the_first_result(report, [urls[survivor]])
        _check_the_survivor_seals_past_the_kill(urls[survivor], logs[survivor], answered)
        last = max(msgspec.json.decode(a.body)["last_position"] for a in answered)
        after = SseFeed(urls[survivor], first_new)
        stack.callback(after.close)
        _check_feeds_agree_with_the_log([after], urls[survivor], first_new, last)


class SseFeed:
    """``GET /v1/events/stream?from=...`` of one replica, read in a thread: (position, hash).

    On a plain socket, so that ``close`` ends the stream at once from the test's thread
    (the server then drops it at its next write or at shutdown)."""

    def __init__(self, url: str, start: int) -> None:
        self.records: list[tuple[int, str]] = []
        parts = urlsplit(url)
        self._url = url
        self._socket = socket.create_connection((parts.hostname, parts.port), timeout=10)
        self._socket.settimeout(None)
        request = f"GET /v1/events/stream?from={start} HTTP/1.1\r\nhost: {parts.netloc}\r\n\r\n"
        self._socket.sendall(request.encode())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def wait_until(self, position: int, timeout_s: float) -> list[tuple[int, str]]:
        """The records up to ``position`` once they came; the stream is closed then."""
        deadline = time.monotonic() + timeout_s
        try:
            while not (self.records and self.records[-1][0] >= position):
                assert time.monotonic() < deadline, (
                    f"{self._url}: the feed stopped: {self.records[-1:]}"
                )
                time.sleep(0.05)
        finally:
            self.close()
        return [r for r in self.records if r[0] <= position]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._socket.close()

    def _read(self) -> None:
        # Chunked transfer: every SSE line arrives whole inside a chunk, so reading lines and
        # keeping the ``data:`` ones is enough here.
        with contextlib.suppress(OSError), self._socket.makefile("rb") as lines:
            for raw in lines:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line.startswith("data:"):
                    view = msgspec.json.decode(line[len("data:") :])
                    self.records.append((view["position"], view["hash"]))


def _serve_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    key_file = tmp_path / "log_key.hex"
    key_file.write_text(LOG_KEY_SEED.hex() + "\n")
    return {
        **os.environ,
        "FLOP_DATA_DIR": str(tmp_path / "data"),
        "FLOP_DATABASE_URL": database_url,
        "FLOP_OPERATOR_IDS": f"{OPERATOR.id},{Identity.from_seed(LOG_KEY_SEED).id}",
        "FLOP_LOG_KEY_FILE": str(key_file),
        "FLOP_LOG_LEVEL": "info",  # the sealer says which replica holds its lock
        "FLOP_SEAL_INTERVAL_S": "0.3",
    }


def _wait_for_leader(logs: list[Path]) -> int:
    deadline = time.monotonic() + LEADER_WAIT_S
    while True:
        holders = [
            i for i, path in enumerate(logs) if LEADER_LOG_EVENT in path.read_text(errors="replace")
        ]
        if holders:
            assert len(holders) == 1, "both replicas took the sealer lock"
            return holders[0]
        assert time.monotonic() < deadline, "no replica took the sealer lock"
        time.sleep(0.1)


async def _load_and_kill(
    urls: list[str], queues: list[list[SignedRequest]], leader_pid: int
) -> LoadReport:
    """The load on both replicas; SIGKILL of the leader once ``KILL_AFTER_ANSWERS`` came back."""
    report_box: list[LoadReport] = []
    load = asyncio.create_task(_collect(urls, queues, report_box))
    while not report_box or len(report_box[0].answers) < KILL_AFTER_ANSWERS:
        assert not load.done(), "the load ended before the kill"
        await asyncio.sleep(0.01)
    os.kill(leader_pid, signal.SIGKILL)
    await load
    return report_box[0]


async def _collect(
    urls: list[str], queues: list[list[SignedRequest]], box: list[LoadReport]
) -> None:
    report = LoadReport()
    box.append(report)
    done = await run_load(urls, queues, retry_elsewhere=True, report=report)
    assert done is report


def _check_retries_elsewhere_answer_the_first_result(
    report: LoadReport, targets: list[str]
) -> None:
    """Each request again, same body and key, on a replica that did not answer it first."""

    async def resend() -> None:
        connections = {url: HttpConnection(url) for url in targets}
        try:
            for answer in report.answers:
                other = next((u for u in targets if u != answer.target), None)
                if other is None:
                    continue
                status, body = await connections[other].post(
                    answer.request.path,
                    answer.request.body,
                    {"idempotency-key": answer.request.key},
                )
                assert (status, msgspec.json.decode(body)) == (
                    201,
                    msgspec.json.decode(answer.body),
                )
        finally:
            for connection in connections.values():
                await connection.close()

    asyncio.run(resend())


def _check_a_reused_key_is_refused_on_the_other_replica(
    report: LoadReport, urls: list[str]
) -> None:
    first, second = report.answers[0], report.answers[1]
    other = urls[1 - urls.index(first.target)]

    async def reuse() -> tuple[int, bytes]:
        connection = HttpConnection(other)
        try:
            return await connection.post(
                second.request.path, second.request.body, {"idempotency-key": first.request.key}
            )
        finally:
            await connection.close()

    status, body = asyncio.run(reuse())
    assert status == 409
    assert msgspec.json.decode(body)["code"] == "idempotency_key_reused"


def _check_feeds_agree_with_the_log(feeds: list[SseFeed], url: str, start: int, head: int) -> None:
    """Every feed carried positions ``start..head`` as the log (read from ``url``) holds them."""
    logged: list[tuple[int, str]] = []
    while len(logged) < head - start + 1:
        wanted = min(head - start + 1 - len(logged), EVENTS_LIMIT_MAX)
        params = {"from": start + len(logged), "limit": wanted}
        page = httpx.get(f"{url}/v1/events", params=params).json()
        logged += [(item["position"], item["hash"]) for item in page["items"]]
    assert [p for p, _ in logged] == list(range(start, head + 1))
    for feed in feeds:
        assert feed.wait_until(head, SSE_WAIT_S) == logged


def _check_each_command_in_the_log_once(
    url: str, answered: list, submitters: list[Identity]
) -> None:
    ours = {s.id for s in submitters}
    submitted: Counter[str] = Counter()
    position = 1
    while True:
        page = httpx.get(f"{url}/v1/events", params={"from": position, "limit": 1000}).json()
        for item in page["items"]:
            if item["event_type"].endswith("JobSubmitted") and item["data"].get("consumer") in ours:
                submitted[item["stream_id"]] += 1
        if page["next_position"] > page["head_position"]:
            break
        position = page["next_position"]
    accepted = {msgspec.json.decode(a.body)["job_id"] for a in answered}
    assert len(accepted) == len(answered), "two requests answered one job"
    assert set(submitted) == accepted, "the log and the answers differ"
    assert set(submitted.values()) == {1}, "a job was submitted twice"


def _check_the_survivor_seals_past_the_kill(url: str, log: Path, answered: list[Answer]) -> None:
    """A head signed with the log key covers every accepted command (the survivor sealed it:
    the leader died before the last of them was answered)."""
    last = max(msgspec.json.decode(a.body)["last_position"] for a in answered)
    deadline = time.monotonic() + SEAL_WAIT_S
    client = ApiClient(url)
    try:
        while (sealed := client.get_tree_head()).source != "sealed" or sealed.size < last:
            assert time.monotonic() < deadline, f"no head sealed up to {last} after the kill"
            time.sleep(0.1)
    finally:
        client.close()
    assert LEADER_LOG_EVENT in log.read_text(errors="replace")
    sth = SignedTreeHead(
        size=sealed.size,
        root=bytes.fromhex(sealed.root),
        timestamp_ns=sealed.timestamp_ns,
        signer=bytes.fromhex(sealed.signer),
        signature=bytes.fromhex(sealed.signature),
    )
    assert verify_tree_head(sth, Identity.from_seed(LOG_KEY_SEED).public_key_bytes)


def _get_head(url: str) -> int:
    return int(
        httpx.get(f"{url}/v1/events", params={"from": 1, "limit": 1}).json()["head_position"]
    )
