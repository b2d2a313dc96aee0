"""Delegated API keys (issue 18, item 1) decide what an unsigned bearer request may spend.
Played with valid keys: a stranger neither revokes a consumer's key nor records one that
spends the consumer's account (its create is its own; reusing the consumer's key id is
refused), an operator cannot revoke it either; a revoked or expired key is refused by the
charge decision; under any sequence of charges the cap is never exceeded; the audit
(re-execution included) accepts the history."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.store.memory import MemoryEventStore
from domain.api_keys import ApiKey, Delegation, compute_api_key_stream_id, compute_charge_refusal
from domain.errors import Rejection, RejectionCode
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, b64
from proofs.identity import Identity
from tests.adversarial._harness import POLICY
from validator.audit import AuditOptions
from validator.audit_run import StoreSource, run_audit

CONSUMER, STRANGER = (Identity.from_seed(bytes([i]) * 32) for i in (193, 194))
KEY_HASH = hashlib.sha256(b"flk_consumer-secret").digest()
KEY_ID = hashlib.sha256(KEY_HASH).hexdigest()
CREATE = {"key_id": KEY_ID, "key_hash": b64(KEY_HASH), "spend_limit": 500, "expires_ns": 0}


async def _network_with_key() -> LocalNetwork:
    net = await LocalNetwork.start(MemoryEventStore(), policy=POLICY)
    await net.run(CONSUMER, "apikey.create", CREATE)
    return net


async def _key(net: LocalNetwork) -> ApiKey:
    key = await get_aggregate(net.store, ApiKey, compute_api_key_stream_id(KEY_ID))
    assert key is not None
    return key


async def _refused(net: LocalNetwork, actor: Identity, kind: str, body: dict[str, object]) -> str:
    with pytest.raises(Rejection) as refused:
        await net.run(actor, kind, body)
    return str(refused.value.code)


async def test_a_stranger_neither_revokes_nor_takes_over_a_consumers_key() -> None:
    net = await _network_with_key()
    revoke = {"key_id": KEY_ID}
    assert await _refused(net, STRANGER, "apikey.revoke", revoke) == "apikey_not_owned"
    assert await _refused(net, net.operator, "apikey.revoke", revoke) == "apikey_not_owned"
    bigger = {**CREATE, "spend_limit": 10**12}
    assert await _refused(net, STRANGER, "apikey.create", bigger) == "apikey_already_created"
    key = await _key(net)
    assert (key.consumer, key.spend_limit, key.revoked_at_ns) == (CONSUMER.id, 500, None)
    # A stranger's own key is recorded under the stranger: it can never spend the consumer's.
    own_hash = hashlib.sha256(b"flk_stranger-secret").digest()
    own_id = hashlib.sha256(own_hash).hexdigest()
    own = {**CREATE, "key_id": own_id, "key_hash": b64(own_hash)}
    await net.run(STRANGER, "apikey.create", own)
    theirs = await get_aggregate(net.store, ApiKey, compute_api_key_stream_id(own_id))
    assert theirs is not None and theirs.consumer == STRANGER.id
    options = AuditOptions(trusted_operators=frozenset(net.policy.operators))
    report = await run_audit(StoreSource(net.store, "memory:"), options)
    assert report.ok, report.failure


async def test_a_revoked_key_is_refused_by_the_charge_decision() -> None:
    net = await _network_with_key()
    assert compute_charge_refusal((await _key(net)).get_delegation(), amount=1, now_ns=0) is None
    await net.run(CONSUMER, "apikey.revoke", {"key_id": KEY_ID})
    delegation = (await _key(net)).get_delegation()
    refusal = compute_charge_refusal(delegation, amount=1, now_ns=net.now_ns)
    assert refusal == RejectionCode.APIKEY_REVOKED


async def test_an_expired_key_is_refused_by_the_charge_decision() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=POLICY)
    expires_ns = net.now_ns + 1_000
    await net.run(CONSUMER, "apikey.create", {**CREATE, "expires_ns": expires_ns})
    delegation = (await _key(net)).get_delegation()
    assert compute_charge_refusal(delegation, amount=1, now_ns=expires_ns - 1) is None
    refusal = compute_charge_refusal(delegation, amount=1, now_ns=expires_ns)
    assert refusal == RejectionCode.APIKEY_EXPIRED


@settings(max_examples=200, deadline=None)
@given(
    spend_limit=st.integers(1, 10**6),
    charges=st.lists(st.integers(-5, 3 * 10**5), max_size=40),
)
def test_the_cap_is_never_exceeded_by_any_sequence_of_charges(
    spend_limit: int, charges: list[int]
) -> None:
    spent = 0
    for amount in charges:
        delegation = Delegation(spend_limit=spend_limit, spent=spent, expires_ns=0, revoked=False)
        if compute_charge_refusal(delegation, amount=amount, now_ns=0) is None:
            spent += amount
        assert 0 <= spent <= spend_limit
    # What was refused was refused only because it did not fit (or was no charge at all).
    remaining = spend_limit - spent
    full = Delegation(spend_limit=spend_limit, spent=spent, expires_ns=0, revoked=False)
    assert compute_charge_refusal(full, amount=remaining + 1, now_ns=0) is not None
    if remaining:
        assert compute_charge_refusal(full, amount=remaining, now_ns=0) is None
