"""Wiring for the API process: settings -> store, ledger service, read model, log key."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial

from litestar import Litestar

from adapters.keyfile import get_log_key_path, load_identity, load_or_create_key
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.errors import NatsError
from adapters.nats.objects import ARTIFACT_BYTES_MAX, ArtifactStore
from adapters.store.factory import open_event_store
from adapters.store.idempotency import open_idempotency_keys
from api.app import create_app
from api.limits import ActorRateLimiter, StreamSlots
from api.metrics import ApiMetrics
from api.object_backend import ObjectBackend, ObjectOpener
from api.read_model import ReadModel
from api.state import ApiDeps, LlmServing
from api.transparency import TransparencyLog
from domain.ports import EventStore, ObjectStore
from domain.services.ledger_service import LedgerService
from flopledger.genesis import build_policy
from flopledger.settings import Settings, get_settings


def build_deps(
    store: EventStore, settings: Settings, *, metrics: ApiMetrics | None = None
) -> ApiDeps:
    """The API's services over an open store (its rules come from the store's log:
    ``flopledger serve`` seeds the genesis before it starts, ``flopledger.genesis``)."""
    read_model = ReadModel(store)
    key_path = get_log_key_path(settings.data_dir, settings.log_key_file)
    return ApiDeps(
        store=store,
        service=LedgerService(store),
        read_model=read_model,
        log=TransparencyLog(read_model, load_or_create_key(key_path), time.time_ns),
        metrics=metrics or ApiMetrics(),
        idempotency=open_idempotency_keys(store),
        nats_url=settings.nats_url,
        streams=StreamSlots(settings.api_sse_streams_max, settings.api_sse_streams_per_client_max),
        rate=ActorRateLimiter(
            per_s=settings.api_actor_commands_per_s, burst=settings.api_actor_commands_burst
        ),
        objects=ObjectBackend(
            make_nats_objects_opener(settings.nats_url, replicas=settings.nats_replicas)
        ),
        llm=build_llm_serving(settings),
    )


def build_llm_serving(settings: Settings) -> LlmServing:
    """The completion routes' parts; the completion signer from FLOP_COMPLETION_KEY_FILE
    (KeyFileError or OSError when it cannot be read), none when unset."""
    path = settings.completion_key_file
    return LlmServing(signer=load_identity(path) if path is not None else None)


def make_nats_objects_opener(nats_url: str | None, *, replicas: int = 1) -> ObjectOpener | None:
    """How the API opens its object store: NATS as the ``api`` user (which may add objects,
    never rewrite or delete one), on first use; None without a NATS URL. A FLOP_OBJECTS
    stream it finds absent it creates with ``replicas`` (FLOP_NATS_REPLICAS)."""
    if not nats_url:
        return None
    url = nats_url

    async def open_objects() -> tuple[ObjectStore, Callable[[], Awaitable[None]]]:
        # Few attempts: a request waits on them; the next request tries again.
        nc = await connect_nats(url, name="flopledger-api-objects", connect_attempts=2)
        try:
            store = await ArtifactStore.open(
                nc, size_limit_bytes=ARTIFACT_BYTES_MAX, replicas=replicas
            )
        except NatsError:
            await close_nats(nc)
            raise
        return store, partial(close_nats, nc)

    return open_objects


def build_app(settings: Settings | None = None) -> Litestar:
    """The app ``flopledger serve`` runs: it opens the configured store at start-up."""
    settings = settings or get_settings()
    build_policy(settings)  # fail at start-up, before the server binds, on bad operators

    async def open_deps(metrics: ApiMetrics) -> ApiDeps:
        store = await open_event_store(settings.event_store_url)
        return build_deps(store, settings, metrics=metrics)

    return create_app(open_deps=open_deps)
