"""Attacks on hardware attestation, played against real validator daemons that time the node
themselves (issue 15; ``tests/adversarial/_probes.py``): a CPU claiming an H100, a device
claiming a model twice as fast as it is, a node lying about its own timings, a replayed
answer, one GPU behind two nodes, a node that goes silent after attesting, a validator
that fails an honest node, and the operator key attesting a node itself.

Each attack is paired with the honest control it must differ from, so the test fails if the
probes refused everyone.
"""

from __future__ import annotations

from typing import Any

import msgspec

from adapters.store.memory import MemoryEventStore
from domain.attestation import TIER_OPERATOR, TIER_TIMED
from domain.errors import Rejection
from domain.events import decode_event
from domain.node import ACTIVE, JAILED, REGISTERED, Node
from domain.services.queries import get_aggregate, get_balances
from flopledger.network import LocalNetwork
from node_agent.probe_responder import ProbeResponder
from proofs.identity import Identity
from proofs.probe_wire import (
    REASON_COMPUTE_DEADLINE_MISSED,
    REASON_UNANSWERED,
    ComputeCommitted,
    seal,
    unseal,
)
from tests.adversarial._probes import (
    CPU_OPS_PER_S,
    H100,
    H100_OPS_PER_S,
    HONEST_SHARE,
    POLICY,
    ProbedNetwork,
    make_device,
    make_probed_network,
)
from validator.prober import ProbeOutcome, Prober

A100 = {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920}


def _node(seed: int) -> Identity:
    return Identity.from_seed(bytes([seed]) * 32)


async def _balances(probed: ProbedNetwork) -> dict[str, int]:
    accounts = await get_balances(probed.net.store)
    return {account_id: account.balance for account_id, account in accounts.items()}


async def _rejected_reasons(probed: ProbedNetwork, node_id: str) -> list[str]:
    """The reasons the validators gave in the node's rounds (from the log)."""
    reasons = []
    for record in await probed.net.store.read_all(1, 100_000):
        if record.stream_id != node_id:
            continue
        event = decode_event(record)
        if isinstance(event, Node.AttestationVerdictRecorded):
            reasons.append(event.verdict.reason)
    return reasons


async def test_a_cpu_claiming_an_h100_is_timed_out_and_an_h100_passes() -> None:
    probed = await make_probed_network()
    honest, cpu = _node(1), _node(2)
    await probed.add_node(
        honest, device=make_device(probed.clock, HONEST_SHARE * H100_OPS_PER_S), gpus=[H100]
    )
    await probed.add_node(cpu, device=make_device(probed.clock, CPU_OPS_PER_S), gpus=[H100])
    (passed,) = await probed.attest(honest.id)
    (refused,) = await probed.attest(cpu.id)
    assert passed.state == ACTIVE and passed.attestation_tier == TIER_TIMED
    assert passed.attestation_expires_ns > probed.net.now_ns
    assert refused.state == REGISTERED and not refused.is_attested
    assert REASON_COMPUTE_DEADLINE_MISSED in await _rejected_reasons(probed, cpu.id)


async def test_a_device_claiming_a_model_twice_as_fast_misses_its_deadline() -> None:
    """Half an H100's rate, run at an honest 80%: it passes as the A100 it matches, and fails
    as the H100 it claims (its timings are honest: the node lies only about its model)."""
    probed = await make_probed_network()
    as_a100, as_h100 = _node(3), _node(4)
    half_h100 = HONEST_SHARE * H100_OPS_PER_S / 2
    await probed.add_node(as_a100, device=make_device(probed.clock, half_h100), gpus=[A100])
    await probed.add_node(as_h100, device=make_device(probed.clock, half_h100), gpus=[H100])
    (a100,) = await probed.attest(as_a100.id)
    (h100,) = await probed.attest(as_h100.id)
    assert a100.state == ACTIVE
    assert h100.state == REGISTERED
    assert REASON_COMPUTE_DEADLINE_MISSED in await _rejected_reasons(probed, as_h100.id)


