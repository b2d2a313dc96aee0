"""The embedded nats-server: JetStream ready on a free loopback port, clean stop, restarts."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from adapters.nats.server import EmbeddedNatsServer


def jetstream_config(server: EmbeddedNatsServer) -> dict[str, object]:
    with urllib.request.urlopen(f"{server.monitoring_url}/varz", timeout=5) as answer:
        config: dict[str, object] = json.load(answer)["jetstream"]["config"]
    return config


def test_default_sync_interval_and_clean_stop(tmp_path: Path) -> None:
    server = EmbeddedNatsServer(tmp_path / "nats")
    url = server.start()
    try:
        assert url.startswith("nats://127.0.0.1:")
        assert not jetstream_config(server).get("sync_always")
        port = url.rsplit(":", 1)[1]
        assert server.restart().endswith(f":{port}")
    finally:
        server.stop()
    assert server.returncode == 0
    assert not server.is_running


def test_sync_interval_always_when_asked(tmp_path: Path) -> None:
    with EmbeddedNatsServer(tmp_path / "nats", sync_interval="always") as server:
        assert jetstream_config(server)["sync_always"] is True
