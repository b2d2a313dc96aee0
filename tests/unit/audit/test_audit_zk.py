"""The audit's zk-key rule (issue 14, attack 8): under rules v2 a ``JobSubmitted`` naming
``setup_seed`` keys needs a policy with ``insecure_setups_allowed``. A forger who turns a job
into one on such keys, and re-chains the hashes, fails ``authorization`` at that record; a
devnet-like policy's zk jobs and a rules v1 history pass."""

from __future__ import annotations

import pytest

from adapters.store.memory import MemoryEventStore
from domain.policy import RULES_V1, SECOND_NS, LedgerPolicy
from domain.records import Record
from flopledger.network import LocalNetwork
from proofs.identity import Identity
from tests.forgery import forge, replay
from validator.audit import AUTHORIZATION, AuditFailed

CONSUMER = Identity.from_seed(bytes([121]) * 32)
ZK_WORKLOAD = {
    "kind": "zk-prove",
    "gpu_class_min": "cpu",
    "params": {"circuit": "poseidon_preimage", "inputs": '{"a": 1, "b": 2}', "setup_seed": 4},
}


async def _history(policy: LedgerPolicy, workload: dict[str, object]) -> list[Record]:
    net = LocalNetwork.create(MemoryEventStore(), policy=policy)
    await net.deposit(CONSUMER, 5_000)
    await net.run(
        CONSUMER,
        "job.submit",
        {
            "workload": workload,
            "max_price": 1_000,
            "region": "eu-west",
            "redundancy": 3,
            "deadline_ns": net.now_ns + 3_600 * SECOND_NS,
        },
    )
    return await net.store.read_all(1, 10_000)


MATMUL = {"kind": "matmul", "gpu_class_min": "cpu", "params": {"n": 8}}


async def test_a_devnet_like_policy_accepts_setup_seed_jobs() -> None:
    replay(await _history(LedgerPolicy(insecure_setups_allowed=True), ZK_WORKLOAD))


async def test_a_setup_seed_job_forged_into_a_secure_history_fails() -> None:
    records = await _history(LedgerPolicy(), MATMUL)
    forged = forge(records, "JobSubmitted", every=True, workload=ZK_WORKLOAD)

    with pytest.raises(AuditFailed) as info:
        replay(forged)

    assert info.value.check == AUTHORIZATION
    assert forged[info.value.position - 1].event_type == "JobSubmitted"


async def test_a_rules_v1_history_keeps_its_rules() -> None:
    records = await _history(LedgerPolicy(rules_version=RULES_V1), MATMUL)
    replay(forge(records, "JobSubmitted", every=True, workload=ZK_WORKLOAD))
