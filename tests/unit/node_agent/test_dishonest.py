"""Dishonest agents, built here and never a mode of the real agent: wrong rows, a late
result. (Copied results and replayed attestations: test_workloads / test_attestation_inventory.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adapters.compute.results import verify_result
from adapters.compute.torch_matmul import compute_product, derive_inputs_torch
from adapters.compute.workloads import compute_job_seed
from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.policy import SECOND_NS
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from proofs.matmul_product import make_product_proof, verify_product_proof

NODE = Identity.from_seed(b"liar".ljust(32, b"\0"))


def dishonest_matmul(
    job_id: str, seed: str, n: int, wrong_rows: int, openings_seed: bytes = b"round"
) -> bool:
    """A node that skips work on some rows (zeros them), commits to what it has; whether the
    validators' check (Freivalds drawn from ``openings_seed``) passes."""
    job_seed = compute_job_seed(job_id, seed)
    a, b = derive_inputs_torch(job_seed, n, torch.device("cpu"))
    c, _ = compute_product(a, b)
    c[n - wrong_rows :] = 0.0
    return verify_product_proof(make_product_proof(np.asarray(c), job_seed), openings_seed)


def test_wrong_rows_are_caught() -> None:
    assert dishonest_matmul("job-1", "s", 128, 2) is False
    assert dishonest_matmul("job-1", "s", 128, 0) is True


def test_one_wrong_row_of_many_is_caught_whatever_the_round_randomness() -> None:
    """Freivalds checks all of C: one skipped row of 1024 fails every round drawn."""
    for index in range(4):
        assert dishonest_matmul("job-2", "s", 1024, 1, b"round-%d" % index) is False


def test_wrong_rows_fail_the_validators_check() -> None:
    from adapters.compute.results import execute_workload

    honest = execute_workload("job-3", "matmul", {"n": 64, "seed": "s"}, NODE, torch.device("cpu"))
    assert (
        verify_result(
            job_id="job-3",
            node_id=NODE.id,
            kind="matmul",
            raw_params={"n": 64, "seed": "t"},
            commitment=honest.commitment,
            artifact_digest=honest.artifact_digest,
            proof_digest=honest.proof_digest,
            artifact=honest.artifact,
            proof=honest.proof,
            openings_seed=b"round",
        )
        == "manifest_mismatch"
    )


async def test_late_result_is_refused_by_the_ledger() -> None:
    """A node that commits after its result window: the ledger refuses, the job is
    reassigned by anyone cranking it."""
    net = LocalNetwork.create(MemoryEventStore())
    consumer = Identity.from_seed(b"consumer".ljust(32, b"\0"))
    for actor in (NODE, consumer):
        await net.deposit(actor, 100_000)
    for index in range(3):  # a quorum to attest the node (rules v3: no operator then)
        validator = make_validator_keys(index)
        await net.deposit(validator.identity, 10_000)
        await net.register_validator(validator, stake=1_000)
    await net.register_active_node(NODE, region="eu-west", price=10, stake=1_000)
    job_id = await net.submit_job(consumer, region="eu-west", max_price=100)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    net.advance(net.policy.result_window_ns / SECOND_NS + 1)
    with pytest.raises(Rejection) as refused:
        await net.commit_result(NODE, job_id, bytes(32))
    assert refused.value.code == "result_too_late"
