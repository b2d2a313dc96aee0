"""Uploading and downloading objects through the API (issue 17), streamed, with progress.

``put_object_file`` hashes the file, streams it to ``PUT /v1/objects`` in a signed request,
checks that the digest the API answers is the one it computed, then signs
``object.record_stored`` itself (the API records nothing: the ledger attributes an upload
to whoever signs its record). ``get_object_to_file`` streams ``GET /v1/objects/{digest}``
into a temporary file beside the target, checks the digest and only then renames it, so a
cut or corrupt download never leaves a file under the target's name.

``api`` is the API's base URL, or an ``ApiClient`` already open (its HTTP client, clock and
network id are used: tests pass one over Litestar's TestClient).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
import msgspec

from adapters.ledger_api.client import ApiClient, ApiProblem, Conflict
from adapters.ledger_api.wire import ObjectView
from domain.commands import RecordObjectStored
from domain.errors import RejectionCode
from domain.objects import StoredObjectInfo
from proofs.identity import Identity
from proofs.request_auth import sign_request

OBJECTS_PATH = "/v1/objects"
ENCRYPTED_HEADER = "X-Flop-Object-Encrypted"
READ_CHUNK_BYTES = 1024 * 1024
TRANSFER_TIMEOUT = httpx.Timeout(30.0, read=600.0, write=600.0)
"""A GiB takes a while on a slow link: the connection gets 30 s, each read or write 600."""

Progress = Callable[[int, int | None], None]
"""Called with (bytes done, bytes in all or None when unknown) as a transfer advances."""


class ObjectDigestMismatch(Exception):
    """The bytes sent or received do not hash to the digest they should."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"object digest mismatch: expected {expected}, got {actual}")
        self.expected, self.actual = expected, actual


def put_object_file(
    api: str | ApiClient,
    identity: Identity,
    path: Path,
    *,
    encrypted: bool = False,
    progress: Progress | None = None,
    record: bool = True,
) -> StoredObjectInfo:
    """Store the file's bytes as given; returns their digest, size and mark. ``record``:
    then sign ``object.record_stored`` (what a job's inputs need on the ledger)."""
    size = path.stat().st_size
    with path.open("rb") as source:
        expected = _hash_file(source)
        source.seek(0)
        return _put(api, identity, source, size, expected, (encrypted, record), progress)


def put_object_bytes(
    api: str | ApiClient,
    identity: Identity,
    data: bytes,
    *,
    encrypted: bool = False,
    progress: Progress | None = None,
    record: bool = True,
) -> StoredObjectInfo:
    """Store ``data`` (already in memory) as an object (``record``: as ``put_object_file``)."""
    expected = hashlib.sha256(data).hexdigest()
    source = io.BytesIO(data)
    return _put(api, identity, source, len(data), expected, (encrypted, record), progress)


