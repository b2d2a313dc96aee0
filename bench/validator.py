"""Validator cost per workload kind: the verification-to-execution ratio.

Data matmul (issue 17), at ``FLOP_BENCH_DATA_N`` (2048) for each dtype, on in-memory arrays in
the steady state (one warm-up job first, excluded; per job the best of ``REPEATS`` runs of
each side, so that other processes on a shared machine do not decide the ratio; the median
over jobs): execution is the node's product on torch
(``adapters.compute.matmul_data.compute_product``, CPU here), verification the validator's
Freivalds arithmetic (``proofs.matmul_data``: deriving the vectors and the check), numpy
only, in an interpreter of its own that shares nothing with the executor. Reported apart:
``verify_io_s``, what the validator spends on the bytes (SHA-256 of the A, B and C files
against their digests, strict parsing, the roots over A's rows, B's columns and C's rows),
and ``verify_cold_s``, one whole verification (imports, I/O and arithmetic) in a fresh
interpreter.

Seeded kinds (``execute_workload`` then ``verify_result``, whole calls, measured as before so
the figures compare; the inference model and zk keys derived from seeds are cached per
process, as a validator's own caches are warm in its steady state): matmul at
``FLOP_BENCH_MATMUL_N``, inference, zk-prove.

Last line: ``RESULT verify_to_exec_matmul=<float32 ratio> verify_io_s=<s> verify_cold_s=<s>
verify_to_exec_matmul_<dtype>=<ratio>... verify_to_exec_matmul_seeded=<ratio>
verify_to_exec_inference=<ratio> groth16_verify_s=<s>``; target for the first ratio <= 0.05.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as ``python bench/validator.py``: the repository root must win over bench/proofs.py.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from adapters.compute.matmul_data import compute_product, run_matmul_data  # noqa: E402
from adapters.compute.results import ResultBundle, execute_workload, verify_result  # noqa: E402
from proofs.identity import Identity  # noqa: E402
from proofs.npy import read_npy  # noqa: E402

JOBS = int(os.environ.get("FLOP_BENCH_VALIDATOR_JOBS", "3"))
REPEATS = int(os.environ.get("FLOP_BENCH_VALIDATOR_REPEATS", "5"))
DATA_N = int(os.environ.get("FLOP_BENCH_DATA_N", "2048"))
MATMUL_N = int(os.environ.get("FLOP_BENCH_MATMUL_N", "1024"))
DTYPES = ("float32", "float16", "bfloat16", "int8")
WORKLOADS: dict[str, dict[str, Any]] = {
    "matmul": {"n": MATMUL_N},
    "inference": {"batch": 256, "width": 512, "depth": 4},
    "zk-prove": {"circuit": "poseidon_preimage", "inputs": '{"a": 1, "b": 2}', "setup_seed": 3},
}
NODE = Identity.from_seed(b"bench-node".ljust(32, b"\0"))
OPENINGS_SEED = bytes(range(32))  # a stand-in for a round's beacon randomness
CPU = torch.device("cpu")
OPENMP_SETTLE_S = 1.0
VERIFY_SCRIPT = """
import hashlib, json, sys, time
sys.path.insert(0, {root!r})
from proofs.matmul_data import check_product, derive_vectors, result_dtype
from proofs.matrix_rows import compute_columns_root, compute_rows_root
from proofs.npy import read_npy
spec = json.loads(sys.argv[1])
n, dtype, seed = spec["n"], spec["dtype"], bytes.fromhex(spec["seed"])
for job in spec["jobs"]:
    files = [open(path, "rb").read() for path in job["paths"]]  # fetched: not timed
    started = time.perf_counter()
    for data in files:
        hashlib.sha256(data).digest()
    a = read_npy(files[0], dtype, (n, n))
    b = read_npy(files[1], dtype, (n, n))
    c = read_npy(files[2], result_dtype(dtype), (n, n))
    compute_rows_root(a, dtype), compute_columns_root(b, dtype)
    root = compute_rows_root(c, result_dtype(dtype))
    io_s = time.perf_counter() - started
    check_s, passed = float("inf"), root.hex() == job["commitment"]
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        passed = check_product(a, b, c, dtype, derive_vectors(seed, root, n, dtype)) and passed
        check_s = min(check_s, time.perf_counter() - started)
    print(json.dumps({{"io_s": io_s, "check_s": check_s, "passed": passed}}))
"""
COLD_SCRIPT = """
import hashlib, sys
sys.path.insert(0, {root!r})
from proofs.matmul_data import check_product, derive_vectors, result_dtype
from proofs.matrix_rows import compute_rows_root
from proofs.npy import read_npy
files = [open(p, "rb").read() for p in {paths!r}]
for data in files:
    hashlib.sha256(data).digest()
