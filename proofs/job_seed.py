"""The seed a job's inputs derive from, bound to the job id: shared by the node agent, the
validators (``adapters.compute.workloads``) and the ledger, which recomputes one matmul row
when it checks a fraud proof (``proofs.fraud``).

``compute_job_seed(job_id, seed)`` = SHA-256(JOB_SEED_TAG ‖ u32 len(job_id) ‖ job_id ‖ seed),
so a result computed for another job (or copied from another node's job) does not verify
for this one.
"""

from __future__ import annotations

import hashlib
import struct

JOB_SEED_TAG = b"flopledger/job-seed/v1\x00"
MATMUL_N_DEFAULT = 512
"""A matmul job's ``n`` when its params name none (``domain.workloads``, which repeats it)."""


def compute_job_seed(job_id: str, seed: str) -> bytes:
    """The 32-byte seed a job's inputs derive from (module docstring)."""
    job = job_id.encode()
    header = JOB_SEED_TAG + struct.pack(">I", len(job)) + job + seed.encode()
    return hashlib.sha256(header).digest()
