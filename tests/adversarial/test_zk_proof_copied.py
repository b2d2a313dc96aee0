"""Attack 8 of issue 14: zk proofs proved nothing about the job.

A ``zk-prove`` statement had no public input naming the job or the node, so a node that
claimed a job copied the Groth16 proof another node made for another job with the same
inputs (or for the same job, before handing it back), signed its own manifest around it, and
the validators' check passed: it was paid for work it never did. And ``setup_seed`` keys,
whose trapdoor anyone derives from the job's params, were accepted by default. The rules:
every proof of our circuits carries the job binding (SHA-256 of the job id and node id,
reduced into the BN254 scalar field, squared in the circuit) as a public input, so a copy
fails the validators' check (slashed); ``setup_seed`` jobs are refused at submit
(``insecure_setup_not_allowed``) and their proofs by validators unless the ledger's policy
says ``insecure_setups_allowed`` (the devnet's genesis does).
"""

from __future__ import annotations

import json

import msgspec
import pytest
import torch

from adapters.compute.results import (
    ResultBundle,
    ResultManifest,
    decode_manifest,
    execute_workload,
    sign_manifest,
    verify_result,
)
from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.job import SETTLED, SUBMITTED, Job
from domain.ledger import stake_account, user_account
from domain.policy import SECOND_NS
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, b64, make_validator_keys
from proofs.identity import Identity
from tests.adversarial._harness import POLICY, get_balance, get_money_total

HONEST, COPIER, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (111, 112, 113))
VALIDATORS = [make_validator_keys(110 + i) for i in range(3)]
PARAMS = {"circuit": "poseidon_preimage", "inputs": json.dumps({"a": 5, "b": 9}), "setup_seed": 7}
NODE_STAKE = 5_000
MAX_PRICE = 1_000
CPU = torch.device("cpu")


async def _network() -> LocalNetwork:
    # setup_seed keys are the only ones a test can make without a ceremony: this network's
    # policy allows them, as the devnet's does (the attack here is the copy).
    policy = msgspec.structs.replace(POLICY, insecure_setups_allowed=True)
    net = await LocalNetwork.start(MemoryEventStore(), policy=policy)
    for node in (HONEST, COPIER):
        await net.deposit(node, 10_000)
        await net.register_active_node(node, region="eu-west", price=400, stake=NODE_STAKE)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 10_000)
    return net


async def _submit(net: LocalNetwork, params: dict[str, object]) -> str:
    result = await net.run(
        CONSUMER,
        "job.submit",
        {
            "workload": {"kind": "zk-prove", "gpu_class_min": "consumer", "params": params},
            "max_price": MAX_PRICE,
            "region": "eu-west",
            "redundancy": 3,
            "deadline_ns": net.now_ns + 3_600 * SECOND_NS,
        },
    )
    return result.subject


async def _commit(net: LocalNetwork, node: Identity, bundle: ResultBundle) -> None:
    await net.run(
        node,
        "job.commit_result",
        {
            "job_id": bundle.job_id,
            "commitment": b64(bundle.commitment),
            "artifact_digest": b64(bundle.artifact_digest),
            "proof_digest": b64(bundle.proof_digest),
        },
    )
    await net.run_beacon()  # the validators are drawn from the next beacon epoch


def _copy(bundle: ResultBundle, *, job_id: str, node: Identity) -> ResultBundle:
    """Another node's proof bytes, wrapped in the copier's own signed manifest."""
    original = decode_manifest(bundle.artifact, HONEST.id)
    assert original is not None
    manifest = msgspec.structs.replace(original, job_id=job_id, node_id=node.id)
    assert isinstance(manifest, ResultManifest)
    return ResultBundle(
        job_id=job_id,
        commitment=bundle.commitment,
        artifact=sign_manifest(manifest, node),
        proof=bundle.proof,
    )


async def _validators_judge(net: LocalNetwork, job_id: str, bundle: ResultBundle) -> str:
    """Every drawn validator runs the real check on what the node committed, under the
    network's policy, and votes it."""
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    code = _check(job, bundle, insecure_setups_allowed=net.policy.insecure_setups_allowed)
    drawn = [k for k in VALIDATORS if k.identity.id in job.validators]
    await net.vote_round(job_id, [(keys, code == "ok") for keys in drawn], reason=code)
    return code


