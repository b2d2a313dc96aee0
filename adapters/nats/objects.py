"""Artifacts (results, proofs, attestation reports) in a write-once JetStream stream, by SHA-256.

An artifact's address is the hex SHA-256 of its bytes. ``put`` stores it as chunks on
``flop.obj.c.<digest>.<index>`` and then a small manifest on ``flop.obj.m.<digest>``.
``put_stream`` (issue 17: a consumer's upload of up to a GiB, never whole in memory) cannot
name the chunks by a digest it only knows at the end, so it writes them under a fresh upload
id, ``flop.obj.u.<upload>.<index>``, hashing as it goes, and the manifest (naming the upload
and whether the bytes are ciphertext) under the digest last: an object exists once its
manifest does. ``flop.obj.w.<digest>.<actor>`` notes that the API received the bytes from
``actor`` in a signed upload (``mark_uploader``). All of it lives in the
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
import secrets
from collections.abc import AsyncIterable, AsyncIterator

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from adapters.nats.chunking import RequestWindow, rechunk
from adapters.nats.connection import describe_server, nats_errors
from adapters.nats.errors import ArtifactCorrupt, ArtifactNotFound, ArtifactTooLarge, NatsError
from domain.objects import StoredObjectInfo

__all__ = ["ArtifactStore", "Manifest", "StoredObjectInfo"]

OBJECT_STREAM = "FLOP_OBJECTS"
OBJECT_SUBJECT_PREFIX = "flop.obj"
OBJECT_SUBJECTS = f"{OBJECT_SUBJECT_PREFIX}.>"
OBJECT_CHUNK_PREFIX = f"{OBJECT_SUBJECT_PREFIX}.c"
OBJECT_MANIFEST_PREFIX = f"{OBJECT_SUBJECT_PREFIX}.m"
OBJECT_UPLOAD_PREFIX = f"{OBJECT_SUBJECT_PREFIX}.u"
OBJECT_UPLOADER_PREFIX = f"{OBJECT_SUBJECT_PREFIX}.w"
"""``flop.obj.w.<digest>.<actor>``: the API's note that ``actor`` sent it these bytes
(a signed PUT), which only the API role may write (``adapters.nats.permissions``)."""
UPLOAD_ID_BYTES = 16
ARTIFACT_BYTES_MAX = 64 * 1024 * 1024
ARTIFACT_CHUNK_BYTES = 128 * 1024
WRITE_WINDOW = 8
"""Chunk writes awaiting their acknowledgement at once (what a streamed put holds: 1 MiB)."""
READ_WINDOW = 16
"""Chunk reads in flight at once while streaming an object out."""
ERR_NO_MESSAGE = 10037
"""JetStream's "no message found" (a subject never written, or purged)."""
ERR_STREAM_NAME_IN_USE = 10058
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_ACTOR = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
_UPLOAD_ID = re.compile(rf"^[0-9a-f]{{{2 * UPLOAD_ID_BYTES}}}$")
_SUBJECT_FULL = "maximum messages per subject exceeded"


class Manifest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What ``flop.obj.m.<digest>`` holds: the size and the number of chunks; for a streamed
    put, the upload id its chunks are under and whether the uploader marked it ciphertext.
    The defaults (omitted when encoding) are what a manifest written before them means."""

    size_bytes: int
    chunks: int
    encrypted: bool = False
    upload: str = ""
    """Empty: the chunks are under the digest (``put``); else ``flop.obj.u.<upload>.*``."""


def compute_artifact_digest(data: bytes) -> str:
    """The address of an artifact: lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def compute_chunk_subject(digest: str, index: int) -> str:
    return f"{OBJECT_CHUNK_PREFIX}.{digest}.{index}"


def compute_manifest_subject(digest: str) -> str:
    return f"{OBJECT_MANIFEST_PREFIX}.{digest}"


def compute_upload_chunk_subject(upload: str, index: int) -> str:
    return f"{OBJECT_UPLOAD_PREFIX}.{upload}.{index}"


def compute_uploader_subject(digest: str, actor: str) -> str:
    return f"{OBJECT_UPLOADER_PREFIX}.{digest}.{actor}"


