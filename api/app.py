"""The Litestar app factory: controllers, the ``deps`` provider, problem+json errors, OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.controllers.accounts import AccountController
from api.controllers.api_keys import ApiKeyController
from api.controllers.beacon import BeaconController
from api.controllers.canaries import CanaryController
from api.controllers.completion_records import CompletionRecordController
from api.controllers.dashboard import DashboardController, dashboard_static_files
from api.controllers.events import EventController
from api.controllers.health import HealthController
from api.controllers.jobs import JobController
from api.controllers.keys import KeyController
from api.controllers.liveness import LivenessController
from api.controllers.log import LogController
from api.controllers.models import ModelController
from api.controllers.network import NetworkController
from api.controllers.nodes import NodeController
from api.controllers.objects import ObjectController
from api.controllers.openai import OpenAIController, list_warm_models
from api.controllers.stake import StakeController
from api.controllers.validators import ValidatorController
from api.errors import handle_exception
from api.metrics import ApiMetrics, make_metrics_middleware
from api.state import ApiDeps

REQUEST_BODY_BYTES_MAX = 256 * 1024
API_VERSION = "1.0.0"

OpenDeps = Callable[[ApiMetrics], Awaitable[ApiDeps]]


def fix_allow_header(app: ASGIApp) -> ASGIApp:
    """Answer OPTIONS with every method of the route in ``Allow``.

    Litestar's automatic OPTIONS handler lists only the methods of the handler it belongs to,
    so ``OPTIONS /v1/nodes`` said ``GET`` although ``POST`` is served too (RFC 9110 §10.2.1).
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "OPTIONS":
            await app(scope, receive, send)
            return
        template = scope.get("path_template")
        methods: set[str] = set()
        for route in scope["litestar_app"].routes:
            if route.path == template:
                methods |= set(getattr(route, "methods", ()))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and methods:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                headers.append((b"allow", ", ".join(sorted(methods)).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_wrapper)

    return wrapped


def create_app(deps: ApiDeps | None = None, *, open_deps: OpenDeps | None = None) -> Litestar:
    """An app serving ``deps``, or the deps ``open_deps`` builds at start-up (their store is
    closed at shutdown). Tests pass ``deps``; ``flopledger serve`` passes ``open_deps``."""
    if (deps is None) == (open_deps is None):
        raise ValueError("pass exactly one of deps and open_deps")
    metrics = deps.metrics if deps is not None else ApiMetrics()

    async def start(app: Litestar) -> None:
        if open_deps is not None:
            app.state.deps = await open_deps(metrics)

    async def stop(app: Litestar) -> None:
        if open_deps is not None and getattr(app.state, "deps", None) is not None:
            app.state.deps.read_model.close()
            await app.state.deps.llm.aclose()
            await app.state.deps.objects.close()
            await app.state.deps.store.close()

    def provide_deps(state: State) -> ApiDeps:
        provided: ApiDeps = state.deps
        return provided

    return Litestar(
        route_handlers=[
            NodeController,
            StakeController,
            JobController,
            ValidatorController,
            CanaryController,
            AccountController,
            EventController,
            LogController,
            BeaconController,
            LivenessController,
            ObjectController,
            KeyController,
            ApiKeyController,
            ModelController,
            CompletionRecordController,
            OpenAIController,
            list_warm_models,
            NetworkController,
            HealthController,
            DashboardController,
            dashboard_static_files,
        ],
        dependencies={"deps": Provide(provide_deps, sync_to_thread=False)},
        exception_handlers={Exception: handle_exception},
        middleware=[make_metrics_middleware(metrics), fix_allow_header],
        request_max_body_size=REQUEST_BODY_BYTES_MAX,
        state=State({"deps": deps}),
        on_startup=[start],
        on_shutdown=[stop],
        openapi_config=OpenAPIConfig(
            title="flopledger",
            version=API_VERSION,
            description=(
                "Ledger and verification service of a decentralized GPU compute network. "
                "Every state-changing route takes a signed command envelope; errors are "
                "RFC 9457 problem+json with a stable `code` and a `type` URI per code."
            ),
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
    )
