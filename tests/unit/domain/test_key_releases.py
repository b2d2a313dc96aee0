"""Encryption keys and job key releases (issue 17, item 2; rules v5), through the command bus:
given a private job, when a key is released (or the claim lapses), then the records, the
refusals by code, and a history the audit re-executes byte for byte."""

from __future__ import annotations

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.encryption_keys import EncryptionKey, compute_encryption_key_id
from domain.errors import Rejection
from domain.job import CLAIMED, SUBMITTED
from domain.key_releases import get_key_releases
from domain.node import Node
from domain.policy import RULES_V4, SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, b64, make_validator_keys
from proofs.encryption_keys import derive_encryption_keypair
from proofs.identity import Identity
from proofs.sealed_object import new_data_key, unwrap_key
from tests.forgery import replay
from tests.private_jobs import (
    Release,
    claim,
    get_job,
    register_encryption_key,
    release_body,
    release_key,
    submit_private_job,
    validator_identity,
)
from validator.audit import REEXECUTION

POLICY = LedgerPolicy(
    node_stake_min=1_000,
    validator_stake_min=500,
    verdict_commit_window_ns=10 * SECOND_NS,
    verdict_reveal_window_ns=10 * SECOND_NS,
)
NODE, CONSUMER, STRANGER = (Identity.from_seed(bytes([i]) * 32) for i in (171, 172, 173))
VALIDATORS = [make_validator_keys(174 + i) for i in range(3)]
WINDOW_S = POLICY.key_release_window_ns / SECOND_NS


async def _network(policy: LedgerPolicy = POLICY) -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=policy)
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, gpus=2, region="eu-west", price=400, stake=5_000)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 5_000)
    return net


async def _keyed_network() -> LocalNetwork:
    net = await _network()
    for actor in (NODE, CONSUMER, STRANGER, *(k.identity for k in VALIDATORS)):
        await register_encryption_key(net, actor)
    return net


async def _code(coro: object) -> str:
    with pytest.raises(Rejection) as refused:
        await coro  # type: ignore[misc]
    return str(refused.value.code)


async def test_register_then_rotate_the_signers_key() -> None:
    net = await _network()
    first = await register_encryption_key(net, CONSUMER)
    key = await get_aggregate(net.store, EncryptionKey, compute_encryption_key_id(CONSUMER.id))
    assert key is not None and (key.actor, key.public_key, key.rotations) == (CONSUMER.id, first, 0)
    again = net.run(CONSUMER, "key.register", {"public_key": b64(first)})
    assert await _code(again) == "encryption_key_unchanged"
    await net.run(CONSUMER, "key.register", {"public_key": b64(b"\x09" * 32)})
    key = await get_aggregate(net.store, EncryptionKey, compute_encryption_key_id(CONSUMER.id))
    assert key is not None and (key.public_key, key.rotations) == (b"\x09" * 32, 1)


async def test_key_commands_need_rules_v5() -> None:
    net = await _network(msgspec.structs.replace(POLICY, rules_version=RULES_V4))
    refused = net.run(CONSUMER, "key.register", {"public_key": b64(b"\x01" * 32)})
    assert await _code(refused) == "rules_v5_required"


async def test_consumer_releases_the_inputs_key_to_its_node_who_unwraps_it() -> None:
    net = await _keyed_network()
    job_id = await submit_private_job(net, CONSUMER)
    job = await claim(net, NODE, job_id)
    data_key = new_data_key()
    await release_key(net, CONSUMER, Release(job_id, job.attempt, NODE, "inputs", data_key))

    job = await get_job(net, job_id)
    [release] = get_key_releases(job)
    assert (release.sender, release.recipient, release.purpose) == (CONSUMER.id, NODE.id, "inputs")
    node_private = derive_encryption_keypair(NODE)[0]
    opened = unwrap_key(release.wrapped, node_private, job_id=job_id, purpose="inputs")
    assert opened == data_key
    [view] = job.view()["key_releases"]  # type: ignore[misc]
    assert view["recipient"] == NODE.id and view["wrapped"] == release.wrapped.hex()


