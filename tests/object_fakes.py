"""An in-memory object store for API unit tests (the port ``domain.ports.ObjectStore``); the
NATS adapter has its own integration tests."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator

from adapters.nats.errors import ArtifactNotFound, ArtifactTooLarge
from domain.objects import StoredObjectInfo

FAKE_LIMIT_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


class MemoryObjectStore:
    """Objects by SHA-256 in a dict, write-once (the first writer's mark is kept)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, bool]] = {}
        self.uploaders: set[tuple[str, str]] = set()

    async def put_stream(
        self,
        chunks: AsyncIterable[bytes],
        *,
        encrypted: bool = False,
        size_limit_bytes: int | None = None,
    ) -> StoredObjectInfo:
        limit = FAKE_LIMIT_BYTES if size_limit_bytes is None else size_limit_bytes
        data = bytearray()
        async for chunk in chunks:
            data += chunk
            if len(data) > limit:
                raise ArtifactTooLarge(len(data), limit)
        digest = hashlib.sha256(data).hexdigest()
        self.objects.setdefault(digest, (bytes(data), encrypted))
        return self._info(digest)

    async def get_stream(self, digest: str) -> AsyncIterator[bytes]:
        if digest not in self.objects:
            raise ArtifactNotFound(f"no artifact {digest}")
        data = self.objects[digest][0]
        for start in range(0, max(len(data), 1), CHUNK_BYTES):
            yield data[start : start + CHUNK_BYTES]

    async def info(self, digest: str) -> StoredObjectInfo | None:
        return self._info(digest) if digest in self.objects else None

    async def mark_uploader(self, digest: str, actor: str) -> None:
        self.uploaders.add((digest, actor))

    async def has_uploader(self, digest: str, actor: str) -> bool:
        return (digest, actor) in self.uploaders

    def _info(self, digest: str) -> StoredObjectInfo:
        data, encrypted = self.objects[digest]
        return StoredObjectInfo(digest=digest, size_bytes=len(data), encrypted=encrypted)
