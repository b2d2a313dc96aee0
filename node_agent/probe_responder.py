"""The node's side of a hardware probe (issue 15): answer a validator's signed requests.

``ProbeResponder.handle`` takes sealed bytes and returns sealed bytes, always: a request
that is unsigned, wrongly signed, addressed to another node, unauthorized
(``is_authorized(signer, kind)`` is the agent's rule, e.g. "an active validator", "one drawn
for my round"), too costly for the node's budget or about an unknown probe is answered with
a signed ``ProbeRefused``. Device work runs in a thread, one call at a time per device (an
honest device serves one probe at a time: that is what the validators' slots assume), and
what a probe holds is kept per probe id for the validator that started it, until it is
released or, unused for ``HELD_TTL_NS`` on the node's clock, evicted to make room.
A ``CcEvidenceRequest`` is answered with what ``collect_cc(nonce)`` returns
(``adapters.compute.cc_attestation.collect_cc_evidence``), empty without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import structlog

from domain.devices import ProbeSpec
from proofs.identity import Identity
from proofs.probe import choose_rows
from proofs.probe_wire import (
    MESSAGE_OVERHEAD_BYTES,
    PROBE_MESSAGE_BYTES_MAX,
    REFUSED_DEVICE_BUSY,
    REFUSED_DEVICE_ERROR,
    REFUSED_DEVICE_UNKNOWN,
    REFUSED_NOT_A_REQUEST,
    REFUSED_PROBE_ID_IN_USE,
    REFUSED_PROBE_UNKNOWN,
    REFUSED_RESPONSE_TOO_LARGE,
    REFUSED_TOO_COSTLY,
    REFUSED_UNAUTHORIZED,
    CcEvidence,
    CcEvidenceRequest,
    ComputeChallenge,
    ComputeCommitted,
    MemoryFill,
    MemoryFilled,
    MemoryRead,
    MemoryReadCommitted,
    OpenRows,
    Phase,
    Ping,
    Pong,
    ProbeMessage,
    ProbeRefused,
    ProbeWireError,
    Release,
    Released,
    RowsOpened,
    compute_opening_bytes,
    decode_sealed,
    seal,
    unseal,
)

if TYPE_CHECKING:  # the devices' module imports torch; the responder needs only their shape
    from adapters.compute.probe_device import ProbeDevice, ProductHandle

HELD_PER_DEVICE_MAX = 2
"""Products one device holds at once (a compute product and a memory working set)."""
HELD_TTL_NS = 120 * 1_000_000_000
"""A held product unused this long may be evicted to make room for a new probe."""
SEEN_PROBE_IDS_MAX = 4096
"""Probe ids remembered after release, so that a replayed challenge is refused."""
DEVICE_ERRORS = (RuntimeError, MemoryError, ValueError)
"""What a device raises when it cannot do the work (torch's out-of-memory is a RuntimeError)."""

_REQUESTS = (Ping, ComputeChallenge, MemoryFill, MemoryRead, OpenRows, Release, CcEvidenceRequest)

_log = structlog.get_logger("flopledger.node.probe")


class ProbeBudget(msgspec.Struct, frozen=True, kw_only=True):
    """The most one request may ask of a device: bytes held and multiply-adds x 2."""

    product_bytes_max: int
    ops_max: int


DEFAULT_BUDGET = ProbeBudget(product_bytes_max=2**35, ops_max=2**54)
"""About twice the largest probe of any table model under the default policy (the H200's
14 GB working set, 8·10^15 ops); an agent should pass the budget of its own specs."""


def compute_probe_budget(specs: Sequence[ProbeSpec], *, headroom: int = 2) -> ProbeBudget:
    """A budget ``headroom`` times the largest probe of the node's own specs (what the
    protocol sizes for its models), so a validator cannot ask much more of it."""
    product_bytes = max(
        max(4 * spec.n * spec.m, 4 * spec.memory_n * spec.memory_m) for spec in specs
    )
    ops = max(
        max(2 * spec.n * spec.m * spec.k, 2 * spec.memory_n * spec.memory_m * spec.memory_k)
        for spec in specs
    )
    return ProbeBudget(product_bytes_max=headroom * product_bytes, ops_max=headroom * ops)


@dataclass
class _Held:
    """What one probe holds on a device, for the validator that started it."""

    owner: str
    device_index: int
    phase: Phase
    handle: ProductHandle
    n: int
    m: int
    key: bytes
    rows: list[int] | None
    touched_ns: int


class ProbeResponder:
    """Answers probe requests for one node identity with its devices (index = position)."""

    def __init__(
        self,
        identity: Identity,
        devices: Sequence[ProbeDevice],
        is_authorized: Callable[[str, str], bool],
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        budget: ProbeBudget = DEFAULT_BUDGET,
        collect_cc: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self._identity = identity
        self._collect_cc = collect_cc
        self._devices = list(devices)
        self._is_authorized = is_authorized
        self._clock_ns = clock_ns
        self._budget = budget
        self._locks = [asyncio.Lock() for _ in self._devices]
        self._held: dict[str, _Held] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()

    def held_probes(self) -> int:
        """How many probes hold a product on this node's devices now."""
        return len(self._held)

    async def handle(self, data: bytes) -> bytes:
        """The sealed answer to sealed request bytes (never raises on bad input)."""
        try:
            signer, message = unseal(data, recipient=self._identity.id)
        except ProbeWireError as exc:
            return self._seal(_requester(data), ProbeRefused(probe_id="", reason=exc.code))
        probe_id = getattr(message, "probe_id", "")
        kind = type(message).__struct_config__.tag
        if not isinstance(message, _REQUESTS):
            return self._seal(signer, _refused(probe_id, REFUSED_NOT_A_REQUEST))
        if not isinstance(kind, str) or not self._is_authorized(signer, kind):
            return self._seal(signer, _refused(probe_id, REFUSED_UNAUTHORIZED))
        try:
            answer = await self._answer(signer, message)
        except DEVICE_ERRORS as exc:
            _log.warning("probe_device_error", probe_id=probe_id, kind=kind, error=str(exc))
            self._drop(probe_id)
            answer = _refused(probe_id, REFUSED_DEVICE_ERROR)
        return self._seal(signer, answer)

    async def _answer(self, signer: str, message: ProbeMessage) -> ProbeMessage:
        match message:
            case Ping(nonce=nonce):
                return Pong(nonce=nonce)
            case ComputeChallenge():
                return await self._compute(signer, message)
            case MemoryFill():
                return await self._fill(signer, message)
            case MemoryRead():
                return await self._read(signer, message)
            case OpenRows():
                return await self._open(signer, message)
            case Release():
                return await self._release(signer, message)
            case CcEvidenceRequest(nonce=nonce):
                return await self._cc_evidence(nonce)
        return _refused(getattr(message, "probe_id", ""), REFUSED_NOT_A_REQUEST)

    async def _compute(self, signer: str, request: ComputeChallenge) -> ProbeMessage:
        """Compute C and commit to all its rows (keyed by the seed): one timed answer."""
        started_ns = self._clock_ns()
        async with self._starting(signer, request, "compute") as held:
            if isinstance(held, ProbeRefused):
                return held
            device = self._devices[request.device_index]
            root = await asyncio.to_thread(device.commit, held.handle, request.seed, None)
        reported_ns = self._clock_ns() - started_ns
        return ComputeCommitted(probe_id=request.probe_id, root=root, reported_ns=reported_ns)

    async def _fill(self, signer: str, request: MemoryFill) -> ProbeMessage:
        """Compute the working set M and hold it."""
        started_ns = self._clock_ns()
        async with self._starting(signer, request, "memory") as held:
            if isinstance(held, ProbeRefused):
                return held
        reported_ns = self._clock_ns() - started_ns
        return MemoryFilled(probe_id=request.probe_id, reported_ns=reported_ns)

    @contextlib.asynccontextmanager
    async def _starting(
        self, signer: str, request: ComputeChallenge | MemoryFill, phase: Phase
    ) -> AsyncIterator[_Held | ProbeRefused]:
        """Under the device's lock: the new probe's product computed and held, or why not."""
        refusal = self._check_new(request)
        if refusal is not None:
            yield refusal
            return
        device = self._devices[request.device_index]
        async with self._locks[request.device_index]:
            if not self._make_room(request.device_index):
                yield _refused(request.probe_id, REFUSED_DEVICE_BUSY)
                return
            self._remember(request.probe_id)
            seed, n, m, k = request.seed, request.n, request.m, request.k
            handle = await asyncio.to_thread(device.compute, seed, n, m, k)
            held = _Held(signer, request.device_index, phase, handle, n, m, seed, None, 0)
            held.touched_ns = self._clock_ns()
            self._held[request.probe_id] = held
            yield held

    async def _read(self, signer: str, request: MemoryRead) -> ProbeMessage:
        held = self._find(signer, request.probe_id, "memory")
        if held is None or request.rows > held.n:
            return _refused(request.probe_id, REFUSED_PROBE_UNKNOWN)
        rows = choose_rows(request.key, held.n, request.rows)
        device = self._devices[held.device_index]
        async with self._locks[held.device_index]:
            started_ns = self._clock_ns()
            root = await asyncio.to_thread(device.commit, held.handle, request.key, rows)
            held.key, held.rows = request.key, rows
        return MemoryReadCommitted(
            probe_id=request.probe_id, root=root, reported_ns=self._clock_ns() - started_ns
        )

    async def _open(self, signer: str, request: OpenRows) -> ProbeMessage:
        held = self._find(signer, request.probe_id, request.phase)
        if held is None or (request.phase == "memory" and held.rows is None):
            return _refused(request.probe_id, REFUSED_PROBE_UNKNOWN)
        n_leaves = held.n if held.rows is None else len(held.rows)
        if any(index >= n_leaves for index in request.indices):
            return _refused(request.probe_id, REFUSED_PROBE_UNKNOWN)
        answer_bytes = len(request.indices) * compute_opening_bytes(held.m, n_leaves)
        if answer_bytes > PROBE_MESSAGE_BYTES_MAX - MESSAGE_OVERHEAD_BYTES:
            return _refused(request.probe_id, REFUSED_RESPONSE_TOO_LARGE)
        device = self._devices[held.device_index]
        async with self._locks[held.device_index]:
            openings = await asyncio.to_thread(
                device.open, held.handle, held.key, list(request.indices), held.rows
            )
        return RowsOpened(probe_id=request.probe_id, openings=list(openings))

    async def _cc_evidence(self, nonce: bytes) -> ProbeMessage:
        """The GPUs' CC report over ``nonce`` (NVML and NVIDIA's SDK: in a thread)."""
        if self._collect_cc is None:
            return CcEvidence(evidence=b"")
        evidence = await asyncio.to_thread(self._collect_cc, nonce)
        return CcEvidence(evidence=evidence or b"")

    async def _release(self, signer: str, request: Release) -> ProbeMessage:
        held = self._held.get(request.probe_id)
        if held is not None and held.owner == signer:
            async with self._locks[held.device_index]:
                self._drop(request.probe_id)
        return Released(probe_id=request.probe_id)

    def _check_new(self, request: ComputeChallenge | MemoryFill) -> ProbeRefused | None:
        """Why a new probe is refused before any work, or None."""
        n, m, k = request.n, request.m, request.k
        if request.device_index >= len(self._devices):
            return _refused(request.probe_id, REFUSED_DEVICE_UNKNOWN)
        if request.probe_id in self._seen:
            return _refused(request.probe_id, REFUSED_PROBE_ID_IN_USE)
        too_large = 4 * n * m > self._budget.product_bytes_max
        if too_large or 2 * n * m * k > self._budget.ops_max:
            return _refused(request.probe_id, REFUSED_TOO_COSTLY)
        return None

    def _make_room(self, device_index: int) -> bool:
        """Evict what sat unused past HELD_TTL_NS on the device; True if a slot is free."""
        now_ns = self._clock_ns()
        on_device = [pid for pid, h in self._held.items() if h.device_index == device_index]
        for probe_id in on_device:
            if now_ns - self._held[probe_id].touched_ns > HELD_TTL_NS:
                _log.info("probe_evicted", probe_id=probe_id, device_index=device_index)
                self._drop(probe_id)
        held = sum(1 for h in self._held.values() if h.device_index == device_index)
        return held < HELD_PER_DEVICE_MAX

    def _find(self, signer: str, probe_id: str, phase: Phase) -> _Held | None:
        held = self._held.get(probe_id)
        if held is None or held.owner != signer or held.phase != phase:
            return None
        held.touched_ns = self._clock_ns()
        return held

    def _remember(self, probe_id: str) -> None:
        self._seen[probe_id] = None
        while len(self._seen) > SEEN_PROBE_IDS_MAX:
            self._seen.popitem(last=False)

    def _drop(self, probe_id: str) -> None:
        held = self._held.pop(probe_id, None)
        if held is not None:
            self._devices[held.device_index].release(held.handle)

    def _seal(self, to: str, message: ProbeMessage) -> bytes:
        return seal(self._identity, message, to=to)


def _refused(probe_id: str, reason: str) -> ProbeRefused:
    return ProbeRefused(probe_id=probe_id, reason=reason)


def _requester(data: bytes) -> str:
    """Whom to answer when a request does not verify: its claimed signer, if it decodes."""
    try:
        return decode_sealed(data).signer
    except ProbeWireError:
        return ""
