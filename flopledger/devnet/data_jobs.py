"""The devnet consumer's jobs on its own data (issue 17, item 6): it multiplies its own
matrices and runs its own MLP on its own inputs, both private, and checks the downloaded
results against a local computation.

The files are written under ``<devnet root>/consumer-data`` (the data keys under its
``keys/``, ``adapters.job_keys``); ``flopledger.jobs_client.submit_job_with_inputs`` seals and
uploads them, a thread per job releases the inputs key to the node that claims it
(``job release-key``'s ``release_when_claimed``), and once the jobs are final
``check_results`` downloads, opens and checks each result (``fetch_job_result``) and compares
it with numpy's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from adapters.ledger_api.client import ApiClient, ApiProblem
from flopledger.commands.job_keys import release_when_claimed
from flopledger.jobs_client import JobFailed, JobNotFinal, fetch_job_result, submit_job_with_inputs
from proofs.identity import Identity

SECOND_NS = 1_000_000_000
MATMUL_N = 256
MLP_DIMS = (16, 32, 4)
"""input_dim -> width -> output_dim: two layers, ReLU between."""
BATCH = 8
RELEASE_WAIT_S = 120.0
RTOL, ATOL = 1e-4, 1e-3
"""float32 against a float64 reference: a 256-long dot product of unit normals rounds well
inside these."""


@dataclass(frozen=True)
class DataJob:
    job_id: str
    kind: str
    region: str
    expected: np.ndarray


def write_inputs(directory: Path) -> dict[str, tuple[dict[str, Path], np.ndarray]]:
    """The consumer's files by kind, and what each job's result must be."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1706)
    a = rng.standard_normal((MATMUL_N, MATMUL_N)).astype(np.float32)
    b = rng.standard_normal((MATMUL_N, MATMUL_N)).astype(np.float32)
    np.save(directory / "a.npy", a)
    np.save(directory / "b.npy", b)
    dims = MLP_DIMS
    weights = {}
    for i in range(len(dims) - 1):
        weights[f"layers.{i}.weight"] = rng.standard_normal((dims[i + 1], dims[i])).astype(
            np.float32
        ) / np.float32(np.sqrt(dims[i]))
        weights[f"layers.{i}.bias"] = rng.standard_normal(dims[i + 1]).astype(np.float32)
    save_file(weights, str(directory / "mlp.safetensors"))
    x = rng.standard_normal((BATCH, dims[0])).astype(np.float32)
    np.save(directory / "x.npy", x)
    return {
        "matmul": (
            {"a": directory / "a.npy", "b": directory / "b.npy"},
            a.astype(np.float64) @ b.astype(np.float64),
        ),
        "inference": (
            {"model": directory / "mlp.safetensors", "x": directory / "x.npy"},
            _forward(weights, x),
        ),
    }


def submit_data_jobs(
    api_url: str,
    consumer: Identity,
    directory: Path,
    regions: dict[str, str],
    *,
    max_price: int,
    deadline_s: float,
    report: Callable[[str], None],
) -> list[DataJob]:
    """Submit the private matmul and inference jobs; start each one's key release."""
    client = ApiClient(api_url, identity=consumer)
    jobs = []
    try:
        for kind, (files, expected) in write_inputs(directory).items():
            submitted = submit_job_with_inputs(
                client,
                kind=kind,
                inputs=files,
                params={},
                max_price=max_price,
                region=regions[kind],
                deadline_ns=time.time_ns() + int(deadline_s * SECOND_NS),
                data_dir=directory,
            )
            jobs.append(DataJob(submitted.job_id, kind, regions[kind], expected))
            key = submitted.data_key
            assert key is not None  # private: sealed under this key
            thread = threading.Thread(
                target=_release, args=(api_url, consumer, submitted.job_id, key, report)
            )
            thread.daemon = True
            thread.start()
    finally:
        client.close()
    return jobs


def check_results(
    api_url: str, consumer: Identity, directory: Path, jobs: list[DataJob]
) -> list[tuple[DataJob, bool, str]]:
    """Each data job's downloaded result against the local computation: (job, matches,
    what was found)."""
    client = ApiClient(api_url, identity=consumer)
    found = []
    try:
        for job in jobs:
            out = directory / f"{job.job_id}.result.npy"
            try:
                fetch_job_result(client, job.job_id, out)
            except (JobFailed, JobNotFinal, ApiProblem) as exc:
                found.append((job, False, str(exc)))
                continue
            result = np.load(out)
            matches = result.shape == job.expected.shape and bool(
                np.allclose(result, job.expected, rtol=RTOL, atol=ATOL)
            )
            error = float(np.max(np.abs(result - job.expected))) if matches else float("nan")
            found.append((job, matches, f"max |difference| {error:.2e}"))
    finally:
        client.close()
    return found


def _release(
    api_url: str, consumer: Identity, job_id: str, key: bytes, report: Callable[[str], None]
) -> None:
    client = ApiClient(api_url, identity=consumer)
    try:
        release_when_claimed(client, job_id, key, RELEASE_WAIT_S, report, print_accepted=False)
    except ApiProblem as problem:
        report(f"{job_id}: the inputs key release was refused ({problem.code})")
    finally:
        client.close()


def _forward(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = x.astype(np.float64)
    layers = len(weights) // 2
    for i in range(layers):
        h = h @ weights[f"layers.{i}.weight"].astype(np.float64).T + weights[f"layers.{i}.bias"]
        if i < layers - 1:
            h = np.maximum(h, 0.0)
    return h
