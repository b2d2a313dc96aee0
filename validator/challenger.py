"""The challenger duty (issue 14, attack 5): a validator that failed a result its round
passed anyway proves the pass wrong with a fraud proof, and earns the challenger's reward.

The daemon's follower hands every record to ``find_challenge``: a ``JobVerified`` of a job
whose result this validator checked and decided to fail (its signing database says so) is
a challenge to make. The duty loop then fetches the proof object and builds the evidence
(``build_evidence``): for a matmul the first row of the shipped C that differs from A·B,
opened with its Merkle path (``proofs.matmul_product.open_product_row``); for a data matmul
(issue 17; its input objects passed in) the first entry of C beyond its rounding bound, with
A's row, B's column and C's row under their roots (``proofs.fraud.open_entry_claim``); for a
zk-prove the
committed artifact itself (and the job's zkey, when it names one). The evidence is checked
with the ledger's own check before it is sent, so the validator never sends a proof the
ledger would refuse. Challenges live in memory: a restart forgets the pending ones (the
fraud window is long; anyone else may still prove it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from domain import commands as c
from domain.job import Job, WorkloadSpec
from domain.records import Record
from domain.services.fraud_checks import check_fraud_evidence
from proofs.fraud import open_entry_claim
from proofs.job_seed import compute_job_seed
from proofs.matmul import compute_product, derive_inputs
from proofs.matmul_data import INPUT_DTYPES, find_wrong_entry, result_dtype
from proofs.matmul_product import decode_entries, decode_product_proof, open_product_row
from proofs.npy import NpyError, read_npy
from validator.protection import SigningDatabase
from validator.state import LedgerView

CHALLENGED_KINDS = frozenset({"matmul", "zk-prove"})
"""Workload kinds with a fraud proof (``domain.services.fraud_checks``)."""


@dataclass(frozen=True)
class Challenge:
    """A passed result this validator failed: what it needs to prove it wrong."""

    job_id: str
    attempt: int
    node_id: str
    workload: WorkloadSpec
    commitment: bytes
    proof_digest: bytes


def find_challenge(record: Record, view: LedgerView, db: SigningDatabase) -> Challenge | None:
    """The challenge ``record`` opens for this validator (applied to ``view``), or None."""
    if (record.stream_type, record.event_type) != (Job.STREAM_TYPE, "JobVerified"):
        return None
    job = view.aggregates.get(record.stream_id)
    if not isinstance(job, Job) or job.result is None:
        return None
    if job.workload.kind not in CHALLENGED_KINDS:
        return None
    decision = db.get_decision(job.round_subject(), job.result.commitment)
    if decision is None or decision.passed:
        return None
    return Challenge(
        job_id=job.id,
        attempt=job.attempt,
        node_id=job.node_id,
        workload=job.workload,
        commitment=job.result.commitment,
        proof_digest=job.result.proof_digest,
    )


def build_evidence(
    challenge: Challenge, proof: bytes, zkey: bytes, inputs: Mapping[str, bytes] | None = None
) -> c.FraudEvidence | None:
    """Evidence that the ledger's check accepts, or None when none can be built from the
    proof object (it does not parse, or no row is wrong: the validator's fail was about
    something a fraud proof does not cover, such as a manifest signed by another node).
    ``inputs``: a data matmul's A and B (``.npy`` bytes by input name)."""
    evidence: c.FraudEvidence | None
    if challenge.workload.kind == "matmul" and "a" in challenge.workload.params:
        evidence = _find_wrong_entry(challenge.workload.params, proof, inputs)
    elif challenge.workload.kind == "matmul":
        evidence = _find_wrong_row(challenge, proof)
    else:
        evidence = c.Groth16Evidence(artifact=proof, zkey=zkey)
    if evidence is None:
        return None
    finding = check_fraud_evidence(
        job_id=challenge.job_id,
        node_id=challenge.node_id,
        workload=challenge.workload,
        commitment=challenge.commitment,
        evidence=evidence,
    )
    return evidence if finding is None else None


def _find_wrong_row(challenge: Challenge, proof: bytes) -> c.MatmulRowEvidence | None:
    """The first row of the shipped C that is not A·B's, opened under the committed root."""
    try:
        shipped = decode_product_proof(proof)
    except msgspec.MsgspecError:
        return None
    entries = decode_entries(shipped.product, shipped.n)
    seed = challenge.workload.params.get("seed", "")
    if entries is None or shipped.root != challenge.commitment or not isinstance(seed, str):
        return None
    a, b = derive_inputs(compute_job_seed(challenge.job_id, seed), shipped.n)
    wrong = np.flatnonzero(np.any(entries != compute_product(a, b), axis=1))
    if wrong.size == 0:
        return None
    opening = open_product_row(shipped, int(wrong[0]))
    return c.MatmulRowEvidence(index=opening.index, row=opening.row, path=list(opening.proof))


def _find_wrong_entry(
    params: Mapping[str, Any], proof: bytes, inputs: Mapping[str, bytes] | None
) -> c.MatmulEntryEvidence | None:
    """The first entry of the shipped C beyond its rounding bound, with its rows' paths."""
    dtype = params.get("dtype")
    m, k, n = (params.get(name) for name in ("m", "k", "n"))
    if inputs is None or not (isinstance(dtype, str) and dtype in INPUT_DTYPES):
        return None
    if not (isinstance(m, int) and isinstance(k, int) and isinstance(n, int)):
        return None
    try:
        a = read_npy(inputs["a"], dtype, (m, k))
        b = read_npy(inputs["b"], dtype, (k, n))
        product = read_npy(proof, result_dtype(dtype), (m, n))
    except (NpyError, KeyError):
        return None
    found = find_wrong_entry(a, b, product, dtype)
    if found is None:
        return None
    claim = open_entry_claim(a, b, product, dtype, *found)
    return c.MatmulEntryEvidence(
        row=claim.row,
        column=claim.column,
        a_row=claim.a_row,
        a_path=list(claim.a_path),
        b_column=claim.b_column,
        b_path=list(claim.b_path),
        c_row=claim.c_row,
        c_path=list(claim.c_path),
    )
