"""The node's probe responder: it answers signed, authorized, affordable requests only, and
always with a signed answer; device work is serialized per device and bounded in what it holds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import msgspec

from adapters.compute.probe_device import FakeClock, ProductHandle, SimulatedProbeDevice
from domain.devices import CPU_MODEL_KEY, compute_probe_specs, load_device_table
from domain.policy import LedgerPolicy
from node_agent.probe_responder import (
    DEFAULT_BUDGET,
    HELD_PER_DEVICE_MAX,
    HELD_TTL_NS,
    ProbeResponder,
    compute_probe_budget,
)
from proofs.identity import Identity
from proofs.probe import RowOpening
from proofs.probe_wire import (
    ComputeChallenge,
    ComputeCommitted,
    MemoryFill,
    MemoryFilled,
    MemoryRead,
    OpenRows,
    Ping,
    Pong,
    ProbeMessage,
    ProbeRefused,
    Release,
    Released,
    RowsOpened,
    SignedProbeMessage,
    seal,
    unseal,
)
from tests.probing import NODE, STRANGER, VALIDATOR, allow_all, responder, toy_device, toy_spec

SEED = bytes(range(32))


async def ask(
    node: ProbeResponder, message: ProbeMessage, *, by: Identity = VALIDATOR, to: str = NODE.id
) -> ProbeMessage:
    """Send ``message`` signed by ``by``; the answer must be signed by the node, for ``by``."""
    data = seal(by, message, to=to)
    signer, answer = unseal(await node.handle(data), NODE.id)
    assert signer == NODE.id
    return answer


def compute(probe_id: str = "c1", *, device_index: int = 0, n: int = 16) -> ComputeChallenge:
    return ComputeChallenge(
        probe_id=probe_id, device_index=device_index, seed=SEED, n=n, m=16, k=64
    )


def fill(probe_id: str = "f1", *, n: int = 64, m: int = 16) -> MemoryFill:
    return MemoryFill(probe_id=probe_id, device_index=0, seed=SEED, n=n, m=m, k=64)


def refused(answer: ProbeMessage) -> str:
    assert isinstance(answer, ProbeRefused), answer
    return answer.reason


async def test_a_ping_is_answered_with_its_nonce() -> None:
    clock = FakeClock()
    assert await ask(responder(clock), Ping(nonce=b"12345678")) == Pong(nonce=b"12345678")


async def test_unsigned_and_wrongly_signed_requests_get_a_signed_refusal() -> None:
    clock = FakeClock()
    node = responder(clock, toy_device(clock))
    _, answer = unseal(await node.handle(b"not a probe message"), NODE.id)
    assert refused(answer) == "probe_malformed"
    sealed = msgspec.msgpack.decode(seal(VALIDATOR, compute(), to=NODE.id), type=SignedProbeMessage)
    forged = SignedProbeMessage(
        body=sealed.body, signer=STRANGER.id, signature=STRANGER.sign(b"other" + sealed.body)
    )
    signer, answer = unseal(await node.handle(msgspec.msgpack.encode(forged)), NODE.id)
    assert (signer, refused(answer)) == (NODE.id, "signature_invalid")
    assert node.held_probes() == 0


async def test_a_request_for_another_node_is_refused() -> None:
    clock = FakeClock()
    node = responder(clock, toy_device(clock))
    assert refused(await ask(node, compute(), to=STRANGER.id)) == "wrong_recipient"


async def test_an_unauthorized_signer_is_refused_and_the_rule_sees_signer_and_kind() -> None:
    clock = FakeClock()
    seen: list[tuple[str, str]] = []

    def only_validator(signer: str, kind: str) -> bool:
        seen.append((signer, kind))
        return signer == VALIDATOR.id

    node = ProbeResponder(NODE, [toy_device(clock)], only_validator, clock_ns=clock.now_ns)
    assert refused(await ask(node, compute(), by=STRANGER)) == "unauthorized"
    assert isinstance(await ask(node, compute()), ComputeCommitted)
    assert seen == [(STRANGER.id, "compute_challenge"), (VALIDATOR.id, "compute_challenge")]


async def test_a_replayed_challenge_is_refused_even_after_release() -> None:
    clock = FakeClock()
    node = responder(clock, toy_device(clock))
    assert isinstance(await ask(node, compute()), ComputeCommitted)
    assert refused(await ask(node, compute())) == "probe_id_in_use"
    assert await ask(node, Release(probe_id="c1")) == Released(probe_id="c1")
    assert refused(await ask(node, compute())) == "probe_id_in_use"


async def test_an_unknown_device_and_a_request_past_the_budget_are_refused() -> None:
    clock = FakeClock()
    spec = toy_spec()
    budget = compute_probe_budget([spec], headroom=1)
    node = ProbeResponder(
        NODE, [toy_device(clock)], allow_all, clock_ns=clock.now_ns, budget=budget
    )
    assert refused(await ask(node, compute(device_index=1))) == "device_unknown"
    n, m, k = spec.memory_n, spec.memory_m, spec.memory_k
    at_budget = MemoryFill(probe_id="b1", device_index=0, seed=SEED, n=n, m=m, k=k)
    assert isinstance(await ask(node, at_budget), MemoryFilled)
    longer = msgspec.structs.replace(at_budget, probe_id="b2", k=k + 64)
    assert refused(await ask(node, longer)) == "probe_too_costly"
    wider = msgspec.structs.replace(at_budget, probe_id="b3", n=n + 1, k=64)
    assert refused(await ask(node, wider)) == "probe_too_costly"


async def test_only_the_validator_that_started_a_probe_opens_or_releases_it() -> None:
    clock = FakeClock()
    node = responder(clock, toy_device(clock))
    assert isinstance(await ask(node, compute()), ComputeCommitted)
    opening = OpenRows(probe_id="c1", phase="compute", indices=[0, 3])
    assert refused(await ask(node, opening, by=STRANGER)) == "probe_unknown"
    await ask(node, Release(probe_id="c1"), by=STRANGER)
    assert node.held_probes() == 1
    opened = await ask(node, opening)
    assert isinstance(opened, RowsOpened)
    assert [o.index for o in opened.openings] == [0, 3]
    await ask(node, Release(probe_id="c1"))
    assert node.held_probes() == 0


async def test_openings_outside_the_tree_or_of_the_wrong_phase_are_refused() -> None:
    clock = FakeClock()
    node = responder(clock, toy_device(clock))
    await ask(node, compute())
    outside = OpenRows(probe_id="c1", phase="compute", indices=[16])
    assert refused(await ask(node, outside)) == "probe_unknown"
    other_phase = OpenRows(probe_id="c1", phase="memory", indices=[0])
    assert refused(await ask(node, other_phase)) == "probe_unknown"
    assert isinstance(await ask(node, fill()), MemoryFilled)
    before_read = OpenRows(probe_id="f1", phase="memory", indices=[0])
    assert refused(await ask(node, before_read)) == "probe_unknown"
    await ask(node, MemoryRead(probe_id="f1", key=SEED, rows=8))
    read_leaf = OpenRows(probe_id="f1", phase="memory", indices=[7])
    assert isinstance(await ask(node, read_leaf), RowsOpened)
    past_read = OpenRows(probe_id="f1", phase="memory", indices=[8])
    assert refused(await ask(node, past_read)) == "probe_unknown"
    too_many_rows = MemoryRead(probe_id="f1", key=SEED, rows=65)
    assert refused(await ask(node, too_many_rows)) == "probe_unknown"


async def test_an_answer_that_would_not_fit_a_message_is_refused() -> None:
    clock = FakeClock()
    node = responder(clock, toy_device(clock))
    wide = ComputeChallenge(probe_id="e1", device_index=0, seed=SEED, n=64, m=8192, k=64)
    assert isinstance(await ask(node, wide), ComputeCommitted)
    fits = OpenRows(probe_id="e1", phase="compute", indices=list(range(31)))
    assert isinstance(await ask(node, fits), RowsOpened)
    too_large = OpenRows(probe_id="e1", phase="compute", indices=list(range(33)))
    assert refused(await ask(node, too_large)) == "response_too_large"


async def test_a_device_holds_a_bounded_number_of_probes_until_they_go_stale() -> None:
    clock = FakeClock()
    node = responder(clock, toy_device(clock))
    for index in range(HELD_PER_DEVICE_MAX):
        assert isinstance(await ask(node, fill(f"f{index}")), MemoryFilled)
    assert refused(await ask(node, fill("fa"))) == "device_busy"
    clock.advance(HELD_TTL_NS + 1)
    assert isinstance(await ask(node, fill("fb")), MemoryFilled)
    assert node.held_probes() == 1


async def test_an_answer_is_not_a_request() -> None:
    clock = FakeClock()
    node = responder(clock, toy_device(clock))
    assert refused(await ask(node, Pong(nonce=b"12345678"))) == "not_a_request"


class _Recording:
    """A device that records how many of its calls overlap (and can fail on compute)."""

    def __init__(self, inner: SimulatedProbeDevice, *, failing: bool = False) -> None:
        self.inner = inner
        self.failing = failing
        self.active = 0
        self.most_active = 0
        self.released = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)

    def _exit(self) -> None:
        with self._lock:
            self.active -= 1

    def compute(self, seed: bytes, n: int, m: int, k: int) -> ProductHandle:
        self._enter()
        try:
            if self.failing:
                raise RuntimeError("CUDA out of memory")
            threading.Event().wait(0.01)  # lets another thread in if the responder allowed it
            return self.inner.compute(seed, n, m, k)
        finally:
            self._exit()

    def commit(self, handle: ProductHandle, key: bytes, rows: Sequence[int] | None = None) -> bytes:
        self._enter()
        try:
            return self.inner.commit(handle, key, rows)
        finally:
            self._exit()

    def open(
        self,
        handle: ProductHandle,
        key: bytes,
        indices: Sequence[int],
        rows: Sequence[int] | None = None,
    ) -> list[RowOpening]:
        return self.inner.open(handle, key, indices, rows)

    def release(self, handle: ProductHandle) -> None:
        self.released += 1
        self.inner.release(handle)


async def test_work_on_one_device_is_serialized() -> None:
    clock = FakeClock()
    device = _Recording(toy_device(clock))
    node = ProbeResponder(NODE, [device], allow_all, clock_ns=clock.now_ns)
    answers = await asyncio.gather(*(ask(node, compute(f"c{i}")) for i in range(4)))
    assert all(isinstance(a, ComputeCommitted | ProbeRefused) for a in answers)
    assert sum(isinstance(a, ComputeCommitted) for a in answers) == HELD_PER_DEVICE_MAX
    assert device.most_active == 1


async def test_a_device_error_is_a_refusal_and_holds_nothing() -> None:
    clock = FakeClock()
    device = _Recording(toy_device(clock), failing=True)
    node = ProbeResponder(NODE, [device], allow_all, clock_ns=clock.now_ns)
    assert refused(await ask(node, compute())) == "device_error"
    assert node.held_probes() == 0


def test_the_probes_of_every_table_model_pass_the_wire_bounds_and_the_default_budget() -> None:
    table = load_device_table()
    for model in table:
        models = [] if model.key == CPU_MODEL_KEY else [model.key]
        (spec,) = compute_probe_specs(models, policy=LedgerPolicy())
        requests: list[ProbeMessage] = [
            ComputeChallenge(probe_id="a", device_index=0, seed=SEED, n=spec.n, m=spec.m, k=spec.k)
        ]
        if spec.memory_n:
            n, m, k = spec.memory_n, spec.memory_m, spec.memory_k
            requests.append(MemoryFill(probe_id="b", device_index=0, seed=SEED, n=n, m=m, k=k))
            requests.append(MemoryRead(probe_id="b", key=SEED, rows=spec.memory_read_rows))
        for request in requests:
            assert unseal(seal(VALIDATOR, request, to=NODE.id))[1] == request, model.key
        largest = (max(spec.n, spec.memory_n), max(spec.m, spec.memory_m))
        assert 4 * largest[0] * largest[1] <= DEFAULT_BUDGET.product_bytes_max, model.key
        ops = max(2 * spec.n * spec.m * spec.k, 2 * spec.memory_n * spec.memory_m * spec.memory_k)
        assert ops <= DEFAULT_BUDGET.ops_max, model.key
