"""Artifacts (results, proofs, attestation reports) in a JetStream object store, by SHA-256.

An artifact's address is the hex SHA-256 of its bytes; ``put`` is idempotent. Every read is
checked twice: nats-py compares the chunks with the object's metadata digest, and we compare
the bytes with the address itself, so that an object stored under the wrong name (or
damaged on disk) is reported as ``ArtifactCorrupt`` instead of returned.
"""

from __future__ import annotations

import hashlib
import io
import re

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import ObjectMeta, ObjectMetaOptions, StorageType
from nats.js.object_store import ObjectStore

from adapters.nats.connection import describe_server, nats_errors
from adapters.nats.errors import ArtifactCorrupt, ArtifactNotFound, ArtifactTooLarge, NatsError

ARTIFACT_BUCKET = "FLOP_ARTIFACTS"
ARTIFACT_BYTES_MAX = 64 * 1024 * 1024
ARTIFACT_CHUNK_BYTES = 128 * 1024
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def compute_artifact_digest(data: bytes) -> str:
    """The address of an artifact: lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """put/get artifacts addressed by SHA-256, with a size limit and integrity checks."""

    def __init__(self, nc: Client, store: ObjectStore, *, size_limit_bytes: int) -> None:
        self._nc = nc
        self._store = store
        self.size_limit_bytes = size_limit_bytes

    @classmethod
    async def open(
        cls,
        nc: Client,
        *,
        bucket: str = ARTIFACT_BUCKET,
        size_limit_bytes: int = ARTIFACT_BYTES_MAX,
        replicas: int = 1,
    ) -> ArtifactStore:
        """Open (creating if needed) the bucket; file storage, ``replicas`` copies."""
        if size_limit_bytes < 1:
            raise ValueError("size_limit_bytes must be >= 1")
        js = nc.jetstream()
        async with nats_errors(nc, f"open object store {bucket}"):
            try:
                store = await js.object_store(bucket)
            except nats.js.errors.NotFoundError:
                store = await js.create_object_store(
                    bucket, storage=StorageType.FILE, replicas=replicas
                )
        return cls(nc, store, size_limit_bytes=size_limit_bytes)

    async def put(self, data: bytes) -> str:
        """Store ``data`` and return its digest; storing the same bytes again writes nothing."""
        if len(data) > self.size_limit_bytes:
            raise ArtifactTooLarge(len(data), self.size_limit_bytes)
        digest = compute_artifact_digest(data)
        if await self._is_intact_copy(digest):
            return digest
        meta = ObjectMeta(
            name=digest, options=ObjectMetaOptions(max_chunk_size=ARTIFACT_CHUNK_BYTES)
        )
        async with nats_errors(self._nc, f"put artifact {digest}"):
            await self._store.put(digest, data, meta=meta)
        return digest

    async def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``; ArtifactCorrupt when they do not hash to it."""
        if not _DIGEST.match(digest):
            raise ArtifactNotFound(f"{digest!r} is not a SHA-256 hex digest")
        size = await self._size(digest)
        if size > self.size_limit_bytes:
            raise ArtifactTooLarge(size, self.size_limit_bytes)
        sink = io.BytesIO()
        try:
            await self._store.get(digest, writeinto=sink)
        except nats.js.errors.DigestMismatchError as exc:
            raise ArtifactCorrupt(digest, "a digest other than its metadata's") from exc
        except nats.js.errors.ObjectNotFoundError as exc:
            raise ArtifactNotFound(f"no artifact {digest}") from exc
        except (nats.errors.Error, TimeoutError) as exc:
            raise NatsError(describe_server(self._nc), f"get artifact {digest}", str(exc)) from exc
        data = sink.getvalue()
        actual = compute_artifact_digest(data)
        if actual != digest:
            raise ArtifactCorrupt(digest, actual)
        return data

    async def has(self, digest: str) -> bool:
        """Whether an object is stored under ``digest`` (its content is not read)."""
        try:
            await self._size(digest)
        except ArtifactNotFound:
            return False
        return True

    async def _size(self, digest: str) -> int:
        try:
            async with nats_errors(self._nc, f"artifact info {digest}"):
                info = await self._store.get_info(digest)
        except NatsError as exc:
            if isinstance(exc.__cause__, nats.js.errors.ObjectNotFoundError):
                raise ArtifactNotFound(f"no artifact {digest}") from exc
            raise
        return info.size or 0

    async def _is_intact_copy(self, digest: str) -> bool:
        try:
            await self.get(digest)
        except (ArtifactNotFound, ArtifactCorrupt):
            return False
        return True
