"""The probe devices (adapters.compute.probe_device) against proofs.probe: the torch
derivation and product equal numpy's bit for bit on the CPU (tests/gpu covers CUDA), the
commitments open and check, and the simulated device charges its clock what its rates say."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest

from proofs import probe

torch = pytest.importorskip("torch")

from adapters.compute.probe_device import (  # noqa: E402 (torch first, or skip)
    FakeClock,
    SimulatedProbeDevice,
    TorchProbeDevice,
    compute_row_leaves_threaded,
)

SEED = hashlib.sha256(b"device seed").digest()
KEY = hashlib.sha256(b"device read key").digest()
CPU = TorchProbeDevice(torch.device("cpu"))


@pytest.mark.parametrize("start", [0, 8, 4096])
def test_torch_operands_equal_numpy(start: int) -> None:
    words = probe.derive_operand_words(SEED)
    rows = [0, 3, 17, 1_000_000]
    a = CPU.derive_lines(words[:2], torch.tensor(rows), 64, start).numpy()
    b = CPU.derive_lines(words[2:], torch.tensor(rows), 64, start).numpy()
    expected_a = probe.derive_a_rows(SEED, rows, start + 64)[:, start:]
    expected_b = probe.derive_b_cols(SEED, rows, start + 64)[start:].T
    assert np.array_equal(a, expected_a) and np.array_equal(b, expected_b)


@pytest.mark.parametrize(
    ("n", "m", "k"),
    [(20, 24, 64), (5, 3, 128), (3, 5, (1 << 16) + 8), (2, 2, (1 << 17) + 64)],
)
def test_torch_product_equals_numpy(n: int, m: int, k: int) -> None:
    handle = CPU.compute(SEED, n, m, k)
    reference = probe.compute_product(SEED, n, m, k)
    rows = [probe.encode_row(row) for row in reference]
    expected = probe.compute_rows_root(probe.compute_row_leaves(SEED, rows))
    assert CPU.commit(handle, SEED) == expected
    assert int(reference.max()) >= 2**31  # negative sums wrapped mod 2^32 are committed


def test_torch_device_opens_what_it_committed() -> None:
    n, m, k = 40, 16, 128
    handle = CPU.compute(SEED, n, m, k)
    root = CPU.commit(handle, SEED)
    openings = CPU.open(handle, SEED, [0, 7, 39])
    columns = list(range(m))
    assert [o.index for o in openings] == [0, 7, 39]
    assert all(
        probe.check_opening(
            seed=SEED, key=SEED, root=root, n_leaves=n, m=m, k=k, opening=o, columns=columns
        )
        == probe.OK
        for o in openings
    )
    chosen = probe.choose_rows(KEY, n, 9)
    read_root = CPU.commit(handle, KEY, chosen)
    read = CPU.open(handle, KEY, [0, 8], chosen)
    assert all(
        probe.check_opening(
            seed=SEED,
            key=KEY,
            root=read_root,
            n_leaves=9,
            m=m,
            k=k,
            opening=o,
            columns=columns,
            rows=chosen,
        )
        == probe.OK
        for o in read
    )
    assert CPU.open(handle, SEED, [7]) == openings[1:2]  # recommitted for the old key
    CPU.release(handle)
    with pytest.raises(ValueError):
        CPU.commit(handle, SEED)


def test_threaded_leaves_equal_sequential() -> None:
    rows = probe.compute_product(SEED, 300, 8, 64)
    sequential = probe.compute_row_leaves(KEY, [probe.encode_row(r) for r in rows])
    assert compute_row_leaves_threaded(KEY, rows) == sequential
    assert compute_row_leaves_threaded(KEY, rows.view(np.int32)) == sequential


def _simulated(clock: FakeClock, **overrides: float) -> SimulatedProbeDevice:
    rates: dict[str, float] = {
        "ops_per_s": 1e9, "memory_bytes": 10**6, "memory_bytes_per_s": 1e8,
        "hash_bytes_per_s": 1e7,
    }  # fmt: skip
    rates.update(overrides)
    return SimulatedProbeDevice(
        clock=clock,
        ops_per_s=rates["ops_per_s"],
        memory_bytes=int(rates["memory_bytes"]),
        memory_bytes_per_s=rates["memory_bytes_per_s"],
        hash_bytes_per_s=rates["hash_bytes_per_s"],
    )


def test_simulated_device_computes_for_real_and_charges_its_rates() -> None:
    clock = FakeClock(1_000)
    device = _simulated(clock)
    handle = device.compute(SEED, 50, 20, 1000)
    assert clock.now_ns() == 1_000 + 2_000_000  # 2·50·20·1000 ops at 1e9 ops/s
    root = device.commit(handle, SEED)
    # 4000 bytes read at 1e8 B/s (40 µs) and hashed at 1e7 B/s (400 µs)
    assert clock.now_ns() == 1_000 + 2_000_000 + 40_000 + 400_000
    reference = probe.compute_product(SEED, 50, 20, 1000)
    leaves = probe.compute_row_leaves(SEED, [probe.encode_row(r) for r in reference])
    assert root == probe.compute_rows_root(leaves)
    (opening,) = device.open(handle, SEED, [3])
    assert opening.row == probe.encode_row(reference[3])


def test_a_product_larger_than_memory_is_regenerated_and_charged_again() -> None:
    clock = FakeClock()
    device = _simulated(clock, memory_bytes=3_999)  # 50·20·4 = 4,000 bytes do not fit
    handle = device.compute(SEED, 50, 20, 1000)
    device.commit(handle, KEY, [1, 2])
    # compute 2 ms; two rows regenerated (2·2·20·1000 ops = 80 µs), read 1.6 µs, hashed 16 µs
    assert clock.now_ns() == 2_000_000 + 80_000 + 1_600 + 16_000


def test_a_product_past_the_compute_bound_commits_to_zeros() -> None:
    clock = FakeClock()
    device = SimulatedProbeDevice(
        clock=clock, ops_per_s=1e9, memory_bytes=10**6, memory_bytes_per_s=1e8,
        hash_bytes_per_s=1e7, compute_ops_max=1_999_999,
    )  # fmt: skip
    handle = device.compute(SEED, 50, 20, 1000)
    zeros = [probe.encode_row(np.zeros(20, dtype=np.uint32))] * 50
    assert device.commit(handle, SEED) == probe.compute_rows_root(
        probe.compute_row_leaves(SEED, zeros)
    )
    assert clock.now_ns() >= 2_000_000


def test_two_nodes_sharing_a_device_take_the_time_of_both() -> None:
    clock = FakeClock()
    device = _simulated(clock)
    threads = [
        threading.Thread(target=device.compute, args=(SEED + bytes([i]), 50, 20, 1000))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.now_ns() == 2 * 2_000_000


def test_fake_clock_does_not_go_back() -> None:
    with pytest.raises(ValueError):
        FakeClock().advance(-1)
