"""A data matmul job (the consumer's own A and B, issue 17): a node changes one entry of C and
two colluding validators pass it. Freivalds on the delivered C refuses it; anyone holding the
files localises the wrong entry and proves it to the ledger with A's row, B's column and C's
row under the roots the job carries (O(k + n)); the pass voters and the node are slashed. A
false entry claim on an honest C is refused and writes nothing.

Played with valid keys through the command bus (``LocalNetwork``), as in
``test_always_pass_validators``."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch

from adapters.compute.matmul_data import run_matmul_data, verify_matmul_data
from domain.commands import MatmulEntryEvidence
from domain.errors import Rejection
from domain.job import SETTLED, Job
from domain.ledger import user_account
from domain.node import JAILED, Node
from domain.policy import BPS, RULES_V4, SECOND_NS
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, b64
from proofs.fraud import MatmulEntryClaim, open_entry_claim
from proofs.identity import Identity
from proofs.matmul_data import find_wrong_entry
from proofs.matrix_rows import compute_input_roots, compute_rows_root
from proofs.npy import read_npy
from tests.adversarial._harness import get_balance, get_money_total
from tests.adversarial.test_always_pass_validators import (
    CHALLENGER,
    CHEATER,
    CONSUMER,
    HONEST,
    LAZY_1,
    LAZY_2,
    NODE,
    VALIDATOR_STAKE,
    VALIDATORS,
    build_market,
    get_stake,
    prove_fraud,
)
from tests.npy_files import npy_bytes
from validator.challenger import Challenge, build_evidence

M, K, N = 24, 20, 16
WRONG = (7, 3)
OPENINGS_SEED = b"the round's beacon randomness"


RNG = np.random.default_rng(17)
A_NPY = npy_bytes(RNG.standard_normal((M, K)).astype(np.float32))
B_NPY = npy_bytes(RNG.standard_normal((K, N)).astype(np.float32))
A_ROWS_ROOT, B_COLS_ROOT = compute_input_roots(A_NPY, B_NPY, dtype="float32", m=M, k=K, n=N)
PARAMS = {
    "a": hashlib.sha256(A_NPY).hexdigest(),
    "b": hashlib.sha256(B_NPY).hexdigest(),
    "dtype": "float32",
    "m": M,
    "k": K,
    "n": N,
    "a_rows_root": A_ROWS_ROOT,
    "b_cols_root": B_COLS_ROOT,
}


def _matrices(c_npy: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        read_npy(A_NPY, "float32", (M, K)),
        read_npy(B_NPY, "float32", (K, N)),
        read_npy(c_npy, "float32", (M, N)),
    )


def compute_c(*, forged: bool) -> bytes:
    """The node's C as a .npy: honest, or with entry ``WRONG`` changed by 1000."""
    run = run_matmul_data(A_NPY, B_NPY, dtype="float32", m=M, k=K, n=N, device=torch.device("cpu"))
    if not forged:
        return run.result
    c = np.load(io.BytesIO(run.result), allow_pickle=False).copy()
    c[WRONG] += np.float32(1000.0)
    return npy_bytes(c)


def entry_evidence(claim: MatmulEntryClaim) -> dict[str, object]:
    return {
        "type": "matmul_entry",
        "row": claim.row,
        "column": claim.column,
        "a_row": b64(claim.a_row),
        "a_path": [b64(h) for h in claim.a_path],
        "b_column": b64(claim.b_column),
        "b_path": [b64(h) for h in claim.b_path],
        "c_row": b64(claim.c_row),
        "c_path": [b64(h) for h in claim.c_path],
    }


async def run_data_job(
    net: LocalNetwork,
    node: Identity,
    votes: list[tuple[ValidatorKeys, bool]],
    *,
    forged: bool,
    record_uploads: bool = True,
) -> tuple[str, bytes]:
    """The consumer records its uploads (rules v5) and submits; ``node`` claims, commits its
    C; the validators vote as ``votes`` says."""
    for data in (A_NPY, B_NPY) if record_uploads else ():
        body = {
            "digest": b64(hashlib.sha256(data).digest()),
            "size_bytes": len(data),
            "uploader": CONSUMER.id,
        }
        await net.run(CONSUMER, "object.record_stored", body)
    job = {
        "workload": {"kind": "matmul", "gpu_class_min": "consumer", "params": PARAMS},
        "max_price": 1_000,
        "region": "eu-west",
        "redundancy": 3,
        "deadline_ns": net.now_ns + 3_600 * SECOND_NS,
    }
    job_id = (await net.run(CONSUMER, "job.submit", job)).subject
    await net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id})
    c_npy = compute_c(forged=forged)
    commitment = compute_rows_root(_matrices(c_npy)[2], "float32")
    await net.commit_result(node, job_id, commitment)
    await net.vote_round(job_id, votes)
    return job_id, c_npy