n, dtype = {n}, {dtype!r}
a = read_npy(files[0], dtype, (n, n))
b = read_npy(files[1], dtype, (n, n))
c = read_npy(files[2], result_dtype(dtype), (n, n))
root = compute_rows_root(c, result_dtype(dtype))
assert check_product(a, b, c, dtype, derive_vectors({seed!r}, root, n, dtype))
"""


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def _inputs(dtype: str, n: int, seed: int) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    if dtype == "int8":
        return tuple(_npy(rng.integers(-128, 128, (n, n), dtype=np.int8)) for _ in range(2))  # type: ignore[return-value]
    numpy_dtype = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
    return tuple(  # type: ignore[return-value]
        _npy(rng.standard_normal((n, n), dtype=np.float32).astype(numpy_dtype[dtype]))
        for _ in range(2)
    )


def measure_data(dtype: str, n: int) -> tuple[float, float, float, list[bytes]]:
    """(execution s, Freivalds arithmetic s, I/O s), medians over ``JOBS`` jobs after a
    warm-up job, and the last job's A, B, C files. The verifier runs in its own interpreter
    (numpy only: no torch threads spinning beside it, no cache shared with the executor)."""
    exec_s: list[float] = []
    files: list[bytes] = []
    with tempfile.TemporaryDirectory() as folder:
        jobs = []
        for index in range(JOBS + 1):
            a_npy, b_npy = _inputs(dtype, n, index)
            dims = {"dtype": dtype, "m": n, "k": n, "n": n}
            run = run_matmul_data(a_npy, b_npy, device=CPU, **dims)  # type: ignore[arg-type]
            a_exec, b_exec = read_npy(a_npy, dtype, (n, n)), read_npy(b_npy, dtype, (n, n))
            product_ns = min(  # in memory, the best of a few: other processes' noise left out
                compute_product(a_exec, b_exec, dtype, CPU)[1] for _ in range(REPEATS)
            )
            if index:  # the first job warms up torch, BLAS and the page cache
                exec_s.append(product_ns / 1e9)
            files = [a_npy, b_npy, run.result]
            paths = []
            for name, data in zip("abc", files, strict=True):
                path = Path(folder) / f"{index}-{name}.npy"
                path.write_bytes(data)
                paths.append(str(path))
            jobs.append({"paths": paths, "commitment": run.commitment.hex()})
        spec = {"n": n, "dtype": dtype, "seed": OPENINGS_SEED.hex(), "repeats": REPEATS}
        time.sleep(OPENMP_SETTLE_S)  # torch's idle OpenMP threads spin a while before sleeping
        script = VERIFY_SCRIPT.format(root=str(ROOT))
        answer = subprocess.run(
            [sys.executable, "-c", script, json.dumps({**spec, "jobs": jobs})],
            check=True,
            capture_output=True,
            text=True,
        )
    measured = [json.loads(line) for line in answer.stdout.splitlines()][1:]
    assert all(m["passed"] for m in measured), dtype
    verify_s = [m["check_s"] for m in measured]
    io_s = [m["io_s"] for m in measured]
    return statistics.median(exec_s), statistics.median(verify_s), statistics.median(io_s), files


def measure_cold(files: list[bytes], dtype: str, n: int) -> float:
    """One whole verification (imports, I/O, arithmetic) in a fresh interpreter, seconds."""
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for name, data in zip("abc", files, strict=True):
            path = Path(folder) / f"{name}.npy"
            path.write_bytes(data)
            paths.append(str(path))
        script = COLD_SCRIPT.format(
            root=str(ROOT), paths=paths, n=n, dtype=dtype, seed=OPENINGS_SEED
        )
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
        return time.perf_counter() - started


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
    """(execution seconds, verification seconds) of a seeded kind, means over ``JOBS``."""
    params = WORKLOADS[kind]
    exec_s = verify_s = 0.0
    for index in range(JOBS):
        job_id = f"job-bench-{kind}-{index}"
        started = time.perf_counter()
        bundle = execute_workload(job_id, kind, params, NODE, CPU)
        exec_s += time.perf_counter() - started
        started = time.perf_counter()
        code = _verify(job_id, kind, params, bundle)
        verify_s += time.perf_counter() - started
        assert code == "ok", f"{kind}: {code}"
    return exec_s / JOBS, verify_s / JOBS


def main() -> None:
    data: dict[str, tuple[float, float, float]] = {}
    cold_s = 0.0
    for dtype in DTYPES:
        exec_s, verify_s, io_s, files = measure_data(dtype, DATA_N)
        data[dtype] = (exec_s, verify_s, io_s)
        if dtype == "float32":
            cold_s = measure_cold(files, dtype, DATA_N)
        print(
            f"matmul {dtype:8s} n={DATA_N} product {exec_s * 1e3:8.1f} ms  Freivalds "
            f"{verify_s * 1e3:7.2f} ms  ratio {verify_s / exec_s:.4f}  I/O {io_s * 1e3:7.1f} ms"
        )
    print(f"matmul float32 cold verification (fresh interpreter) {cold_s * 1e3:.0f} ms")
    seeded = {}
    for kind in WORKLOADS:
        exec_s, verify_s = measure(kind)
        seeded[kind] = (exec_s, verify_s)
        print(
            f"{kind:10s} (seeded) execute {exec_s * 1e3:9.1f} ms  verify {verify_s * 1e3:9.1f} ms"
            f"  ratio {verify_s / exec_s:.3f}"
        )
    ratio = {k: v / e for k, (e, v) in seeded.items()}
    per_dtype = " ".join(f"verify_to_exec_matmul_{d}={data[d][1] / data[d][0]:.4f}" for d in DTYPES)
    print(
        f"RESULT verify_to_exec_matmul={data['float32'][1] / data['float32'][0]:.4f} "
        f"verify_io_s={data['float32'][2]:.4f} verify_cold_s={cold_s:.4f} {per_dtype} "
        f"verify_to_exec_matmul_seeded={ratio['matmul']:.4f} "
        f"verify_to_exec_inference={ratio['inference']:.4f} "
        f"groth16_verify_s={seeded['zk-prove'][1]:.4f}"
    )


if __name__ == "__main__":
    main()
