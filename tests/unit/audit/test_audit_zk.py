"""The audit's zk-key rule (issue 14, attack 8): under rules v2 a ``JobSubmitted`` naming
``setup_seed`` keys needs a policy with ``insecure_setups_allowed``. A forger who turns a job
into one on such keys, and re-chains the hashes, fails ``authorization`` at that record; a
devnet-like policy's zk jobs and a rules v1 history pass."""

from __future__ import annotations

import json

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.policy import RULES_V1, SECOND_NS, LedgerPolicy
from domain.records import GENESIS_HASH, Record, make_record
from flopledger.network import LocalNetwork
from proofs.identity import Identity
from validator.audit import AUTHORIZATION, AuditFailed, AuditOptions, Replayer

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
    _audit(await _history(LedgerPolicy(insecure_setups_allowed=True), ZK_WORKLOAD))


async def test_a_setup_seed_job_forged_into_a_secure_history_fails() -> None:
    records = await _history(LedgerPolicy(), MATMUL)
    forged = _edit(records, "JobSubmitted", workload=ZK_WORKLOAD)

    with pytest.raises(AuditFailed) as info:
        _audit(forged)

    assert info.value.check == AUTHORIZATION
    assert forged[info.value.position - 1].event_type == "JobSubmitted"


async def test_a_rules_v1_history_keeps_its_rules() -> None:
    records = await _history(LedgerPolicy(rules_version=RULES_V1), MATMUL)
    _audit(_edit(records, "JobSubmitted", workload=ZK_WORKLOAD))


def _audit(records: list[Record]) -> None:
    replayer = Replayer(AuditOptions())
    for record in records:
        replayer.feed(record)
    replayer.end_command()


def _edit(records: list[Record], event_type: str, **changes: object) -> list[Record]:
    edited = [_edited(r, **changes) if r.event_type == event_type else r for r in records]
    sealed, prev = [], GENESIS_HASH
    for record in edited:
        new = make_record(prev, record.body())
        sealed.append(new)
        prev = new.hash
    return sealed


def _edited(record: Record, **changes: object) -> Record:
    data = {**json.loads(record.data), **changes}
    return msgspec.structs.replace(record, data=json.dumps(data, sort_keys=True).encode())
