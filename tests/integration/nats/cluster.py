"""Three nats-server processes on loopback in one JetStream cluster, for the cluster tests.

Each node has a client port and a route port of its own, fixed for its life so that a node
killed and started again rejoins under the same name on the same ports (its JetStream store
kept: it catches up from the others). ``wait_healthy`` waits until every running node's
``/healthz`` answers 200: a meta leader is elected and the node's streams are current.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from nats.js import JetStreamContext

from adapters.nats.server import ClusterSpec, EmbeddedNatsServer
from tests.serve_process import free_port

CLUSTER_NAME = "flop-test"
CLUSTER_SIZE = 3
HEALTHY_TIMEOUT_S = 30.0
HEALTH_POLL_S = 0.1


class NatsCluster:
    """``CLUSTER_SIZE`` nodes named ``n0``, ``n1``, ...; ``url`` lists every client URL."""

    def __init__(self, root: Path, size: int = CLUSTER_SIZE) -> None:
        route_ports = [free_port() for _ in range(size)]
        routes = tuple(f"nats-route://127.0.0.1:{port}" for port in route_ports)
        self.nodes = [
            EmbeddedNatsServer(
                root / f"n{i}",
                port=free_port(),
                cluster=ClusterSpec(
                    name=CLUSTER_NAME,
                    server_name=f"n{i}",
                    route_port=route_ports[i],
                    routes=tuple(r for j, r in enumerate(routes) if j != i),
                ),
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self.wait_healthy()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``, as a crash would."""
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        """Start node ``index`` again (same name, ports and store) and wait for the cluster."""
        self.nodes[index].start()
        self.wait_healthy()

    def index_of(self, server_name: str) -> int:
        for index, node in enumerate(self.nodes):
            assert node.cluster is not None
            if node.cluster.server_name == server_name:
                return index
        raise KeyError(server_name)

    async def get_stream_leader(self, js: JetStreamContext, stream: str) -> int:
        """The index of the node leading ``stream``'s replicas now (waits for an election)."""
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while True:
            info = await js.stream_info(stream)
            if info.cluster is not None and info.cluster.leader:
                return self.index_of(info.cluster.leader)
            assert time.monotonic() < deadline, f"{stream} has no leader"
            await asyncio.sleep(HEALTH_POLL_S)

    def wait_healthy(self, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            if not node.is_running:
                continue
            while not _is_healthy(node.monitoring_url):
                assert time.monotonic() < deadline, f"{node.url} is not healthy"
                time.sleep(HEALTH_POLL_S)

    def __enter__(self) -> NatsCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _is_healthy(monitoring_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{monitoring_url}/healthz", timeout=1.0) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False
