"""The validator daemon on zk-prove jobs (issue 14, attack 8): it follows the network's rules
and judges a ``setup_seed`` proof under the policy its job was submitted under (copied proofs:
tests/adversarial/test_zk_proof_copied.py)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import torch

from adapters.compute.results import ResultBundle, execute_workload
from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.job import SETTLED, Job
from domain.policy import SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, b64, encode_genesis_body
from proofs.identity import Identity
from tests.unit.validator.test_daemon import KEYS, POLICY, DictArtifacts, Harness
from validator.state import LedgerView

EU, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (64, 65))
PARAMS = {"circuit": "poseidon_preimage", "inputs": json.dumps({"a": 3, "b": 4}), "setup_seed": 5}
DEVNET_LIKE = msgspec.structs.replace(POLICY, insecure_setups_allowed=True)


async def _network() -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=DEVNET_LIKE)
    await net.deposit(EU, 10_000)
    await net.register_active_node(EU, region="eu-west", price=400, stake=5_000)
    for keys in KEYS:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 50_000)
    return net


async def _submit(net: LocalNetwork) -> str:
    result = await net.run(
        CONSUMER,
        "job.submit",
        {
            "workload": {"kind": "zk-prove", "params": PARAMS},
            "max_price": 1_000,
            "region": "eu-west",
            "redundancy": 3,
            "deadline_ns": net.now_ns + 3_600 * SECOND_NS,
        },
    )
    return result.subject


async def _claim_and_commit(net: LocalNetwork, job_id: str, artifacts: DictArtifacts) -> None:
    await net.run(EU, "job.claim", {"job_id": job_id, "node_id": EU.id})
    bundle: ResultBundle = execute_workload(job_id, "zk-prove", PARAMS, EU, torch.device("cpu"))
    await net.run(
        EU,
        "job.commit_result",
        {
            "job_id": job_id,
            "commitment": b64(bundle.commitment),
            "artifact_digest": b64(artifacts.put(bundle.artifact)),
            "proof_digest": b64(artifacts.put(bundle.proof)),
        },
    )


async def test_setup_seed_proofs_are_judged_under_the_policy_of_their_submission(
    tmp_path: Path,
) -> None:
    net, artifacts = await _network(), DictArtifacts()
    harness = Harness(net, artifacts, tmp_path)
    first = await _submit(net)
    await _claim_and_commit(net, first, artifacts)
    await harness.step()
    assert (await get_aggregate(net.store, Job, first)).state == SETTLED  # type: ignore[union-attr]

    # Submitted while allowed, proved after the operators forbade such keys: still honest.
    second = await _submit(net)
    secure = encode_genesis_body(POLICY)["policy"]
    await net.run(net.operator, "network.change_policy", {"policy": secure})
    with pytest.raises(Rejection) as info:
        await _submit(net)
    assert info.value.code == "insecure_setup_not_allowed"
    net.advance(10)
    await _claim_and_commit(net, second, artifacts)
    await harness.step()

    job = await get_aggregate(net.store, Job, second)
    assert job is not None and job.state == SETTLED
    assert all(d.view.rules.current.insecure_setups_allowed is False for d in harness.daemons)


async def test_the_view_refuses_setup_seed_without_a_genesis_or_a_known_submission() -> None:
    net = await _network()
    job_id = await _submit(net)
    view = LedgerView()
    assert view.is_insecure_setup_allowed(job_id) is False  # nothing followed yet

    for record in await net.store.read_all(1, 10_000):
        view.apply(record)

    assert view.is_insecure_setup_allowed(job_id) is True
    assert view.is_insecure_setup_allowed("job-unknown") is False
    assert LedgerPolicy().insecure_setups_allowed is False  # the default policy refuses
