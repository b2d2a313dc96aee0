"""The door of rules v5 (issue 17): ``job.submit`` refuses params the executors cannot run,
naming the field and its bound, and inputs without an object-stored record by the job's
consumer at a size the params accept; nothing is escrowed for a refused job. Rules v4 keep
accepting what they accepted."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection, RejectionCode, Unauthorized
from domain.job import SUBMITTED, Job
from domain.ledger import TREASURY_ACCOUNT, escrow_account, user_account
from domain.policy import RULES_V4, RULES_V5, RULES_VERSION, SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate, get_balances
from flopledger.network import LocalNetwork, b64
from proofs.identity import Identity

CONSUMER = Identity.from_seed(b"door-consumer".ljust(32, b"\0"))
OTHER = Identity.from_seed(b"door-other".ljust(32, b"\0"))
FUNDS = 100_000
PRICE = 1_000
A_BYTES = 512 * 512 * 4 + 128  # a 512×512 float32 .npy as numpy writes it
A = hashlib.sha256(b"matrix a").digest()
B = hashlib.sha256(b"matrix b").digest()


async def network(policy: LedgerPolicy | None = None) -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=policy or LedgerPolicy())
    await net.deposit(CONSUMER, FUNDS)
    await net.deposit(OTHER, FUNDS)
    return net


async def record(net: LocalNetwork, uploader: Identity, digest: bytes, size: int) -> None:
    body = {"digest": b64(digest), "size_bytes": size, "uploader": uploader.id}
    await net.run(uploader, "object.record_stored", body)


async def submit(net: LocalNetwork, kind: str, params: dict[str, Any]) -> str:
    body = {
        "workload": {"kind": kind, "gpu_class_min": "cpu", "params": params},
        "max_price": PRICE,
        "region": "eu-west",
        "deadline_ns": net.now_ns + 3_600 * SECOND_NS,
    }
    return (await net.run(CONSUMER, "job.submit", body)).subject


def data_params(**overrides: Any) -> dict[str, Any]:
    return {"a": A.hex(), "b": B.hex(), "dtype": "float32", "m": 512, "k": 512, "n": 512} | (
        overrides
    )


async def refused(net: LocalNetwork, kind: str, params: dict[str, Any]) -> Rejection:
    head = await net.store.head()
    with pytest.raises(Rejection) as caught:
        await submit(net, kind, params)
    assert await net.store.head() == head  # nothing written, nothing escrowed
    return caught.value


def test_rules_v5_are_the_rules_written() -> None:
    assert RULES_VERSION == RULES_V5 == 5
    assert LedgerPolicy().rules_version == 5


async def test_an_oversized_matmul_is_refused_naming_n_and_its_bound() -> None:
    net = await network()
    rejection = await refused(net, "matmul", {"n": 999_999})
    assert rejection.code == RejectionCode.WORKLOAD_PARAMS_INVALID
    assert "$.n" in rejection.message and "4096" in rejection.message
    balances = await get_balances(net.store)
    assert balances[user_account(CONSUMER.id)].balance == FUNDS


@pytest.mark.parametrize(
    ("kind", "params", "named"),
    [
        ("matmul", {"n": 0}, "$.n"),
        ("matmul", {"n": 8, "colour": "red"}, "colour"),
        ("inference", {"depth": 9}, "$.depth"),
        ("zk-prove", {"circuit": "matvec", "inputs": "{bad", "setup_seed": 1}, "inputs"),
        ("matmul", data_params(dtype="float64"), "$.dtype"),
        ("matmul", data_params(seed="s"), "seed"),
    ],
)
async def test_invalid_params_are_refused_at_the_door(
    kind: str, params: dict[str, Any], named: str
) -> None:
    net = await network(LedgerPolicy(insecure_setups_allowed=True))
    rejection = await refused(net, kind, params)
    assert rejection.code == RejectionCode.WORKLOAD_PARAMS_INVALID
    assert named in rejection.message


async def test_rules_v4_keep_accepting_what_they_accepted() -> None:
    net = await network(LedgerPolicy(rules_version=RULES_V4))
    job_id = await submit(net, "matmul", {"n": 999_999})
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == SUBMITTED


async def test_a_data_job_with_its_inputs_recorded_by_the_consumer_is_escrowed() -> None:
    net = await network()
    await record(net, CONSUMER, A, A_BYTES)
    await record(net, CONSUMER, B, A_BYTES)
    job_id = await submit(net, "matmul", data_params())
    balances = await get_balances(net.store)
    fees = 2 * net.policy.log_fee  # a consumer's records pay the log fee (rules v5)
    consumer = balances[user_account(CONSUMER.id)]
    assert (consumer.balance, consumer.debits_pending) == (FUNDS - fees, PRICE)
    assert balances[escrow_account(job_id)].credits_pending == PRICE
    assert balances[TREASURY_ACCOUNT].balance == fees


async def test_an_input_nobody_recorded_is_refused_naming_it() -> None:
    net = await network()
    await record(net, CONSUMER, A, A_BYTES)
    rejection = await refused(net, "matmul", data_params())
    assert rejection.code == RejectionCode.JOB_INPUT_NOT_STORED
    assert B.hex() in rejection.message and "input b" in rejection.message


async def test_an_input_recorded_by_someone_else_than_the_consumer_is_refused() -> None:
    net = await network()
    await record(net, CONSUMER, A, A_BYTES)
    await record(net, OTHER, B, A_BYTES)
    rejection = await refused(net, "matmul", data_params())
    assert rejection.code == RejectionCode.JOB_INPUT_NOT_STORED


@pytest.mark.parametrize("size", [1, A_BYTES - 128, 2 * A_BYTES])
async def test_an_input_recorded_at_a_size_the_shape_cannot_have_is_refused(size: int) -> None:
    net = await network()
    await record(net, CONSUMER, A, A_BYTES)
    await record(net, CONSUMER, B, size)
    rejection = await refused(net, "matmul", data_params())
    assert rejection.code == RejectionCode.JOB_INPUT_SIZE_INVALID
    assert str(size) in rejection.message


async def test_an_encrypted_job_wants_its_inputs_sealed_sizes() -> None:
    net = await network()
    sealed = A_BYTES + 16 + 17 * 16  # header, one tag per 64 KiB chunk (17 chunks)
    await record(net, CONSUMER, A, sealed)
    await record(net, CONSUMER, B, A_BYTES)  # the plaintext's size: too small once sealed
    rejection = await refused(net, "matmul", data_params(encrypted=True))
    assert rejection.code == RejectionCode.JOB_INPUT_SIZE_INVALID
    assert "input b" in rejection.message
    net2 = await network()
    await record(net2, CONSUMER, A, sealed)
    await record(net2, CONSUMER, B, sealed)
    assert await submit(net2, "matmul", data_params(encrypted=True))


async def test_a_zk_witness_must_be_recorded_too() -> None:
    net = await network(LedgerPolicy(insecure_setups_allowed=True))
    params = {"circuit": "poseidon_preimage", "witness": A.hex(), "setup_seed": 1}
    assert (await refused(net, "zk-prove", params)).code == RejectionCode.JOB_INPUT_NOT_STORED
    await record(net, CONSUMER, A, 20)
    assert await submit(net, "zk-prove", params)


async def test_under_rules_v5_anyone_records_its_own_uploads_for_the_log_fee() -> None:
    net = await network()
    await record(net, OTHER, A, 10)
    balances = await get_balances(net.store)
    assert balances[user_account(OTHER.id)].balance == FUNDS - net.policy.log_fee
    with pytest.raises(Unauthorized) as mismatch:
        body = {"digest": b64(B), "size_bytes": 1, "uploader": CONSUMER.id}
        await net.run(OTHER, "object.record_stored", body)
    assert mismatch.value.code == RejectionCode.OBJECT_UPLOADER_MISMATCH


async def test_under_rules_v4_only_nodes_and_operators_record() -> None:
    net = await network(LedgerPolicy(rules_version=RULES_V4))
    with pytest.raises(Unauthorized) as unknown:
        await record(net, OTHER, A, 10)
    assert unknown.value.code == RejectionCode.OBJECT_UPLOADER_UNKNOWN
