"""The prober: the validator's clock decides, the node's word about its timing does not.

Given a node serving simulated devices on a fake clock (tests.probing), when a validator
probes it, then an honest device passes and a slow, forgetful, lying or wrong one fails with
the reason of its first failure.
"""

from __future__ import annotations

import msgspec

from adapters.compute.probe_device import FakeClock, SimulatedProbeDevice
from domain.devices import ProbeSpec
from node_agent.probe_responder import ProbeResponder
from proofs.probe import OPENING_ENTRY_WRONG, OPENING_INDEX_UNEXPECTED, OPENING_PATH_INVALID
from proofs.probe_wire import (
    PROBE_MESSAGE_BYTES_MAX,
    ComputeCommitted,
    MemoryFilled,
    MemoryReadCommitted,
    Pong,
    ProbeMessage,
    RowsOpened,
    seal,
    unseal,
)
from tests.probing import (
    CHALLENGE_SEED,
    NODE,
    NONCE,
    RTT_MAX_NS,
    STRANGER,
    TOY_POLICY,
    VALIDATOR,
    LocalTransport,
    responder,
    toy_device,
    toy_spec,
    toy_working_set_bytes,
)
from validator.prober import ProbeOutcome, Prober


def network(*devices: SimulatedProbeDevice, clock: FakeClock) -> tuple[Prober, LocalTransport]:
    transport = LocalTransport(clock)
    transport.handlers[NODE.id] = responder(clock, *devices).handle
    return Prober(VALIDATOR, transport, clock_ns=clock.now_ns, rtt_max_ns=RTT_MAX_NS), transport


async def attest(prober: Prober, *specs: ProbeSpec) -> ProbeOutcome:
    return await prober.attest(
        NODE.id, nonce=NONCE, challenge_seed=CHALLENGE_SEED, specs=list(specs or [toy_spec()])
    )


def rewrite_answers(
    transport: LocalTransport, change: type, edit: dict[str, object] | None = None, **fields: object
) -> None:
    """The node re-signs its own answers of type ``change`` with ``fields`` replaced."""
    inner = transport.handlers[NODE.id]

    async def lying(data: bytes) -> bytes:
        answer = await inner(data)
        _, message = unseal(answer)
        if isinstance(message, change):
            message = msgspec.structs.replace(message, **fields)
            return seal(NODE, message, to=VALIDATOR.id)
        return answer

    transport.handlers[NODE.id] = lying


async def test_an_honest_device_passes_every_phase() -> None:
    clock = FakeClock()
    prober, _ = network(toy_device(clock), clock=clock)
    outcome = await attest(prober)
    assert (outcome.passed, outcome.reason) == (True, "ok")
    assert (len(outcome.compute_ns), len(outcome.fill_ns), len(outcome.read_ns)) == (1, 1, 1)
    assert outcome.rtt_ns > 0


async def test_an_honest_device_a_little_above_the_least_efficiency_passes() -> None:
    clock = FakeClock()
    least = TOY_POLICY.probe_efficiency_min_bps / 10_000
    prober, _ = network(toy_device(clock, speed=least * 1.05), clock=clock)
    assert (await attest(prober)).passed


async def test_a_device_half_as_fast_as_the_least_honest_one_misses_the_compute_deadline() -> None:
    clock = FakeClock()
    prober, _ = network(toy_device(clock, speed=0.25), clock=clock)
    outcome = await attest(prober)
    assert (outcome.passed, outcome.reason) == (False, "compute_deadline_missed")
    assert outcome.device_index == 0
    assert outcome.fill_ns == ()


