"""Validator cost per workload kind: verifications/s and the verification-to-execution ratio.

For each kind, the executor (``adapters.compute.results.execute_workload``, CPU torch) runs
the same jobs the validator then checks with ``verify_result``; both are timed in this run.
Last line: ``RESULT verify_to_exec_matmul=<ratio> verify_to_exec_inference=<ratio>
groth16_verify_s=<n>`` (ratio < 1 means checking is cheaper than computing).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

# Run as ``python bench/validator.py``: the repository root must win over bench/proofs.py.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import torch  # noqa: E402

from adapters.compute.results import ResultBundle, execute_workload, verify_result  # noqa: E402
from proofs.identity import Identity  # noqa: E402

JOBS = int(os.environ.get("FLOP_BENCH_VALIDATOR_JOBS", "3"))
MATMUL_N = int(os.environ.get("FLOP_BENCH_MATMUL_N", "1024"))
WORKLOADS: dict[str, dict[str, Any]] = {
    "matmul": {"n": MATMUL_N},
    "inference": {"batch": 256, "width": 512, "depth": 4},
    "zk-prove": {"circuit": "poseidon_preimage", "inputs": '{"a": 1, "b": 2}', "setup_seed": 3},
}
NODE = Identity.from_seed(b"bench-node".ljust(32, b"\0"))
OPENINGS_SEED = bytes(range(32))  # a stand-in for a round's beacon randomness


def _verify(job_id: str, kind: str, params: dict[str, Any], bundle: ResultBundle) -> str:
    return verify_result(
        job_id=job_id,
        node_id=NODE.id,
        kind=kind,
        raw_params=params,
        commitment=bundle.commitment,
        artifact_digest=bundle.artifact_digest,
        proof_digest=bundle.proof_digest,
        artifact=bundle.artifact,
        proof=bundle.proof,
        openings_seed=OPENINGS_SEED,
        insecure_setups_allowed=True,  # the zk-prove workload uses setup_seed test keys
    )


def measure(kind: str) -> tuple[float, float]:
    """(execution seconds, verification seconds), means over ``JOBS`` jobs."""
    params = WORKLOADS[kind]
    exec_s = verify_s = 0.0
    for index in range(JOBS):
        job_id = f"job-bench-{kind}-{index}"
        started = time.perf_counter()
        bundle = execute_workload(job_id, kind, params, NODE, torch.device("cpu"))
        exec_s += time.perf_counter() - started
        started = time.perf_counter()
        code = _verify(job_id, kind, params, bundle)
        verify_s += time.perf_counter() - started
        assert code == "ok", f"{kind}: {code}"
    return exec_s / JOBS, verify_s / JOBS


def main() -> None:
    results = {}
    for kind in WORKLOADS:
        exec_s, verify_s = measure(kind)
        results[kind] = (exec_s, verify_s)
        print(
            f"{kind:10s} execute {exec_s * 1e3:9.1f} ms  verify {verify_s * 1e3:9.1f} ms  "
            f"{1 / verify_s:8.1f} verifications/s  ratio {verify_s / exec_s:.3f}"
        )
    ratio = {k: v / e for k, (e, v) in results.items()}
    print(
        f"RESULT verify_to_exec_matmul={ratio['matmul']:.4f} "
        f"verify_to_exec_inference={ratio['inference']:.4f} "
        f"groth16_verify_s={results['zk-prove'][1]:.4f}"
    )


if __name__ == "__main__":
    main()
