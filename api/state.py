"""What the handlers share: the store, the ledger service, the read model, the log, metrics.

Built by ``api.bootstrap`` (or by a test) and handed to ``api.app.create_app``; handlers get
it through the ``deps`` dependency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from litestar.di import NamedDependency

from adapters.store.idempotency import MemoryIdempotencyKeys
from api.limits import ActorRateLimiter, StreamSlots
from api.metrics import ApiMetrics
from api.object_backend import ObjectBackend
from api.read_model import ReadModel
from api.transparency import TransparencyLog
from domain.ports import EventStore, IdempotencyKeys
from domain.services.ledger_service import LedgerService


@dataclass
class ApiDeps:
    """The services one API process uses."""

    store: EventStore
    service: LedgerService
    read_model: ReadModel
    log: TransparencyLog
    clock_ns: Callable[[], int] = time.time_ns
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    idempotency: IdempotencyKeys = field(default_factory=MemoryIdempotencyKeys)
    """Shared by the replicas of a PostgreSQL store (``adapters.store.idempotency``)."""
    nats_url: str | None = None
    streams: StreamSlots = field(default_factory=StreamSlots)
    rate: ActorRateLimiter = field(default_factory=ActorRateLimiter)
    objects: ObjectBackend = field(default_factory=ObjectBackend)
    """The object store of the object routes (issue 17): NATS, opened on first use."""


Deps = NamedDependency[ApiDeps]
"""How handlers ask for ApiDeps (the ``deps`` dependency)."""
