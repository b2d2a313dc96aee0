"""The artifact object store against a real nats-server."""

from __future__ import annotations

import dataclasses
import os

import msgspec
import nats.js.errors
import pytest
from nats.aio.client import Client

from adapters.nats.errors import ArtifactCorrupt, ArtifactNotFound, ArtifactTooLarge, NatsError
from adapters.nats.objects import (
    OBJECT_STREAM,
    ArtifactStore,
    Manifest,
    build_object_stream_config,
    compute_artifact_digest,
    compute_chunk_subject,
    compute_manifest_subject,
)

TWENTY_MB = 20 * 1024 * 1024
SMALL_LIMIT_BYTES = 1024


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
