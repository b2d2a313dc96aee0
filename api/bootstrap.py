"""Wiring for the API process: settings -> store, ledger service, read model, log key."""

from __future__ import annotations

import time

from litestar import Litestar

from adapters.keyfile import get_log_key_path, load_or_create_key
from adapters.store.factory import open_event_store
from adapters.store.idempotency import open_idempotency_keys
from api.app import create_app
from api.limits import ActorRateLimiter, StreamSlots
from api.metrics import ApiMetrics
from api.read_model import ReadModel
from api.state import ApiDeps
from api.transparency import TransparencyLog
from domain.ports import EventStore
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
    )


def build_app(settings: Settings | None = None) -> Litestar:
    """The app ``flopledger serve`` runs: it opens the configured store at start-up."""
    settings = settings or get_settings()
    build_policy(settings)  # fail at start-up, before the server binds, on bad operators

    async def open_deps(metrics: ApiMetrics) -> ApiDeps:
        store = await open_event_store(settings.event_store_url)
        return build_deps(store, settings, metrics=metrics)

    return create_app(open_deps=open_deps)