class TimingLiar:
    """A node's responder that re-signs every commitment with the timing it wishes it had."""

    def __init__(self, node: Identity, inner: ProbeResponder, reported_ns: int) -> None:
        self.node, self.inner, self.reported_ns = node, inner, reported_ns

    async def handle(self, data: bytes) -> bytes:
        answer = await self.inner.handle(data)
        _, message = unseal(answer, recipient=None)
        if isinstance(message, ComputeCommitted):
            requester, _ = unseal(data, recipient=self.node.id)
            lie = msgspec.structs.replace(message, reported_ns=self.reported_ns)
            return seal(self.node, lie, to=requester)
        return answer


async def test_a_node_lying_about_its_own_timing_is_timed_by_the_validator() -> None:
    """A slow device reporting 1 ns is refused; a fast one reporting an hour passes: the
    validators read their own clocks, never the node's."""
    probed = await make_probed_network()
    slow, fast = _node(5), _node(6)
    for node, rate, reported in (
        (slow, CPU_OPS_PER_S, 1),
        (fast, HONEST_SHARE * H100_OPS_PER_S, 3_600 * 10**9),
    ):
        device = make_device(probed.clock, rate)
        await probed.add_node(node, device=device, gpus=[H100])
        liar = TimingLiar(node, probed.make_responder(node, device), reported)
        probed.probes.handlers[node.id] = liar.handle
    (slow_node,) = await probed.attest(slow.id)
    (fast_node,) = await probed.attest(fast.id)
    assert slow_node.state == REGISTERED
    assert fast_node.state == ACTIVE


class Replayer:
    """A node that recorded the answers of a probe it passed and replays them later."""

    def __init__(self, inner: ProbeResponder) -> None:
        self.inner = inner
        self.recorded: list[bytes] = []
        self.replaying = False

    async def handle(self, data: bytes) -> bytes:
        if self.replaying and self.recorded:
            return self.recorded.pop(0)
        answer = await self.inner.handle(data)
        self.recorded.append(answer)
        return answer


async def test_a_replayed_probe_answer_fails_the_next_challenge() -> None:
    probed = await make_probed_network()
    node = _node(7)
    device = make_device(probed.clock, HONEST_SHARE * H100_OPS_PER_S)
    await probed.add_node(node, device=device, gpus=[H100])
    replayer = Replayer(probed.make_responder(node, device))
    probed.probes.handlers[node.id] = replayer.handle
    (first,) = await probed.attest(node.id)
    assert first.state == ACTIVE
    replayer.replaying = True
    probed.net.advance(POLICY.rechallenge_interval_min_ns / 1e9 + 1)
    await probed.net.run(node, "node.attestation.rechallenge", {"node_id": node.id})
    await probed.settle(node.id)
    after = await probed.node(node.id)
    assert after.state != ACTIVE and not after.is_attested and after.failed_challenges == 1


async def test_one_gpu_behind_two_nodes_serves_at_most_one_in_time() -> None:
    """Two nodes report one GPU UUID and share one device: challenged together, their
    validators probe them in the same slots, at the same moment, and the shared device
    cannot answer both in time. The control: the same kind of device behind one node passes.
    (The harness's one fake clock adds up every charge made at the same moment, which is
    what one device serving two probes is; so the control is probed alone.)"""
    probed = await make_probed_network()
    shared = make_device(probed.clock, HONEST_SHARE * H100_OPS_PER_S)
    twin_a, twin_b, alone = _node(8), _node(9), _node(10)
    gpu = {**H100, "uuid": "GPU-5f1e0c1a-0000-4000-8000-000000000001"}
    await probed.add_node(twin_a, device=shared, gpus=[gpu])
    await probed.add_node(twin_b, device=shared, gpus=[gpu])
    device = make_device(probed.clock, HONEST_SHARE * H100_OPS_PER_S)
    await probed.add_node(alone, device=device, gpus=[{**H100, "uuid": "GPU-alone"}])
    (control,) = await probed.attest(alone.id)
    assert control.state == ACTIVE
    await probed.challenge(twin_a.id)  # challenges twin_b in the same command
    together = [await probed.node(n.id) for n in (twin_a, twin_b)]
    groups = [node.challenge.group if node.challenge else None for node in together]
    assert groups[0] == groups[1] not in (None, "")
    await probed.settle(twin_a.id, twin_b.id)
    twins = [await probed.node(n.id) for n in (twin_a, twin_b)]
    assert sum(node.state == ACTIVE for node in twins) <= 1