def _check(job: Job, bundle: ResultBundle, *, insecure_setups_allowed: bool) -> str:
    return verify_result(
        job_id=job.id,
        node_id=job.node_id,
        kind="zk-prove",
        raw_params=dict(job.workload.params),
        commitment=bundle.commitment,
        artifact_digest=bundle.artifact_digest,
        proof_digest=bundle.proof_digest,
        artifact=bundle.artifact,
        proof=bundle.proof,
        openings_seed=job.openings_seed,  # a zk proof is checked whole: no openings
        insecure_setups_allowed=insecure_setups_allowed,
    )


async def test_a_proof_copied_from_another_job_is_rejected_and_slashed() -> None:
    net = await _network()
    first, second = await _submit(net, PARAMS), await _submit(net, PARAMS)
    await net.run(HONEST, "job.claim", {"job_id": first, "node_id": HONEST.id})
    honest = execute_workload(first, "zk-prove", PARAMS, HONEST, CPU)
    await _commit(net, HONEST, honest)
    assert await _validators_judge(net, first, honest) == "ok"
    net.advance(10)
    await net.run(COPIER, "job.claim", {"job_id": second, "node_id": COPIER.id})
    copied = _copy(honest, job_id=second, node=COPIER)
    await _commit(net, COPIER, copied)

    code = await _validators_judge(net, second, copied)

    assert code == "proof_invalid"
    job = await get_aggregate(net.store, Job, second)
    assert job is not None and job.state == SUBMITTED and COPIER.id in job.excluded_nodes
    slashed = NODE_STAKE * POLICY.slash_bps // 10_000
    assert await get_balance(net, stake_account(COPIER.id)) == NODE_STAKE - slashed
    first_job = await get_aggregate(net.store, Job, first)
    assert first_job is not None and first_job.state == SETTLED
    assert await get_money_total(net) == 0


async def test_a_proof_copied_from_another_node_on_the_same_job_is_rejected() -> None:
    """The honest node proves, then hands the job back; the copier claims it and ships the
    honest node's proof as its own."""
    net = await _network()
    job_id = await _submit(net, PARAMS)
    await net.run(HONEST, "job.claim", {"job_id": job_id, "node_id": HONEST.id})
    honest = execute_workload(job_id, "zk-prove", PARAMS, HONEST, CPU)
    await net.run(HONEST, "job.release", {"job_id": job_id, "reason": "shutting down"})
    net.advance(10)
    await net.run(COPIER, "job.claim", {"job_id": job_id, "node_id": COPIER.id})
    copied = _copy(honest, job_id=job_id, node=COPIER)
    await _commit(net, COPIER, copied)

    code = await _validators_judge(net, job_id, copied)

    assert code == "proof_invalid"
    slashed = NODE_STAKE * POLICY.slash_bps // 10_000
    assert await get_balance(net, stake_account(COPIER.id)) == NODE_STAKE - slashed
    assert await get_money_total(net) == 0


async def test_a_setup_seed_job_is_refused_without_insecure_setups_allowed() -> None:
    """Under the default policy: refused at submit, the consumer's money untouched."""
    net = await LocalNetwork.start(MemoryEventStore(), policy=POLICY)
    await net.deposit(CONSUMER, 10_000)

    with pytest.raises(Rejection) as info:
        await _submit(net, PARAMS)

    assert info.value.code == "insecure_setup_not_allowed"
    assert await get_balance(net, user_account(CONSUMER.id)) == 10_000
    assert await get_money_total(net) == 0


async def test_validators_refuse_setup_seed_proofs_unless_the_policy_allows_them() -> None:
    """An honest proof on setup_seed keys (a ledger that let the job in, or a policy changed
    since): the validators' check refuses it where the policy does not allow such keys."""
    net = await _network()
    job_id = await _submit(net, PARAMS)
    await net.run(HONEST, "job.claim", {"job_id": job_id, "node_id": HONEST.id})
    honest = execute_workload(job_id, "zk-prove", PARAMS, HONEST, CPU)
    await _commit(net, HONEST, honest)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None

    assert _check(job, honest, insecure_setups_allowed=True) == "ok"
    assert _check(job, honest, insecure_setups_allowed=False) == "insecure_setup"
