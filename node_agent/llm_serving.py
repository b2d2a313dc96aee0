"""The agent's completion service: the served models, the HTTP server, the advertisement.

``LlmService.prepare`` loads every ``--serve-model`` through the catalog
(``adapters.compute.llm_catalog``) and refuses one whose content digest is not its
registration's: a node never serves other bytes under a registered id. ``run(stop)`` serves
``node_agent.llm_server`` on ``--llm-listen`` (uvicorn, inside the agent's event loop; the
agent's daemon keeps the signals), and keeps the ledger's view of the node's warm models
equal to what it serves: it advertises at start and, every ``advertise_interval_s``, again
when the node's view differs (a fresh ledger, a re-registration, a first try refused because
the node was not registered yet).

Shutdown, in order: advertise no models (the API stops routing here), refuse new calls,
let the completions in flight finish and commit within the deadline (then cancel them: their
partial tokens are committed), stop the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence

import structlog
import torch
import uvicorn

from adapters.compute.llm_catalog import UnknownModel, compute_model_digest, load_model
from adapters.compute.llm_model import ModelUnavailable
from adapters.ledger_api.wire import NodeView
from node_agent.config import AgentConfig, parse_listen
from node_agent.ledger_link import ApiProblem, CompletionLedger, LedgerUnavailable
from node_agent.llm_server import CompletionServer, ServedModel, create_llm_app

ADVERTISE_RETRY_S = 1.0
SERVER_START_TIMEOUT_S = 30.0
HTTP_GRACE_S = 5.0
"""uvicorn's grace for connections still open once the completions are drained."""

_log = structlog.get_logger("flopledger.agent.llm")


class ServeModelError(Exception):
    """A ``--serve-model`` cannot be served: unknown to the catalog, not installed, not
    registered, or other bytes than the registration's (a configuration error)."""


class LlmService:
    """Loaded models and their completion server for one node."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        node_id: str,
        ledger: CompletionLedger,
        models: dict[str, ServedModel],
    ) -> None:
        assert config.llm_listen is not None
        self.config, self.node_id, self.ledger = config, node_id, ledger
        self.server = CompletionServer(node_id=node_id, models=models, ledger=ledger)
        self.host, self.port = parse_listen(config.llm_listen)
        self.endpoint = config.llm_endpoint or ""
        self._http: _EmbeddedServer | None = None

    @classmethod
    async def prepare(
        cls, config: AgentConfig, *, node_id: str, ledger: CompletionLedger, stop: asyncio.Event
    ) -> LlmService | None:
        """Load and check every served model (None when ``stop`` came first; raises
        ``ServeModelError``)."""
        models: dict[str, ServedModel] = {}
        for model_id in config.serve_models:
            registered = functools.partial(ledger.get_registered_digest, model_id)
            digest = await _retry_until(stop, registered)
            if stop.is_set():
                return None
            if digest is None:
                raise ServeModelError(f"{model_id} is not registered on the ledger")
            try:
                loaded = await asyncio.to_thread(load_model, model_id, _pick_device(config))
            except (UnknownModel, ModelUnavailable) as exc:
                raise ServeModelError(f"{model_id}: {exc}") from exc
            if await asyncio.to_thread(compute_model_digest, loaded) != digest:
                raise ServeModelError(f"{model_id}: the model here is not the registered one")
            models[model_id] = ServedModel(loaded, config.llm_capacity)
            _log.info("llm_model_loaded", model_id=model_id, capacity=config.llm_capacity)
        return cls(config, node_id=node_id, ledger=ledger, models=models)

    @property
    def advertised(self) -> list[tuple[str, int]]:
        return [(model_id, m.capacity) for model_id, m in self.server.models.items()]

    async def run(self, stop: asyncio.Event) -> None:
        """Start, then ``serve``."""
        await self.start()
        await self.serve(stop)

    async def serve(self, stop: asyncio.Event) -> None:
        """Advertise until ``stop`` (started), then shut down in order (module docstring)."""
        try:
            await self._advertise_loop(stop)
        finally:
            await self.shutdown(self.config.shutdown_deadline_s)

    async def start(self) -> None:
        """Listen; the endpoint defaults to the address actually bound (port 0: any)."""
        app = create_llm_app(self.server)
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(HTTP_GRACE_S),
        )
        self._http = _EmbeddedServer(config)
        serving = asyncio.create_task(self._http.serve(), name="llm-http")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SERVER_START_TIMEOUT_S
        while not self._http.started:
            if serving.done() or loop.time() > deadline:
                await serving  # raises the bind error, if that was it
                raise RuntimeError(f"the completion server did not start on {self.host}")
            await asyncio.sleep(0.02)
        self._serving = serving
        self.port = int(self._http.servers[0].sockets[0].getsockname()[1])
        if not self.endpoint:
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.endpoint = f"http://{host}:{self.port}"
        _log.info("llm_server_listening", endpoint=self.endpoint, models=self.advertised)

    async def shutdown(self, deadline_s: float) -> None:
        with contextlib.suppress(LedgerUnavailable, ApiProblem):
            await self.ledger.advertise_models(self.node_id, [], "")
        await self.server.drain(deadline_s)
        if self._http is not None:
            self._http.should_exit = True
            await self._serving
        self.server.close()
        _log.info("llm_server_stopped", committed=len(self.server.committed))

    async def advertise_if_stale(self) -> bool:
        """Advertise unless the ledger already shows what is served here; True if it does
        now (an outage or a refusal is logged and tried again next time)."""
        try:
            node = await self.ledger.get_node(self.node_id)
            if node is None:
                return False
            if is_advertised(node, self.advertised, self.endpoint):
                return True
            await self.ledger.advertise_models(self.node_id, self.advertised, self.endpoint)
        except LedgerUnavailable as exc:
            _log.warning("llm_advertise_unavailable", error=str(exc))
            return False
        except ApiProblem as problem:
            _log.warning("llm_advertise_refused", code=problem.code, detail=problem.detail)
            return False
        _log.info("llm_models_advertised", models=self.advertised, endpoint=self.endpoint)
        return True

    async def _advertise_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            done = await self.advertise_if_stale()
            wait_s = self.config.heartbeat_interval_s if done else ADVERTISE_RETRY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)


def is_advertised(node: NodeView, models: Sequence[tuple[str, int]], endpoint: str) -> bool:
    """Whether the ledger's view of the node already holds these models at this endpoint."""
    shown = sorted((m.model_id, m.capacity) for m in node.warm_models)
    return shown == sorted(models) and node.llm_endpoint == endpoint


def _pick_device(config: AgentConfig) -> torch.device:
    """The first GPU when there is one (and ``--cpu`` was not given), else the CPU: TOPLOC's
    proofs are checked on any device (the validators' tolerance covers kernels)."""
    if config.prefer_cuda and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the agent's daemon owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _retry_until(
    stop: asyncio.Event, call: Callable[[], Awaitable[bytes | None]]
) -> bytes | None:
    while not stop.is_set():
        try:
            return await call()
        except LedgerUnavailable as exc:
            _log.warning("ledger_unavailable", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ADVERTISE_RETRY_S)
    return None
