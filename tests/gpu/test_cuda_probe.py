"""The probe device on CUDA equals proofs.probe (numpy) bit for bit: operands fused and
unfused, products through int8 tensor cores across k-chunks and row blocks, the float64 path
of small shapes, commitments (skipped without CUDA, the reason printed)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from adapters.compute import probe_device
from adapters.compute.probe_device import TorchProbeDevice
from adapters.compute.runtime import is_cuda_available
from proofs import probe

REASON = (
    "no CUDA device: torch "
    f"{torch.__version__} sees {torch.cuda.device_count() if is_cuda_available() else 0} GPUs"
)
pytestmark = pytest.mark.skipif(not is_cuda_available(), reason=REASON)
SEED = hashlib.sha256(b"cuda probe").digest()


@pytest.mark.parametrize("fuse", [False, True])
def test_cuda_operands_equal_numpy(fuse: bool) -> None:
    device = TorchProbeDevice(torch.device("cuda", 0), fuse=fuse)
    words = probe.derive_operand_words(SEED)
    rows = torch.tensor([0, 5, 4095, 1_000_000])
    a = device.derive_lines(words[:2], rows, 4096, 64).cpu().numpy()
    b = device.derive_lines(words[2:], rows, 4096, 64).cpu().numpy()
    assert np.array_equal(a, probe.derive_a_rows(SEED, rows.numpy(), 4096 + 64)[:, 64:])
    assert np.array_equal(b, probe.derive_b_cols(SEED, rows.numpy(), 4096 + 64)[64:].T)
    print(f"fuse={fuse} fuse_error={device.fuse_error!r}")


@pytest.mark.parametrize(
    ("n", "m", "k"),
    [(64, 64, (1 << 16) + 64), (100, 32, 256), (5, 3, 128), (40, 12, 64)],
)
def test_cuda_product_equals_numpy(n: int, m: int, k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # a small budget: several row blocks, the last of fewer than 17 rows (the float64 path)
    monkeypatch.setattr(probe_device, "CUDA_BLOCK_ENTRIES", 32 * 256)
    device = TorchProbeDevice(torch.device("cuda", 0))
    handle = device.compute(SEED, n, m, k)
    reference = probe.compute_product(SEED, n, m, k)
    leaves = probe.compute_row_leaves(SEED, [probe.encode_row(row) for row in reference])
    assert device.commit(handle, SEED) == probe.compute_rows_root(leaves)


def test_cuda_commitment_equals_cpu_at_a_devnet_size() -> None:
    cuda = TorchProbeDevice(torch.device("cuda", 0))
    cpu = TorchProbeDevice(torch.device("cpu"))
    n, m, k = 1024, 1024, (1 << 17) + 512
    key = hashlib.sha256(b"key").digest()
    rows = probe.choose_rows(key, n, 100)
    on_cuda, on_cpu = cuda.compute(SEED, n, m, k), cpu.compute(SEED, n, m, k)
    assert cuda.commit(on_cuda, SEED) == cpu.commit(on_cpu, SEED)
    assert cuda.commit(on_cuda, key, rows) == cpu.commit(on_cpu, key, rows)
    assert cuda.open(on_cuda, key, [0, 99], rows) == cpu.open(on_cpu, key, [0, 99], rows)
