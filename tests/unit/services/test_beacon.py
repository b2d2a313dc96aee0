"""The randomness beacon through the command bus: who may contribute, when an epoch closes,
which epoch a request waits for, what its value is, and the draws it seeds."""

from __future__ import annotations

import hashlib
import struct

import pytest

from adapters.store.memory import MemoryEventStore
from domain.beacon import Beacon, compute_beacon_message
from domain.errors import Rejection
from domain.job import RESULT_COMMITTED, SETTLED, Job
from domain.policy import SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, b64, make_validator_keys
from proofs import bls
from proofs.identity import Identity

NODE, CONSUMER, OUTSIDER = (Identity.from_seed(bytes([i]) * 32) for i in (121, 122, 123))
VALIDATORS = [make_validator_keys(120 + i) for i in range(4)]
POLICY = LedgerPolicy(
    validator_stake_min=500,
    verdict_commit_window_ns=10 * SECOND_NS,
    verdict_reveal_window_ns=10 * SECOND_NS,
    beacon_window_ns=30 * SECOND_NS,
)
TAG = b"flopledger/beacon/v1"


async def _network(validators: list[ValidatorKeys] = VALIDATORS[:3]) -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=POLICY)
    await net.deposit(NODE, 100_000)
    await net.register_active_node(NODE, region="eu-west", price=10, stake=50_000)
    for keys in validators:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 100_000)
    return net


async def _committed(net: LocalNetwork) -> str:
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=100)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, b"\x07" * 32, beacon=False)
    return job_id


async def _beacon(net: LocalNetwork) -> Beacon:
    beacon = await net.get_beacon()
    assert beacon is not None
    return beacon


async def _job(net: LocalNetwork, job_id: str) -> Job:
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    return job


async def _refused(net: LocalNetwork, actor: Identity, kind: str, body: dict[str, object]) -> str:
    with pytest.raises(Rejection) as info:
        await net.run(actor, kind, body)
    return str(info.value.code)


async def test_a_commit_waits_for_the_epoch_and_the_last_contribution_draws() -> None:
    net = await _network()
    job_id = await _committed(net)
    job = await _job(net, job_id)
    assert job.state == RESULT_COMMITTED and job.validators == () and not job.openings_seed
    for keys in VALIDATORS[:2]:
        await net.contribute_beacon(keys)
    assert (await _job(net, job_id)).validators == ()
    await net.contribute_beacon(VALIDATORS[2])
    job = await _job(net, job_id)
    assert len(job.validators) == 3 and len(job.openings_seed) == 32


async def test_the_epoch_value_is_the_hash_of_its_contributions_in_snapshot_order() -> None:
    net = await _network()
    await _committed(net)
    opened = (await _beacon(net)).open_epoch
    assert opened is not None
    signatures = {}
    for keys in reversed(VALIDATORS[:3]):  # contribution order does not matter
        message = TAG + struct.pack(">Q", opened.number) + opened.previous_value
        signatures[keys.identity.id] = bls.sign(keys.bls_secret, message)
        await net.contribute_beacon(keys)
    expected = hashlib.sha256(TAG + opened.previous_value + struct.pack(">Q", opened.number))
    for participant in opened.participants:
        expected.update(b"\x01" + signatures[participant.validator_id])
    beacon = await _beacon(net)
    assert beacon.last_epoch == opened.number and beacon.last_value == expected.digest()