async def test_node_wraps_to_the_drawn_validators_and_the_result_key_to_the_consumer() -> None:
    net = await _keyed_network()
    job_id = await submit_private_job(net, CONSUMER)
    job = await claim(net, NODE, job_id)
    inputs, result = new_data_key(), new_data_key()
    await release_key(net, CONSUMER, Release(job_id, job.attempt, NODE, "inputs", inputs))
    await net.commit_result(NODE, job_id, b"\x42" * 32)
    job = await get_job(net, job_id)
    assert job.validators
    first, *others = (validator_identity(VALIDATORS, v) for v in job.validators)
    # The consumer may hand its own inputs key to a drawn validator; the node does the rest.
    await release_key(net, CONSUMER, Release(job_id, job.attempt, first, "inputs", inputs))
    for drawn in others:
        await release_key(net, NODE, Release(job_id, job.attempt, drawn, "inputs", inputs))
    for drawn in (first, *others):
        await release_key(net, NODE, Release(job_id, job.attempt, drawn, "result", result))
    await release_key(net, NODE, Release(job_id, job.attempt, CONSUMER, "result", result))

    job = await get_job(net, job_id)
    assert len(get_key_releases(job)) == 1 + 2 * len(job.validators) + 1
    consumer_private = derive_encryption_keypair(CONSUMER)[0]
    [to_consumer] = [r for r in get_key_releases(job) if r.recipient == CONSUMER.id]
    assert unwrap_key(to_consumer.wrapped, consumer_private, job_id=job_id, purpose="result") == (
        result
    )


@pytest.mark.parametrize(
    ("sender", "recipient", "purpose", "code"),
    [
        ("stranger", "node", "inputs", "key_release_sender_unauthorized"),
        ("consumer", "stranger", "inputs", "key_release_recipient_not_allowed"),
        ("consumer", "node", "result", "key_release_recipient_not_allowed"),
        ("node", "consumer", "result", "key_release_recipient_not_allowed"),  # nothing committed
        ("node", "stranger", "inputs", "key_release_recipient_not_allowed"),
    ],
)
async def test_who_may_release_what_to_whom_while_claimed(
    sender: str, recipient: str, purpose: str, code: str
) -> None:
    actors = {"consumer": CONSUMER, "node": NODE, "stranger": STRANGER}
    net = await _keyed_network()
    job_id = await submit_private_job(net, CONSUMER)
    job = await claim(net, NODE, job_id)
    release = Release(job_id, job.attempt, actors[recipient], purpose, new_data_key())
    assert await _code(release_key(net, actors[sender], release)) == code
    assert get_key_releases(await get_job(net, job_id)) == ()


async def test_refusals_in_order_not_private_stale_attempt_unregistered_wrong_key_twice() -> None:
    net = await _network()
    await register_encryption_key(net, CONSUMER)
    public_job = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await claim(net, NODE, public_job)
    plain = Release(public_job, 1, NODE, "inputs", new_data_key())
    assert await _code(release_key(net, CONSUMER, plain)) == "job_not_private"

    job_id = await submit_private_job(net, CONSUMER)
    await claim(net, NODE, job_id)
    stale = Release(job_id, 2, NODE, "inputs", new_data_key())
    assert await _code(release_key(net, CONSUMER, stale)) == "key_release_attempt_mismatch"
    release = Release(job_id, 1, NODE, "inputs", new_data_key())
    assert await _code(release_key(net, CONSUMER, release)) == "encryption_key_not_registered"
    await register_encryption_key(net, NODE)
    wrong = net.run(CONSUMER, "job.release_key", release_body(release, recipient_key=b"\x07" * 32))
    assert await _code(wrong) == "recipient_key_mismatch"
    await release_key(net, CONSUMER, release)
    assert await _code(release_key(net, CONSUMER, release)) == "key_already_released"


