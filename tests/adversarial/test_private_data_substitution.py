"""Issue 17: a node swaps a private job's data for its own, and hands the validators its own
key, as if its substitute were the job's inputs. Played with valid keys and signed commands
on a ``LocalNetwork``: the ledger accepts every release (a node may release keys to the drawn
validators), but each validator opens the *consumer's* ciphertext, named by the params'
digests, itself (``validator.payloads``): under the node's key the AEAD fails
(``inputs_sealed_invalid``); under the consumer's own key the node's C is not A·B (Freivalds:
``proof_invalid``). The validators fail it, the job is rejected and the node slashed, with the
money accounted for."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import numpy as np

from adapters.compute.matmul_data import verify_matmul_data
from domain.job import REJECTED, SUBMITTED
from domain.node import Node
from domain.services.queries import get_aggregate
from domain.workloads import parse_params
from flopledger.network import LocalNetwork, b64, make_validator_keys
from proofs.encryption_keys import derive_encryption_keypair
from proofs.identity import Identity
from proofs.matrix_rows import compute_input_roots, compute_rows_root
from proofs.sealed_object import new_data_key, seal_bytes
from tests.adversarial._harness import get_money_total, start_network
from tests.npy_files import npy_bytes
from tests.private_jobs import (
    Release,
    claim,
    get_job,
    register_encryption_key,
    release_key,
    validator_identity,
)
from validator.payloads import open_payloads

CHEATER, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (191, 192))
VALIDATORS = [make_validator_keys(193 + i) for i in range(3)]
M, K, N = 12, 10, 8
NOW_FAR_NS = 2**62


RNG = np.random.default_rng(5)
A = RNG.standard_normal((M, K)).astype(np.float32)
B = RNG.standard_normal((K, N)).astype(np.float32)
A_NPY, B_NPY = npy_bytes(A), npy_bytes(B)


class Objects:
    """The object store's bytes by digest (what a validator streams)."""

    def __init__(self) -> None:
        self.by_digest: dict[str, bytes] = {}

    def add(self, data: bytes, digest: str | None = None) -> str:
        digest = digest or hashlib.sha256(data).hexdigest()
        self.by_digest[digest] = data
        return digest

    async def get_stream(self, digest: str) -> AsyncIterator[bytes]:
        yield self.by_digest[digest]


async def _market() -> LocalNetwork:
    net = await start_network()
    await net.deposit(CHEATER, 10_000)
    await net.register_active_node(CHEATER, gpus=2, region="eu-west", price=400, stake=5_000)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
        await register_encryption_key(net, keys.identity)
    await net.deposit(CONSUMER, 5_000)
    for actor in (CHEATER, CONSUMER):
        await register_encryption_key(net, actor)
    return net


async def _submit_sealed(net: LocalNetwork, objects: Objects, inputs_key: bytes) -> str:
    """The consumer seals A and B, records the uploads and submits the private job."""
    digests = {}
    for name, data in (("a", A_NPY), ("b", B_NPY)):
        sealed = seal_bytes(inputs_key, data)
        digests[name] = objects.add(sealed)
        body = {
            "digest": b64(bytes.fromhex(digests[name])),
            "size_bytes": len(sealed),
            "uploader": CONSUMER.id,
        }
        await net.run(CONSUMER, "object.record_stored", body)
    a_root, b_root = compute_input_roots(A_NPY, B_NPY, dtype="float32", m=M, k=K, n=N)
    params = {
        **digests,
        "dtype": "float32",
        "m": M,
        "k": K,
        "n": N,
        "a_rows_root": a_root,
        "b_cols_root": b_root,
        "encrypted": True,
    }
    job = {
        "workload": {"kind": "matmul", "gpu_class_min": "consumer", "params": params},
        "max_price": 1_000,
        "region": "eu-west",
        "redundancy": 3,
        "deadline_ns": net.now_ns + 3_600 * 1_000_000_000,
    }
    return (await net.run(CONSUMER, "job.submit", job)).subject


async def test_a_node_that_swaps_the_data_is_failed_by_every_validator_and_slashed() -> None:
    net = await _market()
    objects = Objects()
    inputs_key = new_data_key()
    job_id = await _submit_sealed(net, objects, inputs_key)
    await claim(net, CHEATER, job_id)
    await release_key(net, CONSUMER, Release(job_id, 1, CHEATER, "inputs", inputs_key))
    # The node runs on its own A', B' and commits that C' (a consistent commitment).
    other = np.random.default_rng(6)
    c_swapped = other.standard_normal((M, K)).astype(np.float32) @ other.standard_normal(
        (K, N)
    ).astype(np.float32)
    commitment = compute_rows_root(c_swapped, "float32")
    result_key, own_key = new_data_key(), new_data_key()
    objects.add(seal_bytes(result_key, npy_bytes(c_swapped)), commitment.hex())
    await net.commit_result(CHEATER, job_id, commitment)
    job = await get_job(net, job_id)
    assert job.validators, "the round was drawn"
    for validator_id in job.validators:
        recipient = validator_identity(VALIDATORS, validator_id)
        await release_key(net, CHEATER, Release(job_id, 1, recipient, "inputs", own_key))
        await release_key(net, CHEATER, Release(job_id, 1, recipient, "result", result_key))

    job = await get_job(net, job_id)
    params = parse_params("matmul", dict(job.workload.params))
    for validator_id in job.validators:
        private, public = derive_encryption_keypair(validator_identity(VALIDATORS, validator_id))
        opened = await open_payloads(
            job,
            params,
            commitment.hex(),
            objects,
            validator_id=validator_id,
            private_key=private,
            public_key=public,
            now_ns=NOW_FAR_NS,
        )
        assert opened.failure == "inputs_sealed_invalid"
    # Had it handed over the consumer's own key, the check runs on the consumer's A and B,
    # and the node's C' is not their product.
    verdict = verify_matmul_data(
        A_NPY,
        B_NPY,
        npy_bytes(c_swapped),
        dtype="float32",
        m=M,
        k=K,
        n=N,
        commitment=commitment,
        openings_seed=b"beacon",
    )
    assert verdict == "proof_invalid"

    votes = [(keys, False) for keys in VALIDATORS if keys.identity.id in job.validators]
    await net.vote_round(job_id, votes, reason="inputs_sealed_invalid")
    job = await get_job(net, job_id)
    assert job.state in (REJECTED, SUBMITTED)  # rejected, then back on the market
    assert CHEATER.id in job.excluded_nodes
    cheater = await get_aggregate(net.store, Node, CHEATER.id)
    assert cheater is not None and cheater.slashed_total > 0
    assert await get_money_total(net) == 0