async def test_only_a_snapshot_validator_contributes_once_with_its_unique_signature() -> None:
    net = await _network(VALIDATORS[:3])
    await _committed(net)
    epoch = (await _beacon(net)).open_epoch
    assert epoch is not None
    # Registered after the epoch opened: not in its snapshot.
    late = VALIDATORS[3]
    await net.deposit(late.identity, 1_000)
    await net.register_validator(late, stake=1_000)
    message = compute_beacon_message(epoch.number, epoch.previous_value)
    body = {"epoch": epoch.number, "signature": b64(bls.sign(late.bls_secret, message))}
    assert await _refused(net, late.identity, "beacon.contribute", body) == (
        "beacon_not_a_contributor"
    )
    keys = VALIDATORS[0]
    wrong = {"epoch": epoch.number, "signature": b64(bls.sign(keys.bls_secret, b"chosen"))}
    assert await _refused(net, keys.identity, "beacon.contribute", wrong) == (
        "beacon_signature_invalid"
    )
    await net.contribute_beacon(keys)
    again = {"epoch": epoch.number, "signature": b64(bls.sign(keys.bls_secret, message))}
    assert await _refused(net, keys.identity, "beacon.contribute", again) == (
        "beacon_already_contributed"
    )
    stale = {"epoch": epoch.number + 1, "signature": again["signature"]}
    assert await _refused(net, keys.identity, "beacon.contribute", stale) == (
        "beacon_epoch_not_open"
    )


async def test_anyone_closes_after_the_deadline_and_the_missing_are_named() -> None:
    net = await _network()
    job_id = await _committed(net)
    epoch = (await _beacon(net)).open_epoch
    assert epoch is not None
    await net.contribute_beacon(VALIDATORS[0])
    body = {"epoch": epoch.number}
    assert await _refused(net, OUTSIDER, "beacon.close", body) == "beacon_deadline_not_reached"
    net.now_ns = epoch.deadline_ns + 1
    await net.run(OUTSIDER, "beacon.close", body)
    closed = [
        r for r in await net.store.read_stream("network:beacon") if r.event_type == "EpochClosed"
    ]
    assert len(closed) == 1 and VALIDATORS[1].identity.id.encode() in closed[0].data
    assert len((await _job(net, job_id)).validators) == 3
    # The job is judged as usual.
    keys = {k.identity.id: k for k in VALIDATORS}
    await net.vote_round(job_id, [(keys[v], True) for v in (await _job(net, job_id)).validators])
    assert (await _job(net, job_id)).state == SETTLED


async def test_a_request_after_a_contribution_waits_for_the_next_epoch() -> None:
    """Whoever asks knows no contribution of the epoch that seeds it."""
    net = await _network()
    first = await _committed(net)
    epoch = (await _beacon(net)).open_epoch
    assert epoch is not None
    await net.contribute_beacon(VALIDATORS[0])
    second = await _committed(net)
    beacon = await _beacon(net)
    assert [w.aggregate_id for w in beacon.queued] == [second]
    for keys in VALIDATORS[1:3]:
        await net.contribute_beacon(keys)
    beacon = await _beacon(net)
    assert beacon.last_epoch == epoch.number and (await _job(net, first)).validators
    assert beacon.open_epoch is not None and beacon.open_epoch.number == epoch.number + 1
    assert (await _job(net, second)).validators == ()
    await net.run_beacon()
    assert (await _job(net, second)).validators


async def test_the_providers_own_validator_is_never_drawn() -> None:
    """Attack 9's exclusion, in the draw: a validator owned by the node's owner."""
    net = await _network(VALIDATORS[:3])
    own = VALIDATORS[3]
    await net.deposit(own.identity, 1_000)  # rules v4: it registers with its stake
    await net.run(
        own.identity,
        "validator.register",
        {
            "owner": NODE.id,
            "bls_public_key": b64(own.bls_public),
            "proof_of_possession": b64(bls.pop_prove(own.bls_secret)),
            "stake": 1_000,
        },
    )
    net.validator_keys[own.identity.id] = own
    others = {k.identity.id for k in VALIDATORS[:3]}
    keys = {k.identity.id: k for k in VALIDATORS}
    for _ in range(6):
        job_id = await _committed(net)
        await net.run_beacon()
        job = await _job(net, job_id)
        assert set(job.validators) == others
        await net.vote_round(job_id, [(keys[v], True) for v in job.validators])
