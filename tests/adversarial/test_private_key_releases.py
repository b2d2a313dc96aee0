"""Issue 17, item 2: the keys of a private job, attacked with valid keys and signed commands.

A private job's data keys travel on the log, HPKE-wrapped to registered encryption keys
(``domain.key_releases``). The attacks: a stranger releasing keys for a job it has no part
in; a consumer naming a key that is not its node's (so the node "had" a key it cannot open);
a consumer who never releases (or releases late, or releases garbage) to make an honest node
forfeit its claim bond; a release replayed onto another job. Each is refused, or costs the
node nothing, with the money accounted for.
"""

from __future__ import annotations

import msgspec
import pytest

from domain.errors import Rejection
from domain.job import CLAIMED, EXPIRED, REFUNDED, SUBMITTED
from domain.key_releases import get_key_releases
from domain.ledger import stake_account, user_account
from domain.node import Node
from domain.policy import SECOND_NS
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, b64, make_validator_keys
from proofs.encryption_keys import derive_encryption_keypair
from proofs.envelope import BadSignature, EnvelopeError, sign_command
from proofs.identity import Identity
from proofs.sealed_object import SealedObjectError, new_data_key, unwrap_key, wrap_key
from tests.adversarial._harness import POLICY, get_balance, get_money_total, start_network
from tests.private_jobs import (
    Release,
    claim,
    get_job,
    register_encryption_key,
    release_body,
    submit_private_job,
)

NODE, CONSUMER, STRANGER = (Identity.from_seed(bytes([i]) * 32) for i in (181, 182, 183))
VALIDATORS = [make_validator_keys(184 + i) for i in range(3)]
NODE_STAKE = 5_000
CONSUMER_FUNDS = 5_000
MAX_PRICE = 1_000
WINDOW_S = POLICY.key_release_window_ns / SECOND_NS
RESULT_WINDOW_S = POLICY.result_window_ns / SECOND_NS


async def _network() -> LocalNetwork:
    net = await start_network()
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, gpus=2, region="eu-west", price=400, stake=NODE_STAKE)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, CONSUMER_FUNDS)
    for actor in (NODE, CONSUMER, STRANGER):
        await register_encryption_key(net, actor)
    return net


async def _refused(net: LocalNetwork, sender: Identity, body: dict[str, object]) -> str:
    with pytest.raises(Rejection) as refused:
        await net.run(sender, "job.release_key", body)
    return str(refused.value.code)


async def _node_stake(net: LocalNetwork) -> int:
    return await get_balance(net, stake_account(NODE.id))


async def _node(net: LocalNetwork) -> Node:
    node = await get_aggregate(net.store, Node, NODE.id)
    assert node is not None
    return node


async def test_a_release_by_a_stranger_is_refused() -> None:
    net = await _network()
    job_id = await submit_private_job(net, CONSUMER, max_price=MAX_PRICE)
    await claim(net, NODE, job_id)
    # The stranger signs validly and wraps a real key to the node's registered key.
    body = release_body(Release(job_id, 1, NODE, "inputs", new_data_key()))
    assert await _refused(net, STRANGER, body) == "key_release_sender_unauthorized"
    assert get_key_releases(await get_job(net, job_id)) == ()
    # Nor does its "release" stop the claim from lapsing for want of the consumer's key.
    net.advance(WINDOW_S + 1)
    await net.run(STRANGER, "job.expire", {"job_id": job_id})
    assert (await get_job(net, job_id)).state == SUBMITTED


async def test_a_release_naming_a_key_not_the_recipients_registered_one_is_refused() -> None:
    net = await _network()
    job_id = await submit_private_job(net, CONSUMER, max_price=MAX_PRICE)
    await claim(net, NODE, job_id)
    # The consumer wraps to a key of its own and names the node as recipient: had it been
    # recorded, the node would seem to have had a key it can never open.
    own_public = derive_encryption_keypair(CONSUMER)[1]
    wrapped = wrap_key(new_data_key(), own_public, job_id=job_id, purpose="inputs")
    release = Release(job_id, 1, NODE, "inputs", new_data_key())
    body = release_body(release, recipient_key=own_public, wrapped=wrapped)
    assert await _refused(net, CONSUMER, body) == "recipient_key_mismatch"
    # Rotating the node's key after the fact does not make the old wrap count either.
    stale = derive_encryption_keypair(NODE)[1]
    await net.run(NODE, "key.register", {"public_key": b64(b"\x33" * 32)})
    assert await _refused(net, CONSUMER, release_body(release, recipient_key=stale)) == (
        "recipient_key_mismatch"
    )


