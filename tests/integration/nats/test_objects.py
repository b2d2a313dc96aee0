"""The artifact object store against a real nats-server."""

from __future__ import annotations

import os

import pytest
from nats.aio.client import Client

from adapters.nats.errors import ArtifactCorrupt, ArtifactNotFound, ArtifactTooLarge
from adapters.nats.objects import ARTIFACT_BUCKET, ArtifactStore, compute_artifact_digest

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


async def test_a_corrupted_read_is_detected(nc: Client) -> None:
    store = await ArtifactStore.open(nc)
    genuine = b"proof bytes" * 1000
    digest = compute_artifact_digest(genuine)
    # A writer that bypasses ArtifactStore puts other bytes under the genuine address.
    raw = await nc.jetstream().object_store(ARTIFACT_BUCKET)
    await raw.put(digest, b"forged proof" * 1000)
    with pytest.raises(ArtifactCorrupt) as corrupt:
        await store.get(digest)
    assert corrupt.value.digest == digest
    assert await store.put(genuine) == digest
    assert await store.get(digest) == genuine


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
