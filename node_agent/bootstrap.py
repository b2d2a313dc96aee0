"""Wiring for ``flopledger agent``: key, inventory, devices, API client, NATS, the agent.

With NATS the agent answers the validators' hardware probes on ``flop.probe.<node id>``
(``node_agent.probe_responder``, one ``TorchProbeDevice`` per device it runs jobs on).
With ``--serve-model`` it also serves LLM completions (``node_agent.llm_serving``): the
models are loaded and checked against their registrations before the agent starts.
Without ``--nats`` / ``FLOP_NATS_URL`` the agent still works through the API alone (polling
for jobs) and keeps artifacts in a local directory, which validators cannot read: it says so
once in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator

import structlog
import torch
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from adapters.compute.cc_attestation import collect_cc_evidence, find_cc_sdk
from adapters.compute.nvml import Inventory, probe_inventory
from adapters.compute.probe_device import TorchProbeDevice
from adapters.compute.runtime import count_devices, enable_determinism, select_device
from adapters.ledger_api.client import ApiClient
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.errors import NatsError
from adapters.nats.objects import ArtifactStore
from adapters.nats.probe import serve_probes
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
from node_agent.llm_serving import LlmService
from node_agent.probe_responder import ProbeResponder
from node_agent.sinks import ArtifactsUnavailable, LocalArtifactSink, NatsArtifactSink
from node_agent.work import Worker
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


def _make_cc_collect(inventory: Inventory) -> functools.partial[bytes | None] | None:
    """The GPUs' CC reports (NVIDIA's SDK, where installed and NVML reports CC mode on)."""
    sdk = find_cc_sdk()
    if sdk is None:
        return None
    return functools.partial(collect_cc_evidence, sdk=sdk, inventory=inventory)


async def run_agent(
    config: AgentConfig,
    identity: Identity,
    stop: asyncio.Event,
    *,
    worker_type: type[Worker] = Worker,
) -> NodeAgent:
    """Build every adapter, run the agent until ``stop``, close everything in order
    (``worker_type``: tests' dishonest nodes replace how a job is run)."""
    inventory, devices = probe_devices(config)
    ledger = ApiLedger(ApiClient(config.api_url, identity=identity))
    nc: Client | None = None
    probes: Subscription | None = None
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
            worker_type=worker_type,
        )
        llm = None
        if config.serve_models:
            llm = await LlmService.prepare(config, node_id=identity.id, ledger=ledger, stop=stop)
        _log.info(
            "agent_starting",
            node_id=identity.id,
            region=config.region,
            device_class=inventory.device_class,
            devices=[str(d) for d in devices],
        )
        if nc is not None:
            responder = ProbeResponder(
                identity,
                [TorchProbeDevice(device) for device in devices],
                agent.upkeep.is_probe_authorized,
                collect_cc=_make_cc_collect(inventory),
            )
            probes = await serve_probes(nc, identity.id, responder.handle)
        if llm is None:
            await agent.run(stop)
        else:
            await llm.start()  # a bind error stops the agent before it registers
            await asyncio.gather(agent.run(stop), llm.serve(stop))
        return agent
    finally:
        if probes is not None:
            with contextlib.suppress(NatsError):
                await probes.unsubscribe()
        if nc is not None:
            await close_nats(nc)
        ledger.close()
