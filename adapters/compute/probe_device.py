"""The device side of the validators' hardware probes (issue 15): compute the probe's product
C = A·B of ``proofs.probe`` on a device, hold it, commit to its rows, open them.

``TorchProbeDevice`` runs on a ``torch.device``. Operands are derived on the device itself
(``proofs.probe``'s SplitMix64 streams in int64: two's complement wraps like uint64, right
shifts are masked to be logical), k-chunk by k-chunk, so A and B never exist whole. On CUDA
the product is int8 tensor-core work (``torch._int_mm``, int32 accumulation) in chunks of at
most 2^16 inner terms (an int8 product is at most 2^14 in magnitude: a chunk never overflows
int32), the chunks summed in int32, which wraps mod 2^32 as the commitment wants; the
generator's elementwise steps are fused by ``torch.compile`` where it works (unfused, they
cost more memory traffic than the product). The CPU runs the same int8 chunks
(``torch._int_mm`` has a CPU kernel, two to three times faster here than float64 BLAS);
shapes CUDA's kernel refuses (16 rows or fewer, m not a multiple of 8) go through float64
(exact below 2^53). Rows are hashed on the host, in threads (hashlib releases the GIL on
large buffers).

``SimulatedProbeDevice`` is for tests: it computes for real at small sizes with
``proofs.probe`` and advances a shared ``FakeClock`` by what its simulated rates imply, so a
slow device, a device without the memory to hold the product, or two nodes sharing one
device, all run at the speed of the suite.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch

from proofs.probe import (
    ENTRIES_PER_BLOCK,
    ROW_ENTRY_BYTES,
    RowOpening,
    compute_product,
    compute_row_leaf,
    compute_rows_root,
    derive_operand_words,
    open_rows,
)

SECOND_NS = 1_000_000_000
INT_MM_K_CHUNK = 1 << 16
"""Inner terms per ``torch._int_mm`` call: 2^14 · 2^16 = 2^30 < 2^31, no int32 overflow."""
FLOAT64_K_CHUNK = 1 << 20
"""Inner terms per float64 product (each partial sum below 2^34, exact)."""
CUDA_BLOCK_ENTRIES = 1 << 30
"""Operand entries derived at once on CUDA (1 GiB of int8, as much again of int64 state)."""
CPU_BLOCK_ENTRIES = 1 << 22
"""Operand entries converted to float64 at once on the CPU (32 MiB)."""
INT_MM_ROWS_MIN = 17
"""``torch._int_mm`` on CUDA wants more than 16 rows and sizes in multiples of 8 (a smaller
row block goes through float64; the CPU kernel takes any shape)."""
HASH_THREADS_MAX = 32

_U64 = 1 << 64
_GAMMA = 0x9E3779B97F4A7C15
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB


class ProductHandle:
    """A computed product as the device holds it (opaque to callers: pass it back)."""

    __slots__ = ("_committed", "_state", "k", "m", "n", "seed")

    def __init__(self, *, seed: bytes, n: int, m: int, k: int, state: object) -> None:
        self.seed, self.n, self.m, self.k = seed, n, m, k
        self._state = state
        self._committed: tuple[bytes, tuple[int, ...] | None, list[bytes]] | None = None


class ProbeDevice(Protocol):
    """What a node's probe responder asks of one device."""

    def compute(self, seed: bytes, n: int, m: int, k: int) -> ProductHandle: ...

    def commit(
        self, handle: ProductHandle, key: bytes, rows: Sequence[int] | None = None
    ) -> bytes: ...

    def open(
        self,
        handle: ProductHandle,
        key: bytes,
        indices: Sequence[int],
        rows: Sequence[int] | None = None,
    ) -> list[RowOpening]: ...

    def release(self, handle: ProductHandle) -> None: ...