def is_object_digest(digest: str) -> bool:
    """Whether ``digest`` is an object address: 64 lowercase hex characters."""
    return bool(_DIGEST.match(digest))


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

    async def put_stream(
        self,
        chunks: AsyncIterable[bytes],
        *,
        encrypted: bool = False,
        size_limit_bytes: int | None = None,
    ) -> StoredObjectInfo:
        """Store the bytes ``chunks`` yields, hashing as they pass, never holding more than
        a few chunks: chunks under a fresh upload id, then the manifest under the digest.

        ``size_limit_bytes`` (default: the store's) is checked as bytes arrive
        (ArtifactTooLarge). The chunks of a refused, failed or duplicate upload are left
        under their upload id, named by no manifest, for the operator to purge
        (``delete_upload``). When the digest is stored already, the stored copy is checked
        and its info returned (its ``encrypted`` mark is the first writer's)."""
        limit = self.size_limit_bytes if size_limit_bytes is None else size_limit_bytes
        if limit < 0:
            raise ValueError("size_limit_bytes must be >= 0")
        upload = secrets.token_hex(UPLOAD_ID_BYTES)
        hasher = hashlib.sha256()
        size = 0
        count = 0
        async with RequestWindow(WRITE_WINDOW) as window:
            async for chunk in rechunk(chunks, ARTIFACT_CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise ArtifactTooLarge(size, limit)
                hasher.update(chunk)
                subject = compute_upload_chunk_subject(upload, count)
                await window.submit(self._write_once(upload, subject, chunk))
                count += 1
            if count == 0:
                await window.submit(
                    self._write_once(upload, compute_upload_chunk_subject(upload, 0), b"")
                )
                count = 1
        digest = hasher.hexdigest()
        stored = await self._get_manifest(digest)
        if stored is None:
            manifest = Manifest(size_bytes=size, chunks=count, encrypted=encrypted, upload=upload)
            subject = compute_manifest_subject(digest)
            if await self._publish_once(subject, msgspec.json.encode(manifest)):
                return _to_info(digest, manifest)
            stored = await self._get_manifest(digest)
            if stored is None:
                raise ArtifactCorrupt(digest, "<manifest refused and absent>")
        # Someone stored this digest first: its copy must hold these bytes.
        async for _ in self._stream(digest, stored):
            pass
        return _to_info(digest, stored)

    async def get_stream(self, digest: str) -> AsyncIterator[bytes]:
        """The bytes stored under ``digest``, chunk by chunk; ArtifactNotFound when absent.

        The last chunk is held back until the whole has been hashed: on a mismatch
        ArtifactCorrupt is raised instead, so a reader that got every chunk got the
        object named."""
        if not _DIGEST.match(digest):
            raise ArtifactNotFound(f"{digest!r} is not a SHA-256 hex digest")
        manifest = await self._get_manifest(digest)
        if manifest is None:
            raise ArtifactNotFound(f"no artifact {digest}")
        async for chunk in self._stream(digest, manifest):
            yield chunk

    async def info(self, digest: str) -> StoredObjectInfo | None:
        """Size and ciphertext mark of the object under ``digest`` (its bytes unread);
        None when absent or not a digest. ArtifactCorrupt for a malformed manifest."""
        if not _DIGEST.match(digest):
            return None
        manifest = await self._get_manifest(digest)
        return None if manifest is None else _to_info(digest, manifest)

    async def mark_uploader(self, digest: str, actor: str) -> None:
        """Note that ``actor`` sent the bytes of ``digest`` (once; again is a no-op)."""
        if not _DIGEST.match(digest) or not _ACTOR.match(actor):
            raise ValueError("mark_uploader needs a digest and a base58 actor id")
        await self._publish_once(compute_uploader_subject(digest, actor), b"")

    async def has_uploader(self, digest: str, actor: str) -> bool:
        """Whether the API noted that ``actor`` sent the bytes of ``digest``."""
        if not _DIGEST.match(digest) or not _ACTOR.match(actor):
            return False
        return await self._read(compute_uploader_subject(digest, actor)) is not None

    async def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``; ArtifactCorrupt when they do not hash to it."""
        if not _DIGEST.match(digest):
            raise ArtifactNotFound(f"{digest!r} is not a SHA-256 hex digest")
        manifest = await self._get_manifest(digest)
        if manifest is None:
            raise ArtifactNotFound(f"no artifact {digest}")
        if manifest.size_bytes > self.size_limit_bytes:
            raise ArtifactTooLarge(manifest.size_bytes, self.size_limit_bytes)
        return b"".join([chunk async for chunk in self._stream(digest, manifest)])

    async def has(self, digest: str) -> bool:
        """Whether a manifest is stored under ``digest`` (its content is not read)."""
        return bool(_DIGEST.match(digest)) and await self._get_manifest(digest) is not None

    async def delete(self, digest: str) -> None:
        """Purge the object (the operator's right alone: retention, or a forged first copy)."""
        if not _DIGEST.match(digest):
            raise ArtifactNotFound(f"{digest!r} is not a SHA-256 hex digest")
        try:
            manifest = await self._get_manifest(digest)
        except ArtifactCorrupt:
            manifest = None  # a forged manifest names no upload we could trust; purge the rest
        async with nats_errors(self._nc, f"delete artifact {digest}"):
            await self._js.purge_stream(OBJECT_STREAM, subject=compute_manifest_subject(digest))
            await self._js.purge_stream(OBJECT_STREAM, subject=f"{OBJECT_CHUNK_PREFIX}.{digest}.*")
            await self._js.purge_stream(
                OBJECT_STREAM, subject=f"{OBJECT_UPLOADER_PREFIX}.{digest}.*"
            )
        if manifest is not None and manifest.upload:
            await self.delete_upload(manifest.upload)

    async def delete_upload(self, upload: str) -> None:
        """Purge the chunks of one upload (the operator's: an object deleted, or an upload
        that never became one)."""
        if not _UPLOAD_ID.match(upload):
            raise ValueError(f"{upload!r} is not an upload id")
        async with nats_errors(self._nc, f"delete upload {upload}"):
            await self._js.purge_stream(OBJECT_STREAM, subject=f"{OBJECT_UPLOAD_PREFIX}.{upload}.*")

    async def _stream(self, digest: str, manifest: Manifest) -> AsyncIterator[bytes]:
        hasher = hashlib.sha256()
        size = 0
        held: bytes | None = None
        async with RequestWindow(READ_WINDOW) as window:
            for index in range(manifest.chunks):
                window.add(self._read(_chunk_subject(digest, manifest, index)))
                while window.is_full() or (index == manifest.chunks - 1 and window.pending()):
                    chunk = await window.next_result()
                    if chunk is None:
                        raise ArtifactCorrupt(digest, "<a chunk missing>")
                    size += len(chunk)
                    if size > manifest.size_bytes:
                        raise ArtifactCorrupt(digest, "<more bytes than the manifest says>")
                    hasher.update(chunk)
                    if held is not None:
                        yield held
                    held = chunk
        actual = hasher.hexdigest()
        if actual != digest or size != manifest.size_bytes:
            raise ArtifactCorrupt(digest, actual)
        yield held or b""

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
        if manifest.upload and not _UPLOAD_ID.match(manifest.upload):
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

    async def _write_once(self, label: str, subject: str, payload: bytes) -> None:
        """Publish ``payload`` on a write-once subject; one already written must hold it
        (``label``: the digest or upload id the error names)."""
        if not await self._publish_once(subject, payload) and await self._read(subject) != payload:
            raise ArtifactCorrupt(label, f"<another write on {subject} first>")

    async def _publish_once(self, subject: str, payload: bytes) -> bool:
        """Publish on a write-once subject: False when the subject holds a message already."""
        try:
            async with nats_errors(self._nc, f"put object {subject}"):
                await self._js.publish(subject, payload, stream=OBJECT_STREAM)
        except NatsError as exc:
            if _SUBJECT_FULL not in exc.detail:
                raise
            return False
        return True


def _chunk_subject(digest: str, manifest: Manifest, index: int) -> str:
    if manifest.upload:
        return compute_upload_chunk_subject(manifest.upload, index)
    return compute_chunk_subject(digest, index)


def _to_info(digest: str, manifest: Manifest) -> StoredObjectInfo:
    return StoredObjectInfo(
        digest=digest, size_bytes=manifest.size_bytes, encrypted=manifest.encrypted
    )


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