async def test_a_changed_entry_passed_by_colluders_is_proven_by_its_entry_and_slashed() -> None:
    net = await build_market()
    job_id, forged = await run_data_job(
        net, CHEATER, [(LAZY_1, True), (LAZY_2, True), (HONEST, False)], forged=True
    )
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == SETTLED  # the colluders' quorum passed it
    commitment = compute_rows_root(_matrices(forged)[2], "float32")
    honest_check = verify_matmul_data(
        A_NPY,
        B_NPY,
        forged,
        dtype="float32",
        m=M,
        k=K,
        n=N,
        commitment=commitment,
        openings_seed=OPENINGS_SEED,
    )
    assert honest_check == "proof_invalid"  # what the honest validator's Freivalds said
    a, b, c = _matrices(forged)
    found = find_wrong_entry(a, b, c, "float32")
    assert found == WRONG
    challenge = Challenge(
        job_id=job_id,
        attempt=1,
        node_id=CHEATER.id,
        workload=job.workload,
        commitment=commitment,
        proof_digest=hashlib.sha256(forged).digest(),
    )
    built = build_evidence(challenge, forged, b"", {"a": A_NPY, "b": B_NPY})
    assert isinstance(built, MatmulEntryEvidence) and (built.row, built.column) == WRONG
    assert build_evidence(challenge, forged, b"", None) is None  # the inputs are needed

    await prove_fraud(
        net, CHALLENGER, job_id, entry_evidence(open_entry_claim(a, b, c, "float32", *WRONG))
    )

    slash = VALIDATOR_STAKE * net.policy.fraud_slash_bps // BPS
    assert [await get_stake(net, k) for k in VALIDATORS] == [
        VALIDATOR_STAKE,
        *[VALIDATOR_STAKE - slash] * 2,
    ]
    reward = slash * net.policy.fraud_challenger_reward_bps // BPS
    assert await get_balance(net, user_account(CHALLENGER.id)) == 2 * reward
    cheater = await get_aggregate(net.store, Node, CHEATER.id)
    assert cheater is not None and cheater.state == JAILED and cheater.slashed_total > 0
    assert await get_money_total(net) == 0


async def test_false_entry_claims_on_an_honest_c_are_refused_and_write_nothing() -> None:
    net = await build_market()
    job_id, honest = await run_data_job(
        net, NODE, [(HONEST, True), (LAZY_1, True), (LAZY_2, True)], forged=False
    )
    a, b, c = _matrices(honest)
    assert find_wrong_entry(a, b, c, "float32") is None
    right = open_entry_claim(a, b, c, "float32", *WRONG)
    forged_c = c.copy()
    forged_c[WRONG] += np.float32(1000.0)
    not_committed = open_entry_claim(a, b, forged_c, "float32", *WRONG)
    other_a = a.copy()
    other_a[WRONG[0]] += np.float32(1.0)
    other_row = open_entry_claim(other_a, b, c, "float32", *WRONG)
    head = (await net.store.head()).position
    attempts = [
        entry_evidence(right),  # a committed entry, and it is right
        entry_evidence(not_committed),  # a wrong entry, but not in the committed C
        entry_evidence(other_row),  # A's row changed: not under a_rows_root
        {"type": "matmul_row", "index": 0, "row": entry_evidence(right)["c_row"], "path": []},
    ]
    codes = []
    for evidence in attempts:
        with pytest.raises(Rejection) as info:
            await prove_fraud(net, CHALLENGER, job_id, evidence)
        codes.append(info.value.code)

    assert codes == ["fraud_proof_invalid"] * 3 + ["fraud_evidence_kind_mismatch"]
    assert (await net.store.head()).position == head
    assert await get_balance(net, user_account(CHALLENGER.id)) == 0
    assert [await get_stake(net, k) for k in VALIDATORS] == [VALIDATOR_STAKE] * 3


async def test_entry_evidence_is_a_rules_v5_proof() -> None:
    net = await build_market(rules_version=RULES_V4)
    job_id, forged = await run_data_job(
        net,
        CHEATER,
        [(LAZY_1, True), (LAZY_2, True), (HONEST, False)],
        forged=True,
        record_uploads=False,  # rules v4 has no consumer uploads and no door
    )
    a, b, c = _matrices(forged)
    evidence = entry_evidence(open_entry_claim(a, b, c, "float32", *WRONG))

    with pytest.raises(Rejection) as info:
        await prove_fraud(net, CHALLENGER, job_id, evidence)

    assert info.value.code == "fraud_evidence_kind_mismatch"
    assert [await get_stake(net, k) for k in VALIDATORS] == [VALIDATOR_STAKE] * 3
