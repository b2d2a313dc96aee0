"""The object routes through ``flopledger serve`` (a child process on SQLite) with its object
store on a real nats-server, logged in as the ``api`` user: the CLI's ``object put`` prints
the digest of the bytes, ``object get`` writes them back; a plaintext object is refused to a
stranger, a ciphertext one is readable by anyone; an upload over the policy's limit is 413
and leaves nothing on the ledger nor in the store."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest

from adapters.ledger_api.client import ApiClient
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.objects import ArtifactStore
from adapters.nats.permissions import NatsUser, Role
from adapters.nats.server import EmbeddedNatsServer
from proofs.identity import Identity
from proofs.request_auth import sign_request
from proofs.sealed_object import new_data_key, seal_bytes
from tests.serve_process import running_serve

OPERATOR_SEED = b"objects-operator".ljust(32, b"\0")
STRANGER_SEED = b"objects-stranger".ljust(32, b"\0")
UPLOAD_LIMIT_BYTES = 4 * 1024 * 1024
CLI_TIMEOUT_S = 120


@dataclass
class Served:
    url: str
    nats: EmbeddedNatsServer
    operator_nats: NatsUser
    operator_key: Path
    stranger_key: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    operator_nats = NatsUser("operator", frozenset({Role.OPERATOR}))
    api_nats = NatsUser("api", frozenset({Role.API}))
    nats = EmbeddedNatsServer(tmp_path / "nats", users=[operator_nats, api_nats])
    nats.start()
    try:
        asyncio.run(_make_object_stream(operator_nats.compute_url(nats.url)))
        operator_key = tmp_path / "operator.key"
        operator_key.write_text(OPERATOR_SEED.hex() + "\n")
        stranger_key = tmp_path / "stranger.key"
        stranger_key.write_text(STRANGER_SEED.hex() + "\n")
        env = {
            **os.environ,
            "FLOP_DATA_DIR": str(tmp_path / "data"),
            "FLOP_OPERATOR_IDS": Identity.from_seed(OPERATOR_SEED).id,
            "FLOP_LOG_KEY_FILE": str(operator_key),
            "FLOP_LOG_LEVEL": "warning",
            "FLOP_NATS_URL": api_nats.compute_url(nats.url),
        }
        policy = {"object_upload_bytes_max": UPLOAD_LIMIT_BYTES}
        env["FLOP_POLICY_JSON"] = msgspec.json.encode(policy).decode()
        with running_serve(env) as (url, _process):
            yield Served(url, nats, operator_nats, operator_key, stranger_key)
    finally:
        nats.stop()


async def _make_object_stream(url: str) -> None:
    nc = await connect_nats(url, name="test-operator")
    try:
        await ArtifactStore.open(nc)
    finally:
        await close_nats(nc)


async def _stored_info(served: Served, digest: str) -> object:
    nc = await connect_nats(served.operator_nats.compute_url(served.nats.url), name="test-check")
    try:
        return await (await ArtifactStore.open(nc)).info(digest)
    finally:
        await close_nats(nc)


def cli(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flopledger.cli", "object", *args, "--api", served.url],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_put_then_get_round_trips_through_serve_and_nats(served: Served, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 11)  # many chunks, a short last one
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    put = cli(served, "put", str(source), "--key", str(served.operator_key))
    assert put.returncode == 0, put.stderr
    assert put.stdout == hashlib.sha256(data).hexdigest() + "\n"
    digest = put.stdout.strip()
    out = tmp_path / "back.bin"
    got = cli(served, "get", digest, "--out", str(out), "--key", str(served.operator_key))
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == data
    # The upload is recorded on the ledger, signed by its uploader.
    events = httpx.get(f"{served.url}/v1/events", params={"limit": 1000}).json()["items"]
    assert any(event["event_type"].endswith("ObjectStored") for event in events)

    # A stranger's signed read of the plaintext object is refused, in one line, exit 1 ...
    refused_out = tmp_path / "refused.bin"
    refused = cli(
        served, "get", digest, "--out", str(refused_out), "--key", str(served.stranger_key)
    )
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "403 object_read_refused" in refused.stderr
    assert not refused_out.exists()
    # ... and an absent object is exit 1 too.
    absent = cli(served, "get", "0" * 64, "--out", str(tmp_path / "absent.bin"))
    assert absent.returncode == 1
    assert "404" in absent.stderr


def test_a_ciphertext_object_is_readable_by_anyone(served: Served, tmp_path: Path) -> None:
    sealed = seal_bytes(new_data_key(), os.urandom(200_000))
    source = tmp_path / "sealed.bin"
    source.write_bytes(sealed)
    put = cli(served, "put", str(source), "--encrypted", "--key", str(served.operator_key))
    assert put.returncode == 0, put.stderr
    digest = put.stdout.strip()
    assert digest == hashlib.sha256(sealed).hexdigest()
    response = httpx.get(f"{served.url}/v1/objects/{digest}")  # unsigned
    assert response.status_code == 200
    assert response.content == sealed
    assert response.headers["x-flop-object-encrypted"] == "1"


def test_an_upload_over_the_policy_limit_is_413_and_leaves_nothing(served: Served) -> None:
    operator = Identity.from_seed(OPERATOR_SEED)
    client = ApiClient(served.url, identity=operator)
    network = client.get_network_id()
    before = client.get("/v1/events", {"limit": 1000})["items"]
    too_big = os.urandom(UPLOAD_LIMIT_BYTES + 1)

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off as it passes the limit
        for start in range(0, len(too_big), 256 * 1024):
            yield too_big[start : start + 256 * 1024]

    answered = []
    for body in (too_big, chunks()):
        headers = sign_request(operator, "PUT", "/v1/objects", network, client.clock_ns())
        try:
            response = httpx.put(f"{served.url}/v1/objects", content=body, headers=headers)
        except httpx.WriteError:
            continue  # the server answered and closed before the whole body was sent
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "artifact_too_large"
        answered.append(isinstance(body, bytes))
    assert answered, "neither upload got its 413 back"
    assert asyncio.run(_stored_info(served, hashlib.sha256(too_big).hexdigest())) is None
    assert client.get("/v1/events", {"limit": 1000})["items"] == before
