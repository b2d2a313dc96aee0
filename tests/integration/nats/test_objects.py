"""The artifact object store against a real nats-server."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import nats.js.errors
import pytest
from nats.aio.client import Client

from adapters.nats.errors import ArtifactCorrupt, ArtifactNotFound, ArtifactTooLarge, NatsError
from adapters.nats.objects import (
    OBJECT_STREAM,
    ArtifactStore,
    Manifest,
    StoredObjectInfo,
    build_object_stream_config,
    compute_artifact_digest,
    compute_chunk_subject,
    compute_manifest_subject,
    compute_upload_chunk_subject,
)

TWENTY_MB = 20 * 1024 * 1024
SMALL_LIMIT_BYTES = 1024
STREAM_OBJECT_BYTES = 24 * 1024 * 1024
STREAM_PEAK_BYTES_MAX = 8 * 1024 * 1024
"""A streamed put or get may hold a few chunks (a window of 128 KiB requests, one input
piece of ~1 MB and the client's write buffers), never the object: a third of its size.
Measured: about 5.4 MB whether the object is 8, 24 or 64 MiB."""


async def test_round_trip_of_a_20_mb_artifact(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    data = os.urandom(TWENTY_MB)
    digest = await store.put(data)
    assert digest == compute_artifact_digest(data)
    assert await store.get(digest) == data
    assert await store.put(data) == digest
    assert await store.has(digest)


async def test_a_forged_first_copy_is_detected_and_cannot_be_overwritten(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    genuine = b"proof bytes" * 1000
    digest = compute_artifact_digest(genuine)
    # A writer that bypasses ArtifactStore puts other bytes under the genuine address first.
    forged = b"forged proof" * 1000
    js = nc.jetstream()
    await js.publish(compute_chunk_subject(digest, 0), forged, stream=OBJECT_STREAM)
    await js.publish(
        compute_manifest_subject(digest),
        msgspec.json.encode(Manifest(size_bytes=len(forged), chunks=1)),
        stream=OBJECT_STREAM,
    )
    with pytest.raises(ArtifactCorrupt) as corrupt:
        await store.get(digest)
    assert corrupt.value.digest == digest
    # The genuine bytes cannot replace the forged copy: the subjects are write-once ...
    with pytest.raises(ArtifactCorrupt):
        await store.put(genuine)
    # ... until the operator deletes it.
    await store.delete(digest)
    assert not await store.has(digest)
    assert await store.put(genuine) == digest
    assert await store.get(digest) == genuine


async def test_a_second_write_under_a_stored_digest_keeps_its_bytes(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    genuine = os.urandom(3 * 128 * 1024 + 5)
    digest = await store.put(genuine)
    js = nc.jetstream()
    for subject in (compute_chunk_subject(digest, 1), compute_manifest_subject(digest)):
        with pytest.raises(nats.js.errors.APIError) as refused:
            await js.publish(subject, b"other bytes", stream=OBJECT_STREAM)
        assert "maximum messages per subject exceeded" in str(refused.value)
    assert await store.get(digest) == genuine


async def test_an_existing_stream_that_is_not_write_once_is_refused(nc: Client) -> None:
    config = dataclasses.replace(
        build_object_stream_config(), max_msgs_per_subject=-1, discard_new_per_subject=False
    )
    await nc.jetstream().add_stream(config)
    with pytest.raises(NatsError, match="write-once"):
        await ArtifactStore.open(nc)


async def test_size_limit_at_the_bound_and_one_past(nc: Client) -> None:
    store = await ArtifactStore.open(nc, size_limit_bytes=SMALL_LIMIT_BYTES)
    at_limit = b"a" * SMALL_LIMIT_BYTES
    assert await store.get(await store.put(at_limit)) == at_limit
    with pytest.raises(ArtifactTooLarge):
        await store.put(at_limit + b"a")


async def test_missing_artifact_is_not_found(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    with pytest.raises(ArtifactNotFound):
        await store.get(compute_artifact_digest(b"never stored"))
    with pytest.raises(ArtifactNotFound):
        await store.get("not-a-digest")
    assert not await store.has(compute_artifact_digest(b"never stored"))


async def _chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _random_chunks(total: int, size: int, hasher: Any) -> AsyncIterator[bytes]:
    """``total`` random bytes in pieces of ``size``, fed to ``hasher`` as they are made (the
    test's own digest, never the store's)."""
    left = total
    while left:
        piece = os.urandom(min(size, left))
        hasher.update(piece)
        left -= len(piece)
        yield piece


async def test_a_streamed_put_and_get_of_a_20_mb_object_hold_little_memory(nc: Client) -> None:
    store = await ArtifactStore.open(nc, size_limit_bytes=STREAM_OBJECT_BYTES)
    expected = hashlib.sha256()
    tracemalloc.start()
    try:
        info = await store.put_stream(_random_chunks(STREAM_OBJECT_BYTES, 1_000_003, expected))
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = hashlib.sha256()
        size = 0
        async for chunk in store.get_stream(info.digest):
            read.update(chunk)
            size += len(chunk)
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info == StoredObjectInfo(
        digest=expected.hexdigest(), size_bytes=STREAM_OBJECT_BYTES, encrypted=False
    )
    assert (read.hexdigest(), size) == (expected.hexdigest(), STREAM_OBJECT_BYTES)
    print(f"RESULT object_stream_put_peak_bytes={put_peak} get_peak_bytes={get_peak}")
    assert put_peak < STREAM_PEAK_BYTES_MAX, put_peak
    assert get_peak < STREAM_PEAK_BYTES_MAX, get_peak
    # The object reads whole too, as a put one does, and a second streamed put of the
    # same bytes names the same object.
    assert await store.info(info.digest) == info


async def test_streamed_objects_keep_their_ciphertext_mark_and_read_whole(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    sealed = os.urandom(3 * 128 * 1024 + 17)
    info = await store.put_stream(_chunks_of(sealed, 50_000), encrypted=True)
    assert info.digest == hashlib.sha256(sealed).hexdigest()
    assert info.encrypted and info.size_bytes == len(sealed)
    assert await store.get(info.digest) == sealed
    # Storing the same bytes again, unmarked, keeps the first writer's manifest.
    again = await store.put_stream(_chunks_of(sealed, 128 * 1024))
    assert again == info
    empty = await store.put_stream(_chunks_of(b"", 1))
    assert empty.digest == hashlib.sha256(b"").hexdigest() and empty.size_bytes == 0
    assert [chunk async for chunk in store.get_stream(empty.digest)] == [b""]


async def test_an_old_manifest_reads_with_the_new_fields_defaulted(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    data = b"written before issue 17" * 10
    digest = await store.put(data)
    raw = (await nc.jetstream().get_last_msg(OBJECT_STREAM, compute_manifest_subject(digest))).data
    assert msgspec.json.decode(raw) == {"size_bytes": len(data), "chunks": 1}
    assert await store.info(digest) == StoredObjectInfo(
        digest=digest, size_bytes=len(data), encrypted=False
    )
    assert b"".join([chunk async for chunk in store.get_stream(digest)]) == data


async def test_a_streamed_put_over_the_limit_is_refused_and_names_no_object(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    at_limit = os.urandom(SMALL_LIMIT_BYTES)
    info = await store.put_stream(_chunks_of(at_limit, 100), size_limit_bytes=SMALL_LIMIT_BYTES)
    assert info.digest == hashlib.sha256(at_limit).hexdigest()
    past = at_limit + b"x"
    with pytest.raises(ArtifactTooLarge):
        await store.put_stream(_chunks_of(past, 100), size_limit_bytes=SMALL_LIMIT_BYTES)
    assert await store.info(hashlib.sha256(past).hexdigest()) is None


async def test_a_misnamed_streamed_object_is_reported_before_its_last_chunk(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    genuine = os.urandom(2 * 128 * 1024 + 9)
    digest = hashlib.sha256(genuine).hexdigest()
    # A writer that bypasses the store names other bytes (an upload of its own) by the
    # genuine digest.
    forged = await store.put_stream(_chunks_of(os.urandom(len(genuine)), 128 * 1024))
    js = nc.jetstream()
    forged_manifest = await js.get_last_msg(OBJECT_STREAM, compute_manifest_subject(forged.digest))
    await js.publish(compute_manifest_subject(digest), forged_manifest.data, stream=OBJECT_STREAM)
    received: list[bytes] = []
    with pytest.raises(ArtifactCorrupt) as corrupt:
        async for chunk in store.get_stream(digest):
            received.append(chunk)
    assert corrupt.value.digest == digest
    assert sum(map(len, received)) < len(genuine)  # the reader never got a whole object
    # The genuine bytes cannot take the address back: the manifest is write-once.
    with pytest.raises(ArtifactCorrupt):
        await store.put_stream(_chunks_of(genuine, 128 * 1024))
    await store.delete(digest)
    assert await store.info(digest) is None
    assert (await store.put_stream(_chunks_of(genuine, 128 * 1024))).digest == digest


async def test_upload_chunks_are_write_once(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    data = os.urandom(128 * 1024 + 1)
    info = await store.put_stream(_chunks_of(data, 4096))
    js = nc.jetstream()
    manifest = msgspec.json.decode(
        (await js.get_last_msg(OBJECT_STREAM, compute_manifest_subject(info.digest))).data,
        type=Manifest,
    )
    assert manifest.upload and manifest.encrypted is False
    for subject in (
        compute_upload_chunk_subject(manifest.upload, 0),
        compute_upload_chunk_subject(manifest.upload, 1),
        compute_manifest_subject(info.digest),
    ):
        with pytest.raises(nats.js.errors.APIError, match="maximum messages per subject"):
            await js.publish(subject, b"other bytes", stream=OBJECT_STREAM)
    assert await store.get(info.digest) == data
    await store.delete(info.digest)
    for index in (0, 1):
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.get_last_msg(
                OBJECT_STREAM, compute_upload_chunk_subject(manifest.upload, index)
            )


async def test_a_missing_object_streams_not_found(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    for name in (compute_artifact_digest(b"never stored"), "not-a-digest"):
        with pytest.raises(ArtifactNotFound):
            async for _ in store.get_stream(name):
                pass
        assert await store.info(name) is None


async def test_uploader_notes_are_kept_once_and_purged_with_the_object(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    info = await store.put_stream(_chunks_of(b"a consumer's input", 7))
    actor, other = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin", "1" * 32
    assert not await store.has_uploader(info.digest, actor)
    await store.mark_uploader(info.digest, actor)
    await store.mark_uploader(info.digest, actor)  # again: nothing changes
    assert await store.has_uploader(info.digest, actor)
    assert not await store.has_uploader(info.digest, other)
    assert not await store.has_uploader("not-a-digest", actor)
    await store.delete(info.digest)
    assert not await store.has_uploader(info.digest, actor)
