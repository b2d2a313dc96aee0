"""Dishonest node agents for data jobs, built only in tests (cheating is never a mode of
``node_agent``): a real agent whose ``Worker`` runs a job differently.

- ``CorruptingWorker``: computes C honestly on the consumer's inputs, then changes one entry
  and commits a consistent result (Merkle root over the changed rows, signed manifest,
  sealed proof): Freivalds must catch it.
- ``SwappingWorker``: computes on other data of the same shape (its own A', B') and, as if
  its substitute were the job's inputs, releases to the validators its own key in place of
  the consumer's: the validators open the consumer's ciphertext with it and the AEAD fails.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from adapters.compute.results import ResultBundle, ResultManifest, sign_manifest
from adapters.job_keys import get_job_key_path, save_job_key
from adapters.ledger_api.wire import JobView
from domain.workloads import MatmulDataParams, WorkloadParams, encode_params
from node_agent.work import Worker
from proofs.matrix_rows import compute_rows_root
from proofs.npy import encode_npy, read_npy
from proofs.sealed_object import new_data_key

CORRUPTED_ENTRY = (7, 11)
CORRUPTION = np.float32(10_000.0)
"""Far beyond Freivalds' float bound at n = 512 (proofs.matmul_data: T_i of about 50)."""


def build_bundle(
    worker: Worker, job: JobView, params: MatmulDataParams, c: np.ndarray
) -> ResultBundle:
    """A result bundle for C as the honest executor would sign it."""
    proof = encode_npy(c.astype(np.float32), "float32")
    commitment = compute_rows_root(c.astype(np.float32), "float32")
    manifest = ResultManifest(
        job_id=job.id,
        node_id=worker.identity.id,
        kind=job.workload.kind,
        params=encode_params(params),
        commitment=commitment,
        proof_digest=hashlib.sha256(proof).digest(),
        environment=None,
        compute_ns=1,
        total_ns=1,
    )
    artifact = sign_manifest(manifest, worker.identity)
    return ResultBundle(job_id=job.id, commitment=commitment, artifact=artifact, proof=proof)


class CorruptingWorker(Worker):
    async def run_workload(
        self,
        job: JobView,
        params: WorkloadParams,
        device: torch.device,
        zkey: bytes | None,
        inputs: dict[str, bytes] | None,
    ) -> ResultBundle:
        honest = await super().run_workload(job, params, device, zkey, inputs)
        assert isinstance(params, MatmulDataParams)
        c = np.array(read_npy(honest.proof, "float32", (params.m, params.n)), dtype=np.float32)
        c[CORRUPTED_ENTRY] += CORRUPTION
        return build_bundle(self, job, params, c)


class SwappingWorker(Worker):
    async def run_workload(
        self,
        job: JobView,
        params: WorkloadParams,
        device: torch.device,
        zkey: bytes | None,
        inputs: dict[str, bytes] | None,
    ) -> ResultBundle:
        assert isinstance(params, MatmulDataParams)
        rng = np.random.default_rng(7)
        a = rng.standard_normal((params.m, params.k)).astype(np.float32)
        b = rng.standard_normal((params.k, params.n)).astype(np.float32)
        # "Its" inputs are under its own key: that is the key it hands the validators.
        state_dir = self.courier._inputs_dir
        get_job_key_path(state_dir, job.id).unlink(missing_ok=True)
        save_job_key(state_dir, job.id, new_data_key())
        return build_bundle(self, job, params, a @ b)
