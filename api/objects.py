"""The object routes' work (issue 17): signed requests, the upload limit, who may read what.

``PUT /v1/objects`` streams the request body into the object store, bounded by the
policy's ``object_upload_bytes_max`` (a declared Content-Length over it is refused before a
byte is read; a body that grows past it is cut off), and answers the digest the store
computed. Nothing is recorded on the ledger: the uploader signs ``object.record_stored``
itself; the API notes in the store that the signer sent these bytes (the proof an
uploader's read rests on). ``GET /v1/objects/{digest}`` streams an object to whom
``domain.object_access`` allows. Both need a signed request (``proofs.request_auth``),
but a read of a ciphertext object, which anyone who can name it may make.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request

from api.errors import ApiError
from api.state import ApiDeps
from domain.completions import Completion, compute_completion_stream_id
from domain.errors import RejectionCode
from domain.job import Job
from domain.object_access import ObjectAccess, decide_object_access
from domain.objects import StoredObject, StoredObjectInfo, compute_object_id
from domain.ports import ObjectStore
from domain.services.queries import get_aggregate
from proofs.request_auth import RequestUnsigned, has_request_signature, verify_request
from proofs.sealed_object import HEADER_BYTES as SEALED_PREFIX_BYTES
from proofs.sealed_object import is_sealed_object

ENCRYPTED_HEADER = "X-Flop-Object-Encrypted"
_DIGEST_CHARS = frozenset("0123456789abcdef")


async def store_upload(deps: ApiDeps, request: Request[Any, Any, Any]) -> StoredObjectInfo:
    """Authenticate the uploader, then stream the body into the store under the limit."""
    actor = await authenticate(deps, request)
    deps.rate.spend(actor)
    limit = await get_upload_limit_bytes(deps)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            RejectionCode.ARTIFACT_TOO_LARGE,
            f"an object of {declared} bytes exceeds the upload limit of {limit} bytes",
            status=413,
        )
    encrypted = parse_encrypted_header(request.headers.get(ENCRYPTED_HEADER))
    store = await deps.objects.get()
    body = _require_sealed(request.stream()) if encrypted else request.stream()
    info = await store.put_stream(body, encrypted=encrypted, size_limit_bytes=limit)
    await store.mark_uploader(info.digest, actor)
    return info


async def open_download(
    deps: ApiDeps,
    request: Request[Any, Any, Any],
    digest: str,
    job_id: str | None,
    completion_id: str | None = None,
) -> tuple[StoredObjectInfo, AsyncIterator[bytes]]:
    """The object's info and its bytes, when the request may read it."""
    if len(digest) != 64 or not set(digest) <= _DIGEST_CHARS:
        raise ApiError(
            RejectionCode.OBJECT_DIGEST_INVALID,
            "an object is named by the 64 lowercase hex characters of its SHA-256",
            status=422,
        )
    store = await deps.objects.get()
    info = await store.info(digest)
    if info is None:
        raise ApiError(RejectionCode.ARTIFACT_NOT_FOUND, f"no object {digest}", status=404)
    if not info.encrypted:
        await check_plaintext_reader(deps, request, store, digest, job_id, completion_id)
    return info, store.get_stream(digest)


async def check_plaintext_reader(
    deps: ApiDeps,
    request: Request[Any, Any, Any],
    store: ObjectStore,
    digest: str,
    job_id: str | None,
    completion_id: str | None = None,
) -> ObjectAccess:
    """Refuse (401, 403, 404 for a job or completion named but absent) unless the signer may
    read this plaintext object. An uploader is one the ledger records (``object.record_stored``)
    and that sent the bytes to this API: a record alone proves nothing (anyone may sign one
    for a digest read off the public log)."""
    reader = await authenticate(deps, request)
    is_uploader = await store.has_uploader(digest, reader) and (
        await get_aggregate(
            deps.store, StoredObject, compute_object_id(bytes.fromhex(digest), reader)
        )
        is not None
    )
    job = None
    if not is_uploader and job_id is not None:
        job = await get_aggregate(deps.store, Job, job_id)
        if job is None:
            raise ApiError(RejectionCode.JOB_NOT_FOUND, f"no job {job_id}", status=404)
    completion = None
    if not is_uploader and completion_id is not None:
        completion = await get_aggregate(
            deps.store, Completion, compute_completion_stream_id(completion_id)
        )
        if completion is None:
            raise ApiError(
                RejectionCode.COMPLETION_NOT_FOUND, f"no completion {completion_id}", status=404
            )
    access = decide_object_access(
        digest=digest,
        encrypted=False,
        reader=reader,
        is_uploader=is_uploader,
        job=job,
        completion=completion,
    )
    if access == ObjectAccess.REFUSED:
        scope = " ".join(
            [f"job {job_id}"] * (job_id is not None)
            + [f"completion {completion_id}"] * (completion_id is not None)
        )
        raise ApiError(
            RejectionCode.OBJECT_READ_REFUSED,
            f"{reader} may not read plaintext object {digest} "
            f"({scope or 'no job (?job=) or completion (?completion=) named'}): only its "
            "uploaders, the consumer, node and drawn validators of a job whose object it is, "
            "and those of a completion whose bundle it is",
            status=403,
        )
    return access


async def authenticate(deps: ApiDeps, request: Request[Any, Any, Any]) -> str:
    """The actor who signed this request (RequestAuthError otherwise: 401)."""
    if not has_request_signature(request.headers):
        raise RequestUnsigned(
            "this request must be signed (X-Flop-Actor, X-Flop-Timestamp-Ns, X-Flop-Signature)"
        )
    query = request.scope.get("query_string", b"").decode("latin-1")
    path_qs = request.url.path + (f"?{query}" if query else "")
    network_id = await deps.service.get_network_id()
    return verify_request(request.headers, request.method, path_qs, network_id, deps.clock_ns())


async def get_upload_limit_bytes(deps: ApiDeps) -> int:
    """The policy's ``object_upload_bytes_max`` (1 GiB by default)."""
    return (await deps.service.get_policy()).object_upload_bytes_max


async def _require_sealed(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks``, refused (422) unless they begin as a sealed object does: a plaintext
    marked ciphertext by mistake would be readable by anyone. A safety net for honest
    clients, not a proof: anyone can write the magic before any bytes."""
    prefix = b""
    checked = False
    async for chunk in chunks:
        if not checked:
            prefix += chunk[: SEALED_PREFIX_BYTES - len(prefix)]
            if len(prefix) >= SEALED_PREFIX_BYTES:
                _check_sealed(prefix)
                checked = True
        yield chunk
    if not checked:
        _check_sealed(prefix)


def _check_sealed(prefix: bytes) -> None:
    if not is_sealed_object(prefix):
        raise ApiError(
            RejectionCode.OBJECT_NOT_SEALED,
            f"an object marked {ENCRYPTED_HEADER}: 1 must be a sealed object "
            "(proofs.sealed_object): these bytes do not begin as one",
            status=422,
        )


def parse_encrypted_header(value: str | None) -> bool:
    if value is None or value == "0":
        return False
    if value == "1":
        return True
    raise ApiError(
        RejectionCode.OBJECT_HEADER_INVALID,
        f"{ENCRYPTED_HEADER} must be 1 (ciphertext) or 0, not {value[:16]!r}",
        status=422,
    )
