"""Probe test kit: a toy device model small enough to compute for real, its policy, simulated
devices on a shared fake clock, and an in-memory transport from a prober to responders.

The toy model is sized by the protocol (``domain.devices.compute_probe_spec``) like any table
model; only its figures are small (1 GOP/s, 256 KiB), so a probe really computes its product
(16 x 16 by a few thousand) while the simulated device charges the fake clock what its
rates imply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from adapters.compute.probe_device import FakeClock, SimulatedProbeDevice
from domain.devices import DeviceModel, ProbeSpec, compute_probe_spec
from domain.policy import LedgerPolicy
from node_agent.probe_responder import ProbeResponder
from proofs.identity import Identity

TOY = DeviceModel(
    key="toy",
    title="Toy GPU (tests)",
    names=("toy gpu",),
    gpu_class="consumer",
    int8_ops_per_s=1e9,
    memory_bytes=256 * 1024,
    memory_bytes_per_s=1e9,
    source="tests/probing.py",
)
TOY_POLICY = LedgerPolicy(
    probe_side=16,
    probe_target_ns=2_000_000,
    probe_rtt_max_ns=10_000,
    probe_memory_fraction_bps=1_000,
)
"""Small sizes; the RTT bound (which the memory probe's inner size scales with) of a loopback;
a working set of 10% of the toy's memory (its memory probe is the largest of its probes)."""
RTT_MAX_NS = TOY_POLICY.probe_rtt_max_ns
VALIDATOR = Identity.from_seed(bytes(range(32)))
NODE = Identity.from_seed(bytes(range(1, 33)))
STRANGER = Identity.from_seed(bytes(range(2, 34)))
CHALLENGE_SEED = bytes(range(100, 132))
NONCE = "challenge-nonce-1"


def toy_spec(device_index: int = 0, *, memory: bool = True) -> ProbeSpec:
    """The protocol's probes of a toy device (a CPU-like one without the memory probe)."""
    model = TOY if memory else msgspec.structs.replace(TOY, memory_bytes=0, memory_bytes_per_s=0)
    return compute_probe_spec(model, device_index=device_index, policy=TOY_POLICY)


def toy_device(
    clock: FakeClock, *, speed: float = 1.0, memory_bytes: int = TOY.memory_bytes
) -> SimulatedProbeDevice:
    """A simulated toy device at ``speed`` times the datasheet rates with ``memory_bytes``
    (hashing at the policy's assumed rate)."""
    return SimulatedProbeDevice(
        clock=clock,
        ops_per_s=TOY.int8_ops_per_s * speed,
        memory_bytes=memory_bytes,
        memory_bytes_per_s=TOY.memory_bytes_per_s * speed,
        hash_bytes_per_s=float(TOY_POLICY.probe_hash_bytes_per_s),
    )


def toy_working_set_bytes() -> int:
    """Bytes of the toy memory probe's working set."""
    spec = toy_spec()
    return 4 * spec.memory_n * spec.memory_m


def allow_all(signer: str, kind: str) -> bool:
    return True


def responder(clock: FakeClock, *devices: SimulatedProbeDevice) -> ProbeResponder:
    return ProbeResponder(NODE, list(devices), allow_all, clock_ns=clock.now_ns)


Handler = Callable[[bytes], Awaitable[bytes]]


class LocalTransport:
    """Request-reply in memory: each node id has a handler; every request and answer
    travels ``one_way_ns`` on the fake clock; ``sent`` keeps what was asked."""

    def __init__(self, clock: FakeClock, *, one_way_ns: int = 1_000) -> None:
        self.clock = clock
        self.one_way_ns = one_way_ns
        self.handlers: dict[str, Handler] = {}
        self.sent: list[bytes] = []
        self.answers: list[bytes] = []

    async def request(self, node_id: str, data: bytes, timeout_s: float) -> bytes | None:
        handler = self.handlers.get(node_id)
        self.sent.append(data)
        if handler is None:
            return None
        self.clock.advance(self.one_way_ns)
        answer = await handler(data)
        self.clock.advance(self.one_way_ns)
        self.answers.append(answer)
        return answer
