"""Artifacts (results, proofs, attestation reports) in a write-once JetStream stream, by SHA-256.

An artifact's address is the hex SHA-256 of its bytes. It is stored as chunks on
``flop.obj.c.<digest>.<index>`` and then a small manifest on ``flop.obj.m.<digest>``, in the
stream ``FLOP_OBJECTS`` whose every subject holds one message at most and refuses a second
one (``max_msgs_per_subject=1``, ``discard_new_per_subject``): the server itself keeps a
write under an existing digest from changing its bytes, whoever writes. Deleting is a purge
(``delete``), which the NATS permissions (``adapters.nats.permissions``) grant the operator
alone. Every read is checked against the address, so bytes stored under the wrong name
(the first writer of a digest lied, or the disk damaged them) are reported as
``ArtifactCorrupt`` instead of returned; such a copy stays until the operator deletes it.
"""

from __future__ import annotations

import hashlib
import re

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from adapters.nats.connection import describe_server, nats_errors
from adapters.nats.errors import ArtifactCorrupt, ArtifactNotFound, ArtifactTooLarge, NatsError

OBJECT_STREAM = "FLOP_OBJECTS"
OBJECT_SUBJECT_PREFIX = "flop.obj"
OBJECT_SUBJECTS = f"{OBJECT_SUBJECT_PREFIX}.>"
OBJECT_CHUNK_PREFIX = f"{OBJECT_SUBJECT_PREFIX}.c"
OBJECT_MANIFEST_PREFIX = f"{OBJECT_SUBJECT_PREFIX}.m"
ARTIFACT_BYTES_MAX = 64 * 1024 * 1024
ARTIFACT_CHUNK_BYTES = 128 * 1024
ERR_NO_MESSAGE = 10037
"""JetStream's "no message found" (a subject never written, or purged)."""
ERR_STREAM_NAME_IN_USE = 10058
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_SUBJECT_FULL = "maximum messages per subject exceeded"


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What ``flop.obj.m.<digest>`` holds: the size and the number of chunks."""

    size_bytes: int
    chunks: int


def compute_artifact_digest(data: bytes) -> str:
    """The address of an artifact: lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def compute_chunk_subject(digest: str, index: int) -> str:
    return f"{OBJECT_CHUNK_PREFIX}.{digest}.{index}"


def compute_manifest_subject(digest: str) -> str:
    return f"{OBJECT_MANIFEST_PREFIX}.{digest}"


