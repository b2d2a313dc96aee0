"""Where result artifacts go: the NATS object store (``adapters.nats.objects``), or, when the
agent runs without NATS, a local directory (validators cannot fetch from it: the agent logs
that once at start-up). Both address objects by hex SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from adapters.nats.errors import NatsError
from adapters.nats.objects import ArtifactStore


class ArtifactsUnavailable(Exception):
    """The artifact store cannot be reached now; worth retrying later."""


class ArtifactSink(Protocol):
    async def put(self, data: bytes) -> str: ...
    async def get(self, digest: str) -> bytes: ...
    async def put_sealed(self, data: bytes) -> str:
        """Store a sealed object, marked as ciphertext (issue 17: a private job's result)."""
        ...

    def get_stream(self, digest: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks, checked against ``digest`` at the end (a job's
        input objects, up to a GiB: never held whole by the store)."""
        ...


class NatsArtifactSink:
    """The JetStream object store; NATS operating errors become ``ArtifactsUnavailable``."""

    def __init__(self, store: ArtifactStore) -> None:
        self._store = store

    async def put(self, data: bytes) -> str:
        try:
            return await self._store.put(data)
        except NatsError as exc:
            raise ArtifactsUnavailable(str(exc)) from exc

    async def get(self, digest: str) -> bytes:
        try:
            return await self._store.get(digest)
        except NatsError as exc:
            raise ArtifactsUnavailable(str(exc)) from exc

    async def put_sealed(self, data: bytes) -> str:
        async def one() -> AsyncIterator[bytes]:
            yield data

        try:
            info = await self._store.put_stream(one(), encrypted=True)
        except NatsError as exc:
            raise ArtifactsUnavailable(str(exc)) from exc
        return info.digest

    async def get_stream(self, digest: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._store.get_stream(digest):
                yield chunk
        except NatsError as exc:
            raise ArtifactsUnavailable(str(exc)) from exc


class LocalArtifactSink:
    """A directory of files named by their hex SHA-256 (written atomically)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(_write_atomic, self._directory / digest, data)
        return digest

    async def get(self, digest: str) -> bytes:
        return await asyncio.to_thread((self._directory / digest).read_bytes)

    async def put_sealed(self, data: bytes) -> str:
        return await self.put(data)

    async def get_stream(self, digest: str) -> AsyncIterator[bytes]:
        data = await self.get(digest)
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArtifactsUnavailable(f"the local copy of {digest} is damaged")
        yield data


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
