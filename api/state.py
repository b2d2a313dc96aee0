"""What the handlers share: the store, the ledger service, the read model, the log, metrics.

Built by ``api.bootstrap`` (or by a test) and handed to ``api.app.create_app``; handlers get
it through the ``deps`` dependency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from litestar.di import NamedDependency

from adapters.llm_link.client import NodeLinkClient
from adapters.llm_link.wire import NodeCompletionCall, NodeEvent
from adapters.store.idempotency import MemoryIdempotencyKeys
from api.limits import ActorRateLimiter, StreamSlots
from api.llm_router import LlmRouter
from api.metrics import ApiMetrics
from api.object_backend import ObjectBackend
from api.read_model import ReadModel
from api.transparency import TransparencyLog
from domain.ports import EventStore, IdempotencyKeys
from domain.services.ledger_service import LedgerService
from proofs.identity import Identity

DISCONNECT_COMMIT_GRACE_S = 10.0


class NodeLink(Protocol):
    """How the API calls a node (``adapters.llm_link.client.NodeLinkClient``; a fake in
    tests): the node's events for ``call``, up to its done or error event."""

    def stream_completion(
        self, endpoint: str, call: NodeCompletionCall
    ) -> AsyncGenerator[NodeEvent, None]: ...

    async def aclose(self) -> None: ...


@dataclass
class LlmServing:
    """What the OpenAI-compatible routes use (issue 18): the completion signer (None: those
    routes answer 503), the router, the link to the nodes, and the aborts left to run after a
    client went away."""

    signer: Identity | None = None
    router: LlmRouter = field(default_factory=LlmRouter)
    link: NodeLink = field(default_factory=NodeLinkClient)
    disconnect_grace_s: float = DISCONNECT_COMMIT_GRACE_S
    """How long a node has to commit what it sent before its client left, before the API
    aborts the completion."""
    pending: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after the request ended, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def aclose(self) -> None:
        for task in list(self.pending):
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)
        await self.link.aclose()


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
    llm: LlmServing = field(default_factory=LlmServing)


Deps = NamedDependency[ApiDeps]
"""How handlers ask for ApiDeps (the ``deps`` dependency)."""
