"""Benchmark of the hardware probe (issue 15): does an honest device meet its deadline, and
what does a validator's check cost?

Device side: the compute probe of the device's model under the default policy (on a GPU, the
model NVML's name identifies; on the CPU, the ``cpu`` model at the devnet's side n = m =
1024), timed from the seed to the root (``TorchProbeDevice.compute`` + ``commit``),
as a validator times it minus the RTT. Validator side: ``proofs.probe.compute_entry`` at
k = 2^22 and the check of one probe's openings (``openings`` rows of ``entries_per_row``
entries each, at the spec's k). Last line: ``RESULT probe_s=<s> deadline_s=<s>
margin=<deadline/probe> entry_k22_ms=<ms> check_s=<s> device=<cpu|cuda> model=<key>``.
Run: ``.venv/bin/python bench/probe.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from adapters.compute.probe_device import TorchProbeDevice
from adapters.compute.runtime import select_device
from domain.devices import CPU_MODEL_KEY, ProbeSpec, compute_probe_spec, load_device_table
from domain.policy import LedgerPolicy
from proofs import probe

REPEATS = 3
SEED = b"bench/probe".ljust(32, b"\x00")
DEVNET_SIDE = 1024


def main() -> int:
    device = select_device()
    spec, model = _spec(device)
    probe_device = TorchProbeDevice(device)
    runs: list[float] = []
    for _ in range(1 + REPEATS):  # the first run compiles and warms up
        started = time.perf_counter()
        handle = probe_device.compute(SEED, spec.n, spec.m, spec.k)
        root = probe_device.commit(handle, SEED)
        runs.append(time.perf_counter() - started)
    probe_s = statistics.median(runs[1:])
    rows = probe.choose_rows(b"openings", spec.n, spec.openings)
    openings = probe_device.open(handle, SEED, rows)
    probe_device.release(handle)
    started = time.perf_counter()
    reasons = {
        probe.check_opening(
            seed=SEED, key=SEED, root=root, n_leaves=spec.n, m=spec.m, k=spec.k, opening=o,
            columns=probe.choose_columns(b"columns", o.index, spec.m, spec.entries_per_row),
        )
        for o in openings
    }  # fmt: skip
    check_s = time.perf_counter() - started
    assert reasons == {probe.OK}, f"an honest device's openings must check: {reasons}"
    entry_ms = _entry_ms()
    deadline_s = spec.compute_deadline_ns / 1e9
    print(f"model {model} n={spec.n} m={spec.m} k={spec.k} runs {[round(r, 3) for r in runs]}")
    if probe_device.fuse_error:
        print(f"note: unfused generator ({probe_device.fuse_error})")
    print(
        f"RESULT probe_s={probe_s:.4f} deadline_s={deadline_s:.4f} "
        f"margin={deadline_s / probe_s:.2f} entry_k22_ms={entry_ms:.1f} check_s={check_s:.3f} "
        f"device={device.type} model={model}"
    )
    return 0


def _spec(device: torch.device) -> tuple[ProbeSpec, str]:
    table = load_device_table()
    if device.type == "cpu":
        devnet = LedgerPolicy(probe_side=DEVNET_SIDE)
        return compute_probe_spec(table.get(CPU_MODEL_KEY), device_index=0, policy=devnet), "cpu"
    model = table.find_by_name(torch.cuda.get_device_name(device))
    if model is None:
        raise SystemExit(f"{torch.cuda.get_device_name(device)!r} is not in the device table")
    return compute_probe_spec(model, device_index=0, policy=LedgerPolicy()), model.key


def _entry_ms() -> float:
    times = []
    for column in range(5):
        started = time.perf_counter()
        probe.compute_entry(SEED, 7, column, 1 << 22)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


if __name__ == "__main__":
    sys.exit(main())