async def test_a_node_that_never_gets_the_key_keeps_its_bond_and_its_name() -> None:
    net = await _network()
    stake_before = await _node_stake(net)
    job_id = await submit_private_job(net, CONSUMER, max_price=MAX_PRICE)
    await claim(net, NODE, job_id)
    assert (await _node(net)).claims[job_id].claim_bond > 0
    # The consumer is offline; the node waits out the result window itself, then anyone cranks.
    net.advance(RESULT_WINDOW_S + 1)
    await net.run(STRANGER, "job.expire", {"job_id": job_id})

    job = await get_job(net, job_id)
    assert (job.state, job.attempt, job.node_id) == (SUBMITTED, 0, "")
    node = await _node(net)
    assert job_id not in node.claims and node.slashed_total == 0
    assert NODE.id not in job.excluded_nodes
    assert await _node_stake(net) == stake_before  # the whole bond is back
    # The escrow stays held for the next claim; no part of the bond was credited to the consumer.
    assert await get_balance(net, user_account(CONSUMER.id)) == CONSUMER_FUNDS
    assert await get_money_total(net) == 0


async def test_a_consumer_who_never_releases_cannot_make_an_honest_node_pay() -> None:
    net = await _network()
    stake_before = await _node_stake(net)
    job_id = await submit_private_job(net, CONSUMER, max_price=MAX_PRICE, deadline_s=WINDOW_S / 2)
    await claim(net, NODE, job_id)
    # Releasing late, to leave the node a shortened window, is refused...
    net.advance(WINDOW_S + 1)
    late = release_body(Release(job_id, 1, NODE, "inputs", new_data_key()))
    assert await _refused(net, CONSUMER, late) == "key_release_window_closed"
    # ...and the consumer's own crank past the job's deadline forfeits nothing: the claim
    # lapses, the job expires, the consumer gets its escrow back and the node its bond.
    await net.run(CONSUMER, "job.expire", {"job_id": job_id})
    job = await get_job(net, job_id)
    assert job.state in (EXPIRED, REFUNDED)
    assert (await _node(net)).slashed_total == 0
    assert await _node_stake(net) == stake_before
    assert await get_balance(net, user_account(CONSUMER.id)) == CONSUMER_FUNDS
    assert await get_money_total(net) == 0


async def test_a_key_that_does_not_open_costs_the_node_nothing_when_it_hands_the_job_back() -> None:
    net = await _network()
    stake_before = await _node_stake(net)
    job_id = await submit_private_job(net, CONSUMER, max_price=MAX_PRICE)
    await claim(net, NODE, job_id)
    # At the very end of the key window the consumer releases bytes that open to nothing.
    net.advance(WINDOW_S)
    garbage = release_body(Release(job_id, 1, NODE, "inputs", new_data_key()), wrapped=bytes(80))
    await net.run(CONSUMER, "job.release_key", garbage)
    [release] = get_key_releases(await get_job(net, job_id))
    node_private = derive_encryption_keypair(NODE)[0]
    with pytest.raises(SealedObjectError):
        unwrap_key(release.wrapped, node_private, job_id=job_id, purpose="inputs")
    # The node hands the job back at once: the fee runs from the key's release, not the claim.
    await net.run(NODE, "job.release", {"job_id": job_id, "reason": "inputs key does not open"})
    assert (await get_job(net, job_id)).state == SUBMITTED
    assert await _node_stake(net) == stake_before
    assert await get_money_total(net) == 0


async def test_a_release_replayed_on_another_job_is_refused_or_opens_to_nothing() -> None:
    net = await _network()
    first = await submit_private_job(net, CONSUMER, max_price=MAX_PRICE)
    second = await submit_private_job(net, CONSUMER, max_price=MAX_PRICE)
    for job_id in (first, second):
        await claim(net, NODE, job_id)
    data_key = new_data_key()
    body = release_body(Release(first, 1, NODE, "inputs", data_key))
    envelope = sign_command(
        CONSUMER,
        "job.release_key",
        body,
        nonce="replay-1",
        issued_at_ns=net.now_ns,
        network=await net.service.get_network_id(),
    )
    await net.service.execute(envelope, now_ns=net.now_ns)
    # The same signed envelope with the other job's id: its signature no longer holds.
    moved = msgspec.structs.replace(envelope, body={**body, "job_id": second})
    with pytest.raises(EnvelopeError) as bad:
        await net.service.execute(moved, now_ns=net.now_ns)
    assert isinstance(bad.value, BadSignature)
    assert get_key_releases(await get_job(net, second)) == ()
    # A stranger copying the wrapped bytes into a release of its own is refused ...
    copied = {**body, "job_id": second}
    assert await _refused(net, STRANGER, copied) == "key_release_sender_unauthorized"
    # ... and even its consumer's copy opens to nothing there: the wrap binds the job id.
    await net.run(CONSUMER, "job.release_key", copied)
    job = await get_job(net, second)
    assert job.state == CLAIMED
    [release] = get_key_releases(job)
    with pytest.raises(SealedObjectError):
        unwrap_key(
            release.wrapped, derive_encryption_keypair(NODE)[0], job_id=second, purpose="inputs"
        )
