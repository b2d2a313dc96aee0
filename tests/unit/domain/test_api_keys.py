"""Delegated API keys (issue 18, item 1; rules v5), through the command bus: given a network,
when a consumer creates or revokes a key, then its record, the refusals by code, and a
history the audit re-executes byte for byte; the charge decision at its edges."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.api_keys import ApiKey, Delegation, compute_api_key_stream_id, compute_charge_refusal
from domain.errors import Rejection
from domain.policy import AMOUNT_MAX, RULES_V4, LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, b64
from proofs.identity import Identity
from tests.forgery import replay
from validator.audit import REEXECUTION
from validator.audit_rules import find_violation

POLICY = LedgerPolicy()
CONSUMER = Identity.from_seed(bytes([191]) * 32)
SECRET = "flk_" + "ab" * 32
KEY_HASH = hashlib.sha256(SECRET.encode()).digest()
KEY_ID = hashlib.sha256(KEY_HASH).hexdigest()


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key_id": KEY_ID,
        "key_hash": b64(KEY_HASH),
        "spend_limit": 1_000,
        "expires_ns": 0,
    }
    return {**body, **changes}


async def _code(coro: object) -> str:
    with pytest.raises(Rejection) as refused:
        await coro  # type: ignore[misc]
    return str(refused.value.code)


async def _network(policy: LedgerPolicy = POLICY) -> LocalNetwork:
    return LocalNetwork.create(MemoryEventStore(), policy=policy)


async def _get(net: LocalNetwork, key_id: str = KEY_ID) -> ApiKey | None:
    return await get_aggregate(net.store, ApiKey, compute_api_key_stream_id(key_id))


async def test_a_consumer_creates_a_key_by_its_hash_and_revokes_it() -> None:
    net = await _network()
    await net.run(CONSUMER, "apikey.create", _body(expires_ns=net.now_ns + 60))
    key = await _get(net)
    assert key is not None
    assert key.view() == {
        "key_id": KEY_ID,
        "key_hash": KEY_HASH.hex(),
        "consumer": CONSUMER.id,
        "spend_limit": 1_000,
        "spent": 0,
        "expires_ns": net.now_ns + 60,
        "revoked": False,
        "revoked_at_ns": None,
        "version": 1,
    }
    await net.run(CONSUMER, "apikey.revoke", {"key_id": KEY_ID})
    revoked = await _get(net)
    assert revoked is not None and revoked.view()["revoked_at_ns"] == net.now_ns
    again = net.run(CONSUMER, "apikey.revoke", {"key_id": KEY_ID})
    assert await _code(again) == "apikey_revoked"


async def test_refusals_by_code() -> None:
    net = await _network()
    other_id = hashlib.sha256(b"other").hexdigest()
    assert await _code(net.run(CONSUMER, "apikey.create", _body(key_id=other_id))) == (
        "apikey_id_mismatch"
    )
    past = _body(expires_ns=net.now_ns)
    assert await _code(net.run(CONSUMER, "apikey.create", past)) == "apikey_expired"
    unknown = net.run(CONSUMER, "apikey.revoke", {"key_id": other_id})
    assert await _code(unknown) == "apikey_not_found"
    await net.run(CONSUMER, "apikey.create", _body())
    twice = net.run(CONSUMER, "apikey.create", _body(spend_limit=5))
    assert await _code(twice) == "apikey_already_created"
    key = await _get(net)
    assert key is not None and key.spend_limit == 1_000


async def test_apikey_commands_need_rules_v5() -> None:
    net = await _network(msgspec.structs.replace(POLICY, rules_version=RULES_V4))
    assert await _code(net.run(CONSUMER, "apikey.create", _body())) == "rules_v5_required"


@pytest.mark.parametrize(
    "changes",
    [
        {"spend_limit": 0},
        {"spend_limit": AMOUNT_MAX + 1},
        {"key_hash": b64(KEY_HASH[:31])},
        {"key_id": KEY_ID.upper()},
        {"key_id": KEY_ID[:63]},
        {"expires_ns": -1},
        {"extra": 1},
    ],
)
async def test_a_malformed_key_is_refused_at_the_door(changes: dict[str, Any]) -> None:
    net = await _network()
    refused = net.run(CONSUMER, "apikey.create", _body(**changes))
    assert await _code(refused) == "command_body_invalid"


async def test_the_bounds_themselves_are_accepted() -> None:
    net = await _network()
    await net.run(CONSUMER, "apikey.create", _body(spend_limit=AMOUNT_MAX))
    key = await _get(net)
    assert key is not None and key.spend_limit == AMOUNT_MAX


async def test_the_history_reexecutes_byte_for_byte() -> None:
    net = await _network()
    await net.run(CONSUMER, "apikey.create", _body())
    await net.run(CONSUMER, "apikey.revoke", {"key_id": KEY_ID})
    records = await net.store.read_all(1, 10_000)
    assert {"ApiKeyCreated", "ApiKeyRevoked"} <= {r.event_type for r in records}
    replayer = replay(records, reexecute=True)
    assert replayer.reexecution is not None and replayer.reexecution.not_reexecuted == 0
    assert replayer.counts[REEXECUTION] == replayer.commands


@pytest.mark.parametrize("event_type", ["ApiKeyCreated", "ApiKeyRevoked"])
def test_the_audit_refuses_a_key_record_for_another_consumer(event_type: str) -> None:
    args = ("apikey", f"apikey:{KEY_ID}", event_type, {"consumer": "victim"})
    kind = "apikey.create" if event_type == "ApiKeyCreated" else "apikey.revoke"
    none = frozenset[str]()
    assert find_violation(kind, "victim", *args, operators=none, principals=none) is None
    by_stranger = find_violation(kind, "stranger", *args, operators=none, principals=none)
    assert by_stranger == f"{event_type}.consumer is 'victim' but the command is signed by stranger"
    other_kind = find_violation("key.register", "victim", *args, operators=none, principals=none)
    assert other_kind == "key.register may not append to a apikey stream"


def test_the_charge_decision_at_its_edges() -> None:
    live = Delegation(spend_limit=100, spent=60, expires_ns=1_000, revoked=False)
    assert compute_charge_refusal(live, amount=40, now_ns=999) is None
    assert compute_charge_refusal(live, amount=41, now_ns=999) == "apikey_spend_limit_exceeded"
    assert compute_charge_refusal(live, amount=1, now_ns=1_000) == "apikey_expired"
    assert compute_charge_refusal(live, amount=0, now_ns=0) == "amount_must_be_positive"
    never = Delegation(spend_limit=100, spent=0, expires_ns=0, revoked=False)
    assert compute_charge_refusal(never, amount=100, now_ns=2**63 - 1) is None
    revoked = Delegation(spend_limit=100, spent=0, expires_ns=0, revoked=True)
    assert compute_charge_refusal(revoked, amount=1, now_ns=0) == "apikey_revoked"
