"""Wiring for ``flopledger agent``: key, inventory, devices, API client, NATS, the agent.

Without ``--nats`` / ``FLOP_NATS_URL`` the agent still works through the API alone (polling
for jobs) and keeps artifacts in a local directory, which validators cannot read: it says so
once in its log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import structlog
import torch
from nats.aio.client import Client

from adapters.compute.nvml import Inventory, probe_inventory
from adapters.compute.runtime import count_devices, enable_determinism, select_device
from adapters.ledger_api.client import ApiClient
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.errors import NatsError
from adapters.nats.objects import ArtifactStore
from adapters.nats.signals import (
    JobOffer,
    NodeHeartbeat,
    publish_heartbeat,
    sign_heartbeat,
    subscribe_offers,
)
from node_agent.agent import NodeAgent
from node_agent.config import AgentConfig
from node_agent.ledger_link import ApiLedger
from node_agent.sinks import ArtifactsUnavailable, LocalArtifactSink, NatsArtifactSink
from proofs.identity import Identity

_log = structlog.get_logger("flopledger.agent")


class NatsSignals:
    """Offers and heartbeats over core NATS (``adapters.nats.signals``); heartbeats are
    signed with the node's key."""

    def __init__(self, nc: Client, identity: Identity) -> None:
        self._nc = nc
        self._identity = identity

    async def offers(self, region: str | None) -> AsyncIterator[JobOffer]:
        try:
            async for offer in subscribe_offers(self._nc, region):
                yield offer
        except NatsError as exc:
            raise ArtifactsUnavailable(str(exc)) from exc

    async def heartbeat(self, node_id: str, region: str, gpus_total: int, busy: int) -> None:
        beat = NodeHeartbeat(
            node_id=node_id,
            region=region,
            sent_at_ns=time.time_ns(),
            gpus_total=gpus_total,
            gpus_busy=busy,
        )
        beat = sign_heartbeat(self._identity, beat)
        try:
            await publish_heartbeat(self._nc, beat)
        except NatsError as exc:
            raise ArtifactsUnavailable(str(exc)) from exc


def probe_devices(config: AgentConfig) -> tuple[Inventory, list[torch.device]]:
    """The NVML inventory and the torch devices jobs run on (the CPU without a GPU)."""
    inventory = probe_inventory()
    if inventory.device_class == "cpu":
        _log.warning("no_gpu_using_cpu", reason=inventory.no_gpu_reason)
    enable_determinism()
    use_cuda = config.prefer_cuda and inventory.device_class == "cuda"
    devices = [select_device(use_cuda, i) for i in range(count_devices() if use_cuda else 1)]
    return inventory, devices


async def run_agent(config: AgentConfig, identity: Identity, stop: asyncio.Event) -> NodeAgent:
    """Build every adapter, run the agent until ``stop``, close everything in order."""
    inventory, devices = probe_devices(config)
    ledger = ApiLedger(ApiClient(config.api_url, identity=identity))
    nc: Client | None = None
    try:
        if config.nats_url:
            nc = await connect_nats(config.nats_url, name=f"flopledger-agent-{identity.id[:8]}")
            sink: NatsArtifactSink | LocalArtifactSink = NatsArtifactSink(
                await ArtifactStore.open(nc)
            )
        else:
            _log.warning("no_nats_artifacts_stay_local", directory=str(config.state_dir))
            sink = LocalArtifactSink(config.state_dir / "artifacts")
        agent = NodeAgent(
            config,
            identity=identity,
            ledger=ledger,
            artifacts=sink,
            inventory=inventory,
            devices=devices,
            signals=NatsSignals(nc, identity) if nc is not None else None,
        )
        _log.info(
            "agent_starting",
            node_id=identity.id,
            region=config.region,
            device_class=inventory.device_class,
            devices=[str(d) for d in devices],
        )
        await agent.run(stop)
        return agent
    finally:
        if nc is not None:
            await close_nats(nc)
        ledger.close()