async def test_a_node_silent_after_attesting_is_deactivated_then_slashed() -> None:
    """Attested, then silent: each re-challenge is missed (no answer to the ping); the first
    deactivates it (it claims nothing), the third in a row slashes it, and every unit of the
    slash is accounted for in the ledger."""
    probed = await make_probed_network()
    node = _node(12)
    await probed.add_node(
        node, device=make_device(probed.clock, HONEST_SHARE * H100_OPS_PER_S), gpus=[H100]
    )
    (attested,) = await probed.attest(node.id)
    assert attested.state == ACTIVE
    before = await _balances(probed)
    stake_before = attested.stake
    del probed.probes.handlers[node.id]  # silent: nothing answers its subject
    validator = probed.keys[0].identity
    states = []
    for _ in range(POLICY.probe_misses_slash):
        probed.net.advance(POLICY.rechallenge_interval_min_ns / 1e9 + 1)
        await probed.net.run(validator, "node.attestation.rechallenge", {"node_id": node.id})
        await probed.settle(node.id)
        states.append(await probed.node(node.id))
    assert states[0].state != ACTIVE and states[0].failed_challenges == 1
    assert REASON_UNANSWERED in await _rejected_reasons(probed, node.id)
    slashed = states[-1]
    assert slashed.state == JAILED
    assert slashed.slashed_total == stake_before * POLICY.slash_bps // 10_000
    assert slashed.stake == stake_before - slashed.slashed_total
    moved = {
        account: balance - before.get(account, 0)
        for account, balance in (await _balances(probed)).items()
        if balance != before.get(account, 0)
    }
    assert moved.pop(f"stake:{node.id}") == -slashed.slashed_total
    assert sum(moved.values()) == slashed.slashed_total and all(v > 0 for v in moved.values())


class AlwaysFails(Prober):
    """A validator that reports every node it probes as failed, whatever it answered."""

    async def attest(self, node_id: str, **_: Any) -> ProbeOutcome:
        return ProbeOutcome(passed=False, reason=REASON_UNANSWERED, rtt_ns=0)


async def test_a_validator_failing_an_honest_node_is_outvoted() -> None:
    """One of three drawn validators votes every probe failed: the other two, a quorum of
    the drawn stake, pass the honest node; it is attested, not failed, and not slashed."""
    probed = await make_probed_network()
    liar = probed.daemons[0]
    liar.prober = AlwaysFails(
        probed.keys[0].identity, probed.probes, rtt_max_ns=POLICY.probe_rtt_max_ns
    )
    node = _node(13)
    device = make_device(probed.clock, HONEST_SHARE * H100_OPS_PER_S)
    await probed.add_node(node, device=device, gpus=[H100])
    (attested,) = await probed.attest(node.id)
    assert attested.state == ACTIVE and attested.failed_challenges == 0
    assert attested.slashed_total == 0
    assert REASON_UNANSWERED in await _rejected_reasons(probed, node.id)  # the lie was cast


async def test_the_operator_cannot_attest_a_node_validators_can_judge() -> None:
    """The operator key passing a CPU as an H100 itself: refused once any validator with
    stake could judge it (the validators time the node); allowed only in bootstrap, before
    the network has one, and then recorded as tier ``operator``."""
    probed = await make_probed_network()
    cpu = _node(14)
    await probed.add_node(cpu, device=make_device(probed.clock, CPU_OPS_PER_S), gpus=[H100])
    await probed.challenge(cpu.id)
    try:
        await probed.net.run(
            probed.net.operator,
            "node.attestation.decide",
            {"node_id": cpu.id, "accepted": True, "reason": "test"},
        )
    except Rejection as rejection:
        assert rejection.code == "attestation_decided_by_validators"
    else:
        raise AssertionError("the operator attested a node the validators could judge")
    assert not (await probed.node(cpu.id)).is_attested

    bootstrap = LocalNetwork.create(MemoryEventStore(), policy=POLICY)
    await bootstrap.deposit(cpu, 10_000)
    await bootstrap.register_active_node(cpu, region="eu-west", price=100, stake=5_000)
    first = await get_aggregate(bootstrap.store, Node, cpu.id)
    assert first is not None and first.attestation_tier == TIER_OPERATOR