def get_object_to_file(
    api: str | ApiClient,
    identity: Identity | None,
    digest: str,
    out: Path,
    *,
    job_id: str | None = None,
    progress: Progress | None = None,
) -> StoredObjectInfo:
    """Write the object to ``out`` (atomically, once its digest checked). ``identity``
    signs the request (None: a ciphertext object needs no signer)."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(descriptor, "wb") as sink:
            info = _get(api, identity, digest, sink, job_id, progress)
        Path(temporary).replace(out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()
        raise
    return info


def get_object_bytes(
    api: str | ApiClient,
    identity: Identity | None,
    digest: str,
    *,
    job_id: str | None = None,
    completion_id: str | None = None,
    progress: Progress | None = None,
) -> bytes:
    """The object's bytes, in memory (small objects; use a file for large ones).
    ``job_id`` or ``completion_id`` names what the signer reads it as a party of."""
    sink = io.BytesIO()
    _get(api, identity, digest, sink, job_id, progress, completion_id)
    return sink.getvalue()


def record_object_stored(client: ApiClient, identity: Identity, info: StoredObjectInfo) -> None:
    """Sign ``object.record_stored`` for an upload; one recorded already is fine."""
    command = RecordObjectStored(
        digest=bytes.fromhex(info.digest), size_bytes=info.size_bytes, uploader=identity.id
    )
    try:
        client.send(command, identity=identity)
    except Conflict as exc:
        if exc.code != RejectionCode.OBJECT_ALREADY_RECORDED:
            raise


def _put(
    api: str | ApiClient,
    identity: Identity,
    source: BinaryIO,
    size: int,
    expected: str,
    marks: tuple[bool, bool],
    progress: Progress | None,
) -> StoredObjectInfo:
    encrypted, record = marks
    with _open_client(api, identity) as client:
        headers = sign_request(
            identity, "PUT", OBJECTS_PATH, client.get_network_id(), client.clock_ns()
        )
        headers |= {
            "content-type": "application/octet-stream",
            "content-length": str(size),
            ENCRYPTED_HEADER: "1" if encrypted else "0",
        }
        response = client.http.put(
            OBJECTS_PATH,
            content=_read_chunks(source, size, progress),
            headers=headers,
            timeout=TRANSFER_TIMEOUT,
        )
        if response.status_code >= 400:
            ApiClient._decode(response)
        view = msgspec.json.decode(response.content, type=ObjectView)
        if view.digest != expected or view.size_bytes != size:
            raise ObjectDigestMismatch(expected, view.digest)
        info = StoredObjectInfo(
            digest=view.digest, size_bytes=view.size_bytes, encrypted=view.encrypted
        )
        if record:
            record_object_stored(client, identity, info)
        return info


def _get(
    api: str | ApiClient,
    identity: Identity | None,
    digest: str,
    sink: BinaryIO,
    job_id: str | None,
    progress: Progress | None,
    completion_id: str | None = None,
) -> StoredObjectInfo:
    query = [f"job={job_id}"] * (job_id is not None) + [f"completion={completion_id}"] * (
        completion_id is not None
    )
    path_qs = f"{OBJECTS_PATH}/{digest}" + (f"?{'&'.join(query)}" if query else "")
    with _open_client(api, identity) as client:
        headers = {}
        if identity is not None:
            network_id = client.get_network_id()
            headers = sign_request(identity, "GET", path_qs, network_id, client.clock_ns())
        with client.http.stream(
            "GET", path_qs, headers=headers, timeout=TRANSFER_TIMEOUT
        ) as response:
            if response.status_code >= 400:
                response.read()
                ApiClient._decode(response)
            total = _content_length(response)
            hasher, done = hashlib.sha256(), 0
            for chunk in response.iter_bytes(READ_CHUNK_BYTES):
                hasher.update(chunk)
                sink.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if hasher.hexdigest() != digest:
            raise ObjectDigestMismatch(digest, hasher.hexdigest())
        encrypted = response.headers.get(ENCRYPTED_HEADER) == "1"
        return StoredObjectInfo(digest=digest, size_bytes=done, encrypted=encrypted)


@contextlib.contextmanager
def _open_client(api: str | ApiClient, identity: Identity | None) -> Iterator[ApiClient]:
    if isinstance(api, ApiClient):
        yield api
        return
    client = ApiClient(api, identity=identity)
    try:
        yield client
    finally:
        client.close()


def _read_chunks(source: BinaryIO, size: int, progress: Progress | None) -> Iterator[bytes]:
    done = 0
    while chunk := source.read(READ_CHUNK_BYTES):
        done += len(chunk)
        if progress is not None:
            progress(done, size)
        yield chunk


def _hash_file(source: BinaryIO) -> str:
    hasher = hashlib.sha256()
    while chunk := source.read(READ_CHUNK_BYTES):
        hasher.update(chunk)
    return hasher.hexdigest()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


__all__ = [
    "ApiProblem",
    "ObjectDigestMismatch",
    "get_object_bytes",
    "get_object_to_file",
    "put_object_bytes",
    "put_object_file",
    "record_object_stored",
]
