"""LLM completions spend a consumer's money under its delegation only (issue 18). Played with
valid keys and signed commands: the completion signer (the API) opening beyond the key's cap,
after its revocation, after its expiry, or for one consumer under another's key; a consumer or
a node opening at all; concurrent opens racing the cap; the serving node committing more
tokens than the opened bounds; another node committing; a commit replayed; a commit after an
abort; a stranger aborting inside the commit window. Each is refused with the money accounted
for (the consumer's balance, what it has available, the key's spent amount, money conserved).
An operator that patches its ledger to open past a cap is caught by the audit's delegation
check, with re-execution and without."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import domain.api_keys as api_keys
from domain.errors import Rejection, RejectionCode
from domain.ledger import user_account
from domain.services.queries import get_balances
from proofs.envelope import sign_command
from proofs.identity import Identity
from tests.completion_network import (
    CONSUMER,
    CONSUMER_FUNDS,
    NODE,
    CompletionNet,
    add_serving_node,
    compute_escrow,
    start_completion_network,
)
from validator.audit import AuditOptions
from validator.audit_run import StoreSource, run_audit

VICTIM = Identity.from_seed(bytes([221]) * 32)
OTHER_NODE = Identity.from_seed(bytes([222]) * 32)
STRANGER = Identity.from_seed(bytes([223]) * 32)
ESCROW = compute_escrow(100, 50)  # the helpers' default bounds


async def _refused(coro: object) -> str:
    with pytest.raises(Rejection) as refused:
        await coro  # type: ignore[misc]
    return str(refused.value.code)


async def _assert_money(cnet: CompletionNet, *, charged: int, held: int, key_id: str) -> None:
    """The consumer paid ``charged``, has ``held`` in escrow; its key counts both."""
    accounts = await get_balances(cnet.net.store)
    consumer = accounts[user_account(CONSUMER.id)]
    assert consumer.balance == CONSUMER_FUNDS - charged
    assert consumer.available == CONSUMER_FUNDS - charged - held
    assert (await cnet.get_key(key_id)).spent == charged + held
    assert await cnet.money_total() == 0


async def test_the_api_cannot_open_beyond_the_cap_after_revocation_or_after_expiry() -> None:
    cnet = await start_completion_network(spend_limit=2 * ESCROW)
    await cnet.open()
    await cnet.open()
    assert await _refused(cnet.open()) == RejectionCode.APIKEY_SPEND_LIMIT_EXCEEDED
    await _assert_money(cnet, charged=0, held=2 * ESCROW, key_id=cnet.key_id)

    revoked = await cnet.create_key(CONSUMER, "revoked", spend_limit=10 * ESCROW)
    await cnet.net.run(CONSUMER, "apikey.revoke", {"key_id": revoked})
    assert await _refused(cnet.open(key_id=revoked)) == RejectionCode.APIKEY_REVOKED
    expiring = await cnet.create_key(
        CONSUMER, "expiring", spend_limit=10 * ESCROW, expires_ns=cnet.net.now_ns + 1_000
    )
    cnet.net.advance(1)
    assert await _refused(cnet.open(key_id=expiring)) == RejectionCode.APIKEY_EXPIRED
    for key_id in (revoked, expiring):
        assert (await cnet.get_key(key_id)).spent == 0
    await _assert_money(cnet, charged=0, held=2 * ESCROW, key_id=cnet.key_id)


async def test_a_key_spends_its_own_consumers_money_and_only_the_signer_opens() -> None:
    cnet = await start_completion_network()
    await cnet.net.deposit(VICTIM, CONSUMER_FUNDS)
    victim_key = await cnet.create_key(VICTIM, "victim", spend_limit=ESCROW)
    # A consumer (or a node, or a stranger) signing an open itself: not a completion signer.
    for actor in (CONSUMER, NODE, STRANGER):
        refused = cnet.open(key_id=victim_key, signer=actor)
        assert await _refused(refused) == RejectionCode.COMPLETION_SIGNER_NOT_ALLOWED
    # The signer opening for one consumer under another's key charges the key's consumer,
    # and no more than that consumer allowed.
    completion_id = await cnet.open(key_id=victim_key)
    assert (await cnet.get(completion_id)).consumer == VICTIM.id
    assert await _refused(cnet.open(key_id=victim_key)) == (
        RejectionCode.APIKEY_SPEND_LIMIT_EXCEEDED
    )
    await cnet.commit(completion_id)
    accounts = await get_balances(cnet.net.store)
    assert accounts[user_account(VICTIM.id)].balance == CONSUMER_FUNDS - (40 + 20 * 2)
    await _assert_money(cnet, charged=0, held=0, key_id=cnet.key_id)


async def test_concurrent_opens_racing_the_cap_cannot_pass_it() -> None:
    cnet = await start_completion_network(spend_limit=3 * ESCROW)
    net = cnet.net
    await net.declare_genesis()
    network_id = await net.service.get_network_id()
    body = {
        "key_id": cnet.key_id,
        "model_id": "tiny-llama-7",
        "node_id": NODE.id,
        "request_digest": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "prompt_tokens_max": 100,
        "max_tokens": 50,
        "greedy": True,
    }
    envelopes = [
        sign_command(
            cnet.signer,
            "completion.open",
            body,
            nonce=f"race-{i}",
            issued_at_ns=net.now_ns,
            network=network_id,
        )
        for i in range(6)
    ]
    outcomes = await asyncio.gather(
        *(net.service.execute(e, now_ns=net.now_ns) for e in envelopes), return_exceptions=True
    )
    opened = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, Rejection)]
    assert len(opened) == 3 and len(refused) == 3
    assert {r.code for r in refused} == {RejectionCode.APIKEY_SPEND_LIMIT_EXCEEDED}
    await _assert_money(cnet, charged=0, held=3 * ESCROW, key_id=cnet.key_id)


async def test_the_node_cannot_commit_past_the_bounds_and_no_other_node_commits() -> None:
    cnet = await start_completion_network()
    await add_serving_node(cnet.net, OTHER_NODE)
    completion_id = await cnet.open(prompt_tokens_max=100, max_tokens=50)
    too_long = cnet.commit(completion_id, completion_tokens=51)
    assert await _refused(too_long) == RejectionCode.COMPLETION_TOKENS_ABOVE_MAX
    too_big = cnet.commit(completion_id, prompt_tokens=101)
    assert await _refused(too_big) == RejectionCode.COMPLETION_PROMPT_TOKENS_ABOVE_BOUND
    other = cnet.commit(completion_id, node=OTHER_NODE)
    assert await _refused(other) == RejectionCode.NOT_THE_COMPLETION_NODE
    await _assert_money(cnet, charged=0, held=ESCROW, key_id=cnet.key_id)
    # At the bounds the escrow pays exactly the usage: nothing beyond it can be charged.
    await cnet.commit(completion_id, prompt_tokens=100, completion_tokens=50)
    await _assert_money(cnet, charged=ESCROW, held=0, key_id=cnet.key_id)


async def test_a_replayed_commit_pays_once_and_a_second_commit_is_refused() -> None:
    cnet = await start_completion_network()
    net = cnet.net
    provider_before = await cnet.balance(user_account(NODE.id))
    completion_id = await cnet.open()
    envelope = sign_command(
        NODE,
        "completion.commit",
        {
            "completion_id": completion_id,
            "prompt_tokens": 40,
            "completion_tokens": 20,
            "commitment": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "proof_digest": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        },
        nonce="commit-once",
        issued_at_ns=net.now_ns,
        network=await net.service.get_network_id(),
    )
    first = await net.service.execute(envelope, now_ns=net.now_ns)
    again = await net.service.execute(envelope, now_ns=net.now_ns)
    assert again.replayed and again.first_position == first.first_position
    assert await _refused(cnet.commit(completion_id)) == RejectionCode.COMPLETION_CLEARED
    charge = 40 + 20 * 2
    paid = await cnet.balance(user_account(NODE.id)) - provider_before
    assert 0 < paid <= charge
    await _assert_money(cnet, charged=charge, held=0, key_id=cnet.key_id)


async def test_no_commit_after_an_abort_and_no_stranger_aborts_inside_the_window() -> None:
    cnet = await start_completion_network()
    kept = await cnet.open()
    assert await _refused(cnet.abort(kept, by=STRANGER)) == (
        RejectionCode.COMPLETION_COMMIT_WINDOW_OPEN
    )
    assert await _refused(cnet.abort(kept, by=NODE)) == RejectionCode.COMPLETION_COMMIT_WINDOW_OPEN
    aborted = await cnet.open()
    await cnet.abort(aborted)
    assert await _refused(cnet.commit(aborted)) == RejectionCode.COMPLETION_ABORTED
    assert await _refused(cnet.abort(aborted)) == RejectionCode.COMPLETION_ABORTED
    await _assert_money(cnet, charged=0, held=ESCROW, key_id=cnet.key_id)
    await cnet.commit(kept)
    await _assert_money(cnet, charged=40 + 20 * 2, held=0, key_id=cnet.key_id)
    report = await run_audit(StoreSource(cnet.net.store, "memory:"), AuditOptions())
    assert report.ok, report.failure


@pytest.mark.parametrize("reexecute", [True, False])
async def test_a_ledger_patched_to_open_past_the_cap_fails_the_audit(
    monkeypatch: pytest.MonkeyPatch, reexecute: bool, tmp_path: Path
) -> None:
    cnet = await start_completion_network(spend_limit=ESCROW)
    await cnet.open()
    with monkeypatch.context() as patched:  # the operator's ledger, not the auditor's code
        patched.setattr(api_keys, "compute_charge_refusal", lambda *_a, **_k: None)
        await cnet.open()
    assert (await cnet.get_key()).spent == 2 * ESCROW  # what the patched ledger recorded
    options = AuditOptions(reexecute=reexecute)
    report = await run_audit(StoreSource(cnet.net.store, "memory:"), options)
    assert report.failure is not None
    assert report.failure.check == "authorization"
    assert "delegation refuses it" in report.failure.message