async def test_a_device_without_the_working_set_in_memory_misses_the_read_deadline() -> None:
    clock = FakeClock()
    prober, _ = network(toy_device(clock, memory_bytes=toy_working_set_bytes() // 2), clock=clock)
    outcome = await attest(prober)
    assert (outcome.passed, outcome.reason) == (False, "read_deadline_missed")


async def test_a_slow_node_reporting_fast_timings_still_misses() -> None:
    clock = FakeClock()
    prober, transport = network(toy_device(clock, speed=0.25), clock=clock)
    rewrite_answers(transport, ComputeCommitted, reported_ns=1)
    assert (await attest(prober)).reason == "compute_deadline_missed"


async def test_an_honest_node_reporting_slow_timings_still_passes() -> None:
    clock = FakeClock()
    prober, transport = network(toy_device(clock), clock=clock)
    for kind in (ComputeCommitted, MemoryFilled, MemoryReadCommitted):
        rewrite_answers(transport, kind, reported_ns=10**15)
    assert (await attest(prober)).passed


async def test_a_device_that_computed_another_product_is_caught_at_its_openings() -> None:
    clock = FakeClock()
    device = toy_device(clock)
    honest_compute = device.compute
    device.compute = lambda seed, n, m, k: honest_compute(bytes(32), n, m, k)  # type: ignore[method-assign]
    prober, _ = network(device, clock=clock)
    assert (await attest(prober)).reason == OPENING_ENTRY_WRONG


async def test_an_opened_row_that_is_not_the_committed_one_is_caught() -> None:
    clock = FakeClock()
    prober, transport = network(toy_device(clock), clock=clock)
    inner = transport.handlers[NODE.id]

    async def tampering(data: bytes) -> bytes:
        answer = await inner(data)
        _, message = unseal(answer)
        if isinstance(message, RowsOpened):
            first = message.openings[0]
            changed = msgspec.structs.replace(first, row=bytes(len(first.row)))
            message = msgspec.structs.replace(message, openings=[changed, *message.openings[1:]])
            return seal(NODE, message, to=VALIDATOR.id)
        return answer

    transport.handlers[NODE.id] = tampering
    assert (await attest(prober)).reason == OPENING_PATH_INVALID


async def test_openings_of_other_leaves_than_asked_are_caught() -> None:
    clock = FakeClock()
    prober, transport = network(toy_device(clock), clock=clock)
    inner = transport.handlers[NODE.id]

    async def reordering(data: bytes) -> bytes:
        answer = await inner(data)
        _, message = unseal(answer)
        if isinstance(message, RowsOpened):
            message = msgspec.structs.replace(message, openings=message.openings[::-1])
            return seal(NODE, message, to=VALIDATOR.id)
        return answer

    transport.handlers[NODE.id] = reordering
    assert (await attest(prober)).reason == OPENING_INDEX_UNEXPECTED


async def test_answers_signed_by_another_key_are_refused() -> None:
    clock = FakeClock()
    prober, transport = network(toy_device(clock), clock=clock)
    inner = transport.handlers[NODE.id]

    async def impostor(data: bytes) -> bytes:
        _, message = unseal(await inner(data))
        return seal(STRANGER, message, to=VALIDATOR.id)

    transport.handlers[NODE.id] = impostor
    assert (await attest(prober)).reason == "signature_invalid"
    assert await prober.ping(NODE.id) is None


async def test_a_forged_commitment_after_honest_pings_is_a_signature_failure() -> None:
    clock = FakeClock()
    prober, transport = network(toy_device(clock), clock=clock)
    inner = transport.handlers[NODE.id]

    async def forging(data: bytes) -> bytes:
        answer = await inner(data)
        _, message = unseal(answer)
        if isinstance(message, ComputeCommitted):
            return seal(STRANGER, message, to=VALIDATOR.id)
        return answer

    transport.handlers[NODE.id] = forging
    assert (await attest(prober)).reason == "signature_invalid"


async def test_a_silent_node_is_unanswered_and_a_refusing_one_refused() -> None:
    clock = FakeClock()
    transport = LocalTransport(clock)
    prober = Prober(VALIDATOR, transport, clock_ns=clock.now_ns, rtt_max_ns=RTT_MAX_NS)
    assert (await attest(prober)).reason == "probe_unanswered"
    refusing = ProbeResponder(
        NODE, [toy_device(clock)], lambda signer, kind: kind == "ping", clock_ns=clock.now_ns
    )
    transport.handlers[NODE.id] = refusing.handle
    outcome = await attest(prober)
    assert (outcome.passed, outcome.reason, outcome.device_index) == (False, "probe_refused", 0)


async def test_openings_are_asked_in_batches_whose_answers_fit_the_payload() -> None:
    clock = FakeClock()
    transport = LocalTransport(clock)
    transport.handlers[NODE.id] = responder(clock, toy_device(clock)).handle
    spec = toy_spec()
    payload_bytes_max = 1024 + 3 * 4 * spec.m  # room for a few openings, not all eight
    prober = Prober(
        VALIDATOR,
        transport,
        clock_ns=clock.now_ns,
        rtt_max_ns=RTT_MAX_NS,
        payload_bytes_max=payload_bytes_max,
    )
    assert (await attest(prober, spec)).passed
    opened = [_decode(answer) for answer in transport.answers]
    batches = [m for m in opened if isinstance(m, RowsOpened)]
    assert len(batches) > 2
    assert sum(len(batch.openings) for batch in batches) == 2 * spec.openings
    assert all(len(a) <= payload_bytes_max for a in transport.answers)
    assert all(len(a) <= PROBE_MESSAGE_BYTES_MAX for a in transport.answers)


async def test_every_device_is_probed_and_the_first_failure_names_its_device() -> None:
    clock = FakeClock()
    prober, _ = network(toy_device(clock), toy_device(clock, speed=0.25), clock=clock)
    outcome = await attest(prober, toy_spec(0), toy_spec(1))
    assert (outcome.reason, outcome.device_index) == ("compute_deadline_missed", 1)
    assert len(outcome.compute_ns) == 2


async def test_a_device_without_a_memory_probe_is_only_computed() -> None:
    clock = FakeClock()
    prober, _ = network(toy_device(clock), clock=clock)
    outcome = await attest(prober, toy_spec(memory=False))
    assert outcome.passed
    assert (outcome.fill_ns, outcome.read_ns) == ((), ())


async def test_the_node_holds_nothing_after_a_probe_passed_or_failed() -> None:
    clock = FakeClock()
    node = responder(clock, toy_device(clock))
    transport = LocalTransport(clock)
    transport.handlers[NODE.id] = node.handle
    prober = Prober(VALIDATOR, transport, clock_ns=clock.now_ns, rtt_max_ns=RTT_MAX_NS)
    assert (await attest(prober)).passed
    assert node.held_probes() == 0
    slow = responder(clock, toy_device(clock, memory_bytes=toy_working_set_bytes() // 2))
    transport.handlers[NODE.id] = slow.handle
    assert not (await attest(prober)).passed
    assert slow.held_probes() == 0


async def test_a_node_delaying_its_pings_gains_at_most_the_rtt_bound() -> None:
    """A device a little too slow passes only when the prober's bound on the RTT margin
    exceeds its lateness: the delayed pings buy no more than that bound."""
    clock = FakeClock()
    spec = toy_spec()
    least = TOY_POLICY.probe_efficiency_min_bps / 10_000
    prober, transport = network(toy_device(clock, speed=least * 0.9), clock=clock)
    inner = transport.handlers[NODE.id]

    async def delaying_pings(data: bytes) -> bytes:
        answer = await inner(data)
        if isinstance(_decode(answer), Pong):
            clock.advance(spec.compute_deadline_ns)
        return answer

    transport.handlers[NODE.id] = delaying_pings
    outcome = await attest(prober, spec)
    assert outcome.reason == "compute_deadline_missed"
    assert outcome.rtt_ns >= spec.compute_deadline_ns
    lenient_bound = spec.compute_deadline_ns
    lenient = Prober(VALIDATOR, transport, clock_ns=clock.now_ns, rtt_max_ns=lenient_bound)
    assert (await attest(lenient, spec)).reason == "ok"


def _decode(data: bytes) -> ProbeMessage:
    return unseal(data)[1]
