"""The validator's side of a hardware probe (issue 15): time the node on the validator's clock.

``attest`` pings the node (round-trip time, median of 3), then probes every device in turn:
a compute challenge (timed: seed sent -> signed root back), openings of rows the validator's
signature over that root picks, each checked entry by entry (``proofs.probe.check_opening``,
O(k) an entry), then, on a GPU, a memory fill (timed), a memory read of rows the signature
over the fill ack picks (timed) and its openings. It stops at the first failure and returns
its reason (``proofs.probe_wire.REASON_*`` or an opening code of ``proofs.probe``). A deadline
allows the spec's time plus the measured RTT, bounded by ``rtt_max_ns``: the node's own
timings (``reported_ns``) are never read. Openings are asked for in batches whose answer fits
one message. What a probe held is released after each phase, passed or not.

``attest_cc`` asks instead for the GPUs' confidential-computing report over a nonce derived
from the validator's signature (``proofs.probe_wire.compute_cc_nonce``) and has it verified
by the function it is given (``adapters.compute.cc_attestation.verify_cc_evidence`` bound to
the validator's SDK and mode); it is not timed: NVIDIA's signature over the nonce binds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol, TypeVar

import msgspec

from domain.devices import ProbeSpec
from proofs.identity import Identity
from proofs.probe import OPENING_INDEX_UNEXPECTED, RowOpening, check_opening, choose_columns
from proofs.probe import choose_rows as choose_leaves
from proofs.probe_wire import (
    PROBE_MESSAGE_BYTES_MAX,
    REASON_CC,
    REASON_CC_ABSENT,
    REASON_COMPUTE_DEADLINE_MISSED,
    REASON_FILL_DEADLINE_MISSED,
    REASON_MALFORMED,
    REASON_OK,
    REASON_READ_DEADLINE_MISSED,
    REASON_REFUSED,
    REASON_SIGNATURE_INVALID,
    REASON_UNANSWERED,
    TOO_LARGE,
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
    ProbeRequest,
    ProbeWireError,
    Release,
    Released,
    RowsOpened,
    compute_cc_nonce,
    compute_cc_nonce_statement,
    compute_openings_per_message,
    compute_openings_statement,
    compute_probe_seed,
    compute_read_key,
    compute_read_key_statement,
    compute_seed_statement,
    seal,
    unseal,
)

PING_COUNT = 3
PING_TIMEOUT_S = 2.0
ANSWER_GRACE_NS = 1_000_000_000
"""How long past its deadline a timed answer is still awaited: a late answer is recorded as
a missed deadline (with its time), only a silent node as unanswered."""
UNTIMED_TIMEOUT_S = 30.0
"""Openings are not timed (the commitment came first), but a node cannot stall forever."""
RELEASE_TIMEOUT_S = 2.0
CC_TIMEOUT_S = 60.0
"""A CC report is not timed (NVML and SPDM take seconds per GPU), but a node cannot stall."""
PROBE_ID_BYTES = 16
NS_PER_S = 1_000_000_000

AnswerT = TypeVar("AnswerT", bound=ProbeMessage)


class ProbeTransport(Protocol):
    """Request-reply to a node: the answer's bytes, or None when none came in time."""

    async def request(self, node_id: str, data: bytes, timeout_s: float) -> bytes | None: ...


class ProbeOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A probe's verdict and what the validator measured, per device in spec order (fill and
    read only for devices with a memory probe; a failed probe stops the lists early)."""

    passed: bool
    reason: str
    rtt_ns: int
    compute_ns: tuple[int, ...] = ()
    read_ns: tuple[int, ...] = ()
    fill_ns: tuple[int, ...] = ()
    device_index: int | None = None
    """The device whose probe failed (None when passed or when the ping failed)."""


class Prober:
    """Probes nodes for one validator identity over a transport, on an injected clock."""

    def __init__(
        self,
        identity: Identity,
        transport: ProbeTransport,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        rtt_max_ns: int,
        payload_bytes_max: int = PROBE_MESSAGE_BYTES_MAX,
    ) -> None:
        self._identity = identity
        self._transport = transport
        self._clock_ns = clock_ns
        self._rtt_max_ns = rtt_max_ns
        self._payload_bytes_max = min(payload_bytes_max, PROBE_MESSAGE_BYTES_MAX)

    async def ping(self, node_id: str) -> int | None:
        """The median of ``PING_COUNT`` round-trip times, or None if any ping failed."""
        try:
            return await self._measure_rtt(node_id)
        except _ProbeFailed:
            return None

    async def attest(
        self, node_id: str, *, nonce: str, challenge_seed: bytes, specs: Sequence[ProbeSpec]
    ) -> ProbeOutcome:
        """Probe every device of ``specs``; passed only when every probe passed."""
        run = _Run(node_id=node_id, nonce=nonce, challenge_seed=challenge_seed)
        try:
            run.rtt_ns = await self._measure_rtt(node_id)
        except _ProbeFailed as failed:
            return run.outcome(failed.reason, None)
        device_index: int | None = None
        try:
            for spec in specs:
                device_index = spec.device_index
                await self._probe_compute(run, spec)
                if spec.memory_n > 0:
                    await self._probe_memory(run, spec)
        except _ProbeFailed as failed:
            return run.outcome(failed.reason, device_index)
        return run.outcome(REASON_OK, None)

    async def attest_cc(
        self,
        node_id: str,
        *,
        nonce: str,
        challenge_seed: bytes,
        verify: Callable[[bytes, bytes], str],
    ) -> ProbeOutcome:
        """The node's CC evidence over this round's CC nonce, checked by ``verify(evidence,
        nonce)`` in a thread: passed with ``REASON_CC`` when it answers "ok", else its reason
        (``REASON_CC_ABSENT`` for an empty answer; the caller probes by timing where the
        reason is absent or inconclusive, ``cc_attestation.is_cc_reason_inconclusive``)."""
        statement = compute_cc_nonce_statement(node_id=node_id, nonce=nonce)
        cc_nonce = compute_cc_nonce(challenge_seed, self._identity.sign(statement))
        request = CcEvidenceRequest(nonce=cc_nonce)
        try:
            answer, _ = await self._ask(node_id, request, CcEvidence, CC_TIMEOUT_S)
        except _ProbeFailed as failed:
            return ProbeOutcome(passed=False, reason=failed.reason, rtt_ns=0)
        if not answer.evidence:
            return ProbeOutcome(passed=False, reason=REASON_CC_ABSENT, rtt_ns=0)
        reason = await asyncio.to_thread(verify, answer.evidence, cc_nonce)
        if reason == REASON_OK:
            return ProbeOutcome(passed=True, reason=REASON_CC, rtt_ns=0)
        return ProbeOutcome(passed=False, reason=reason, rtt_ns=0)

    async def _measure_rtt(self, node_id: str) -> int:
        rtts: list[int] = []
        for _ in range(PING_COUNT):
            nonce = secrets.token_bytes(16)
            pong, elapsed = await self._ask(node_id, Ping(nonce=nonce), Pong, PING_TIMEOUT_S)
            if pong.nonce != nonce:
                raise _ProbeFailed(REASON_MALFORMED)
            rtts.append(elapsed)
        return int(statistics.median_low(rtts))

    async def _probe_compute(self, run: _Run, spec: ProbeSpec) -> None:
        seed = self._derive_seed(run, spec.device_index, "compute")
        probe_id = secrets.token_hex(PROBE_ID_BYTES)
        challenge = ComputeChallenge(
            probe_id=probe_id,
            device_index=spec.device_index,
            seed=seed,
            n=spec.n,
            m=spec.m,
            k=spec.k,
        )
        async with self._holding(run.node_id, probe_id):
            committed = await self._ask_timed(
                run, challenge, ComputeCommitted, spec.compute_deadline_ns,
                run.compute_ns, REASON_COMPUTE_DEADLINE_MISSED,
            )  # fmt: skip
            await self._check_openings(
                run, probe_id, "compute", committed.root, _Tree(seed, seed, spec.n, None, spec)
            )

    async def _probe_memory(self, run: _Run, spec: ProbeSpec) -> None:
        seed = self._derive_seed(run, spec.device_index, "memory")
        probe_id = secrets.token_hex(PROBE_ID_BYTES)
        fill = MemoryFill(
            probe_id=probe_id,
            device_index=spec.device_index,
            seed=seed,
            n=spec.memory_n,
            m=spec.memory_m,
            k=spec.memory_k,
        )
        async with self._holding(run.node_id, probe_id):
            await self._ask_timed(
                run, fill, MemoryFilled, spec.fill_deadline_ns,
                run.fill_ns, REASON_FILL_DEADLINE_MISSED,
            )  # fmt: skip
            statement = compute_read_key_statement(node_id=run.node_id, probe_id=probe_id)
            key = compute_read_key(self._identity.sign(statement))
            read = MemoryRead(probe_id=probe_id, key=key, rows=spec.memory_read_rows)
            committed = await self._ask_timed(
                run, read, MemoryReadCommitted, spec.read_deadline_ns,
                run.read_ns, REASON_READ_DEADLINE_MISSED,
            )  # fmt: skip
            rows = choose_leaves(key, spec.memory_n, spec.memory_read_rows)
            tree = _Tree(seed, key, spec.memory_read_rows, rows, spec)
            await self._check_openings(run, probe_id, "memory", committed.root, tree)

    async def _check_openings(
        self, run: _Run, probe_id: str, phase: Phase, root: bytes, tree: _Tree
    ) -> None:
        """Open the leaves the signature over ``root`` picks, in batches that fit a message,
        and recompute entries of each (in a thread: an entry costs O(k))."""
        statement = compute_openings_statement(
            node_id=run.node_id, probe_id=probe_id, phase=phase, root=root
        )
        randomness = self._identity.sign(statement)
        leaves = choose_leaves(randomness, tree.n_leaves, min(tree.spec.openings, tree.n_leaves))
        batch_size = compute_openings_per_message(tree.m, tree.n_leaves, self._payload_bytes_max)
        for start in range(0, len(leaves), batch_size):
            batch = leaves[start : start + batch_size]
            request = OpenRows(probe_id=probe_id, phase=phase, indices=batch)
            opened, _ = await self._ask(run.node_id, request, RowsOpened, UNTIMED_TIMEOUT_S)
            if [opening.index for opening in opened.openings] != batch:
                raise _ProbeFailed(OPENING_INDEX_UNEXPECTED)
            reason = await asyncio.to_thread(_check_batch, tree, root, randomness, opened.openings)
            if reason != REASON_OK:
                raise _ProbeFailed(reason)

    def _allowed_ns(self, run: _Run, deadline_ns: int) -> int:
        """A deadline plus the round trip measured before, bounded by ``rtt_max_ns``."""
        return deadline_ns + min(run.rtt_ns, self._rtt_max_ns)

    def _derive_seed(self, run: _Run, device_index: int, phase: Phase) -> bytes:
        statement = compute_seed_statement(
            node_id=run.node_id, nonce=run.nonce, device_index=device_index, phase=phase
        )
        return compute_probe_seed(run.challenge_seed, self._identity.sign(statement))

    async def _ask_timed(
        self,
        run: _Run,
        request: ProbeRequest,
        answer: type[AnswerT],
        deadline_ns: int,
        times_ns: list[int],
        missed: str,
    ) -> AnswerT:
        """Ask a timed step: its time on this validator's clock goes to ``times_ns``, and an
        answer later than the deadline plus the bounded RTT fails the probe with ``missed``."""
        allowed_ns = self._allowed_ns(run, deadline_ns)
        timeout_s = (allowed_ns + ANSWER_GRACE_NS) / NS_PER_S
        received, elapsed = await self._ask(run.node_id, request, answer, timeout_s)
        times_ns.append(elapsed)
        if elapsed > allowed_ns:
            raise _ProbeFailed(missed)
        return received

    async def _ask(
        self, node_id: str, request: ProbeRequest, answer: type[AnswerT], timeout_s: float
    ) -> tuple[AnswerT, int]:
        """Send ``request`` (sealed before the clock starts), and return the answer of the
        expected kind for the same probe with the nanoseconds it took; _ProbeFailed else."""
        data = seal(self._identity, request, to=node_id)
        started_ns = self._clock_ns()
        reply = await self._transport.request(node_id, data, timeout_s)
        elapsed_ns = self._clock_ns() - started_ns
        if reply is None:
            raise _ProbeFailed(REASON_UNANSWERED)
        try:
            _, message = unseal(reply, node_id, recipient=self._identity.id)
        except ProbeWireError as exc:
            malformed = exc.code in (REASON_MALFORMED, TOO_LARGE)
            raise _ProbeFailed(REASON_MALFORMED if malformed else REASON_SIGNATURE_INVALID) from exc
        if isinstance(message, ProbeRefused):
            raise _ProbeFailed(REASON_REFUSED)
        if not isinstance(message, answer) or _probe_id(message) != _probe_id(request):
            raise _ProbeFailed(REASON_MALFORMED)
        return message, elapsed_ns

    @contextlib.asynccontextmanager
    async def _holding(self, node_id: str, probe_id: str) -> AsyncIterator[None]:
        """Release the probe on the node once its phase passed or failed (not when the
        validator is cancelled: it does not wait on the node then)."""
        try:
            yield
        except _ProbeFailed:
            await self._release(node_id, probe_id)
            raise
        await self._release(node_id, probe_id)

    async def _release(self, node_id: str, probe_id: str) -> None:
        """Best effort: a node that does not answer keeps its own memory busy."""
        try:
            await self._ask(node_id, Release(probe_id=probe_id), Released, RELEASE_TIMEOUT_S)
        except _ProbeFailed:
            return


class _ProbeFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Run:
    """One attest call: its inputs, the RTT margin and what was measured so far."""

    def __init__(self, *, node_id: str, nonce: str, challenge_seed: bytes) -> None:
        self.node_id = node_id
        self.nonce = nonce
        self.challenge_seed = challenge_seed
        self.rtt_ns = 0
        self.compute_ns: list[int] = []
        self.fill_ns: list[int] = []
        self.read_ns: list[int] = []

    def outcome(self, reason: str, device_index: int | None) -> ProbeOutcome:
        return ProbeOutcome(
            passed=reason == REASON_OK,
            reason=reason,
            rtt_ns=self.rtt_ns,
            compute_ns=tuple(self.compute_ns),
            read_ns=tuple(self.read_ns),
            fill_ns=tuple(self.fill_ns),
            device_index=device_index,
        )


class _Tree:
    """A committed tree: its seed (operands), key (leaves), leaf count, the product rows of
    its leaves (None: leaf i is row i) and the spec it was sized from."""

    def __init__(
        self, seed: bytes, key: bytes, n_leaves: int, rows: list[int] | None, spec: ProbeSpec
    ) -> None:
        self.seed = seed
        self.key = key
        self.n_leaves = n_leaves
        self.rows = rows
        self.spec = spec
        memory = rows is not None
        self.m = spec.memory_m if memory else spec.m
        self.k = spec.memory_k if memory else spec.k


def _check_batch(
    tree: _Tree, root: bytes, randomness: bytes, openings: Sequence[RowOpening]
) -> str:
    for opening in openings:
        row = opening.index if tree.rows is None else tree.rows[opening.index]
        columns = choose_columns(randomness, row, tree.m, min(tree.spec.entries_per_row, tree.m))
        reason = check_opening(
            seed=tree.seed,
            key=tree.key,
            root=root,
            n_leaves=tree.n_leaves,
            m=tree.m,
            k=tree.k,
            opening=opening,
            columns=columns,
            rows=tree.rows,
        )
        if reason != REASON_OK:
            return reason
    return REASON_OK


def _probe_id(message: ProbeMessage | ProbeRequest) -> str | None:
    if isinstance(message, Ping | Pong | CcEvidenceRequest | CcEvidence):
        return None
    return message.probe_id
