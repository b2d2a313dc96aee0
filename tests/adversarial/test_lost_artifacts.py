"""Issue 16, item 6: a missing artifact is not the node's fault once it recorded it as stored.

Before: anyone could delete or overwrite a node's artifact in the object store, validators
then voted ``artifact_unavailable`` and the honest node was slashed. Now the store is
write-once and only the operator deletes (``tests/integration/nats/test_permissions.py``),
the node records each upload (``object.record_stored``, rules v4), and a rejection whose
every signer says ``artifact_lost`` about artifacts the node recorded slashes nobody: the
job goes back to the market. The attacks: validators excusing a node that recorded nothing,
a lone ``artifact_lost`` among signers who read a wrong result, a record of someone else's
upload, and the record under old rules: each is refused or still slashes.
"""

from __future__ import annotations

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.job import RESULT_COMMITTED, SUBMITTED, Job
from domain.ledger import stake_account, user_account
from domain.node import Node
from domain.objects import ARTIFACT_LOST_REASON, StoredObject, compute_object_id
from domain.policy import RULES_V3, RULES_V4
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from tests.adversarial._harness import POLICY, get_balance, get_money_total, start_network
from tests.forgery import b64

NODE, CONSUMER, OTHER = (Identity.from_seed(bytes([i]) * 32) for i in (121, 122, 123))
VALIDATORS = [make_validator_keys(124 + i) for i in range(3)]
RESULT = b"\x42" * 32
NODE_STAKE = 5_000


async def _network() -> LocalNetwork:
    net = await start_network()
    return await _populate(net)


async def _populate(net: LocalNetwork) -> LocalNetwork:
    for node in (NODE, OTHER):
        await net.deposit(node, 10_000)
        await net.register_active_node(node, region="eu-west", price=400, stake=NODE_STAKE)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 5_000)
    return net


async def _record_stored(net: LocalNetwork, signer: Identity, uploader: str) -> None:
    await net.run(
        signer,
        "object.record_stored",
        {"digest": b64(RESULT), "size_bytes": 4096, "uploader": uploader},
    )


async def _judge(net: LocalNetwork, reasons: list[str]) -> Job:
    """A job claimed and committed by NODE, failed by every drawn validator with ``reasons``."""
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, RESULT)
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    drawn = [next(k for k in VALIDATORS if k.identity.id == v) for v in job.validators]
    salts = [await net.commit_vote(keys, job_id, False) for keys in drawn]
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.round is not None
    net.now_ns = job.round.commit_deadline_ns + 1
    for keys, salt, reason in zip(drawn, salts, reasons, strict=False):
        await net.reveal_vote(keys, job_id, False, salt, reason)
        job = await get_aggregate(net.store, Job, job_id)
        assert job is not None
        if job.state != RESULT_COMMITTED:
            return job
    raise AssertionError("the round did not decide")


async def _node_stake(net: LocalNetwork) -> int:
    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None
    return await get_balance(net, stake_account(node.owner))


async def test_a_recorded_artifact_lost_by_the_store_slashes_nobody() -> None:
    net = await _network()
    await _record_stored(net, NODE, NODE.id)
    stored = await get_aggregate(net.store, StoredObject, compute_object_id(RESULT, NODE.id))
    assert stored is not None and (stored.uploader, stored.size_bytes) == (NODE.id, 4096)
    stake_before = await _node_stake(net)

    job = await _judge(net, [f"{ARTIFACT_LOST_REASON}: ArtifactNotFound"] * 3)

    assert job.state == SUBMITTED  # back on the market
    assert await _node_stake(net) == stake_before
    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None and node.slashed_total == 0
    assert await get_money_total(net) == 0


async def test_validators_cannot_excuse_a_node_that_recorded_nothing() -> None:
    net = await _network()
    stake_before = await _node_stake(net)

    await _judge(net, [ARTIFACT_LOST_REASON] * 3)

    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None and node.slashed_total > 0
    assert await _node_stake(net) < stake_before
    assert await get_money_total(net) == 0


async def test_one_signer_who_read_a_wrong_result_makes_the_rejection_the_nodes() -> None:
    net = await _network()
    await _record_stored(net, NODE, NODE.id)

    await _judge(net, ["commitment_mismatch", ARTIFACT_LOST_REASON, ARTIFACT_LOST_REASON])

    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None and node.slashed_total > 0
    assert await get_money_total(net) == 0


async def test_a_record_of_another_uploaders_object_is_refused() -> None:
    net = await _network()
    with pytest.raises(Rejection) as mismatch:
        await _record_stored(net, OTHER, NODE.id)
    assert mismatch.value.code == "object_uploader_mismatch"
    await _record_stored(net, NODE, NODE.id)
    with pytest.raises(Rejection) as again:
        await _record_stored(net, NODE, NODE.id)
    assert again.value.code == "object_already_recorded"


async def test_before_rules_v5_only_nodes_and_operators_record_and_from_v5_anyone_pays() -> None:
    """Rules v4: a consumer's record is refused; rules v5 (issue 17): a consumer records its
    own inputs, paying the log fee, and its record excuses no node's loss (one record per
    uploader)."""
    old = await _populate(
        await LocalNetwork.start(
            MemoryEventStore(), policy=msgspec.structs.replace(POLICY, rules_version=RULES_V4)
        )
    )
    with pytest.raises(Rejection) as unknown:
        await _record_stored(old, CONSUMER, CONSUMER.id)
    assert unknown.value.code == "object_uploader_unknown"
    net = await _network()
    before = await get_balance(net, user_account(CONSUMER.id))
    await _record_stored(net, CONSUMER, CONSUMER.id)
    assert await get_balance(net, user_account(CONSUMER.id)) == before - POLICY.log_fee
    assert await get_money_total(net) == 0


async def test_the_record_needs_rules_v4() -> None:
    old = msgspec.structs.replace(POLICY, rules_version=RULES_V3)
    net = await _populate(await LocalNetwork.start(MemoryEventStore(), policy=old))
    with pytest.raises(Rejection) as refused:
        await _record_stored(net, NODE, NODE.id)
    assert refused.value.code == "rules_v4_required"
