"""Which fraud proof fits which workload, and the deterministic check of each (``proofs.fraud``).

The ledger runs ``check_fraud_evidence`` on what a challenger presents; the audit runs it
again on the evidence the ``FraudProven`` event recorded. It returns None when the evidence
proves the judged result wrong, else why not (a stable rejection code and a message).

Workload kinds and their proofs: a seeded ``matmul`` a row opening (``MatmulRowEvidence``),
a data ``matmul`` (the consumer's A and B, issue 17) one entry of C against A's row and B's
column under the roots its params carry (``MatmulEntryEvidence``, rules v5: a job without
``a_rows_root`` and ``b_cols_root`` has no fraud proof), ``zk-prove`` the proof artifact
(``Groth16Evidence``). ``inference`` has no fraud proof yet
(its check needs the model's float tolerance; canaries and the validators' own checks cover
it): evidence for it is refused with ``fraud_evidence_kind_mismatch``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from domain import commands as c
from domain.errors import RejectionCode
from domain.job import WorkloadSpec
from proofs import groth16
from proofs.circuits import Circuit, compute_binding, matvec, poseidon_preimage
from proofs.fraud import (
    MatmulEntryClaim,
    ZkStatement,
    is_groth16_artifact_wrong,
    is_matmul_entry_wrong,
    is_matmul_row_wrong,
)
from proofs.groth16_setup import SEED_LIMIT, setup_from_seed
from proofs.job_seed import MATMUL_N_DEFAULT
from proofs.zkey import decode_zkey

FraudFinding = tuple[RejectionCode, str] | None
DATA_MATMUL_FIELD = "a"
"""A matmul job's params name its A object (the data form of ``domain.workloads``)."""
_HEX_DIGEST = re.compile("[0-9a-f]{64}")


def check_fraud_evidence(
    *,
    job_id: str,
    node_id: str,
    workload: WorkloadSpec,
    commitment: bytes,
    evidence: c.FraudEvidence,
) -> FraudFinding:
    """None when ``evidence`` proves the result ``commitment`` that ``node_id`` committed for
    job ``job_id`` wrong; else the rejection code and why. Never raises on bad evidence."""
    is_data_matmul = workload.kind == "matmul" and DATA_MATMUL_FIELD in workload.params
    if is_data_matmul and isinstance(evidence, c.MatmulEntryEvidence):
        return _check_entry(workload.params, commitment, evidence)
    if (
        workload.kind == "matmul"
        and not is_data_matmul
        and isinstance(evidence, c.MatmulRowEvidence)
    ):
        n, seed = workload.params.get("n", MATMUL_N_DEFAULT), workload.params.get("seed", "")
        if not (isinstance(n, int) and isinstance(seed, str)) or isinstance(n, bool):
            return RejectionCode.FRAUD_PROOF_INVALID, "the job's matmul params do not parse"
        if is_matmul_row_wrong(
            job_id=job_id,
            seed=seed,
            n=n,
            root=commitment,
            index=evidence.index,
            row=evidence.row,
            path=evidence.path,
        ):
            return None
        return (
            RejectionCode.FRAUD_PROOF_INVALID,
            f"row {evidence.index} is not a committed row that differs from A·B",
        )
    if workload.kind == "zk-prove" and isinstance(evidence, c.Groth16Evidence):
        statement = compute_zk_statement(workload.params, evidence.zkey, job_id, node_id)
        if statement is None:
            return RejectionCode.FRAUD_PROOF_INVALID, "the job's zk statement cannot be built"
        circuit = str(workload.params.get("circuit"))
        if is_groth16_artifact_wrong(
            commitment=commitment, artifact=evidence.artifact, circuit=circuit, statement=statement
        ):
            return None
        return (
            RejectionCode.FRAUD_PROOF_INVALID,
            "the artifact is not the committed one, or it proves the job's statement",
        )
    return (
        RejectionCode.FRAUD_EVIDENCE_KIND_MISMATCH,
        f"{type(evidence).__name__} is no fraud proof for a {workload.kind} job",
    )