async def test_a_wrapped_key_out_of_bounds_is_refused_at_the_door() -> None:
    net = await _keyed_network()
    job_id = await submit_private_job(net, CONSUMER)
    await claim(net, NODE, job_id)
    release = Release(job_id, 1, NODE, "inputs", new_data_key())
    for size in (47, 257):
        body = release_body(release, wrapped=b"\x01" * size)
        assert await _code(net.run(CONSUMER, "job.release_key", body)) == "command_body_invalid"
    await net.run(CONSUMER, "job.release_key", release_body(release, wrapped=b"\x01" * 48))
    other = await submit_private_job(net, CONSUMER)
    await claim(net, NODE, other)
    at_max = Release(other, 1, NODE, "inputs", new_data_key())
    await net.run(CONSUMER, "job.release_key", release_body(at_max, wrapped=b"\x01" * 256))


async def test_an_inputs_key_after_the_window_is_refused_and_the_claim_lapses() -> None:
    net = await _keyed_network()
    job_id = await submit_private_job(net, CONSUMER)
    job = await claim(net, NODE, job_id)
    net.advance(WINDOW_S)
    release = Release(job_id, job.attempt, NODE, "inputs", new_data_key())
    await release_key(net, CONSUMER, release)  # at the window's end: still in time
    assert (await get_job(net, job_id)).state == CLAIMED

    late_job = await submit_private_job(net, CONSUMER)
    await claim(net, NODE, late_job)
    net.advance(WINDOW_S + 1)
    late = Release(late_job, 1, NODE, "inputs", new_data_key())
    assert await _code(release_key(net, CONSUMER, late)) == "key_release_window_closed"


async def test_a_claim_without_its_inputs_key_lapses_without_blame() -> None:
    net = await _keyed_network()
    job_id = await submit_private_job(net, CONSUMER)
    await claim(net, NODE, job_id)
    net.advance(WINDOW_S / 2)
    assert await _code(net.run(STRANGER, "job.expire", {"job_id": job_id})) == "result_window_open"
    net.advance(WINDOW_S / 2 + 1)
    await net.run(STRANGER, "job.expire", {"job_id": job_id})

    job = await get_job(net, job_id)
    assert (job.state, job.attempt, job.node_id) == (SUBMITTED, 0, "")
    assert NODE.id not in job.excluded_nodes
    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None and job_id not in node.claims and node.slashed_total == 0
    again = await claim(net, NODE, job_id)  # the node may take it again, as attempt 1
    assert (again.state, again.attempt) == (CLAIMED, 1)


async def test_a_claim_with_its_inputs_key_does_not_lapse() -> None:
    net = await _keyed_network()
    job_id = await submit_private_job(net, CONSUMER)
    await claim(net, NODE, job_id)
    await release_key(net, CONSUMER, Release(job_id, 1, NODE, "inputs", new_data_key()))
    net.advance(WINDOW_S + 1)
    assert await _code(net.run(STRANGER, "job.expire", {"job_id": job_id})) == "result_window_open"


async def test_the_history_reexecutes_byte_for_byte() -> None:
    net = await _keyed_network()
    job_id = await submit_private_job(net, CONSUMER)
    await claim(net, NODE, job_id)
    await release_key(net, CONSUMER, Release(job_id, 1, NODE, "inputs", new_data_key()))
    lapsing = await submit_private_job(net, CONSUMER, deadline_s=WINDOW_S / 2)
    await claim(net, NODE, lapsing)
    net.advance(WINDOW_S + 1)
    await net.run(STRANGER, "job.expire", {"job_id": lapsing})  # lapses past its deadline
    await net.run(CONSUMER, "key.register", {"public_key": b64(b"\x05" * 32)})

    records = await net.store.read_all(1, 10_000)
    kinds = {r.event_type for r in records}
    assert {"KeyReleased", "ClaimLapsed", "EncryptionKeyRotated", "JobRefunded"} <= kinds
    replayer = replay(records, reexecute=True)
    assert replayer.reexecution is not None and replayer.reexecution.not_reexecuted == 0
    assert replayer.counts[REEXECUTION] == replayer.commands
