"""Benchmark of the node agent's matmul job end to end against a bare ``torch.matmul``.

Agent path (what a job costs the node): derive A and B from the seed, C = A·B on the device,
copy C to the host, hash every row, Merkle root, Fiat–Shamir row selection, audit paths
(``adapters.compute.torch_matmul.run_matmul``). Baseline: ``torch.matmul`` of the same
inputs on the same device, already resident, synchronized. Medians of ``REPEATS`` runs in
the same process, interleaved, so a busy machine hits both sides alike.

Size: n=2048 on the CPU; on a GPU 8192 is asked for, capped at ``proofs.matmul``'s
``MATRIX_SIZE_MAX`` (4096; the exactness bound itself allows far more). Last line:
``RESULT agent_overhead=<ratio> device=<cpu|cuda>`` where ratio = agent / bare - 1.
Run: ``.venv/bin/python bench/agent.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from rich.console import Console
from rich.table import Table

from adapters.compute.runtime import enable_determinism, select_device, synchronize
from adapters.compute.torch_matmul import derive_inputs_torch, run_matmul
from proofs.matmul import MATRIX_SIZE_MAX, verify_proof

CPU_SIZE = 2048
GPU_SIZE_WANTED = 8192
REPEATS = 5
WARMUP = 1
SEED = b"bench/agent"


def main() -> int:
    enable_determinism()
    device = select_device()
    n = CPU_SIZE if device.type == "cpu" else min(GPU_SIZE_WANTED, MATRIX_SIZE_MAX)
    a, b = derive_inputs_torch(SEED, n, device)
    bare_s: list[float] = []
    agent_s: list[float] = []
    parts: dict[str, list[float]] = {"matmul": [], "rest": []}
    for index in range(WARMUP + REPEATS):
        synchronize(device)
        started = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        bare = time.perf_counter() - started
        started = time.perf_counter()
        run = run_matmul(SEED, n, device)
        agent = time.perf_counter() - started
        if index >= WARMUP:
            bare_s.append(bare)
            agent_s.append(agent)
            parts["matmul"].append(run.matmul_ns / 1e9)
            parts["rest"].append(agent - run.matmul_ns / 1e9)
    assert verify_proof(run.proof), "the agent's proof must verify"
    bare_median, agent_median = statistics.median(bare_s), statistics.median(agent_s)
    table = Table(title=f"matmul job n={n} on {device} (median of {REPEATS})")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    table.add_row("bare torch.matmul", f"{bare_median:.4f}")
    table.add_row("agent job end to end", f"{agent_median:.4f}")
    table.add_row("  of which the product", f"{statistics.median(parts['matmul']):.4f}")
    table.add_row("  of which derive+copy+commit+open", f"{statistics.median(parts['rest']):.4f}")
    Console().print(table)
    if device.type != "cpu" and n < GPU_SIZE_WANTED:
        print(f"note: n capped at {n} (proofs.matmul.MATRIX_SIZE_MAX), not {GPU_SIZE_WANTED}")
    overhead = agent_median / bare_median - 1.0
    print(f"RESULT agent_overhead={overhead:.3f} device={device.type} n={n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