def _check_entry(
    params: dict[str, Any], commitment: bytes, evidence: c.MatmulEntryEvidence
) -> FraudFinding:
    """A data matmul's entry evidence against the params' input roots (O(k + n))."""
    roots = [params.get(name) for name in ("a_rows_root", "b_cols_root")]
    if not all(isinstance(r, str) and _HEX_DIGEST.fullmatch(r) for r in roots):
        return (
            RejectionCode.FRAUD_PROOF_INVALID,
            "the job carries no a_rows_root and b_cols_root: an entry cannot be proven",
        )
    dims = [params.get(name) for name in ("m", "k", "n")]
    dtype = params.get("dtype")
    m, k, n = (d if isinstance(d, int) and not isinstance(d, bool) else 0 for d in dims)
    if not isinstance(dtype, str) or 0 in (m, k, n):
        return RejectionCode.FRAUD_PROOF_INVALID, "the job's matmul params do not parse"
    claim = MatmulEntryClaim(
        row=evidence.row,
        column=evidence.column,
        a_row=evidence.a_row,
        a_path=evidence.a_path,
        b_column=evidence.b_column,
        b_path=evidence.b_path,
        c_row=evidence.c_row,
        c_path=evidence.c_path,
    )
    if is_matmul_entry_wrong(
        dtype=dtype,
        m=m,
        k=k,
        n=n,
        a_rows_root=bytes.fromhex(str(roots[0])),
        b_cols_root=bytes.fromhex(str(roots[1])),
        commitment=commitment,
        claim=claim,
    ):
        return None
    return (
        RejectionCode.FRAUD_PROOF_INVALID,
        f"entry ({evidence.row}, {evidence.column}) is not a committed entry beyond the "
        "rounding bound of A's row times B's column",
    )


def compute_zk_statement(
    params: dict[str, Any], zkey: bytes, job_id: str, node_id: str
) -> ZkStatement | None:
    """The verification key and public signals a zk-prove job's proof must satisfy: the
    circuit built from the job's inputs (as the validators build it; attack 8 binds it to
    ``job_id`` and ``node_id`` too), its key derived from ``setup_seed`` or decoded from
    ``zkey`` (whose SHA-256 the job names). None when the params or the key do not fit."""
    try:
        circuit = _build_circuit(params, compute_binding(job_id, node_id))
        setup_seed, zkey_digest = params.get("setup_seed"), params.get("zkey", "")
        if isinstance(setup_seed, int) and not isinstance(setup_seed, bool):
            if not 0 <= setup_seed < SEED_LIMIT:
                return None
            _, verification_key = setup_from_seed(circuit.r1cs, setup_seed)
        elif zkey_digest and hashlib.sha256(zkey).hexdigest() == zkey_digest:
            key = decode_zkey(zkey)
            if (key.n_vars, key.n_public) != (circuit.r1cs.n_vars, circuit.r1cs.n_public):
                return None
            verification_key = key.verification_key()
        else:
            return None
    except (ValueError, TypeError, KeyError):
        return None
    return ZkStatement(verification_key, groth16.encode_public(circuit.public))


def _build_circuit(params: dict[str, Any], binding: int) -> Circuit:
    """The job's circuit and witness (what ``adapters.compute.zk_prover.build_circuit``
    builds for the node and the validators; raises ValueError or TypeError on bad inputs)."""
    inputs = json.loads(str(params.get("inputs", "")))
    if not isinstance(inputs, dict):
        raise ValueError("inputs must be a JSON object")
    if params.get("circuit") == "poseidon_preimage":
        return poseidon_preimage(_int(inputs.get("a")), _int(inputs.get("b")), binding)
    if params.get("circuit") == "matvec":
        matrix, x = inputs.get("matrix"), inputs.get("x")
        if not (isinstance(matrix, list) and isinstance(x, list)):
            raise ValueError("matvec needs 'matrix' and 'x' lists")
        rows = [[_int(v) for v in row] for row in matrix]
        return matvec(rows, [_int(v) for v in x], binding)
    raise ValueError(f"unknown circuit {params.get('circuit')!r}")


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError("a zk input must be an integer")
    return int(value)