class TorchProbeDevice:
    """Probes computed on ``device`` (CUDA or CPU); the product stays on the device."""

    def __init__(self, device: torch.device, *, fuse: bool | None = None) -> None:
        self.device = device
        self._mixer = _BlockMixer(fuse if fuse is not None else device.type == "cuda")

    @property
    def fuse_error(self) -> str:
        """Why the fused generator could not be used ("" when it was or was not asked for)."""
        return self._mixer.error

    def compute(self, seed: bytes, n: int, m: int, k: int) -> ProductHandle:
        product = self._compute(seed, n, m, k)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return ProductHandle(seed=seed, n=n, m=m, k=k, state=product)

    def commit(self, handle: ProductHandle, key: bytes, rows: Sequence[int] | None = None) -> bytes:
        return compute_rows_root(self._commit_leaves(handle, key, rows))

    def open(
        self,
        handle: ProductHandle,
        key: bytes,
        indices: Sequence[int],
        rows: Sequence[int] | None = None,
    ) -> list[RowOpening]:
        product = _tensor(handle)
        leaves = _leaves_for(handle, key, rows) or self._commit_leaves(handle, key, rows)
        mapping = range(handle.n) if rows is None else rows
        wanted = {i: _row_bytes(product[mapping[i]].cpu().numpy()) for i in indices}
        return open_rows(key, wanted, indices, leaves=leaves)

    def release(self, handle: ProductHandle) -> None:
        handle._state = None
        handle._committed = None

    def derive_lines(
        self, words: tuple[int, int], lines: torch.Tensor, k: int, start: int = 0
    ) -> torch.Tensor:
        """Entries [start, start + k) of rows of A (words w0, w1) or columns of B (w2, w3),
        (len(lines), k) int8 on the device: ``proofs.probe``'s derivation, bit for bit."""
        w_a, w_b = (_signed(w) for w in words)
        index = lines.to(device=self.device, dtype=torch.int64)
        states = _mix64(_mix64(index * _signed(_GAMMA) + w_a) ^ w_b)
        first = start // ENTRIES_PER_BLOCK + 1
        steps = torch.arange(
            first, first + k // ENTRIES_PER_BLOCK, dtype=torch.int64, device=self.device
        )
        blocks = self._mixer(states[:, None], (steps * _signed(_GAMMA))[None, :])
        return blocks.view(torch.int8).reshape(len(index), k)

    def _commit_leaves(
        self, handle: ProductHandle, key: bytes, rows: Sequence[int] | None
    ) -> list[bytes]:
        product = _tensor(handle)
        if rows is not None:
            product = product[torch.tensor(list(rows), dtype=torch.int64, device=self.device)]
        leaves = compute_row_leaves_threaded(key, product.cpu().numpy())
        _remember(handle, key, rows, leaves)
        return leaves

    def _compute(self, seed: bytes, n: int, m: int, k: int) -> torch.Tensor:
        """C mod 2^32 as an (n, m) int32 tensor (the uint32 bits) on the device."""
        w0, w1, w2, w3 = derive_operand_words(seed)
        on_cuda = self.device.type == "cuda"
        use_int_mm = not on_cuda or m % ENTRIES_PER_BLOCK == 0
        k_chunk = INT_MM_K_CHUNK if use_int_mm else FLOAT64_K_CHUNK
        budget = CUDA_BLOCK_ENTRIES if on_cuda else CPU_BLOCK_ENTRIES
        # B's chunk (m × k_chunk) and A's row block (rows × k_chunk) each fit the budget.
        k_chunk = min(k_chunk, k, max(ENTRIES_PER_BLOCK, _floor8(budget // m)))
        rows_per_block = max(1, budget // k_chunk)
        total = torch.zeros((n, m), dtype=torch.int32, device=self.device)
        columns = torch.arange(m, device=self.device)
        for start in range(0, k, k_chunk):
            size = min(k_chunk, k - start)
            b_t = self.derive_lines((w2, w3), columns, size, start)  # (m, size): B's columns
            for first in range(0, n, rows_per_block):
                last = min(n, first + rows_per_block)
                rows = torch.arange(first, last, device=self.device)
                a = self.derive_lines((w0, w1), rows, size, start)
                # int32 sums wrap mod 2^32: the committed value (module doc)
                if use_int_mm and (not on_cuda or last - first >= INT_MM_ROWS_MIN):
                    total[first:last] += torch._int_mm(a, b_t.t())
                else:
                    exact = (a.double() @ b_t.double().t()).to(torch.int64)
                    total[first:last] += _wrap_int32(exact)
        return total


class FakeClock:
    """A nanosecond clock that moves only when told (shared by a prober and the simulated
    devices it probes; thread-safe, as device work runs in threads)."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            return self._now_ns

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now_ns += ns


class SimulatedProbeDevice:
    """A device of the given rates for tests: real results at small sizes, simulated time.

    Each call charges the clock what the rates imply: 2·n·m·k ops for a product, reading and
    hashing 4·m bytes per committed row. A product larger than ``memory_bytes`` is not held:
    every commit and open regenerates the rows it needs (charged again). A product of more
    than ``compute_ops_max`` ops is not computed at all (its answer is late anyway): it
    commits to rows of zeros. One lock: the device serves one call at a time, so two nodes
    sharing it wait on each other.
    """

    def __init__(
        self,
        *,
        clock: FakeClock,
        ops_per_s: float,
        memory_bytes: int,
        memory_bytes_per_s: float,
        hash_bytes_per_s: float,
        compute_ops_max: int = 2**31,
    ) -> None:
        self._clock = clock
        self._ops_per_s = ops_per_s
        self._memory_bytes = memory_bytes
        self._memory_bytes_per_s = memory_bytes_per_s
        self._hash_bytes_per_s = hash_bytes_per_s
        self._compute_ops_max = compute_ops_max
        self._lock = threading.Lock()

    def compute(self, seed: bytes, n: int, m: int, k: int) -> ProductHandle:
        with self._lock:
            ops = 2 * n * m * k
            self._charge(ops, self._ops_per_s)
            real = compute_product(seed, n, m, k) if ops <= self._compute_ops_max else None
            held = ROW_ENTRY_BYTES * n * m <= self._memory_bytes
            return ProductHandle(seed=seed, n=n, m=m, k=k, state=_Simulated(real, held))

    def commit(self, handle: ProductHandle, key: bytes, rows: Sequence[int] | None = None) -> bytes:
        with self._lock:
            return compute_rows_root(self._commit_leaves(handle, key, rows))

    def open(
        self,
        handle: ProductHandle,
        key: bytes,
        indices: Sequence[int],
        rows: Sequence[int] | None = None,
    ) -> list[RowOpening]:
        with self._lock:
            leaves = _leaves_for(handle, key, rows) or self._commit_leaves(handle, key, rows)
            state = _simulated(handle)
            mapping = range(handle.n) if rows is None else rows
            self._charge_rows(handle, state, len(indices), hashed=False)
            host = _simulated_rows(handle, state, [mapping[i] for i in indices])
            wanted = {i: _row_bytes(row) for i, row in zip(indices, host, strict=True)}
            return open_rows(key, wanted, indices, leaves=leaves)

    def release(self, handle: ProductHandle) -> None:
        with self._lock:
            handle._state = None
            handle._committed = None

    def _commit_leaves(
        self, handle: ProductHandle, key: bytes, rows: Sequence[int] | None
    ) -> list[bytes]:
        state = _simulated(handle)
        chosen = list(range(handle.n)) if rows is None else list(rows)
        self._charge_rows(handle, state, len(chosen), hashed=True)
        leaves = compute_row_leaves_threaded(key, _simulated_rows(handle, state, chosen))
        _remember(handle, key, rows, leaves)
        return leaves

    def _charge_rows(
        self, handle: ProductHandle, state: _Simulated, count: int, *, hashed: bool
    ) -> None:
        row_bytes = ROW_ENTRY_BYTES * handle.m * count
        self._charge(row_bytes, self._memory_bytes_per_s)
        if hashed:
            self._charge(row_bytes, self._hash_bytes_per_s)
        if not state.held:  # not kept: regenerate the rows asked for
            self._charge(2 * count * handle.m * handle.k, self._ops_per_s)

    def _charge(self, amount: int, per_s: float) -> None:
        """Advance the clock by the time ``amount`` takes at ``per_s``, rounded up to a
        nanosecond (exact rationals, so that a test can add up the charges)."""
        self._clock.advance(math.ceil(Fraction(amount * SECOND_NS) / Fraction(per_s)))


def compute_row_leaves_threaded(key: bytes, rows: npt.NDArray[np.generic]) -> list[bytes]:
    """``proofs.probe`` leaf hashes of the rows of a host array (uint32 or int32 bits, tree
    order), hashed in threads: an honest node must hash at ``probe_hash_bytes_per_s``."""
    table = np.ascontiguousarray(rows).view("<u4")
    count = len(table)
    workers = max(1, min(HASH_THREADS_MAX, os.cpu_count() or 1, count // 64 or 1))
    bounds = [count * w // workers for w in range(workers + 1)]

    def hash_slice(first: int, last: int) -> list[bytes]:
        return [compute_row_leaf(key, i, memoryview(table[i])) for i in range(first, last)]

    if workers == 1:
        return hash_slice(0, count)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(hash_slice, bounds[:-1], bounds[1:])
        return [leaf for part in parts for leaf in part]


class _Simulated:
    __slots__ = ("held", "real")

    def __init__(self, real: npt.NDArray[np.uint32] | None, held: bool) -> None:
        self.real, self.held = real, held


class _BlockMixer:
    """mix64(states + steps) on blocks, fused by torch.compile when asked and available."""

    def __init__(self, fuse: bool) -> None:
        self._fused = torch.compile(_mix_block, dynamic=False) if fuse else None
        self.error = ""

    def __call__(self, states: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        if self._fused is not None:
            try:
                return self._fused(states, steps)
            except RuntimeError as exc:  # no Triton, no compiler: the unfused steps remain
                self._fused, self.error = None, f"{type(exc).__name__}: {exc}"[:512]
        return _mix_block(states, steps)


def _mix_block(states: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    return _mix64(states + steps)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function in int64 (logical shifts by masking)."""
    z = z ^ ((z >> 30) & ((1 << 34) - 1))
    z = z * _signed(_MIX_1)
    z = z ^ ((z >> 27) & ((1 << 37) - 1))
    z = z * _signed(_MIX_2)
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def _signed(value: int) -> int:
    """A uint64 as the int64 with the same bits."""
    return value - _U64 if value >= 1 << 63 else value


def _wrap_int32(exact: torch.Tensor) -> torch.Tensor:
    """int64 values as the int32 with the same low 32 bits."""
    low = exact & 0xFFFFFFFF
    return torch.where(low >= 1 << 31, low - (1 << 32), low).to(torch.int32)


def _floor8(value: int) -> int:
    return value - value % ENTRIES_PER_BLOCK


def _row_bytes(row: npt.NDArray[np.generic]) -> bytes:
    return np.ascontiguousarray(row).view("<u4").tobytes()


def _tensor(handle: ProductHandle) -> torch.Tensor:
    state = handle._state
    if not isinstance(state, torch.Tensor):
        raise ValueError("this product was released, or is another device's")
    return state


def _simulated(handle: ProductHandle) -> _Simulated:
    state = handle._state
    if not isinstance(state, _Simulated):
        raise ValueError("this product was released, or is another device's")
    return state


def _simulated_rows(
    handle: ProductHandle, state: _Simulated, rows: Sequence[int]
) -> npt.NDArray[np.uint32]:
    if state.real is None:
        return np.zeros((len(rows), handle.m), dtype=np.uint32)
    return state.real[list(rows)]


def _remember(
    handle: ProductHandle, key: bytes, rows: Sequence[int] | None, leaves: list[bytes]
) -> None:
    """Keep the last commitment's leaves (its openings need every one of them)."""
    handle._committed = (key, None if rows is None else tuple(rows), leaves)


def _leaves_for(
    handle: ProductHandle, key: bytes, rows: Sequence[int] | None
) -> list[bytes] | None:
    committed = handle._committed
    wanted_rows = None if rows is None else tuple(rows)
    if committed is None or committed[0] != key or committed[1] != wanted_rows:
        return None
    return committed[2]