def build_object_stream_config(replicas: int = 1) -> StreamConfig:
    """One message per subject, a second one refused: objects are write-once."""
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    return StreamConfig(
        name=OBJECT_STREAM,
        description="flopledger artifacts by SHA-256: write-once chunks and manifests",
        subjects=[OBJECT_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_msgs_per_subject=1,
        discard=DiscardPolicy.NEW,
        discard_new_per_subject=True,
        max_msg_size=ARTIFACT_CHUNK_BYTES + 1024,
    )


def is_write_once(config: StreamConfig) -> bool:
    """Whether an existing stream still refuses a second write under a subject."""
    return (
        config.max_msgs_per_subject == 1
        and config.discard == DiscardPolicy.NEW
        and bool(config.discard_new_per_subject)
    )


class ArtifactStore:
    """put/get artifacts addressed by SHA-256, with a size limit and integrity checks."""

    def __init__(self, nc: Client, js: JetStreamContext, *, size_limit_bytes: int) -> None:
        self._nc = nc
        self._js = js
        self.size_limit_bytes = size_limit_bytes

    @classmethod
    async def open(
        cls,
        nc: Client,
        *,
        size_limit_bytes: int = ARTIFACT_BYTES_MAX,
        replicas: int = 1,
    ) -> ArtifactStore:
        """Open the stream, creating it when absent (a role the permissions let create
        streams: the operator; everybody else finds it made); refuse one that is not
        write-once."""
        if size_limit_bytes < 1:
            raise ValueError("size_limit_bytes must be >= 1")
        js = nc.jetstream()
        await ensure_object_stream(nc, js, replicas=replicas)
        return cls(nc, js, size_limit_bytes=size_limit_bytes)

    async def put(self, data: bytes) -> str:
        """Store ``data`` and return its digest; storing the same bytes again writes nothing.
        ArtifactCorrupt when other bytes were stored under this digest first."""
        if len(data) > self.size_limit_bytes:
            raise ArtifactTooLarge(len(data), self.size_limit_bytes)
        digest = compute_artifact_digest(data)
        if await self._get_manifest(digest) is not None:
            await self.get(digest)
            return digest
        chunks = [
            data[start : start + ARTIFACT_CHUNK_BYTES]
            for start in range(0, len(data), ARTIFACT_CHUNK_BYTES)
        ] or [b""]
        for index, chunk in enumerate(chunks):
            await self._write_once(digest, compute_chunk_subject(digest, index), chunk)
        manifest = msgspec.json.encode(Manifest(size_bytes=len(data), chunks=len(chunks)))
        await self._write_once(digest, compute_manifest_subject(digest), manifest)
        await self.get(digest)
        return digest

    async def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``; ArtifactCorrupt when they do not hash to it."""
        if not _DIGEST.match(digest):
            raise ArtifactNotFound(f"{digest!r} is not a SHA-256 hex digest")
        manifest = await self._get_manifest(digest)
        if manifest is None:
            raise ArtifactNotFound(f"no artifact {digest}")
        if manifest.size_bytes > self.size_limit_bytes:
            raise ArtifactTooLarge(manifest.size_bytes, self.size_limit_bytes)
        parts = []
        for index in range(manifest.chunks):
            chunk = await self._read(compute_chunk_subject(digest, index))
            if chunk is None:
                raise ArtifactCorrupt(digest, f"<chunk {index} missing>")
            parts.append(chunk)
        data = b"".join(parts)
        actual = compute_artifact_digest(data)
        if actual != digest:
            raise ArtifactCorrupt(digest, actual)
        return data

    async def has(self, digest: str) -> bool:
        """Whether a manifest is stored under ``digest`` (its content is not read)."""
        return bool(_DIGEST.match(digest)) and await self._get_manifest(digest) is not None

    async def delete(self, digest: str) -> None:
        """Purge the object (the operator's right alone: retention, or a forged first copy)."""
        if not _DIGEST.match(digest):
            raise ArtifactNotFound(f"{digest!r} is not a SHA-256 hex digest")
        async with nats_errors(self._nc, f"delete artifact {digest}"):
            await self._js.purge_stream(OBJECT_STREAM, subject=compute_manifest_subject(digest))
            await self._js.purge_stream(OBJECT_STREAM, subject=f"{OBJECT_CHUNK_PREFIX}.{digest}.*")

    async def _get_manifest(self, digest: str) -> Manifest | None:
        raw = await self._read(compute_manifest_subject(digest))
        if raw is None:
            return None
        try:
            manifest = msgspec.json.decode(raw, type=Manifest)
        except msgspec.DecodeError as exc:
            raise ArtifactCorrupt(digest, "<manifest malformed>") from exc
        expected = max(1, -(-manifest.size_bytes // ARTIFACT_CHUNK_BYTES))
        if manifest.size_bytes < 0 or manifest.chunks != expected:
            raise ArtifactCorrupt(digest, "<manifest inconsistent>")
        return manifest

    async def _read(self, subject: str) -> bytes | None:
        try:
            message = await self._js.get_last_msg(OBJECT_STREAM, subject)
        except nats.js.errors.APIError as exc:
            if exc.err_code == ERR_NO_MESSAGE:
                return None
            detail = f"{exc.description} (err_code {exc.err_code})"
            raise NatsError(describe_server(self._nc), f"read {subject}", detail) from exc
        except (nats.errors.Error, TimeoutError) as exc:
            raise NatsError(describe_server(self._nc), f"read {subject}", str(exc)) from exc
        return message.data or b""

    async def _write_once(self, digest: str, subject: str, payload: bytes) -> None:
        """Publish ``payload`` on a write-once subject; one already written must hold it."""
        try:
            async with nats_errors(self._nc, f"put artifact {digest}"):
                await self._js.publish(subject, payload, stream=OBJECT_STREAM)
            return
        except NatsError as exc:
            if _SUBJECT_FULL not in exc.detail:
                raise
        if await self._read(subject) != payload:
            raise ArtifactCorrupt(digest, f"<another write on {subject} first>")


async def ensure_object_stream(nc: Client, js: JetStreamContext, *, replicas: int = 1) -> None:
    """Find the object stream (creating it if absent); NatsError if it is not write-once."""
    try:
        async with nats_errors(nc, f"stream info {OBJECT_STREAM}"):
            info = await js.stream_info(OBJECT_STREAM)
    except NatsError as exc:
        if not isinstance(exc.__cause__, nats.js.errors.NotFoundError):
            raise
        async with nats_errors(nc, f"create stream {OBJECT_STREAM}"):
            try:
                await js.add_stream(build_object_stream_config(replicas))
            except nats.js.errors.APIError as created:
                if created.err_code != ERR_STREAM_NAME_IN_USE:
                    raise
        return
    if not is_write_once(info.config):
        raise NatsError(
            describe_server(nc),
            f"check stream {OBJECT_STREAM}",
            "the existing stream lets a subject be written twice; objects must be write-once",
        )
