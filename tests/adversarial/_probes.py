"""A network where real validator daemons time nodes over an in-memory probe transport
(issue 15): the ledger in process (``LocalNetwork``, rules v3), three ``ValidatorDaemon``s
with their own ``Prober``s, and nodes answering with ``ProbeResponder``s over simulated
devices whose compute time is charged to one ``FakeClock`` (the validators' clock for
probes), over ``tests.probing.LocalTransport`` (a silent node is one without a handler).
The ledger's clock (``net.now_ns``) advances a second per step, so the beacon, the probe
slots, the commit and reveal windows all run as on a live network.

The policy keeps the probes small enough to compute for real on a CPU (a target of a
microsecond of the claimed model's rate, no memory probe): what the validators check is the
actual product, and what they time is what the simulated device charges.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.compute.probe_device import FakeClock, SimulatedProbeDevice
from adapters.store.memory import MemoryEventStore
from domain.node import Node
from domain.policy import SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys
from node_agent.probe_responder import ProbeResponder
from proofs.identity import Identity
from tests.inprocess import InProcessLedgerLink, NoArtifacts, follow_records
from tests.probing import LocalTransport
from validator.daemon import ValidatorDaemon
from validator.prober import Prober
from validator.protection import SigningDatabase

H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}
H100_OPS_PER_S = 1979e12
T4 = {"name": "Tesla T4", "memory_mib": 15360}
T4_OPS_PER_S = 130e12
CPU_OPS_PER_S = 2e11
"""A fast server CPU doing int8 products (well above the table's cpu class)."""
HONEST_SHARE = 0.8
"""An honest device reaches 80% of its datasheet rate (the deadline allows 50%)."""
HASH_BYTES_PER_S = 16 * 1024**3

POLICY = LedgerPolicy(
    node_stake_min=1_000,
    validator_stake_min=500,
    probe_side=64,
    probe_target_ns=1_000,
    probe_memory_fraction_bps=0,
    probe_rtt_max_ns=1_000_000,
    probe_slot_ns=SECOND_NS,
    verdict_commit_window_ns=60 * SECOND_NS,
    verdict_reveal_window_ns=60 * SECOND_NS,
    beacon_window_ns=10 * SECOND_NS,
)
STEPS_MAX = 240


def make_device(clock: FakeClock, ops_per_s: float) -> SimulatedProbeDevice:
    return SimulatedProbeDevice(
        clock=clock,
        ops_per_s=ops_per_s,
        memory_bytes=80 * 10**9,
        memory_bytes_per_s=3e12,
        hash_bytes_per_s=HASH_BYTES_PER_S,
    )


@dataclass
class ProbedNetwork:
    net: LocalNetwork
    clock: FakeClock
    probes: LocalTransport
    keys: list[ValidatorKeys]
    daemons: list[ValidatorDaemon]
    nodes: dict[str, Identity] = field(default_factory=dict)

    async def add_node(
        self,
        node: Identity,
        *,
        device: SimulatedProbeDevice,
        gpus: list[dict[str, Any]],
        gpu_class: str = "datacenter",
        region: str = "eu-west",
        stake: int = 5_000,
        responder: ProbeResponder | None = None,
    ) -> None:
        """Register and bond ``node`` and have it answer probes with ``device``."""
        await self.net.deposit(node, 100_000)
        await self.net.run(
            node,
            "node.register",
            {"region": region, "gpus": gpus, "gpu_class": gpu_class, "price": 100},
        )
        await self.net.run(node, "stake.bond", {"target": node.id, "amount": stake})
        self.nodes[node.id] = node
        self.serve(node, responder or self.make_responder(node, device))

    def make_responder(self, node: Identity, device: SimulatedProbeDevice) -> ProbeResponder:
        validators = {k.identity.id for k in self.keys}
        return ProbeResponder(
            node, [device], lambda signer, kind: signer in validators, clock_ns=self.clock.now_ns
        )

    def serve(self, node: Identity, responder: ProbeResponder) -> None:
        self.probes.handlers[node.id] = responder.handle

    async def node(self, node_id: str) -> Node:
        node = await get_aggregate(self.net.store, Node, node_id)
        assert node is not None
        return node

    async def step(self) -> None:
        """Every daemon follows the log and ticks (concurrently, as separate processes
        would); then the ledger's clock moves one second."""
        for daemon in self.daemons:
            await daemon.follow(follow_records(self.net, daemon.checkpoint.position))
        await asyncio.gather(*(daemon.tick() for daemon in self.daemons))
        self.net.advance(1.0)

    async def challenge(self, *node_ids: str) -> None:
        """Each node asks for its challenge (the group of a shared UUID comes with it)."""
        for node_id in node_ids:
            node = await self.node(node_id)
            if node.challenge is None:
                await self.net.run(
                    self.nodes[node_id], "node.attestation.challenge", {"node_id": node_id}
                )

    async def settle(self, *node_ids: str) -> None:
        """Step until no open challenge is left on ``node_ids``."""
        for _ in range(STEPS_MAX):
            nodes = [await self.node(node_id) for node_id in node_ids]
            if all(node.challenge is None for node in nodes):
                return
            await self.step()
        raise AssertionError(f"challenges of {node_ids} still open after {STEPS_MAX} steps")

    async def attest(self, *node_ids: str) -> list[Node]:
        await self.challenge(*node_ids)
        await self.settle(*node_ids)
        return [await self.node(node_id) for node_id in node_ids]


async def make_probed_network(tmp: Path | None = None) -> ProbedNetwork:
    """The ledger, three staked validators with daemons and probers, no node yet."""
    directory = tmp or Path(tempfile.mkdtemp(prefix="flop-probes-"))
    net = LocalNetwork.create(MemoryEventStore(), policy=POLICY)
    clock = FakeClock()
    probes = LocalTransport(clock, one_way_ns=0)
    keys = [make_validator_keys(180 + i) for i in range(3)]
    daemons = []
    for index, validator in enumerate(keys):
        await net.deposit(validator.identity, 10_000)
        await net.register_validator(validator, stake=2_000)
        daemons.append(
            ValidatorDaemon(
                identity=validator.identity,
                bls_secret=validator.bls_secret,
                ledger=InProcessLedgerLink(net, validator.identity),
                artifacts=NoArtifacts(),
                db=SigningDatabase(directory / f"validator-{index}.db"),
                clock_ns=lambda: net.now_ns,
                prober=Prober(
                    validator.identity,
                    probes,
                    clock_ns=clock.now_ns,
                    rtt_max_ns=POLICY.probe_rtt_max_ns,
                ),
            )
        )
    return ProbedNetwork(net, clock, probes, keys, daemons)
